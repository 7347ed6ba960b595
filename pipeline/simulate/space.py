"""Coordinate maps of the phantom generator.

A phantom image is made by *pulling* template values into a subject's
scanner grid: every scanner voxel centre (world mm) is mapped to the template
(world mm) and the template layer is interpolated there. The map is

    scanner --(session head pose, rigid)--> subject native
            --(subject affine: scale, rotation, shift)--> template
            --(+ smooth displacement field)--> template

so each subject has its own anatomy (affine + nonlinear warp) and each
session its own head position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


def rotation_matrix(angles_rad) -> np.ndarray:
    """3x3 rotation from (x, y, z) Euler angles in radians (R = Rz @ Ry @ Rx)."""
    ax, ay, az = angles_rad
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def rigid_matrix(translation_mm, angles_deg) -> np.ndarray:
    """4x4 rigid transform from a translation (mm) and Euler angles (degrees)."""
    out = np.eye(4)
    out[:3, :3] = rotation_matrix(np.deg2rad(np.asarray(angles_deg, dtype=float)))
    out[:3, 3] = translation_mm
    return out


def apply_affine(matrix: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Apply a 4x4 affine to points of shape (N, 3)."""
    return xyz @ matrix[:3, :3].T + matrix[:3, 3]


def grid_affine(shape, voxel_mm: float, center_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    """RAS voxel-to-world affine of a grid of ``shape`` centred on ``center_mm``."""
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = np.asarray(center_mm) - voxel_mm * (np.asarray(shape) - 1) / 2.0
    return affine


def grid_for_fov(fov_mm, voxel_mm: float, center_mm=(0.0, 0.0, 0.0)):
    """Shape and affine of an isotropic grid covering ``fov_mm`` (x, y, z)."""
    shape = tuple(int(np.ceil(f / voxel_mm)) for f in fov_mm)
    return shape, grid_affine(shape, voxel_mm, center_mm)


@dataclass(frozen=True)
class SubjectWarp:
    """Smooth map from subject-native world (mm) to template world (mm).

    Attributes
    ----------
    template_from_native : ndarray, shape (4, 4)
        Linear part (scale, rotation, shift).
    displacement : ndarray, shape (3, I, J, K)
        Displacement (mm) added in template space, on a coarse grid.
    displacement_affine : ndarray, shape (4, 4)
        Voxel-to-world affine of the coarse displacement grid.
    """

    template_from_native: np.ndarray
    displacement: np.ndarray
    displacement_affine: np.ndarray

    def __call__(self, xyz_native: np.ndarray) -> np.ndarray:
        linear = apply_affine(self.template_from_native, xyz_native)
        ijk = apply_affine(np.linalg.inv(self.displacement_affine), linear).T
        disp = np.stack(
            [ndimage.map_coordinates(d, ijk, order=1, mode="nearest") for d in self.displacement],
            axis=1,
        )
        return linear + disp

    @property
    def linear_scale(self) -> float:
        """Geometric mean scale of the linear part (template mm per native mm)."""
        return float(abs(np.linalg.det(self.template_from_native[:3, :3])) ** (1 / 3))

    def save(self, path) -> None:
        np.savez_compressed(
            path,
            template_from_native=self.template_from_native,
            displacement=self.displacement.astype(np.float32),
            displacement_affine=self.displacement_affine,
        )

    @classmethod
    def load(cls, path) -> SubjectWarp:
        data = np.load(path)
        return cls(data["template_from_native"], data["displacement"], data["displacement_affine"])


def random_subject_warp(
    rng: np.random.Generator,
    *,
    brain_center_template=(0.0, -18.0, 18.0),
    scale_mean: float = 0.9,
    scale_sd: float = 0.03,
    max_rotation_deg: float = 3.0,
    displacement_mm: float = 2.5,
    control_spacing_mm: float = 12.0,
    template_extent_mm=(200.0, 240.0, 200.0),
) -> SubjectWarp:
    """Draw a subject's anatomy: anisotropic scale, small rotation, smooth warp.

    The native world origin maps near the template's brain centre. Scale is in
    native mm per template mm (MNI brains are larger than individual brains,
    hence a mean below 1 from native to template inverted below).
    """
    scales = rng.normal(scale_mean, scale_sd, size=3)
    rot = rotation_matrix(np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg, 3)))
    native_from_template = np.eye(4)
    native_from_template[:3, :3] = np.diag(scales) @ rot
    native_from_template[:3, 3] = -native_from_template[:3, :3] @ np.asarray(brain_center_template)
    native_from_template[:3, 3] += rng.normal(0, 1.0, 3)
    template_from_native = np.linalg.inv(native_from_template)

    shape = tuple(int(np.ceil(e / control_spacing_mm)) + 1 for e in template_extent_mm)
    affine = grid_affine(shape, control_spacing_mm, brain_center_template)
    raw = rng.normal(size=(3, *shape))
    smooth = np.stack([ndimage.gaussian_filter(r, sigma=1.0, mode="wrap") for r in raw])
    smooth *= displacement_mm / max(float(smooth.std()), 1e-9)
    return SubjectWarp(template_from_native, smooth.astype(np.float32), affine)


class SessionMap:
    """Scanner world (mm) of one session to template world (mm)."""

    def __init__(self, warp: SubjectWarp, native_from_scanner: np.ndarray):
        self.warp = warp
        self.native_from_scanner = np.asarray(native_from_scanner, dtype=float)

    def __call__(self, xyz_scanner: np.ndarray) -> np.ndarray:
        return self.warp(apply_affine(self.native_from_scanner, xyz_scanner))

    def with_extra_pose(self, extra_scanner_from_scanner: np.ndarray) -> SessionMap:
        """The same head seen after a further rigid move (a later acquisition)."""
        return SessionMap(self.warp, self.native_from_scanner @ extra_scanner_from_scanner)


def voxel_world_coords(shape, affine, z_slice=None) -> np.ndarray:
    """World coordinates (N, 3) of the voxel centres of a grid (or of a z slab)."""
    zs = range(shape[2]) if z_slice is None else range(*z_slice.indices(shape[2]))
    ijk = np.stack(
        np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), np.asarray(list(zs)), indexing="ij"),
        axis=-1,
    ).reshape(-1, 3)
    return apply_affine(affine, ijk.astype(np.float64))


def pull(
    volumes,
    source_affine: np.ndarray,
    mapping,
    target_shape,
    target_affine: np.ndarray,
    *,
    order: int = 1,
    slab: int = 16,
) -> list[np.ndarray]:
    """Interpolate source volumes at the mapped voxel centres of a target grid.

    Parameters
    ----------
    volumes : sequence of ndarray
        3D arrays on the source grid (all the same shape).
    source_affine : ndarray (4, 4)
        Voxel-to-world of the source grid.
    mapping : callable
        Target world (N, 3) -> source world (N, 3).
    target_shape, target_affine
        The grid to fill.
    order : int
        Spline order (0 nearest, 1 trilinear).
    slab : int
        z slices processed at once (bounds memory at 1 mm).

    Returns
    -------
    list of ndarray
        float32 arrays of ``target_shape``; 0 outside the source.
    """
    inv = np.linalg.inv(source_affine)
    out = [np.zeros(target_shape, dtype=np.float32) for _ in volumes]
    for z0 in range(0, target_shape[2], slab):
        zsl = slice(z0, min(z0 + slab, target_shape[2]))
        xyz = voxel_world_coords(target_shape, target_affine, zsl)
        ijk = apply_affine(inv, mapping(xyz)).T
        nz = zsl.stop - zsl.start
        for vol, dst in zip(volumes, out, strict=True):
            vals = ndimage.map_coordinates(vol, ijk, order=order, mode="constant", cval=0.0)
            dst[:, :, zsl] = vals.reshape(target_shape[0], target_shape[1], nz)
    return out

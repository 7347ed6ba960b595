"""Head-motion estimation and correction of a BOLD run (rigid, every volume to one reference).

Convention of the returned motion (the same as the phantom's truth,
:mod:`pipeline.simulate.bold`): ``transforms[i]`` is a 4x4 rigid map in
scanner world mm taking the position of a head point at the reference volume
to its position at volume ``i``, so ``volume_i(T_i x) = reference(x)``;
``parameters[i] = (tx, ty, tz, rx, ry, rz)`` (mm, degrees) decompose
``T_i = [R | t]`` with ``R = Rz @ Ry @ Rx`` (rotations about the scanner-world
origin, :func:`pipeline.simulate.space.rotation_matrix`) and ``t`` its
translation. The estimation itself works about the centre of the head (for a
well-conditioned Jacobian); only the reported parameters are expressed about
the origin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pipeline.qc import iqm

logger = logging.getLogger(__name__)

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
FD_RADIUS_MM = 50.0


@dataclass
class MotionEstimate:
    """Result of :func:`realign`.

    Attributes
    ----------
    transforms : ndarray, shape (T, 4, 4)
        Reference world mm -> volume ``i`` world mm (see module docstring).
    parameters : ndarray, shape (T, 6)
        tx, ty, tz (mm), rx, ry, rz (degrees) of ``transforms`` about the origin.
    reference_index : int
        Volume every other one was registered to.
    iterations : ndarray, shape (T,)
        Gauss-Newton iterations used at the finest level.
    """

    transforms: np.ndarray
    parameters: np.ndarray
    reference_index: int
    iterations: np.ndarray


def rotation_angles(rotation: np.ndarray) -> np.ndarray:
    """Euler angles (radians) of ``R = Rz @ Ry @ Rx``; inverse of
    :func:`pipeline.simulate.space.rotation_matrix` for |ry| < 90 degrees."""
    ry = -np.arcsin(np.clip(rotation[2, 0], -1.0, 1.0))
    rx = np.arctan2(rotation[2, 1], rotation[2, 2])
    rz = np.arctan2(rotation[1, 0], rotation[0, 0])
    return np.array([rx, ry, rz])


def parameters_from_transforms(transforms: np.ndarray) -> np.ndarray:
    """(T, 4, 4) rigid matrices -> (T, 6) tx, ty, tz (mm), rx, ry, rz (degrees)."""
    out = np.empty((len(transforms), 6))
    for i, matrix in enumerate(transforms):
        out[i, :3] = matrix[:3, 3]
        out[i, 3:] = np.rad2deg(rotation_angles(matrix[:3, :3]))
    return out


def _small_rotation(omega: np.ndarray) -> np.ndarray:
    """Rotation matrix of the rotation vector ``omega`` (radians), Rodrigues."""
    angle = float(np.linalg.norm(omega))
    if angle < 1e-12:
        return np.eye(3)
    k = omega / angle
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def _update_matrix(delta: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Rigid map x -> c + R(omega) (x - c) + t for delta = (t, omega)."""
    out = np.eye(4)
    out[:3, :3] = _small_rotation(delta[3:6])
    out[:3, 3] = centre + delta[:3] - out[:3, :3] @ centre
    return out


class _Level:
    """Reference samples and the constant Gauss-Newton system of one resolution level."""

    def __init__(self, reference, affine, mask, *, sigma_vox, step):
        self.sigma_vox = sigma_vox
        ref = ndimage.gaussian_filter(reference.astype(np.float32), sigma_vox)
        sub = np.zeros_like(mask)
        sub[::step, ::step, ::step] = True
        ijk = np.argwhere(mask & sub).astype(np.float64)
        grad_vox = np.stack([g[mask & sub] for g in np.gradient(ref)], axis=1)
        linear = affine[:3, :3]
        grad = grad_vox @ np.linalg.inv(linear)  # d/d(world) = d/d(ijk) @ inv(A)
        self.world = ijk @ linear.T + affine[:3, 3]
        self.centre = self.world.mean(axis=0)
        self.values = ref[mask & sub].astype(np.float64)
        offset = self.world - self.centre
        # columns: translation (3), rotation about the centre (3), intensity scale, offset
        jac = np.column_stack([grad, np.cross(offset, grad), self.values,
                               np.ones(len(self.values))])
        self.solver = np.linalg.solve(jac.T @ jac, jac.T)
        self.inv_affine = np.linalg.inv(affine)


def _register_volume(volume, level, start, *, order, max_iterations, tolerance_mm):
    """Gauss-Newton (inverse compositional) rigid registration of one volume.

    Returns the reference-world -> volume-world matrix and the iteration count.
    """
    moving = ndimage.gaussian_filter(volume.astype(np.float32), level.sigma_vox)
    if order > 1:
        moving = ndimage.spline_filter(moving, order=order, output=np.float32)
    transform = start.copy()
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        vox_from_ref = level.inv_affine @ transform
        ijk = level.world @ vox_from_ref[:3, :3].T + vox_from_ref[:3, 3]
        sampled = ndimage.map_coordinates(moving, ijk.T, order=order, mode="nearest",
                                          prefilter=False)
        delta = level.solver @ (sampled - level.values)
        transform = transform @ np.linalg.inv(_update_matrix(delta[:6], level.centre))
        # displacement of a point at 50 mm from the centre
        if np.linalg.norm(delta[:3]) + FD_RADIUS_MM * np.linalg.norm(delta[3:6]) < tolerance_mm:
            break
    return transform, iterations


def realign(
    data: np.ndarray,
    affine: np.ndarray,
    *,
    reference_index: int = 0,
    mask: np.ndarray | None = None,
    levels=((2.0, 2), (1.0, 2)),
    max_iterations: int = 30,
    tolerance_mm: float = 1e-3,
) -> MotionEstimate:
    """Estimate rigid head motion of every volume relative to a reference volume.

    Parameters
    ----------
    data : ndarray, shape (X, Y, Z, T)
        BOLD series (dummy scans already removed).
    affine : ndarray, shape (4, 4)
        Voxel -> scanner world mm.
    reference_index : int
        Index of the reference volume.
    mask : ndarray of bool, shape (X, Y, Z), optional
        Voxels whose intensities drive the registration (default: the head of
        the reference, dilated by one voxel).
    levels : sequence of (float, int)
        Coarse-to-fine levels: Gaussian smoothing sigma (voxels) and sampling
        step (every n-th voxel along each axis).
    max_iterations : int
        Gauss-Newton iterations per level and volume.
    tolerance_mm : float
        Stop when the update moves a point 50 mm from the centre by less (mm).

    Returns
    -------
    MotionEstimate

    Notes
    -----
    Least squares of the intensity difference (with a global intensity scale
    and offset as nuisance parameters), solved by inverse-compositional
    Gauss-Newton (Baker & Matthews 2004): the Jacobian comes from the smoothed
    reference's gradient and is computed once per level, so one iteration
    costs one interpolation of the moving volume; the update is composed with
    the current estimate. Like SPM's realign (Friston et al. 1995), the images
    are smoothed, and the finest level interpolates with cubic B-splines.
    Volumes are visited outward from the reference, each starting from its
    neighbour's estimate (head motion is smooth in time).
    """
    n_volumes = data.shape[3]
    reference = data[..., reference_index]
    if mask is None:
        mask = ndimage.binary_dilation(iqm.head_mask(reference), iterations=1)
    built = [_Level(reference, affine, mask, sigma_vox=s, step=st) for s, st in levels]
    transforms = np.tile(np.eye(4), (n_volumes, 1, 1))
    iterations = np.zeros(n_volumes, dtype=int)
    order_of_visit = [*range(reference_index + 1, n_volumes), *range(reference_index - 1, -1, -1)]
    from pipeline.progress import Progress

    progress = Progress("BOLD realignment (volumes)", len(order_of_visit))
    for i in order_of_visit:
        progress.update()
        neighbour = i - 1 if i > reference_index else i + 1
        transform = transforms[neighbour]
        for k, level in enumerate(built):
            finest = k == len(built) - 1
            transform, its = _register_volume(
                data[..., i], level, transform, order=3 if finest else 1,
                max_iterations=max_iterations, tolerance_mm=tolerance_mm)
        transforms[i] = transform
        iterations[i] = its
    logger.info("realigned %d volumes to volume %d (median %d iterations at the finest level)",
                n_volumes, reference_index, int(np.median(iterations)))
    return MotionEstimate(transforms, parameters_from_transforms(transforms), reference_index,
                          iterations)


def resample_volumes(data: np.ndarray, affine: np.ndarray, transforms: np.ndarray, *,
                     order: int = 3) -> np.ndarray:
    """Motion-corrected series: ``out_i(x) = volume_i(T_i x)`` on the reference grid.

    Parameters
    ----------
    data : ndarray, shape (X, Y, Z, T)
    affine : ndarray, shape (4, 4)
    transforms : ndarray, shape (T, 4, 4)
        From :func:`realign`.
    order : int
        Spline order (3 cubic B-spline; 1 trilinear).

    Returns
    -------
    ndarray, float32, shape (X, Y, Z, T); voxels sampled outside the field of
    view take the nearest edge value.
    """
    out = np.empty(data.shape, dtype=np.float32)
    inv = np.linalg.inv(affine)
    for i in range(data.shape[3]):
        vox = inv @ transforms[i] @ affine
        if np.allclose(vox, np.eye(4), atol=1e-6):
            out[..., i] = data[..., i]
            continue
        out[..., i] = ndimage.affine_transform(data[..., i].astype(np.float32), vox[:3, :3],
                                               offset=vox[:3, 3], order=order, mode="nearest")
    return out


def relative_to_first(transforms: np.ndarray) -> np.ndarray:
    """Express motion relative to volume 0: ``T_i @ inv(T_0)`` (mm, scanner world)."""
    return transforms @ np.linalg.inv(transforms[0])


def framewise_displacement(parameters: np.ndarray, *, radius_mm: float = FD_RADIUS_MM) -> np.ndarray:
    """Framewise displacement (Power et al. 2012) in mm, first entry 0.

    Parameters
    ----------
    parameters : ndarray, shape (T, 6)
        tx, ty, tz (mm), rx, ry, rz (degrees).
    radius_mm : float
        Radius of the sphere on which rotations are turned into displacements.

    Notes
    -----
    ``FD_i = sum |d translation| + radius * sum |d rotation (rad)|``.
    """
    delta = np.abs(np.diff(parameters, axis=0))
    fd = delta[:, :3].sum(axis=1) + radius_mm * np.deg2rad(delta[:, 3:]).sum(axis=1)
    return np.r_[0.0, fd]


def friston24(parameters: np.ndarray) -> np.ndarray:
    """24 motion regressors (Friston et al. 1996): parameters, their backward
    differences (first row 0), and the squares of both; shape (T, 24)."""
    derivative = np.vstack([np.zeros((1, parameters.shape[1])), np.diff(parameters, axis=0)])
    return np.hstack([parameters, derivative, parameters**2, derivative**2])

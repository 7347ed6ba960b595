"""Registration of one DWI volume to a target of the same contrast: rigid head
motion plus an eddy-current affine along the phase-encoding axis.

Coordinates are the **grid frame**: millimetres along the voxel axes of the
(canonical) DWI grid, origin at the grid centre, ``p = (ijk - c) * zooms``.
For a canonical grid these axes are the scanner's (oblique grids keep their
rotation), so the phase-encoding direction is one axis ``pe`` of this frame
and the b-vectors (voxel frame) turn with the rotations found here.

The map from a reference point p to where volume i saw it is

    q = R p + t                      (rigid head motion)
    y = q + (e . q) u_pe             (eddy currents: shear / scale along pe)

``t[pe]`` holds both the head's translation and the eddy-current offset along
the phase-encoding axis: within one volume they are the same displacement
(:func:`pipeline.dwi.eddy.split_pe_translation` separates them over volumes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation


@dataclass
class VolumeTransform:
    """Reference -> volume map of one volume (grid frame, see the module notes).

    Attributes
    ----------
    rotation : ndarray (3, 3)
    translation : ndarray (3,)
        mm.
    eddy : ndarray (3,)
        Displacement along the phase-encoding axis per mm along x, y, z of the
        grid frame (dimensionless; ``eddy[pe]`` is the scale along pe).
    """

    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    eddy: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def copy(self) -> VolumeTransform:
        return VolumeTransform(self.rotation.copy(), self.translation.copy(), self.eddy.copy())

    def rigid_points(self, points: np.ndarray) -> np.ndarray:
        """q = R p + t for points (N, 3) in mm."""
        return points @ self.rotation.T + self.translation

    def map_points(self, points: np.ndarray, pe_axis: int) -> np.ndarray:
        """y for reference points (N, 3) in mm."""
        q = self.rigid_points(points)
        q[:, pe_axis] += q @ self.eddy
        return q

    def jacobian(self, pe_axis: int) -> float:
        """Volume change of the map (the rigid part keeps volume): 1 + e[pe]."""
        return 1.0 + float(self.eddy[pe_axis])

    def matrix(self, pe_axis: int) -> np.ndarray:
        """The whole map as a 4x4 affine of the grid frame."""
        rigid = np.eye(4)
        rigid[:3, :3], rigid[:3, 3] = self.rotation, self.translation
        eddy = np.eye(4)
        eddy[pe_axis, :3] += self.eddy
        return eddy @ rigid

    def rigid_matrix(self) -> np.ndarray:
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = self.rotation, self.translation
        return out


def grid_points(shape, zooms) -> np.ndarray:
    """Grid-frame coordinates (X, Y, Z, 3) in mm of every voxel centre."""
    centre = (np.asarray(shape[:3], float) - 1.0) / 2.0
    ijk = np.indices(shape[:3], dtype=np.float64)
    return np.moveaxis((ijk - centre[:, None, None, None]) * np.asarray(zooms, float)[:, None,
                                                                                    None, None],
                       0, -1)


def to_voxels(points: np.ndarray, shape, zooms) -> np.ndarray:
    """Grid-frame mm (N, 3) -> voxel indices (3, N)."""
    centre = (np.asarray(shape[:3], float) - 1.0) / 2.0
    return (points / np.asarray(zooms, float) + centre).T


def grid_to_world(affine: np.ndarray, shape) -> np.ndarray:
    """4x4 map from the grid frame (mm) to the world (scanner mm)."""
    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    centre = (np.asarray(shape[:3], float) - 1.0) / 2.0
    scale = np.diag(list(1.0 / zooms) + [1.0])
    scale[:3, 3] = centre
    return np.asarray(affine, float) @ scale


@dataclass
class _Level:
    coef: np.ndarray
    gradient: list
    points: np.ndarray
    target: np.ndarray
    weight: np.ndarray


def _prepare(moving, target, weight, zooms, sigma, stride):
    if sigma > 0:
        moving = ndimage.gaussian_filter(moving, sigma, mode="nearest")
        target = ndimage.gaussian_filter(target, sigma, mode="nearest")
    coef = ndimage.spline_filter(np.asarray(moving, np.float64), order=3, mode="mirror")
    gradient = [np.ascontiguousarray(g / z) for g, z in
                zip(np.gradient(np.asarray(moving, np.float64)), zooms, strict=True)]
    keep = np.zeros(weight.shape, bool)
    keep[::stride, ::stride, ::stride] = True
    keep &= weight > 0
    idx = np.nonzero(keep)
    centre = (np.asarray(weight.shape, float) - 1.0) / 2.0
    points = (np.stack(idx, axis=1) - centre) * np.asarray(zooms, float)
    return _Level(coef, gradient, points, np.asarray(target, np.float64)[idx],
                  np.asarray(weight, np.float64)[idx])


def _sample(level: _Level, shape, zooms, mapped, *, with_gradient: bool):
    vox = to_voxels(mapped, shape, zooms)
    upper = (np.asarray(shape[:3], float) - 1.0)[:, None]
    valid = np.all((vox >= 0.0) & (vox <= upper), axis=0)
    value = ndimage.map_coordinates(level.coef, vox, order=3, prefilter=False, mode="mirror")
    if not with_gradient:
        return value, valid, None
    grad = np.stack([ndimage.map_coordinates(g, vox, order=1, mode="nearest")
                     for g in level.gradient], axis=1)
    return value, valid, grad


def _cost(residual, weight, valid) -> float:
    w = weight * valid
    total = w.sum()
    return float((w * residual**2).sum() / total) if total > 0 else np.inf


def register_volume(moving: np.ndarray, target: np.ndarray, weight: np.ndarray, *, zooms,
                    pe_axis: int, init: VolumeTransform | None = None, eddy: bool = True,
                    freeze_pe_translation: bool = False, sigmas=(1.0, 0.0), strides=(2, 1),
                    max_iterations=20, tolerance_mm: float = 1e-3,
                    jacobian: bool = True) -> VolumeTransform:
    """Fit the map of ``moving`` onto ``target`` (least squares, Levenberg-Marquardt).

    Parameters
    ----------
    moving : ndarray (X, Y, Z)
        The volume as acquired (on the reference grid).
    target : ndarray (X, Y, Z)
        What the volume should look like in the reference frame (same contrast).
    weight : ndarray (X, Y, Z)
        Voxels (>= 0 weights) of the reference grid that enter the cost.
    zooms : sequence of 3 float
        Voxel sizes (mm).
    pe_axis : int
        Phase-encoding voxel axis (0, 1, 2).
    init : VolumeTransform, optional
        Starting point (identity by default).
    eddy : bool
        Fit the three eddy-current coefficients besides the six rigid ones.
    freeze_pe_translation : bool
        Keep ``translation[pe_axis]`` fixed (it is confounded with a constant
        field when the two images have opposite phase encoding).
    sigmas : sequence of float
        Gaussian smoothing (voxels) of both images per level, coarse to fine.
    strides : sequence of int
        Subsampling of the cost voxels per level.
    jacobian : bool
        Modulate the moving intensity by the map's Jacobian (1 + e[pe]), as the
        signal of a stretched image is spread over more voxels.

    Returns
    -------
    VolumeTransform

    Notes
    -----
    Sum of squared differences, as both images have the same contrast (the
    target is a model prediction for this volume's gradient, see
    :mod:`pipeline.dwi.model`). Gauss-Newton with Levenberg-Marquardt damping
    on 6 (rigid) + 3 (eddy) parameters; rotations are updated on the rotation
    group (R <- exp([dw]x) R). Written here rather than with ANTs because this
    10-parameter model (FSL eddy's "linear" eddy-current model, Andersson &
    Sotiropoulos 2016, NeuroImage 125:1063) is not an ANTs transform, and a
    deterministic least-squares fit on a fixed voxel subset gives the same
    answer on every run.
    """
    moving = np.asarray(moving, np.float32)
    target = np.asarray(target, np.float32)
    weight = np.asarray(weight, np.float32)
    shape = moving.shape
    zooms = np.asarray(zooms, float)
    transform = (init or VolumeTransform()).copy()
    active = [k for k in range(3) if not (freeze_pe_translation and k == pe_axis)] + [3, 4, 5]
    if eddy:
        active += [6, 7, 8]
    active = np.asarray(active)
    u_pe = np.zeros(3)
    u_pe[pe_axis] = 1.0
    if np.ndim(max_iterations) == 0:
        max_iterations = [int(max_iterations)] * len(sigmas)
    for sigma, stride, level_iterations in zip(sigmas, strides, max_iterations, strict=True):
        level = _prepare(moving, target, weight, zooms, sigma, stride)
        if len(level.points) < 50:
            continue
        damping = 1e-3

        def residual(tf, with_gradient, level=level):
            mapped = tf.map_points(level.points, pe_axis)
            value, valid, grad = _sample(level, shape, zooms, mapped, with_gradient=with_gradient)
            scale = tf.jacobian(pe_axis) if jacobian else 1.0
            return value * scale - level.target, valid, value, grad, scale

        res, valid, value, grad, scale = residual(transform, True)
        cost = _cost(res, level.weight, valid)
        for _ in range(level_iterations):
            q = transform.rigid_points(level.points)
            a = np.eye(3) + np.outer(u_pe, transform.eddy)
            ga = grad @ a
            jac = np.empty((len(q), 9))
            jac[:, :3] = ga
            jac[:, 3:6] = np.cross(q - transform.translation, ga)
            jac[:, 6:9] = grad[:, pe_axis:pe_axis + 1] * q
            jac *= scale
            if jacobian:
                jac[:, 6 + pe_axis] += value
            jac = jac[:, active]
            w = level.weight * valid
            hessian = jac.T @ (jac * w[:, None])
            gradient = jac.T @ (w * res)
            improved = False
            while damping < 1e8:
                lhs = hessian + damping * np.diag(np.diag(hessian) + 1e-12)
                try:
                    step = -np.linalg.solve(lhs, gradient)
                except np.linalg.LinAlgError:
                    damping *= 10.0
                    continue
                delta = np.zeros(9)
                delta[active] = step
                trial = transform.copy()
                trial.translation = trial.translation + delta[:3]
                trial.rotation = Rotation.from_rotvec(delta[3:6]).as_matrix() @ trial.rotation
                trial.eddy = trial.eddy + delta[6:9]
                t_res, t_valid, t_value, t_grad, t_scale = residual(trial, True)
                t_cost = _cost(t_res, level.weight, t_valid)
                if t_cost <= cost:
                    transform, cost = trial, t_cost
                    res, valid, value, grad, scale = t_res, t_valid, t_value, t_grad, t_scale
                    damping = max(damping / 10.0, 1e-6)
                    improved = True
                    break
                damping *= 10.0
            if not improved:
                break
            size = max(np.abs(delta[:3]).max(), 60.0 * np.abs(delta[3:6]).max(),
                       60.0 * np.abs(delta[6:9]).max())
            if size < tolerance_mm:
                break
    return transform


def apply_transform(volume: np.ndarray, transform: VolumeTransform, *, zooms, pe_axis: int,
                    field_mm: np.ndarray | None = None, order: int = 3,
                    jacobian: bool = True) -> np.ndarray:
    """Resample one acquired volume onto the reference grid (one interpolation).

    Parameters
    ----------
    volume : ndarray (X, Y, Z)
        As acquired.
    transform : VolumeTransform
        Reference -> volume map (motion and eddy currents).
    field_mm : ndarray (X, Y, Z), optional
        Susceptibility displacement (mm along +pe) of this series at each
        undistorted grid point (:mod:`pipeline.dwi.sdc`); added after the
        eddy-current map.
    order : int
        Spline order (3: cubic B-spline).
    jacobian : bool
        Multiply by the Jacobian of the whole map, so a stretched or compressed
        image keeps its signal per unit of tissue.

    Returns
    -------
    ndarray (X, Y, Z), float32, >= 0; 0 where the map leaves the field of view.
    """
    shape = volume.shape
    zooms = np.asarray(zooms, float)
    points = grid_points(shape, zooms).reshape(-1, 3)
    mapped = transform.map_points(points, pe_axis)
    scale = transform.jacobian(pe_axis) if jacobian else 1.0
    if field_mm is not None:
        vox = to_voxels(mapped, shape, zooms)
        displacement = ndimage.map_coordinates(np.asarray(field_mm, np.float64), vox, order=1,
                                               mode="nearest")
        mapped[:, pe_axis] += displacement
        if jacobian:
            slope = np.gradient(np.asarray(field_mm, np.float64), zooms[pe_axis], axis=pe_axis)
            scale = scale * (1.0 + ndimage.map_coordinates(slope, vox, order=1, mode="nearest"))
    vox = to_voxels(mapped, shape, zooms)
    out = ndimage.map_coordinates(np.asarray(volume, np.float64), vox, order=order,
                                  mode="constant", cval=0.0)
    out = np.maximum(out * scale, 0.0).reshape(shape)
    return out.astype(np.float32)

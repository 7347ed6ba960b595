"""Rigid head motion of the motor-task BOLD phantom (:mod:`pipeline.simulate.bold`).

The motion of each volume relative to volume 0 (``(T, 6)``: tx, ty, tz in mm,
rx, ry, rz in degrees; the convention is in :mod:`pipeline.simulate.bold`),
its Power framewise displacement, and the image of the moved head.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FD_RADIUS_MM = 50.0


def framewise_displacement(motion: np.ndarray, *, radius_mm: float = FD_RADIUS_MM) -> np.ndarray:
    """Power framewise displacement (mm) of (T, 6) motion (mm, degrees); first entry 0."""
    delta = np.abs(np.diff(motion, axis=0))
    fd = delta[:, :3].sum(axis=1) + radius_mm * np.deg2rad(delta[:, 3:]).sum(axis=1)
    return np.r_[0.0, fd]


def head_motion(rng, *, n_volumes, task_boxcar, max_translation_mm, max_rotation_deg):
    """Smooth bounded random walk plus a small task-locked component, (T, 6).

    Parameters
    ----------
    rng : numpy.random.Generator
    n_volumes : int
        T, the volumes of the run.
    task_boxcar : ndarray, shape (T,)
        1 in the volumes of a task block, 0 at rest.
    max_translation_mm, max_rotation_deg : float
        Bound on each parameter's absolute value.

    Returns
    -------
    ndarray, shape (T, 6)
        tx, ty, tz (mm), rx, ry, rz (degrees) of each volume relative to volume 0.
    """
    bounds = np.r_[np.full(3, max_translation_mm), np.full(3, max_rotation_deg)]
    task_weight = np.array([0.05, 0.1, 0.2, 0.2, 0.05, 0.05])  # mostly nodding (tz, rx)
    task = ndimage.gaussian_filter1d(task_boxcar.astype(float), 1.0, mode="nearest")
    motion = np.zeros((n_volumes, 6))
    for j in range(6):
        walk = ndimage.gaussian_filter1d(np.cumsum(rng.normal(size=n_volumes)), 2.0,
                                         mode="nearest")
        walk -= walk[0]
        walk *= rng.uniform(0.3, 0.9) / max(np.abs(walk).max(), 1e-12)
        component = walk + task_weight[j] * rng.choice([-1.0, 1.0]) * (task - task[0])
        component /= max(np.abs(component).max(), 1.0)
        motion[:, j] = bounds[j] * component
    return motion


def head_mover(volume, affine, *, order):
    """Function ``motion_matrix -> volume`` as seen after the head moved (scanner mm).

    ``volume`` (X, Y, Z) is the head at rest on the grid of ``affine`` (voxel ->
    scanner mm); ``motion_matrix`` (4, 4) is the rigid motion ``M_i`` of the
    module's convention. ``order`` 1: trilinear; 3: cubic B-spline from
    coefficients computed once.
    Trilinear interpolation blurs the moved volume by an amount that depends on
    the sub-voxel shift (none at whole-voxel shifts, most at half-voxel ones): a
    motion-locked change of the image that no rigid realignment can undo and
    that a moving head does not produce (the scanner samples the moved object).
    """
    coefficients = (ndimage.spline_filter(volume, order=order, mode="mirror") if order > 1
                    else volume)
    empty = not volume.any()

    def moved(motion_matrix):
        if empty or np.allclose(motion_matrix, np.eye(4)):
            return volume
        vox = np.linalg.inv(affine) @ np.linalg.inv(motion_matrix) @ affine
        if order == 1:
            return ndimage.affine_transform(volume, vox[:3, :3], offset=vox[:3, 3], order=1,
                                            mode="constant", cval=0.0)
        return ndimage.affine_transform(coefficients, vox[:3, :3], offset=vox[:3, 3],
                                        order=order, mode="mirror", prefilter=False,
                                        output=np.float32)

    return moved

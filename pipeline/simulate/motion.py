"""Rigid head motion of the phantoms: the scanner-grid image of a moved head."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def move_head(volume: np.ndarray, affine: np.ndarray, head_pose: np.ndarray,
              shift_mm=(0.0, 0.0, 0.0), *, order: int,
              nonnegative: bool = True, distortion: np.ndarray | None = None) -> np.ndarray:
    """Image of ``volume``'s head after it moved by ``head_pose``, then shifted.

    Parameters
    ----------
    volume : ndarray, shape (X, Y, Z)
        The head at rest, on the scanner grid.
    affine : ndarray, shape (4, 4)
        Voxel -> scanner mm of that grid.
    head_pose : ndarray, shape (4, 4)
        Rigid motion of the head in scanner mm.
    shift_mm : sequence of 3 floats
        Extra translation of the image in scanner mm (an eddy-current shift
        along the phase-encode axis), applied after the motion.
    distortion : ndarray (4, 4), optional
        An affine image distortion in scanner mm applied after the motion (an
        eddy-current field linear in position: shear / scale along the phase-encoding
        axis), in place of ``shift_mm``; the intensity is divided by its Jacobian
        determinant (signal compressed into fewer voxels piles up).
    order : int
        Spline order of the resampling (1 trilinear, 3 cubic B-spline).
    nonnegative : bool
        Clip at 0 (for images of a signal; False for signed maps such as a
        percent signal change).

    Returns
    -------
    ndarray, shape (X, Y, Z)
        Zero outside the moved field of view; with ``nonnegative`` never
        negative (a cubic spline undershoots a little at the head's edge).
    """
    if distortion is None:
        distortion = np.eye(4)
        distortion[:3, 3] = np.asarray(shift_mm, dtype=float)
    if np.allclose(head_pose, np.eye(4)) and np.allclose(distortion, np.eye(4)):
        return volume
    vox = np.linalg.inv(affine) @ np.linalg.inv(head_pose) @ np.linalg.inv(distortion) @ affine
    moved = ndimage.affine_transform(volume, vox[:3, :3], offset=vox[:3, 3], order=order,
                                     mode="constant", cval=0.0)
    moved = moved / float(np.linalg.det(distortion[:3, :3]))
    return np.maximum(moved, 0.0) if nonnegative else moved


def random_motion(rng: np.random.Generator, n_volumes: int, *, max_translation_mm: float,
                  max_rotation_deg: float) -> np.ndarray:
    """Head-motion random walk, (n, 6): tx, ty, tz (mm), rx, ry, rz (degrees).

    Volume 0 is the reference (all zeros); each parameter's walk is scaled so
    its largest excursion is a random 30-100 % of its bound.
    """
    steps = rng.normal(size=(max(n_volumes - 1, 0), 6))
    amplitude = rng.uniform(0.3, 1.0, size=6)
    walk = np.vstack([np.zeros((1, 6)), np.cumsum(steps, axis=0)])
    peak = np.abs(walk).max(axis=0)
    bounds = np.array([max_translation_mm] * 3 + [max_rotation_deg] * 3, dtype=float)
    scale = np.divide(bounds * amplitude, peak, out=np.zeros(6), where=peak > 0)
    return walk * scale


def rician(rng, signal, sigma):
    real = signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.sqrt(real * real + imag * imag)

"""Susceptibility distortion of the EPI phantoms (DWI), and the reverse b=0.

An EPI image is displaced along its phase-encoding axis where the main field is
off resonance (air-tissue interfaces: the frontal sinus, the mastoid air cells),
by ``+d`` for one phase-encoding polarity and ``-d`` for the other, and its signal
piles up where the displacement compresses it (Jezzard & Balaban 1995, MRM
34:65). The phantom's field is a sum of Gaussian blobs placed in template space
where real fields are strongest, scaled so its largest value in the brain is the
asked-for peak. This is the phantom's own algebra (fixed-point inversion of the
forward map), independent of the pipeline's correction
(:mod:`pipeline.dwi.sdc`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BLOBS = (((0.0, 40.0, -22.0), 18.0, 1.0), ((-38.0, 12.0, -32.0), 14.0, 0.6),
         ((38.0, 12.0, -32.0), 14.0, 0.6))
"""Gaussian blobs of the field: template mm centre, width (SD, mm), relative amplitude."""


def field_shape(xyz_template: np.ndarray) -> np.ndarray:
    """Unscaled field at template points (N, 3) -> (N,)."""
    out = np.zeros(len(xyz_template))
    for centre, width, amplitude in BLOBS:
        r2 = ((np.asarray(xyz_template, float) - np.asarray(centre)) ** 2).sum(axis=1)
        out += amplitude * np.exp(-0.5 * r2 / width**2)
    return out


def polarity(code: str) -> float:
    """+1 for a phase-encoding direction without a minus sign ("j"), -1 for "j-"."""
    return -1.0 if str(code).endswith("-") else 1.0


def reverse_code(code: str) -> str:
    """The opposite phase-encoding direction ("j-" <-> "j")."""
    return code[:-1] if code.endswith("-") else code + "-"


def distort(volume: np.ndarray, field_vox: np.ndarray, sign: float, *, axis: int = 1,
            order: int = 3, iterations: int = 8) -> np.ndarray:
    """EPI image of ``volume`` whose point x appears at x + sign * field(x) along ``axis``.

    Parameters
    ----------
    volume : ndarray (X, Y, Z)
        The undistorted image (scanner grid).
    field_vox : ndarray (X, Y, Z)
        Displacement (voxels) of a "+" phase-encoding acquisition at each undistorted
        point.
    sign : {+1, -1}
        Phase-encoding polarity (:func:`polarity`).

    Notes
    -----
    Each output position y pulls from the x solving x + sign f(x) = y (fixed-point
    iterations, valid for |f'| < 1) and divides by the Jacobian 1 + sign df/dx.
    """
    grid = np.indices(volume.shape, dtype=np.float64)
    displacement = sign * np.asarray(field_vox, dtype=np.float64)
    slope = np.gradient(displacement, axis=axis)
    source = grid.copy()
    for _ in range(iterations):
        source[axis] = grid[axis] - ndimage.map_coordinates(displacement, source, order=1,
                                                            mode="nearest")
    value = ndimage.map_coordinates(np.asarray(volume, np.float64), source, order=order,
                                    mode="constant", cval=0.0)
    jacobian = 1.0 + ndimage.map_coordinates(slope, source, order=1, mode="nearest")
    return (np.maximum(value, 0.0) / jacobian).astype(np.float32)

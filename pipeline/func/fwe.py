"""Family-wise error control in a search region by Gaussian random field theory.

Small-volume correction (as SPM's SVC): the height threshold ``z`` at which a
smooth Gaussian null field exceeds ``z`` anywhere in the region with
probability ``alpha``, from the region's resel counts and the expected Euler
characteristic (Worsley et al. 1996, Human Brain Mapping 4:58-73). The field's
smoothness is estimated from the GLM's standardized residuals by the lag-1
correlation of neighbouring voxels (Forman et al. 1995; FSL ``smoothest``).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats

FOUR_LN2 = 4.0 * np.log(2.0)


def smoothness_fwhm(residuals: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """FWHM (voxels, per axis) of the Gaussian kernel that would give the residuals' smoothness.

    Parameters
    ----------
    residuals : ndarray, shape (T, V)
        GLM residuals (whitened if the model was), V = voxels of ``mask`` in C order.
    mask : ndarray of bool, shape (X, Y, Z)

    Returns
    -------
    ndarray, shape (3,)

    Notes
    -----
    Each voxel's residuals are scaled to unit variance. For white noise smoothed
    by a Gaussian of SD ``s`` voxels, neighbours along an axis correlate by
    ``rho = exp(-1 / (4 s^2))``; so ``s = sqrt(-1 / (4 ln rho))`` and
    FWHM = ``sqrt(8 ln 2) s``.
    """
    mask = np.asarray(mask, dtype=bool)
    r = np.asarray(residuals, dtype=np.float64)
    r = r - r.mean(axis=0)
    sd = r.std(axis=0)
    r = np.divide(r, sd, out=np.zeros_like(r), where=sd > 0)
    index = np.full(mask.shape, -1, dtype=np.int64)
    index[mask] = np.arange(int(mask.sum()))
    fwhm = np.empty(3)
    for axis in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        a, b = index[tuple(lo)], index[tuple(hi)]
        pairs = (a >= 0) & (b >= 0)
        x, y = r[:, a[pairs]], r[:, b[pairs]]
        rho = float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))
        rho = min(max(rho, 1e-6), 0.9999)
        fwhm[axis] = np.sqrt(8.0 * np.log(2.0)) * np.sqrt(-1.0 / (4.0 * np.log(rho)))
    return fwhm


def resel_counts(region: np.ndarray, fwhm_voxels) -> np.ndarray:
    """Resel counts R0..R3 of a voxel region (Worsley et al. 1996, voxel lattice).

    Counts the voxels (points), the pairs of neighbours along each axis
    (edges), the 2x2 squares in each plane (faces) and the 2x2x2 cubes inside
    the region; R0 is its Euler characteristic, R1..R3 its caliper diameter,
    half surface area and volume in resels (as SPM's ``spm_resels_vol``).
    """
    m = np.pad(np.asarray(region, dtype=bool), 1)
    fx, fy, fz = (float(f) for f in fwhm_voxels)
    ex = m[:-1, :, :] & m[1:, :, :]
    ey = m[:, :-1, :] & m[:, 1:, :]
    ez = m[:, :, :-1] & m[:, :, 1:]
    fxy = ex[:, :-1, :] & ex[:, 1:, :]
    fxz = ex[:, :, :-1] & ex[:, :, 1:]
    fyz = ey[:, :, :-1] & ey[:, :, 1:]
    cube = fxy[:, :, :-1] & fxy[:, :, 1:]
    p = float(m.sum())
    e = np.array([ex.sum(), ey.sum(), ez.sum()], dtype=float)
    f_xy, f_xz, f_yz, c = float(fxy.sum()), float(fxz.sum()), float(fyz.sum()), float(cube.sum())
    r0 = p - e.sum() + (f_xy + f_xz + f_yz) - c
    r1 = ((e[0] - f_xy - f_xz + c) / fx + (e[1] - f_xy - f_yz + c) / fy
          + (e[2] - f_xz - f_yz + c) / fz)
    r2 = (f_xy - c) / (fx * fy) + (f_xz - c) / (fx * fz) + (f_yz - c) / (fy * fz)
    r3 = c / (fx * fy * fz)
    return np.array([r0, r1, r2, r3])


def expected_euler_characteristic(z, resels) -> np.ndarray:
    """Expected Euler characteristic of the excursion set above ``z`` of a Gaussian field."""
    z = np.asarray(z, dtype=float)
    e = np.exp(-z * z / 2.0)
    densities = np.stack([
        stats.norm.sf(z),
        np.sqrt(FOUR_LN2) / (2.0 * np.pi) * e,
        FOUR_LN2 / (2.0 * np.pi) ** 1.5 * z * e,
        FOUR_LN2**1.5 / (2.0 * np.pi) ** 2 * (z * z - 1.0) * e,
    ])
    return np.tensordot(np.asarray(resels, dtype=float), densities, axes=1)


def fwe_threshold(resels, alpha: float = 0.05) -> float:
    """Height threshold with family-wise error ``alpha`` over a region of ``resels``.

    The expected Euler characteristic approximates P(max > z) at high z; the
    threshold is never below the single-voxel one (``z`` with p = ``alpha``).
    """
    single = float(stats.norm.isf(alpha))
    if expected_euler_characteristic(single, resels) <= alpha:
        return single
    return float(optimize.brentq(lambda z: expected_euler_characteristic(z, resels) - alpha,
                                 single, 12.0))

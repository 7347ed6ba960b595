"""Diffusion-tensor algebra of the phantom: tensors from (FA, MD), the gradient
protocol, the signal of a compartment mixture and its best single-tensor fit.

Kept apart from :mod:`pipeline.simulate.dwi` (which builds the images) so the
tests of the pipeline's tensor stream can use the same ground-truth algebra.
"""

from __future__ import annotations

import numpy as np
from dipy.core.sphere import HemiSphere, disperse_charges


def eigenvalues_for(fa, md) -> np.ndarray:
    """Eigenvalues of a cylindrically symmetric tensor with the given FA and MD.

    Parameters
    ----------
    fa : float or ndarray
        Fractional anisotropy in [0, 1].
    md : float or ndarray
        Mean diffusivity (mm^2/s), broadcast against ``fa``.

    Returns
    -------
    ndarray, shape (..., 3)
        (axial, radial, radial) diffusivities (mm^2/s), axial >= radial >= 0.

    Notes
    -----
    With axial = MD + 2d and radial = MD - d the mean is MD and
    FA = 3 d / sqrt(3 MD^2 + 6 d^2), hence d = MD * FA / sqrt(3 - 2 FA^2).
    """
    fa = np.clip(np.asarray(fa, dtype=float), 0.0, 1.0)
    md = np.asarray(md, dtype=float)
    d = md * fa / np.sqrt(3.0 - 2.0 * fa**2)
    axial, radial = np.broadcast_arrays(md + 2.0 * d, md - d)
    return np.stack([axial, radial, radial], axis=-1)


def fractional_anisotropy(eigenvalues) -> np.ndarray:
    """FA of tensors given their eigenvalues (..., 3); 0 for a zero tensor."""
    ev = np.asarray(eigenvalues, dtype=float)
    dev = ev - ev.mean(axis=-1, keepdims=True)
    norm = np.sqrt((ev**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        fa = np.sqrt(1.5 * (dev**2).sum(axis=-1)) / norm
    return np.where(norm > 0, fa, 0.0)


def gradient_scheme(*, n_b0: int = 3, n_directions: int = 30, bval: float = 1000.0):
    """b-values and directions of a single-shell protocol.

    The ``n_directions`` directions are spread over the half sphere by
    electrostatic repulsion (dipy ``disperse_charges``) from a fixed seed, so
    every session of a protocol shares the same table. b=0 volumes are at
    index 0 and evenly interleaved.

    Returns
    -------
    bvals : ndarray, shape (n,)
        s/mm^2.
    bvecs : ndarray, shape (3, n)
        Unit vectors (zeros for b=0).
    """
    if n_b0 < 1 or n_directions < 6:
        raise ValueError("need at least one b=0 volume and six directions")
    start = np.random.default_rng(1000 + n_directions).normal(size=(n_directions, 3))
    hemi, _ = disperse_charges(HemiSphere(xyz=start / np.linalg.norm(start, axis=1,
                                                                     keepdims=True)), 5000)
    directions = hemi.vertices / np.linalg.norm(hemi.vertices, axis=1, keepdims=True)
    n = n_b0 + n_directions
    b0_at = np.round(np.arange(n_b0) * n / n_b0).astype(int)
    is_b0 = np.zeros(n, dtype=bool)
    is_b0[b0_at] = True
    bvals = np.where(is_b0, 0.0, float(bval))
    bvecs = np.zeros((3, n))
    bvecs[:, ~is_b0] = directions.T
    return bvals, bvecs


def bvecs_fsl_convention(bvecs: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Voxel-axis bvecs as FSL reads them (x negated if det(affine) > 0)."""
    out = np.array(bvecs, dtype=float)
    if np.linalg.det(affine[:3, :3]) > 0:
        out[0] = -out[0]
    return out


def adc_signal(compartments, bval: float, gradient: np.ndarray) -> np.ndarray:
    """Noiseless signal (relative to WM S0) of every voxel for one gradient (head frame)."""
    signal = 0.0
    for f, s0, ev, v in compartments:
        adc = ev[:, 1] + (ev[:, 0] - ev[:, 1]) * (v @ gradient) ** 2
        signal = signal + f * s0 * np.exp(-bval * adc)
    return signal


def fit_single_tensor(signal: np.ndarray, bvals: np.ndarray, bvecs: np.ndarray):
    """Single tensor that best fits noiseless signals (log-linear WLS, weights S^2).

    Parameters
    ----------
    signal : ndarray, shape (N, n)
        Positive noiseless signals of N voxels at the n protocol volumes.
    bvals : ndarray, shape (n,)
        s/mm^2.
    bvecs : ndarray, shape (3, n)
        Unit gradient directions (zeros for b=0).

    Returns
    -------
    eigenvalues : ndarray, shape (N, 3)
        Ascending, clipped at 0 (mm^2/s).
    eigenvectors : ndarray, shape (N, 3, 3)
        Columns match ``eigenvalues``.

    Notes
    -----
    ln S = ln S0 - b g^T D g, weighted by S^2 (Basser et al. 1994; Veraart et
    al. 2013, NeuroImage 81:335). With the true noiseless signal as the weight,
    this is to first order the non-linear least-squares fit of S itself; dipy's
    WLS fit of the noiseless phantom agrees with it to 3e-4 in FA.
    A partial-volume mixture is not a single tensor, so the fit differs from
    any average of the compartment tensors (its MD at b = 1000 s/mm^2 is lower
    than the b -> 0 average wherever CSF mixes in).
    """
    gx, gy, gz = np.asarray(bvecs, dtype=float)
    b = np.asarray(bvals, dtype=float)
    design = np.column_stack([np.ones_like(b), -b * gx * gx, -b * gy * gy, -b * gz * gz,
                              -2 * b * gx * gy, -2 * b * gx * gz, -2 * b * gy * gz])
    signal = np.maximum(np.asarray(signal, dtype=float), 1e-12)
    weights = signal**2
    normal = np.einsum("ni,vn,nj->vij", design, weights, design)
    rhs = np.einsum("ni,vn->vi", design, weights * np.log(signal))
    coef = np.linalg.solve(normal, rhs[:, :, None])[:, :, 0]
    dxx, dyy, dzz, dxy, dxz, dyz = coef[:, 1:].T
    tensor = np.stack([np.stack([dxx, dxy, dxz], -1), np.stack([dxy, dyy, dyz], -1),
                       np.stack([dxz, dyz, dzz], -1)], axis=-2)
    evals, evecs = np.linalg.eigh(tensor)
    return np.maximum(evals, 0.0), evecs



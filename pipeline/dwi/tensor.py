"""Diffusion-tensor fit and its scalar maps, residuals and outlier detection."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

MD_UNIT_SCALE = 1000.0
"""mm^2/s -> um^2/ms (= 10^-3 mm^2/s), the unit of the MD features."""


@dataclass
class TensorMaps:
    """Tensor-derived maps on the DWI grid.

    Attributes
    ----------
    fa : ndarray (X, Y, Z)
        Fractional anisotropy (0-1); 0 outside the mask.
    md, ad, rd : ndarray (X, Y, Z)
        Mean, axial and radial diffusivity (mm^2/s).
    v1 : ndarray (X, Y, Z, 3)
        Principal eigenvector in the voxel frame.
    residual : ndarray (X, Y, Z)
        RMS over diffusion-weighted volumes of (measured - predicted) signal,
        relative to the voxel's fitted S0 (percent).
    predicted : ndarray (X, Y, Z, N)
        Signal predicted by the fit (float32).
    """

    fa: np.ndarray
    md: np.ndarray
    ad: np.ndarray
    rd: np.ndarray
    v1: np.ndarray
    residual: np.ndarray
    predicted: np.ndarray


def fit_tensor(data: np.ndarray, bvals: np.ndarray, bvecs: np.ndarray, mask: np.ndarray, *,
               method: str = "WLS", sigma: float | None = None,
               b0_threshold: float = 50.0) -> TensorMaps:
    """Fit a diffusion tensor in every mask voxel.

    Parameters
    ----------
    data : ndarray (X, Y, Z, N)
    bvals : ndarray (N,)
        s/mm^2.
    bvecs : ndarray (N, 3)
        Voxel frame, unit (zero for b=0).
    mask : ndarray of bool (X, Y, Z)
    method : {"WLS", "OLS", "RESTORE"}
        RESTORE needs ``sigma`` (noise standard deviation, image units).

    Notes
    -----
    Weighted linear least squares of the log signal (Basser et al. 1994;
    Veraart et al. 2013, NeuroImage 81:335); RESTORE (Chang et al. 2005,
    MRM 53:1088) iteratively down-weights outlier measurements. Negative
    eigenvalues are clipped to zero before FA/MD (dipy ``min_signal`` floor).
    """
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    gtab = gradient_table(np.asarray(bvals, float), bvecs=np.asarray(bvecs, float),
                          b0_threshold=b0_threshold)
    kwargs = {}
    if method.upper() == "RESTORE":
        if sigma is None or not np.isfinite(sigma) or sigma <= 0:
            raise ValueError("RESTORE needs a positive noise sigma")
        kwargs["sigma"] = float(sigma)
    model = TensorModel(gtab, fit_method=method.upper(), return_S0_hat=True, **kwargs)
    data = np.asarray(data, dtype=np.float32)
    fit = model.fit(data, mask=mask)
    fa = np.nan_to_num(fit.fa).astype(np.float32)
    md = np.nan_to_num(fit.md).astype(np.float32)
    ad = np.nan_to_num(fit.ad).astype(np.float32)
    rd = np.nan_to_num(fit.rd).astype(np.float32)
    v1 = np.nan_to_num(fit.evecs[..., :, 0]).astype(np.float32)
    s0 = np.nan_to_num(fit.S0_hat).astype(np.float32)
    predicted = np.zeros_like(data)
    predicted[mask] = np.nan_to_num(fit.predict(gtab, S0=1.0)[mask] * s0[mask, None])
    dw = ~gtab.b0s_mask
    diff = (data[..., dw] - predicted[..., dw])
    residual = np.zeros(mask.shape, np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt((diff[mask] ** 2).mean(axis=-1)) / s0[mask]
    residual[mask] = np.nan_to_num(100.0 * rms, posinf=0.0)
    for arr in (fa, md, ad, rd, v1):
        arr[~mask] = 0
    return TensorMaps(fa, md, ad, rd, v1, residual, predicted)


def outlier_slices(data: np.ndarray, predicted: np.ndarray, mask: np.ndarray, bvals: np.ndarray,
                   *, slice_axis: int = 2, threshold_z: float = 4.0, min_voxels: int = 50,
                   b0_threshold: float = 50.0) -> np.ndarray:
    """Flag (volume, slice) pairs whose signal falls far below the tensor prediction.

    Parameters
    ----------
    data, predicted : ndarray (X, Y, Z, N)
    mask : ndarray of bool (X, Y, Z)
    threshold_z : float
        A slice is an outlier when its mean relative signal deficit is more
        than this many robust standard deviations (1.4826 MAD over every
        slice of every diffusion-weighted volume) below the median.

    Returns
    -------
    ndarray of bool, shape (N, n_slices)
        b=0 volumes are never flagged.

    Notes
    -----
    A simplified version of the slice-wise outlier detection of FSL eddy
    (Andersson et al. 2016, NeuroImage 141:556): signal dropout from bulk
    motion during the diffusion gradients shows as a whole slice darker
    than the model predicts.
    """
    n = data.shape[3]
    n_slices = data.shape[slice_axis]
    deficit = np.full((n, n_slices), np.nan)
    moved = np.moveaxis(data, slice_axis, 0)
    pred = np.moveaxis(predicted, slice_axis, 0)
    m = np.moveaxis(mask, slice_axis, 0)
    dw = np.flatnonzero(np.asarray(bvals) > b0_threshold)
    for k in range(n_slices):
        if m[k].sum() < min_voxels:
            continue
        obs = moved[k][m[k]][:, dw]
        exp = pred[k][m[k]][:, dw]
        with np.errstate(invalid="ignore", divide="ignore"):
            deficit[dw, k] = (exp.mean(axis=0) - obs.mean(axis=0)) / exp.mean(axis=0)
    valid = np.isfinite(deficit)
    flags = np.zeros((n, n_slices), dtype=bool)
    if valid.sum() < 10:
        return flags
    median = np.median(deficit[valid])
    mad = 1.4826 * np.median(np.abs(deficit[valid] - median))
    scale = max(mad, 0.01)
    flags[valid] = (deficit[valid] - median) / scale > threshold_z
    return flags

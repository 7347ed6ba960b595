"""Temporal autocorrelation of the GLM noise: bias-corrected AR(p) estimates, pre-whitened fit."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def residual_autocorrelation(residuals: np.ndarray, *, order: int) -> np.ndarray:
    """Sample autocorrelations of residuals at lags 1..order, shape (order, V).

    ``sum_t r_t r_{t+j} / sum_t r_t^2`` per voxel (0 where a voxel's residuals are all 0).
    """
    residuals = np.asarray(residuals, dtype=np.float64)
    power = np.einsum("tv,tv->v", residuals, residuals)
    out = np.stack([np.einsum("tv,tv->v", residuals[j:], residuals[:-j])
                    for j in range(1, order + 1)])
    with np.errstate(divide="ignore", invalid="ignore"):
        out = out / power
    return np.where(np.isfinite(out), out, 0.0)


def _design_bias_weights(design: np.ndarray, order: int) -> np.ndarray:
    """``W[j, k] = tr(R D_j R D_k) / (2 if j else 1)``, shape (order + 1, T).

    ``R = I - X X^+``; ``D_0 = I`` and ``D_k`` has ones on the k-th sub- and
    super-diagonals. For noise with autocorrelation ``rho_k`` (``rho_0 = 1``),
    the expected residual lag products are ``W @ rho`` (lag j's sum counted once).
    """
    n = design.shape[0]
    forming = np.eye(n) - design @ np.linalg.pinv(design)
    weights = np.empty((order + 1, n))
    for j in range(order + 1):
        lag = np.eye(n) if j == 0 else np.eye(n, k=j) + np.eye(n, k=-j)
        product = forming @ lag @ forming
        weights[j, 0] = np.trace(product)
        weights[j, 1:] = [2.0 * np.trace(product, offset=k) for k in range(1, n)]
        if j:
            weights[j] /= 2.0
    return weights


def model_autocorrelation(phi: np.ndarray, n_lags: int) -> np.ndarray:
    """Autocorrelation of AR(p) processes at lags 0..n_lags-1, shape (V, n_lags).

    Parameters
    ----------
    phi : ndarray, shape (V, p)
        Stationary AR coefficients (``x_t = sum_i phi_i x_{t-i} + e_t``).
    """
    phi = np.atleast_2d(np.asarray(phi, dtype=np.float64))
    n_voxels, order = phi.shape
    # Yule-Walker equations for rho_1..rho_p: rho_k = sum_i phi_i rho_|k-i|, rho_0 = 1
    system = np.tile(np.eye(order), (n_voxels, 1, 1))
    constant = np.zeros((n_voxels, order))
    for k in range(1, order + 1):
        for i in range(1, order + 1):
            lag = abs(k - i)
            if lag == 0:
                constant[:, k - 1] += phi[:, i - 1]
            else:
                system[:, k - 1, lag - 1] -= phi[:, i - 1]
    rho = np.empty((n_voxels, n_lags))
    rho[:, 0] = 1.0
    first = np.linalg.solve(system, constant[..., None])[..., 0]
    rho[:, 1:order + 1] = first[:, :n_lags - 1]
    for k in range(order + 1, n_lags):
        rho[:, k] = (phi * rho[:, k - order:k][:, ::-1]).sum(axis=1)
    return rho


def noise_autocorrelation(residual_acf: np.ndarray, design: np.ndarray, *,
                          n_iterations: int = 10) -> np.ndarray:
    """Noise autocorrelation (lags 1..p) whose OLS residuals would show ``residual_acf``.

    Parameters
    ----------
    residual_acf : ndarray, shape (p, V)
        Residual autocorrelations (:func:`residual_autocorrelation`), possibly
        smoothed spatially.
    design : ndarray, shape (T, P)
        The design matrix of the OLS fit.
    n_iterations : int
        Fixed-point iterations (the update changes by < 0.001 after ~5).

    Returns
    -------
    ndarray, shape (p, V)
        Autocorrelations at lags 1..p of the AR(p) model matched to the data.

    Notes
    -----
    The residuals ``r = R y`` (``R = I - X X^+``) of noise with covariance
    ``V`` have ``E[r' D_j r] = tr(R D_j R V)`` (Worsley et al. 2002,
    NeuroImage 15:1-15, section 3.3). The fitted regressors bias the raw
    residual autocorrelation strongly towards 0 when the design holds many
    slow regressors (cosine drifts, 24 motion parameters): with 30 regressors
    and 150 volumes a lag-1 autocorrelation of 0.3 shows as about 0.05, so
    AR(1) pre-whitening from raw residuals (nilearn ``FirstLevelModel``) barely
    whitens and inflates z. Worsley et al. solve the linear system for the
    first p autocovariances, taking the others as 0; here the lags beyond p
    follow the AR(p) model instead (Yule-Walker recursion), and the AR(p)
    autocorrelations are found by the fixed-point iteration
    ``rho <- rho + (observed - expected(rho))`` on the ratio
    ``E[r' D_j r] / E[r' r]``.
    """
    observed = np.asarray(residual_acf, dtype=np.float64)
    order = observed.shape[0]
    weights = _design_bias_weights(np.asarray(design, dtype=np.float64), order)
    # the correction depends on the observed values only: solve it once per distinct
    # value (to 1e-4, far below the 0.01 grid of the whitening fits)
    distinct, index = np.unique(np.round(observed.T, 4), axis=0, return_inverse=True)
    acf = distinct.copy()  # (U, p)
    for _ in range(n_iterations):
        rho = model_autocorrelation(ar_coefficients(acf.T), weights.shape[1])
        products = rho @ weights.T  # (U, p + 1)
        expected = products[:, 1:] / products[:, :1]
        acf = rho[:, 1:order + 1] + (distinct - expected)
    return acf[index.ravel()].T


def smooth_in_mask(values: np.ndarray, mask: np.ndarray, *, fwhm_mm: float,
                   voxel_mm) -> np.ndarray:
    """Gaussian smoothing of voxel values restricted to a mask (normalised convolution).

    Parameters
    ----------
    values : ndarray, shape (k, V)
        k maps, V = number of voxels of ``mask`` (C order).
    mask : ndarray of bool, shape (X, Y, Z)
    fwhm_mm : float
        Kernel FWHM (mm).
    voxel_mm : sequence of 3 float
        Voxel size (mm).

    Returns
    -------
    ndarray, shape (k, V)
        ``G * (m v) / G * m``: outside voxels neither contribute nor dilute.
    """
    mask = np.asarray(mask, dtype=bool)
    sigma = fwhm_mm / np.sqrt(8 * np.log(2)) / np.asarray(voxel_mm, dtype=float)
    weight = ndimage.gaussian_filter(mask.astype(np.float64), sigma)[mask]
    out = np.empty_like(np.asarray(values, dtype=np.float64))
    volume = np.zeros(mask.shape)
    for i, row in enumerate(np.asarray(values, dtype=np.float64)):
        volume[mask] = row
        out[i] = ndimage.gaussian_filter(volume, sigma)[mask] / weight
    return out


def ar_coefficients(autocorrelation: np.ndarray, *, max_reflection: float = 0.95) -> np.ndarray:
    """AR(p) coefficients from autocorrelations (Levinson-Durbin), kept stationary.

    Parameters
    ----------
    autocorrelation : ndarray, shape (p, V)
        Lags 1..p.
    max_reflection : float
        Bound on the absolute partial autocorrelations (reflection
        coefficients), so the whitening filter stays stable even where
        the estimates are noisy.

    Returns
    -------
    ndarray, shape (V, p)
        ``phi`` with ``e_t = x_t - sum_i phi_i x_{t-i}`` white.
    """
    acf = np.asarray(autocorrelation, dtype=np.float64)
    order, n = acf.shape
    r = np.vstack([np.ones(n), acf])
    phi = np.zeros((n, 0))
    error = np.ones(n)
    for k in range(1, order + 1):
        reflection = (r[k] - (phi * r[k - 1:0:-1].T).sum(axis=1)) / error
        reflection = np.clip(reflection, -max_reflection, max_reflection)
        phi = np.column_stack([phi - reflection[:, None] * phi[:, ::-1], reflection])
        error = error * (1 - reflection**2)
    return phi


def prewhitened_fit(data: np.ndarray, design: np.ndarray, *, order: int, smooth=None,
                    step: float = 0.01):
    """GLM fit with AR(order) pre-whitening from bias-corrected autocorrelations.

    Parameters
    ----------
    data : ndarray, shape (T, V)
    design : ndarray, shape (T, P)
    order : int
        AR order (>= 1).
    smooth : callable or None
        Applied to the (order, V) residual autocorrelation maps before the
        bias correction (e.g. :func:`smooth_in_mask`).
    step : float
        AR coefficients are rounded to this grid; voxels sharing rounded
        coefficients share one whitened fit.

    Returns
    -------
    labels : ndarray of str, shape (V,)
    results : dict of str to nilearn ``RegressionResults``
        The pair nilearn's ``compute_contrast`` takes.
    ar : ndarray, shape (V, order)
        AR coefficients used (rounded).
    """
    from nilearn.glm.regression import ARModel, OLSModel

    data = np.asarray(data, dtype=np.float64)
    design = np.asarray(design, dtype=np.float64)
    observed = residual_autocorrelation(OLSModel(design).fit(data).residuals, order=order)
    if smooth is not None:
        observed = smooth(observed)
    ar = np.round(ar_coefficients(noise_autocorrelation(observed, design)) / step) * step
    keys, index = np.unique(ar, axis=0, return_inverse=True)
    index = index.ravel()
    names = np.array(["_".join(f"{v:.4g}" for v in key) for key in keys])
    results = {}
    for k, key in enumerate(keys):
        results[names[k]] = ARModel(design, key).fit(data[:, index == k])
    return names[index], results, ar

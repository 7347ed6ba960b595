"""Noise autocorrelation of the first-level GLM (pipeline.func.autocorrelation) against known truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, signal

from pipeline.func.autocorrelation import (
    ar_coefficients,
    model_autocorrelation,
    noise_autocorrelation,
    prewhitened_fit,
    residual_autocorrelation,
    smooth_in_mask,
)

N_VOLUMES = 150


def _design(rng, n=N_VOLUMES):
    """Block regressor, 4 cosine drifts, 24 slow motion-like walks, constant (30 columns)."""
    t = np.arange(n)
    block = ndimage.gaussian_filter1d(((t // 10) % 2).astype(float), 2.0)
    cosines = [np.cos(np.pi * k * (t + 0.5) / n) for k in range(1, 5)]
    walks = ndimage.gaussian_filter1d(np.cumsum(rng.normal(size=(n, 24)), axis=0), 2.0, axis=0)
    walks = (walks - walks.mean(0)) / walks.std(0)
    return np.column_stack([block - block.mean(), *cosines, walks, np.ones(n)])


def _ar_noise(rng, phi, n_voxels, n=N_VOLUMES):
    """Stationary AR(p) series, unit innovations, shape (n, n_voxels)."""
    burn = 200
    white = rng.standard_normal((n + burn, n_voxels))
    return signal.lfilter([1.0], np.r_[1.0, -np.asarray(phi)], white, axis=0)[burn:]


def test_residual_autocorrelation_removes_the_design_bias():
    """AR(1) rho 0.3 under 30 slow regressors: raw residuals see ~0.05, the correction 0.3."""
    rng = np.random.default_rng(0)
    design = _design(rng)
    noise = _ar_noise(rng, [0.3], 3000)
    residuals = noise - design @ np.linalg.lstsq(design, noise, rcond=None)[0]
    raw = residual_autocorrelation(residuals, order=1)
    assert np.median(raw) < 0.15  # the bias nilearn's AR(1) keeps
    corrected = noise_autocorrelation(raw, design)
    assert corrected.shape == (1, 3000)
    assert np.median(corrected) == pytest.approx(0.3, abs=0.02)
    # spatial pooling (as smoothing does) first, then the correction: no extra bias
    assert noise_autocorrelation(raw.mean(1, keepdims=True), design)[0, 0] == pytest.approx(
        0.3, abs=0.01)


def test_ar2_coefficients_recovered():
    rng = np.random.default_rng(1)
    design = _design(rng)
    phi = np.array([0.35, 0.15])
    noise = _ar_noise(rng, phi, 3000)
    residuals = noise - design @ np.linalg.lstsq(design, noise, rcond=None)[0]
    raw = residual_autocorrelation(residuals, order=2).mean(1, keepdims=True)
    estimate = ar_coefficients(noise_autocorrelation(raw, design))
    np.testing.assert_allclose(estimate[0], phi, atol=0.03)


def test_ar_coefficients_levinson_durbin_and_stationarity():
    phi1, phi2 = 0.5, 0.2
    rho1 = phi1 / (1 - phi2)
    acf = np.array([[rho1], [phi1 * rho1 + phi2]])
    np.testing.assert_allclose(ar_coefficients(acf)[0], [phi1, phi2], atol=1e-12)
    np.testing.assert_allclose(ar_coefficients(np.array([[0.3]]))[0], [0.3])
    assert ar_coefficients(np.array([[1.4]]))[0, 0] == pytest.approx(0.95)  # kept stable
    rho = model_autocorrelation(np.array([[phi1, phi2]]), 6)[0]
    np.testing.assert_allclose(rho[:3], [1.0, acf[0, 0], acf[1, 0]])
    np.testing.assert_allclose(rho[5], phi1 * rho[4] + phi2 * rho[3])


def test_prewhitened_fit_gives_unit_variance_z_on_autocorrelated_noise():
    """Null data with AR(1) noise: z SD ~1 after the corrected whitening, >1.1 with nilearn's."""
    from nilearn.glm.contrasts import compute_contrast
    from nilearn.glm.first_level import run_glm

    rng = np.random.default_rng(2)
    design = _design(rng)
    data = _ar_noise(rng, [0.3], 4000)
    contrast = np.eye(design.shape[1])[0]
    labels, results, ar = prewhitened_fit(data, design, order=1)
    z = compute_contrast(labels, results, contrast, stat_type="t").z_score()
    assert np.median(ar) == pytest.approx(0.3, abs=0.03)
    assert np.std(z) == pytest.approx(1.0, abs=0.05)
    labels, results = run_glm(data, design, noise_model="ar1")
    assert np.std(compute_contrast(labels, results, contrast, stat_type="t").z_score()) > 1.1


def test_smooth_in_mask_keeps_constants_and_ignores_outside():
    mask = np.zeros((7, 8, 9), dtype=bool)
    mask[1:6, 2:7, 1:8] = True
    values = np.full((1, mask.sum()), 0.3)
    np.testing.assert_allclose(smooth_in_mask(values, mask, fwhm_mm=15.0, voxel_mm=(3, 3, 3)), 0.3)
    step = np.where(np.argwhere(mask)[:, 0] < 3, 0.0, 1.0)[None]
    out = smooth_in_mask(step, mask, fwhm_mm=6.0, voxel_mm=(3.0, 3.0, 3.0))
    assert out.min() >= 0 and out.max() <= 1 and 0 < out.mean() < 1

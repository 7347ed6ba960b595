"""The batched MP-PCA (pipeline.dwi.mppca) against dipy's own mppca, which it replaces
for speed: same denoised series and noise map, and the noise it removes is the noise
that was planted."""

import warnings

import numpy as np
import pytest
from dipy.denoise.localpca import _pca_classifier
from dipy.denoise.localpca import mppca as dipy_mppca

from pipeline.dwi.mppca import mppca, noise_variance


def _series(seed=0, shape=(18, 16, 14), volumes=33, sigma=5.0):
    """A smooth rank-4 signal (four spatial patterns x four volume profiles) plus noise."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(0, 1, s) for s in shape], indexing="ij")
    patterns = np.stack([np.ones(shape), np.cos(3 * grid[0]), np.sin(2 * grid[1]),
                         grid[2] * grid[0]], -1)
    profiles = rng.uniform(0.2, 1.0, size=(4, volumes)) * np.array([[200], [40], [30], [30]])
    clean = (patterns @ profiles).astype(np.float32)
    noisy = clean + rng.normal(scale=sigma, size=clean.shape).astype(np.float32)
    return clean, noisy


@pytest.mark.parametrize("seed", [0, 1])
def test_same_result_as_dipy(seed):
    _, noisy = _series(seed)
    mask = np.zeros(noisy.shape[:3], bool)
    mask[3:15, 2:14, 2:12] = True
    mask[5:8, 5:8, 5:8] = False  # a hole: centres skipped, neighbours still covered
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected, expected_sigma = dipy_mppca(noisy, mask=mask, patch_radius=2, return_sigma=True)
    for threads in (1, 2):
        denoised, sigma = mppca(noisy, mask=mask, patch_radius=2, chunk=100, threads=threads)
        np.testing.assert_allclose(denoised, expected, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(sigma, expected_sigma, rtol=1e-4, atol=1e-4)
        assert (denoised[~mask] == 0).all() and (sigma[~mask] == 0).all()


def test_noise_classifier_matches_dipy_row_by_row():
    rng = np.random.default_rng(3)
    rows = [np.sort(np.concatenate([rng.uniform(0.8, 1.2, 30), rng.uniform(5, 50, k)]))
            for k in (0, 1, 3, 8)]
    rows.append(np.sort(rng.uniform(0, 1, 33)))
    rows.append(np.sort(rng.uniform(0, 1, 140)))  # more eigenvalues than samples - 1
    for row in rows:
        expected, _ = _pca_classifier(row, 125)
        assert noise_variance(row[None, :], 125)[0] == pytest.approx(expected, rel=1e-9)


def test_removes_the_planted_noise():
    clean, noisy = _series(4, sigma=5.0)
    mask = np.ones(clean.shape[:3], bool)
    denoised, sigma = mppca(noisy, mask=mask, patch_radius=2)
    inner = (slice(2, -2),) * 3
    assert np.median(sigma[inner]) == pytest.approx(5.0, rel=0.1)
    before = np.sqrt(np.mean((noisy[inner] - clean[inner]) ** 2))
    after = np.sqrt(np.mean((denoised[inner] - clean[inner]) ** 2))
    assert after < 0.5 * before


def test_named_errors():
    with pytest.raises(ValueError, match="4D"):
        mppca(np.zeros((8, 8, 8), np.float32))
    with pytest.raises(ValueError, match="smaller than"):
        mppca(np.zeros((4, 8, 8, 10), np.float32))

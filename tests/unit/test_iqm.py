import numpy as np
import pytest

from pipeline.qc import iqm


def _rician_phantom(sigma, signal=500.0, shape=(40, 44, 36), seed=0):
    rng = np.random.default_rng(seed)
    clean = np.zeros(shape)
    clean[10:30, 12:32, 8:28] = signal
    real = clean + rng.normal(0, sigma, shape)
    imag = rng.normal(0, sigma, shape)
    return np.sqrt(real**2 + imag**2), clean > 0


@pytest.mark.parametrize("sigma", [5.0, 20.0])
def test_snr_recovers_known_noise(sigma):
    data, fg = _rician_phantom(sigma)
    head = iqm.head_mask(data)
    assert iqm.background_sigma(data, head) == pytest.approx(sigma, rel=0.05)
    assert iqm.snr(data, fg, head) == pytest.approx(500.0 / sigma, rel=0.06)


def test_otsu_separates_two_classes():
    values = np.concatenate([np.full(100, 10.0), np.full(100, 100.0)])
    assert 10 < iqm.otsu_threshold(values) < 100


def test_tsnr_and_dvars():
    rng = np.random.default_rng(1)
    data = 1000 + rng.normal(0, 10, (5, 6, 7, 200))
    mask = np.ones((5, 6, 7), bool)
    assert np.median(iqm.temporal_snr(data, mask)) == pytest.approx(100, rel=0.05)
    # successive differences of white noise have SD sqrt(2) * 10 -> 1.414 % of 1000
    assert iqm.dvars_percent(data, mask).mean() == pytest.approx(1.414, rel=0.05)

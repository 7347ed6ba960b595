"""Shells of the tensor fit (dwi.dti_max_b): b=0 plus shells at or below it; data with
only high shells are fitted with a warning. Truth: a signal with known diffusivity and
kurtosis, whose apparent MD falls with b as in tissue."""

from __future__ import annotations

import logging

import numpy as np

from pipeline.dwi.stream import tensor_volumes
from pipeline.dwi.tensor import fit_tensor

D = 0.8e-3  # mm2/s, isotropic
K = 1.0     # excess kurtosis: ln S = -b D + b^2 D^2 K / 6


def _signal(bvals, shape=(3, 3, 3)):
    log_s = -bvals * D + (bvals * D) ** 2 * K / 6.0
    return np.broadcast_to(1000.0 * np.exp(log_s), (*shape, bvals.size)).astype(np.float32).copy()


def _directions(n, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_tensor_fitted_on_low_shells_only():
    bvals = np.r_[0, 0, np.full(12, 1000.0), np.full(12, 3000.0)]
    bvecs = np.r_[np.zeros((2, 3)), _directions(12), _directions(12, 1)]
    fit, high_only = tensor_volumes(bvals, 1500)
    assert not high_only
    assert fit.tolist() == [True] * 14 + [False] * 12
    mask = np.ones((3, 3, 3), bool)
    data = _signal(bvals)
    low = fit_tensor(data[..., fit], bvals[fit], bvecs[fit], mask, method="OLS").md.mean()
    every = fit_tensor(data, bvals, bvecs, mask, method="OLS").md.mean()
    # apparent MD of the b=1000 shell (exact log-linear slope between b=0 and b=1000)
    apparent = D - 1000.0 * D ** 2 * K / 6.0
    assert abs(low - apparent) < 1e-3 * apparent
    assert every < 0.93 * low  # one tensor over both shells reads MD low


def test_rounding_keeps_a_nominal_shell():
    fit, _ = tensor_volumes(np.array([5.0, 1495.0, 1540.0, 1560.0, 2000.0]), 1500)
    # 1540 rounds to 1500 (in), 1560 to 1600 (out)
    assert fit.tolist() == [True, True, True, False, False]


def test_only_high_shell_is_fitted_with_a_warning(caplog):
    bvals = np.r_[0, np.full(20, 2500.0)]
    with caplog.at_level(logging.WARNING):
        fit, high_only = tensor_volumes(bvals, 1500)
    assert high_only and fit.all()
    assert "dwi.dti_max_b" in caplog.text and "2500" in caplog.text

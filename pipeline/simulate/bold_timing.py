"""Time courses of the motor-task BOLD phantom (:mod:`pipeline.simulate.bold`).

Slice acquisition times, the block design and its task response, and the slow
signal drift. Times are seconds; event onsets count from the first volume
after the dummy scans.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from nilearn.glm.first_level.hemodynamic_models import spm_hrf

TRIAL_TYPE = "move_affected_hand"


def slice_times(n_slices: int, tr_s: float) -> np.ndarray:
    """Acquisition time (s) of each slice, ascending interleaved (even slices first)."""
    order = np.r_[np.arange(0, n_slices, 2), np.arange(1, n_slices, 2)]
    times = np.empty(n_slices)
    times[order] = np.arange(n_slices) * tr_s / n_slices
    return times


def block_events(*, n_volumes: int, tr_s: float, block_s: float) -> pd.DataFrame:
    """Movement blocks of an off/on design starting with rest.

    Onsets are ``block_s + k * 2 * block_s`` (s); only blocks that end within
    ``n_volumes * tr_s`` are listed.
    """
    run_s = n_volumes * tr_s
    onsets = np.arange(block_s, run_s - block_s + 1e-9, 2 * block_s)
    return pd.DataFrame(
        {"onset": onsets, "duration": np.full(onsets.size, block_s), "trial_type": TRIAL_TYPE}
    )


def block_response(events: pd.DataFrame, times_s: np.ndarray, *, dt_s: float = 0.05) -> np.ndarray:
    """Task response (boxcar * SPM canonical HRF) sampled at ``times_s``.

    Scaled so that an isolated block of the events' duration peaks at 1, so a
    voxel with percent signal change ``a`` peaks at ``a`` %.
    """
    times_s = np.asarray(times_s, dtype=float)
    if events.empty:
        return np.zeros_like(times_s)
    hrf = spm_hrf(dt_s, oversampling=1)
    start = min(0.0, float(times_s.min())) - dt_s
    grid = np.arange(start, float(times_s.max()) + 2 * dt_s, dt_s)
    box = np.zeros_like(grid)
    for onset, duration in zip(events["onset"], events["duration"], strict=True):
        box[(grid >= onset) & (grid < onset + duration)] = 1.0
    response = np.convolve(box, hrf)[: grid.size]
    single = np.convolve(np.ones(int(round(events["duration"].iloc[0] / dt_s))), hrf)
    return np.interp(times_s, grid, response / single.max())


def slow_drift(rng, times_s, drift_percent):
    """Multiplicative drift: linear + one cosine of period 150-400 s, peak-to-peak %.

    Parameters
    ----------
    rng : numpy.random.Generator
    times_s : ndarray, shape (T,)
        Time (s) of each volume.
    drift_percent : float
        Peak-to-peak amplitude (% of baseline).

    Returns
    -------
    ndarray, shape (T,)
        Factor of each volume (mean 1).
    """
    span = max(float(np.ptp(times_s)), 1e-9)
    centred = (times_s - times_s.mean()) / span
    period = rng.uniform(150.0, 400.0)
    shape = rng.normal() * centred + rng.normal() * np.cos(
        2 * np.pi * times_s / period + rng.uniform(0, 2 * np.pi))
    shape -= shape.mean()
    shape /= max(float(np.ptp(shape)), 1e-12)
    return 1.0 + drift_percent / 100.0 * shape

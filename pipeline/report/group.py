"""Group comparison of per-session metrics: median, MAD and robust z."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.features import dictionary

MAD_TO_SD = 1.4826  # MAD of a normal distribution times this = its SD
MIN_GROUP = 3  # fewer finite values: no robust z
# Fewer sessions than this: robust z is shown but nothing is flagged (the MAD of a
# handful of values is too unstable to call anything an outlier).
MIN_SESSIONS_TO_FLAG = 10


def robust_z(values) -> np.ndarray:
    """Robust z-scores of a sample: (x - median) / (1.4826 MAD).

    Parameters
    ----------
    values : array-like (n,)
        One metric over the group; NaN values are ignored and get NaN.

    Returns
    -------
    ndarray (n,)
        NaN everywhere when fewer than 3 finite values; 0 where x equals the
        median when the MAD is 0 (and +/-inf elsewhere).

    Notes
    -----
    Iglewicz & Hoaglin (1993), *How to detect and handle outliers*: with the
    MAD scaled by 1.4826 the score is a standard normal deviate for normal
    data; |z| > 3.5 is their suggested outlier threshold.
    """
    x = np.asarray(values, dtype=float)
    z = np.full(x.shape, np.nan)
    finite = np.isfinite(x)
    if finite.sum() < MIN_GROUP:
        return z
    median = np.median(x[finite])
    scale = MAD_TO_SD * np.median(np.abs(x[finite] - median))
    diff = x[finite] - median
    with np.errstate(divide="ignore", invalid="ignore"):
        z[finite] = np.where(diff == 0, 0.0, diff / scale)
    return z


def metric_columns(table: pd.DataFrame) -> list[str]:
    """Numeric feature columns of a stream that has a modality (QC metrics and features),
    with a value in at least one session."""
    out = []
    for column in table.columns:
        entry = dictionary.FEATURES.get(column)
        if entry is None or entry["Stream"] not in dictionary.STREAM_MODALITY:
            continue
        values = table[column]
        if (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
                and values.notna().any()):                   # a column no session produced: not shown
            out.append(column)
    return out


def modality_of(column: str) -> str | None:
    """BIDS modality (T1w, FLAIR, dwi, bold) whose stream makes ``column``."""
    entry = dictionary.FEATURES.get(column)
    return None if entry is None else dictionary.STREAM_MODALITY.get(entry["Stream"])


def group_summary(table: pd.DataFrame, columns: list[str], *, threshold: float,
                  min_sessions: int = MIN_SESSIONS_TO_FLAG) -> dict:
    """Median, robust z and outlier flags of each column over the group.

    Parameters
    ----------
    table : DataFrame
        ``features.tsv``, one row per session.
    columns : list of str
        Numeric columns to summarise.
    threshold : float
        A value is an outlier when |robust z| > threshold ...
    min_sessions : int
        ... and the metric has at least this many finite values.

    Returns
    -------
    dict
        column -> {"median": float, "n": int, "z": ndarray (rows of table),
        "outlier": bool ndarray}.
    """
    out = {}
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=float)
        z = robust_z(values)
        finite = np.isfinite(values)
        out[column] = {
            "median": float(np.median(values[finite])) if finite.any() else float("nan"),
            "n": int(finite.sum()),
            "z": z,
            "outlier": (np.abs(np.nan_to_num(z, nan=0.0)) > threshold) & (finite.sum() >= min_sessions),
        }
    return out

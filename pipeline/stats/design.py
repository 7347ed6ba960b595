"""Fixed-effects design of the treatment-by-visit model and the contrasts of its LS means.

``change ~ baseline + visit + arm + arm:visit + covariates``: numeric
covariates centred, factors as treatment-coded dummies (first level is the
reference); a column that is constant or collinear in these data is dropped
with a note (a baseline that is constant, e.g. a count that is 0 at
baseline, no longer makes the design rank deficient).

LS means (Searle, Speed & Milliken 1980, Am Stat 34:216-221): numeric columns
at their mean over the model's rows; factor dummies at ``1/L`` (equal
weights, SAS LSMEANS and R emmeans' default) or at the rows' proportion of
that level (observed margins).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def design(frame: pd.DataFrame, *, visits, covariates, treated) -> tuple[np.ndarray, list, list, dict]:
    """Fixed-effects design of the treatment-by-visit model.

    Returns the matrix, its column names, notes on columns dropped because
    they are constant or collinear in these data (a baseline that is constant,
    e.g. a count that is 0 at baseline, is dropped with a note), and the
    factor levels ``{covariate: [levels]}`` kept for the LS means.
    """
    cols = {"intercept": np.ones(len(frame)), "baseline": frame["baseline"].to_numpy(float)}
    is_treated = (frame["arm"] == treated).to_numpy(float)
    for v in visits[1:]:
        cols[f"visit[{v}]"] = (frame["visit"] == v).to_numpy(float)
    cols["arm"] = is_treated
    for v in visits[1:]:
        cols[f"arm:visit[{v}]"] = is_treated * (frame["visit"] == v).to_numpy(float)
    factors = {}
    for name in covariates:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column):
            cols[name] = column.to_numpy(float) - float(column.mean())
            continue
        levels = sorted(column.astype(str).unique())
        factors[name] = levels
        for level in levels[1:]:
            cols[f"{name}[{level}]"] = (column.astype(str) == level).to_numpy(float)
    names = list(cols)
    X = np.column_stack([cols[n] for n in names])
    protected = {"intercept", "arm"} | {n for n in names if n.startswith(("visit[", "arm:visit["))}
    keep, notes = [], []
    for j, name in enumerate(names):  # greedy: keep a column if it adds rank
        trial = keep + [j]
        if name not in protected and (
            np.ptp(X[:, j]) == 0 or np.linalg.matrix_rank(X[:, trial]) < len(trial)
        ):
            what = "baseline value" if name == "baseline" else f"covariate column {name}"
            notes.append(f"{what} dropped (constant or collinear in these data)")
            continue
        keep.append(j)
    return X[:, keep], [names[j] for j in keep], notes, factors


def ls_contrasts(X, names, visits, factors, weights="equal") -> dict:
    """Contrast vectors of each arm's LS mean and their difference at each visit.

    Numeric columns (baseline, centred covariates) at their mean over the
    rows; factor dummies at ``1/L`` (``equal``) or the rows' proportion of
    that level (``observed``).
    """
    means = X.mean(axis=0)
    out = {}
    for v in visits:
        base = np.zeros(len(names))
        for j, n in enumerate(names):
            factor = n.split("[")[0] if "[" in n else None
            if n == "intercept" or n == f"visit[{v}]":
                base[j] = 1.0
            elif n.startswith(("visit[", "arm")):
                continue
            elif factor in factors and weights == "equal":
                base[j] = 1.0 / len(factors[factor])
            else:
                base[j] = means[j]
        diff = np.zeros(len(names))
        diff[names.index("arm")] = 1.0
        if f"arm:visit[{v}]" in names:
            diff[names.index(f"arm:visit[{v}]")] = 1.0
        out[v] = {"control": base, "treated": base + diff, "difference": diff}
    return out

"""Treatment-by-visit models of one outcome in one analysis set.

Change from baseline at each post-baseline visit is modelled as::

    change ~ baseline + visit + arm + arm:visit + covariates

(``arm`` = 1 for the treated arm), patient as the repeated unit:

* ``mmrm``: unstructured within-subject covariance, REML, Satterthwaite df
  (:mod:`pipeline.stats.mmrm`); falls back to heterogeneous Toeplitz, then
  compound symmetry, when the unstructured matrix does not converge. With one
  post-baseline visit this is ANCOVA (model name ``ancova``).
* ``random_intercept``: the protocol's wording, a linear mixed model with a
  random intercept per patient, i.e. marginal covariance ``tau2 J + sigma2 I``
  (tau2 > 0), fitted by the same REML engine with Satterthwaite df. It gives
  the REML estimates of statsmodels ``MixedLM(...).fit(reml=True)`` (tested)
  at a fraction of the time.
* ``t_test`` (Welch) and ``mann_whitney`` (Hodges-Lehmann shift) on the change
  at each visit: the protocol's simple comparisons.

The treatment effect at visit v is the LS-mean difference treated minus
control, ``beta_arm + beta_arm:v``; LS means are evaluated at the mean
baseline value and covariates (proportional weights for factors).

Notes
-----
Benjamini & Hochberg (1995, JRSS-B 57:289-300) step-up q values across the
imaging biomarkers: :func:`bh_qvalues`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.stats.mmrm import MMRMFit, fit_mmrm

log = logging.getLogger(__name__)
CI_LEVEL = 0.95


def change_from_baseline(values: pd.DataFrame, *, baseline: str, visits) -> pd.DataFrame:
    """participant_id, session, value -> participant_id, visit, baseline, change (observed rows only)."""
    base = values[values["session"] == baseline].set_index("participant_id")["value"]
    post = values[values["session"].isin(visits)].copy()
    post["baseline"] = post["participant_id"].map(base)
    post["change"] = post["value"] - post["baseline"]
    post = post.dropna(subset=["change"]).rename(columns={"session": "visit"})
    order = {v: i for i, v in enumerate(visits)}
    post["visit_index"] = post["visit"].map(order)
    return post.sort_values(["participant_id", "visit_index"])[
        ["participant_id", "visit", "visit_index", "baseline", "change"]].reset_index(drop=True)


def design(frame: pd.DataFrame, *, visits, covariates, treated) -> tuple[np.ndarray, list, list]:
    """Fixed-effects design of the treatment-by-visit model.

    Returns the matrix, its column names, and notes on covariate columns dropped
    because they are constant or collinear in these data.
    """
    cols = {"intercept": np.ones(len(frame)), "baseline": frame["baseline"].to_numpy(float)}
    is_treated = (frame["arm"] == treated).to_numpy(float)
    for v in visits[1:]:
        cols[f"visit[{v}]"] = (frame["visit"] == v).to_numpy(float)
    cols["arm"] = is_treated
    for v in visits[1:]:
        cols[f"arm:visit[{v}]"] = is_treated * (frame["visit"] == v).to_numpy(float)
    notes = []
    for name in covariates:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column):
            cols[name] = column.to_numpy(float) - float(column.mean())
            continue
        levels = sorted(column.astype(str).unique())
        for level in levels[1:]:
            cols[f"{name}[{level}]"] = (column.astype(str) == level).to_numpy(float)
    names = list(cols)
    X = np.column_stack([cols[n] for n in names])
    protected = {"intercept", "baseline", "arm"} | {n for n in names
                                                    if n.startswith(("visit[", "arm:visit["))}
    keep = []
    for j, name in enumerate(names):  # greedy: keep a column if it adds rank
        trial = keep + [j]
        if name not in protected and (np.ptp(X[:, j]) == 0 or
                                      np.linalg.matrix_rank(X[:, trial]) < len(trial)):
            notes.append(f"covariate column {name} dropped (constant or collinear in these data)")
            continue
        keep.append(j)
    return X[:, keep], [names[j] for j in keep], notes


def _ls_contrasts(X, names, frame, visits):
    """Contrast vectors: LS mean of each arm and their difference at each visit."""
    subject_rows = frame.drop_duplicates("participant_id").index
    means = X[frame.index.get_indexer(subject_rows)].mean(axis=0)
    out = {}
    for v in visits:
        base = np.zeros(len(names))
        for j, n in enumerate(names):
            if n in ("intercept",) or n == f"visit[{v}]":
                base[j] = 1.0
            elif not n.startswith(("visit[", "arm")):
                base[j] = means[j]
        diff = np.zeros(len(names))
        diff[names.index("arm")] = 1.0
        if f"arm:visit[{v}]" in names:
            diff[names.index(f"arm:visit[{v}]")] = 1.0
        out[v] = {"control": base, "treated": base + diff, "difference": diff}
    return out


def _row(estimate, se, df, **extra) -> dict:
    if np.isfinite(se) and np.isfinite(df) and df > 0:
        half = stats.t.ppf(0.5 + CI_LEVEL / 2, df) * se
        p = 2 * stats.t.sf(abs(estimate / se), df) if se > 0 else np.nan
    else:
        half, p = np.nan, np.nan
    return {"estimate": estimate, "se": se, "df": df, "ci_low": estimate - half,
            "ci_high": estimate + half, "p": p, **extra}


def fit_outcome(frame: pd.DataFrame, *, visits, covariates, treated, control,
                random_intercept=True) -> tuple[list, dict]:
    """All models of one outcome in one analysis set.

    Parameters
    ----------
    frame : DataFrame
        One row per subject x post-baseline visit with an observed change:
        participant_id, visit, baseline, change, arm and the covariates.
    visits : list of str
        Post-baseline visits in order (visits without data are dropped).

    Returns
    -------
    rows : list of dict
        One per model x visit (results.tsv rows without outcome/set columns).
    details : dict
        Model diagnostics for the report (covariance used, fallbacks, fitted
        values and standardised residuals, Sigma).
    """
    notes = []
    present = [v for v in visits if {treated, control} <= set(frame.loc[frame["visit"] == v, "arm"])]
    for v in visits:
        if v not in present:
            notes.append(f"visit {v}: no observation in one or both arms (not modelled)")
    frame = frame[frame["visit"].isin(present)].reset_index(drop=True)
    frame["visit_index"] = frame["visit"].map({v: i for i, v in enumerate(present)})
    rows: list = []
    details = {"notes": notes, "visits": present}
    n_subjects = frame["participant_id"].nunique()
    if not present or n_subjects < 4:
        details["notes"].append(f"too few subjects with a change from baseline ({n_subjects}): not modelled")
        return rows, details
    summary = frame.groupby(["visit", "arm"])["change"].agg(["count", "mean"])

    def counts_of(v):
        def get(arm, what):
            return summary[what].get((v, arm), 0 if what == "count" else np.nan)
        return {"n_treated": int(get(treated, "count")), "n_control": int(get(control, "count")),
                "mean_change_treated": float(get(treated, "mean")),
                "mean_change_control": float(get(control, "mean"))}

    X, names, more = design(frame, visits=present, covariates=covariates, treated=treated)
    details["notes"] += more
    details["columns"] = names
    y, subj, vidx = frame["change"].to_numpy(float), frame["participant_id"].to_numpy(), \
        frame["visit_index"].to_numpy()
    if len(y) <= X.shape[1] + 1:
        details["notes"].append(f"{len(y)} observations for {X.shape[1]} fixed effects: not modelled")
        return rows, details
    contrasts = _ls_contrasts(X, names, frame, present)
    fit = fit_mmrm(y, X, subj, vidx, n_visits=len(present))
    model = "ancova" if len(present) == 1 else "mmrm"
    fallback = "; ".join(f"{n}: {m}" for n, m in fit.attempts if m != "used")
    details.update(mmrm=_diagnostics(fit, y, X, subj, vidx), model=model, fit=fit)
    for v in present:
        c = contrasts[v]
        res = fit.contrast(c["difference"])
        rows.append(_row(res["estimate"], res["se"], res["df"], model=model,
                         covariance=fit.covariance if len(present) > 1 else "n/a (one visit)",
                         converged=fit.converged, visit=v,
                         lsmean_treated=float(c["treated"] @ fit.beta),
                         lsmean_control=float(c["control"] @ fit.beta),
                         note=fallback, **counts_of(v)))
    if random_intercept and len(present) > 1:
        rows += _random_intercept(y, X, subj, vidx, present, contrasts, counts_of, details)
    for v in present:
        sub = frame[frame["visit"] == v]
        a = sub.loc[sub["arm"] == treated, "change"].to_numpy(float)
        b = sub.loc[sub["arm"] == control, "change"].to_numpy(float)
        rows += _simple_tests(a, b, visit=v, extra=counts_of(v))
    return rows, details


def _diagnostics(fit: MMRMFit, y, X, subj, vidx) -> dict:
    fitted = X @ fit.beta
    resid = y - fitted
    standardised = np.full(len(y), np.nan)
    if np.all(np.isfinite(fit.sigma)):
        for s in np.unique(subj):
            rows = np.flatnonzero(subj == s)
            idx = vidx[rows]
            try:
                chol = np.linalg.cholesky(fit.sigma[np.ix_(idx, idx)])
                standardised[rows] = np.linalg.solve(chol, resid[rows])
            except np.linalg.LinAlgError:
                pass
    return {"fitted": fitted, "residual": resid, "standardised": standardised,
            "covariance": fit.covariance, "converged": fit.converged, "attempts": fit.attempts,
            "sigma": fit.sigma, "loglik": fit.loglik, "aic": fit.aic, "n_subjects": fit.n_subjects,
            "n_obs": fit.n_obs}


def _random_intercept(y, X, subj, vidx, visits, contrasts, counts_of, details) -> list:
    fit = fit_mmrm(y, X, subj, vidx, n_visits=len(visits), covariance="random intercept")
    tau2 = float(np.mean(fit.sigma[np.triu_indices(len(visits), 1)]))
    details["random_intercept"] = {"tau2": tau2, "sigma2": float(fit.sigma[0, 0]) - tau2,
                                   "converged": fit.converged, "loglik": fit.loglik, "aic": fit.aic}
    note = "" if fit.converged else "; ".join(m for _, m in fit.attempts)
    rows = []
    for v in visits:
        c = contrasts[v]
        res = fit.contrast(c["difference"])
        rows.append(_row(res["estimate"], res["se"], res["df"], model="random_intercept",
                         covariance="random intercept", converged=fit.converged, visit=v,
                         lsmean_treated=float(c["treated"] @ fit.beta),
                         lsmean_control=float(c["control"] @ fit.beta), note=note, **counts_of(v)))
    return rows


def _simple_tests(a, b, *, visit, extra) -> list:
    rows = []
    if len(a) >= 2 and len(b) >= 2:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = float(np.sqrt(va + vb))
        df = float((va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))) if se > 0 else np.nan
        rows.append(_row(float(a.mean() - b.mean()), se, df, model="t_test", covariance="n/a",
                         converged=True, visit=visit, note="Welch t-test on the change", **extra))
    if len(a) >= 1 and len(b) >= 1:
        u = stats.mannwhitneyu(a, b, alternative="two-sided")
        shift = float(np.median(np.subtract.outer(a, b)))
        rows.append({"estimate": shift, "se": np.nan, "df": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                     "p": float(u.pvalue), "model": "mann_whitney", "covariance": "n/a",
                     "converged": True, "visit": visit,
                     "note": "Mann-Whitney U on the change; estimate: Hodges-Lehmann shift", **extra})
    return rows


def bh_qvalues(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p values (q); NaN p stay NaN."""
    p = np.asarray(p, float)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if len(ok) == 0:
        return q
    order = ok[np.argsort(p[ok])]
    m = len(ok)
    ranked = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return q

"""Continuous endpoints: treatment-by-visit models of the change from baseline.

Change from baseline at each post-baseline visit is modelled as::

    change ~ baseline + visit + arm + arm:visit + covariates

(``arm`` = 1 for the treated arm), patient as the repeated unit:

* ``mmrm``: unstructured within-subject covariance, REML
  (:mod:`pipeline.stats.mmrm`), Kenward-Roger adjusted SE and df
  (:mod:`pipeline.stats.kenward_roger`) or Satterthwaite df (spec
  ``continuous.ddf``; the other df is in ``df_other``); falls back to
  heterogeneous Toeplitz, then compound symmetry. With one post-baseline visit
  this is ANCOVA (model ``ancova``; KR = Satterthwaite = N - p exactly).
* ``random_intercept``: the protocol's wording, ``tau2 J + sigma2 I``, same
  engine and df method.
* ``t_test`` (Welch) and ``mann_whitney`` (Hodges-Lehmann shift) on the change.
* ``mcid_responders``: at the MCID visit, the proportion of each arm whose
  change reaches the MCID in the better direction (:mod:`pipeline.stats.binary`).

The treatment effect at visit v is the LS-mean difference ``beta_arm +
beta_arm:v``. Per-arm LS means (with SEs) are at the mean baseline value and
mean numeric covariates over the model's rows, and over factor covariates
with equal weights per level (SAS LSMEANS and R emmeans' default) or the
observed proportions of the rows (``observed``; SAS ``OM``, emmeans
``weights = "proportional"``), spec ``continuous.lsmeans_weights``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.stats.design import design, ls_contrasts
from pipeline.stats.mmrm import MMRMFit, fit_mmrm
from pipeline.stats.results import excluded_row, t_or_z_row

log = logging.getLogger(__name__)


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
        ["participant_id", "visit", "visit_index", "baseline", "change"]
    ].reset_index(drop=True)


def fit_continuous(
    frame: pd.DataFrame,
    *,
    visits,
    covariates,
    treated,
    control,
    ddf="kenward-roger",
    lsmeans_weights="equal",
    random_intercept=True,
    simple_tests=True,
    min_per_arm=3,
) -> tuple[list, dict]:
    """All models of one continuous outcome in one analysis set.

    Parameters
    ----------
    frame : DataFrame
        One row per subject x post-baseline visit with an observed change:
        participant_id, visit, baseline, change, arm and the covariates.
    visits : list of str
        Post-baseline visits in order (visits without data are dropped).
    ddf : {"kenward-roger", "satterthwaite"}
    lsmeans_weights : {"equal", "observed"}
    min_per_arm : int
        Fewer subjects with a change in an arm: not modelled (an excluded row).

    Returns
    -------
    rows : list of dict
        results.tsv rows (without the outcome/set columns); a model that could
        not be fitted is a row with status ``excluded`` and the reason.
    details : dict
        notes, visits modelled, and diagnostics of the MMRM for the report.
    """
    notes = []
    seen = [v for v in visits if (frame["visit"] == v).any()]
    present = [v for v in seen if {treated, control} <= set(frame.loc[frame["visit"] == v, "arm"])]
    for v in seen:
        if v not in present:
            notes.append(f"visit {v}: observations in one arm only (not modelled)")
    frame = frame[frame["visit"].isin(present)].reset_index(drop=True)
    frame["visit_index"] = frame["visit"].map({v: i for i, v in enumerate(present)})
    details = {"notes": notes, "visits": present}
    counts = frame.drop_duplicates("participant_id")["arm"].value_counts()
    n_arm = {arm: int(counts.get(arm, 0)) for arm in (treated, control)}
    model = "ancova" if len(present) == 1 else "mmrm"
    reason = None
    if frame.empty:
        reason = "no subject with a change from baseline"
    elif min(n_arm.values()) < min_per_arm:
        reason = (
            f"too few subjects per arm ({treated} {n_arm[treated]}, {control} {n_arm[control]}; "
            f"minimum {min_per_arm})"
        )
    elif np.ptp(frame["change"].to_numpy(float)) == 0:
        reason = f"outcome constant (every change is {frame['change'].iloc[0]:g}): no variation to model"
    if reason:
        return [
            excluded_row(reason, model=model, visit=v, n_treated=n_arm[treated], n_control=n_arm[control])
            for v in (present or ["n/a"])
        ], details

    summary = frame.groupby(["visit", "arm"])["change"].agg(["count", "mean"])

    def counts_of(v):
        def get(arm, what):
            return summary[what].get((v, arm), 0 if what == "count" else np.nan)

        return {
            "n_treated": int(get(treated, "count")),
            "n_control": int(get(control, "count")),
            "summary_measure": "raw mean change",
            "summary_treated": float(get(treated, "mean")),
            "summary_control": float(get(control, "mean")),
        }

    X, names, more, factors = design(frame, visits=present, covariates=covariates, treated=treated)
    details["notes"] += more
    details["columns"] = names
    y, subj, vidx = (
        frame["change"].to_numpy(float),
        frame["participant_id"].to_numpy(),
        frame["visit_index"].to_numpy(),
    )
    rows: list = []
    if len(y) <= X.shape[1] + 1:
        reason = f"{len(y)} observations for {X.shape[1]} fixed effects: not modelled"
        rows += [excluded_row(reason, model=model, visit=v, **counts_of(v)) for v in present]
    else:
        contrasts = ls_contrasts(X, names, present, factors, lsmeans_weights)
        try:
            fit = fit_mmrm(y, X, subj, vidx, n_visits=len(present))
        except (ValueError, np.linalg.LinAlgError) as exc:
            log.warning("MMRM not fitted: %s", exc)
            rows += [
                excluded_row(f"MMRM not fitted: {exc}", model=model, visit=v, **counts_of(v)) for v in present
            ]
        else:
            fallback = "; ".join(f"{n}: {m}" for n, m in fit.attempts if m != "used")
            covariance = fit.covariance if len(present) > 1 else "n/a (one visit)"
            details.update(mmrm=_diagnostics(fit, y, X, subj, vidx), model=model, fit=fit)
            rows += _model_rows(fit, contrasts, present, model, covariance, ddf, fallback, counts_of)
            if random_intercept and len(present) > 1:
                rows += _random_intercept(y, X, subj, vidx, present, contrasts, counts_of, details, ddf)
    if simple_tests:
        for v in present:
            sub = frame[frame["visit"] == v]
            a = sub.loc[sub["arm"] == treated, "change"].to_numpy(float)
            b = sub.loc[sub["arm"] == control, "change"].to_numpy(float)
            rows += _simple_tests(a, b, visit=v, extra=counts_of(v))
    return rows, details


def _model_rows(fit: MMRMFit, contrasts, visits, model, covariance, ddf, note, counts_of) -> list:
    other = "satterthwaite" if ddf == "kenward-roger" else "kenward-roger"
    rows = []
    for v in visits:
        c = contrasts[v]
        res = fit.contrast(c["difference"], ddf)
        alt = fit.contrast(c["difference"], other)
        this_note = note
        if not np.isfinite(res["df"]):
            this_note = "; ".join(x for x in (note, f"{ddf} df undefined (singular information)") if x)
        lsm = {}
        for arm in ("treated", "control"):
            r = fit.contrast(c[arm], ddf)
            lsm[f"lsmean_{arm}"], lsm[f"lsmean_{arm}_se"] = r["estimate"], r["se"]
        row = t_or_z_row(
            res["estimate"],
            res["se"],
            res["df"],
            model=model,
            measure="difference in change",
            covariance=covariance,
            ddf_method=ddf,
            df_other=alt["df"],
            se_model=res["se_model"],
            converged=fit.converged,
            visit=v,
            note=this_note,
            status="ok",
            **lsm,
            **counts_of(v),
        )
        if not fit.converged:
            row = {**row, **excluded_row(f"did not converge ({note})", model=model, visit=v)}
        rows.append(row)
    return rows


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
    return {
        "fitted": fitted,
        "residual": resid,
        "standardised": standardised,
        "covariance": fit.covariance,
        "converged": fit.converged,
        "attempts": fit.attempts,
        "sigma": fit.sigma,
        "loglik": fit.loglik,
        "aic": fit.aic,
        "n_subjects": fit.n_subjects,
        "n_obs": fit.n_obs,
    }


def _random_intercept(y, X, subj, vidx, visits, contrasts, counts_of, details, ddf) -> list:
    try:
        fit = fit_mmrm(y, X, subj, vidx, n_visits=len(visits), covariance="random intercept")
    except (ValueError, np.linalg.LinAlgError) as exc:
        return [
            excluded_row(
                f"random-intercept model not fitted: {exc}", model="random_intercept", visit=v, **counts_of(v)
            )
            for v in visits
        ]
    tau2 = float(np.mean(fit.sigma[np.triu_indices(len(visits), 1)]))
    sigma2 = float(fit.sigma[0, 0]) - tau2
    details["random_intercept"] = {
        "tau2": tau2,
        "sigma2": sigma2,
        "converged": fit.converged,
        "loglik": fit.loglik,
        "aic": fit.aic,
    }
    if not fit.converged and np.isfinite(tau2) and tau2 < 1e-6 * max(tau2 + sigma2, 1e-300):
        return _boundary_rows(y, X, visits, contrasts, counts_of)
    note = "" if fit.converged else "; ".join(m for _, m in fit.attempts)
    return _model_rows(fit, contrasts, visits, "random_intercept", "random intercept", ddf, note, counts_of)


def _boundary_rows(y, X, visits, contrasts, counts_of) -> list:
    """Random-intercept variance estimated at 0 (the boundary, lme4's "singular fit"): the model is
    independent errors, so least squares with exact df N - p (the information is singular at the
    boundary, so neither Satterthwaite nor Kenward-Roger is defined)."""
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    df = len(y) - X.shape[1]
    cov = float(np.sum((y - X @ beta) ** 2)) / df * np.linalg.inv(X.T @ X)
    note = "random-intercept variance estimated at 0 (boundary): independent errors, least squares, df N - p"
    rows = []
    for v in visits:
        c = contrasts[v]
        lsm = {}
        for arm in ("treated", "control"):
            lsm[f"lsmean_{arm}"] = float(c[arm] @ beta)
            lsm[f"lsmean_{arm}_se"] = float(np.sqrt(c[arm] @ cov @ c[arm]))
        se = float(np.sqrt(c["difference"] @ cov @ c["difference"]))
        rows.append(
            t_or_z_row(
                float(c["difference"] @ beta),
                se,
                df,
                model="random_intercept",
                measure="difference in change",
                covariance="random intercept (tau2 = 0)",
                ddf_method="residual",
                df_other=np.nan,
                se_model=se,
                converged=True,
                visit=v,
                note=note,
                status="ok",
                **lsm,
                **counts_of(v),
            )
        )
    return rows


def _simple_tests(a, b, *, visit, extra) -> list:
    rows = []
    if len(a) >= 2 and len(b) >= 2 and (np.ptp(a) > 0 or np.ptp(b) > 0):
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        se = float(np.sqrt(va + vb))
        df = float((va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)))
        rows.append(
            t_or_z_row(
                float(a.mean() - b.mean()),
                se,
                df,
                model="t_test",
                measure="mean difference",
                ddf_method="welch",
                converged=True,
                visit=visit,
                status="ok",
                note="Welch t-test on the change",
                **extra,
            )
        )
    else:
        rows.append(
            excluded_row(
                "Welch t-test needs 2 subjects per arm and some variation",
                model="t_test",
                visit=visit,
                **extra,
            )
        )
    if len(a) >= 1 and len(b) >= 1 and np.ptp(np.r_[a, b]) > 0:
        u = stats.mannwhitneyu(a, b, alternative="two-sided")
        shift = float(np.median(np.subtract.outer(a, b)))
        rows.append(
            {
                "estimate": shift,
                "se": np.nan,
                "df": np.nan,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "p": float(u.pvalue),
                "model": "mann_whitney",
                "measure": "Hodges-Lehmann shift",
                "converged": True,
                "visit": visit,
                "status": "ok",
                "note": "Mann-Whitney U on the change; estimate: Hodges-Lehmann shift",
                **extra,
            }
        )
    else:
        rows.append(
            excluded_row(
                "Mann-Whitney needs data in both arms and some variation",
                model="mann_whitney",
                visit=visit,
                **extra,
            )
        )
    return rows

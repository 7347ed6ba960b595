"""Ordinal endpoints (e.g. the modified Rankin Scale): shift analysis at one visit.

* ``proportional_odds``: proportional-odds logistic regression (statsmodels
  ``OrderedModel``, logit) of the category on arm + strata;
  ``logit P(Y <= k) = cut_k - x'beta`` as R ``MASS::polr``, so ``exp(beta_arm)``
  is the common odds ratio of a *higher* category, treated vs control. Wald CI.
  Categories nobody has are left out (their cut-point is not identified).
  :class:`LogitOrderedModel` is OrderedModel with the logistic cdf in closed form
  and the analytic score (statsmodels differentiates numerically and evaluates
  scipy's generic logistic cdf: 20x slower); likelihood, parametrisation and
  the Hessian-based SEs are statsmodels'.
* ``cmh_mean_score``: Cochran-Mantel-Haenszel "row mean scores differ"
  statistic stratified by centre, with the categories' values as scores
  (Landis, Heyman & Koch 1978, Int Stat Rev 46:237-254; SAS ``CMH``, R
  ``vcdExtra::CMHtest`` type ``rmeans``). With two arms it has 1 df::

      Q = (sum_h T_h - E_h)^2 / sum_h V_h
      T_h = sum of scores of the treated in stratum h,  E_h = n1h * mean score_h,
      V_h = n1h (N_h - n1h) / (N_h - 1) * sum_j n_+jh (f_j - mean score_h)^2 / N_h

  Written here because statsmodels' ``StratifiedTable`` covers 2 x 2 x K
  tables only; validated against vcdExtra in ``tests/unit/test_stats_vs_r.py``.
  Its estimate is the unadjusted difference in mean score (no CI).

:func:`shift_table` gives the counts of each category by arm for the report.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from scipy import special, stats
from statsmodels.miscmodels.ordinal_model import OrderedModel

from pipeline.stats.binary import adjustment_design, stratified_tables
from pipeline.stats.results import excluded_row, t_or_z_row

log = logging.getLogger(__name__)


class LogitOrderedModel(OrderedModel):
    """statsmodels OrderedModel (logit) with a closed-form cdf and the analytic score."""

    def cdf(self, x):
        return special.expit(x)

    def pdf(self, x):
        p = special.expit(x)
        return p * (1 - p)

    def score(self, params):
        low, upp = self._bounds(params)
        prob = np.maximum(self.cdf(upp) - self.cdf(low), 1e-300)
        f_low, f_upp = self.pdf(low), self.pdf(upp)  # 0 at the infinite bounds
        k = self.k_levels - 1
        th = params[-k:]
        # d threshold_j / d th_m: 1 for m = 0, exp(th_m) for 1 <= m <= j (incremental parametrisation)
        jac = np.zeros((k + 2, k))
        for j in range(k):
            jac[j + 1, 0] = 1.0
            jac[j + 1, 1 : j + 1] = np.exp(th[1 : j + 1])
        d_exog = -((f_upp - f_low) / prob) @ self.exog
        d_thresh = ((f_upp / prob) @ jac[self.endog + 1]) - ((f_low / prob) @ jac[self.endog])
        return np.r_[d_exog, d_thresh]


def shift_table(frame: pd.DataFrame, *, levels, arms) -> pd.DataFrame:
    """Counts of each category (columns, in ``levels`` order) by arm (rows)."""
    counts = pd.crosstab(frame["arm"], frame["value"]).reindex(index=list(arms), columns=list(levels))
    return counts.fillna(0).astype(int)


def fit_ordinal(
    frame: pd.DataFrame,
    *,
    levels,
    treated,
    control,
    adjust=(),
    cmh_stratum=None,
    models=("proportional_odds", "cmh_mean_score"),
) -> list:
    """Every ordinal model of one outcome (``frame``: participant_id, arm, value, covariates)."""
    n1 = int((frame["arm"] == treated).sum())
    n0 = int((frame["arm"] == control).sum())
    m1 = float(frame.loc[frame["arm"] == treated, "value"].median()) if n1 else np.nan
    m0 = float(frame.loc[frame["arm"] == control, "value"].median()) if n0 else np.nan
    base = {
        "n_treated": n1,
        "n_control": n0,
        "summary_measure": "median category",
        "summary_treated": m1,
        "summary_control": m0,
    }
    rows = []
    for model in models:
        try:
            if n1 == 0 or n0 == 0:
                raise ValueError("an arm has no subject")
            if frame["value"].nunique() < 2:
                raise ValueError("every subject is in the same category")
            if model == "proportional_odds":
                row = proportional_odds(frame, levels=levels, treated=treated, adjust=adjust)
            else:
                row = cmh_mean_score(frame, treated=treated, stratum=cmh_stratum)
        except (ValueError, np.linalg.LinAlgError, ZeroDivisionError) as exc:
            row = excluded_row(f"{model} not estimated: {exc}")
        rows.append(
            {**base, "model": model, "converged": row.get("status", "ok") == "ok", "status": "ok", **row}
        )
    return rows


def proportional_odds(frame, *, levels, treated, adjust=()) -> dict:
    """Common odds ratio of a higher category (treated vs control), adjusted for ``adjust``."""
    present = [lv for lv in levels if (frame["value"] == lv).any()]
    notes = [f"adjusted for {', '.join(adjust) or 'nothing'}; Wald CI"]
    if len(present) < len(levels):
        notes.append(f"categories without subjects left out: {sorted(set(levels) - set(present))}")
    endog = pd.Series(pd.Categorical(frame["value"], categories=present, ordered=True))
    X, names = adjustment_design(frame, adjust, treated)
    exog = pd.DataFrame(X[:, 1:], columns=names[1:])  # OrderedModel has no intercept (the cut-points)
    row = _fit_po(endog, exog)
    if row is None and adjust:
        notes.append(f"did not converge adjusted for {', '.join(adjust)}: fitted without adjustment")
        row = _fit_po(endog, exog[["arm"]])
    if row is None:
        return excluded_row("proportional-odds model did not converge")
    beta, se = row
    return t_or_z_row(
        beta, se, ratio=True, measure="common odds ratio (higher category)", note="; ".join(notes)
    )


def _fit_po(endog, exog):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = LogitOrderedModel(endog, exog, distr="logit").fit(
            method="bfgs", disp=False, maxiter=2000, gtol=1e-8
        )
    beta, se = float(res.params["arm"]), float(res.bse["arm"])
    if not res.mle_retvals.get("converged", False) or not np.isfinite(se) or se > 50:
        return None
    return beta, se


def cmh_mean_score(frame, *, treated, stratum) -> dict:
    """CMH row-mean-scores statistic (2 arms x ordered categories x strata), category values as scores."""
    if not stratum:
        raise ValueError("no cmh_stratum in the trial spec")
    parts, dropped = stratified_tables(frame, lambda s: _stratum_terms(s, treated), stratum)
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ValueError(f"no {stratum} stratum with both arms")
    num = sum(p[0] for p in parts)
    var = sum(p[1] for p in parts)
    if var <= 0:
        raise ValueError("no variation within strata")
    q = num**2 / var
    diff = float(
        frame.loc[frame["arm"] == treated, "value"].mean()
        - frame.loc[frame["arm"] != treated, "value"].mean()
    )
    note = f"row mean scores, stratified by {stratum} ({len(parts)} strata), Q = {q:.4g} (1 df)"
    if dropped:
        note += f"; strata of one subject left out: {', '.join(dropped)}"
    return {
        "estimate": diff,
        "se": np.nan,
        "df": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": float(stats.chi2.sf(q, 1)),
        "measure": "difference in mean score",
        "note": note,
    }


def _stratum_terms(sub, treated):
    scores = sub["value"].to_numpy(float)
    is_treated = (sub["arm"] == treated).to_numpy()
    n, n1 = len(scores), int(is_treated.sum())
    if n1 == 0 or n1 == n:
        return None
    mean = scores.mean()
    observed, expected = scores[is_treated].sum(), n1 * mean
    var = n1 * (n - n1) / (n - 1) * np.sum((scores - mean) ** 2) / n
    return observed - expected, var

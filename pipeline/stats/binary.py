"""Binary endpoints: event yes/no by arm, in one analysis set at one visit (or window).

Rows (treated vs control; the event is what ``value == 1`` codes):

* ``risk_difference``: difference in proportions with the Newcombe hybrid-
  score 95% CI (statsmodels ``confint_proportions_2indep(method="newcomb")``);
  p from the protocol's rule: Pearson chi-squared when every expected count
  is >= 5, Fisher's exact test otherwise (the note says which).
* ``fisher_exact``: conditional maximum-likelihood odds ratio with its exact
  CI (scipy ``contingency.odds_ratio(kind="conditional")``, as R
  ``fisher.test``) and Fisher's exact p (scipy ``fisher_exact``).
* ``chi_squared``: Pearson chi-squared without continuity correction (scipy
  ``chi2_contingency``); estimate: risk difference with the Wald CI.
* ``logistic``: odds ratio from a logistic regression adjusted for the strata
  (statsmodels ``GLM`` binomial; Wald CI and p, as R ``glm``). Strata whose
  outcomes are all equal carry no information on the arm effect (their MLE
  intercept is infinite) and are dropped, with a note.
* ``cmh``: Mantel-Haenszel common odds ratio stratified by centre (statsmodels
  ``StratifiedTable``: Robins-Breslow-Greenland CI, CMH test without
  continuity correction, as R ``mantelhaen.test(correct = FALSE)``); strata
  with fewer than 2 subjects are left out (R refuses them).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.contingency_tables import StratifiedTable
from statsmodels.stats.proportion import confint_proportions_2indep

from pipeline.stats.results import CI_LEVEL, excluded_row, t_or_z_row

log = logging.getLogger(__name__)


def table_2x2(frame: pd.DataFrame, treated, control) -> np.ndarray:
    """[[treated events, treated non-events], [control events, control non-events]]."""
    out = np.zeros((2, 2), int)
    for i, arm in enumerate((treated, control)):
        v = frame.loc[frame["arm"] == arm, "value"].to_numpy(float)
        out[i] = [int(np.sum(v == 1)), int(np.sum(v == 0))]
    return out


def adjustment_design(frame: pd.DataFrame, adjust, treated) -> tuple[np.ndarray, list]:
    """Intercept, arm (1 = treated) and dummies / centred numeric columns of ``adjust``."""
    cols = {"intercept": np.ones(len(frame)), "arm": (frame["arm"] == treated).to_numpy(float)}
    for name in adjust:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column):
            cols[name] = column.to_numpy(float) - float(column.mean())
            continue
        for level in sorted(column.astype(str).unique())[1:]:
            cols[f"{name}[{level}]"] = (column.astype(str) == level).to_numpy(float)
    names = list(cols)
    X = np.column_stack([cols[n] for n in names])
    keep = []
    for j, _ in enumerate(names):
        if j < 2 or (np.ptp(X[:, j]) > 0 and np.linalg.matrix_rank(X[:, keep + [j]]) == len(keep) + 1):
            keep.append(j)
    return X[:, keep], [names[j] for j in keep]


def fit_binary(
    frame: pd.DataFrame,
    *,
    treated,
    control,
    adjust=(),
    cmh_stratum=None,
    models=("risk_difference", "fisher_exact", "chi_squared", "logistic", "cmh"),
) -> list:
    """Every binary model of one outcome (``frame``: participant_id, arm, value 0/1, covariates)."""
    table = table_2x2(frame, treated, control)
    n1, n0 = table.sum(axis=1)
    p1 = table[0, 0] / n1 if n1 else np.nan
    p0 = table[1, 0] / n0 if n0 else np.nan
    base = {
        "n_treated": int(n1),
        "n_control": int(n0),
        "summary_measure": "proportion with the event",
        "summary_treated": p1,
        "summary_control": p0,
    }
    rows = []
    for model in models:
        try:
            row = _MODELS[model](frame, table, treated=treated, adjust=adjust, cmh_stratum=cmh_stratum)
        except (ValueError, np.linalg.LinAlgError, ZeroDivisionError) as exc:
            row = excluded_row(f"{model} not estimated: {exc}")
        rows.append(
            {**base, "model": model, "converged": row.get("status", "ok") == "ok", "status": "ok", **row}
        )
    return rows


def _need_both_arms(table):
    if table[0].sum() == 0 or table[1].sum() == 0:
        raise ValueError("an arm has no subject")


def _risk_difference(frame, table, **_) -> dict:
    _need_both_arms(table)
    (a, b), (c, d) = table
    low, high = confint_proportions_2indep(
        a, a + b, c, c + d, method="newcomb", compare="diff", alpha=1 - CI_LEVEL
    )
    expected = table.sum(axis=1)[:, None] * table.sum(axis=0)[None, :] / table.sum()
    if np.all(expected >= 5):
        p, how = stats.chi2_contingency(table, correction=False).pvalue, "Pearson chi-squared"
    else:
        p, how = stats.fisher_exact(table).pvalue, "Fisher exact (an expected count < 5)"
    est = a / (a + b) - c / (c + d)
    return {
        "estimate": est,
        "se": np.nan,
        "df": np.nan,
        "ci_low": low,
        "ci_high": high,
        "p": float(p),
        "measure": "risk difference",
        "note": f"Newcombe hybrid-score CI; p: {how}",
    }


def _fisher(frame, table, **_) -> dict:
    _need_both_arms(table)
    res = stats.contingency.odds_ratio(table, kind="conditional")
    ci = res.confidence_interval(confidence_level=CI_LEVEL)
    return {
        "estimate": float(res.statistic),
        "se": np.nan,
        "df": np.nan,
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "p": float(stats.fisher_exact(table).pvalue),
        "measure": "odds ratio",
        "note": "conditional MLE odds ratio, exact CI (as R fisher.test)",
    }


def _chi_squared(frame, table, **_) -> dict:
    _need_both_arms(table)
    if np.any(table.sum(axis=0) == 0):
        raise ValueError("no variation: every subject has the same outcome")
    res = stats.chi2_contingency(table, correction=False)
    (a, b), (c, d) = table
    p1, p0 = a / (a + b), c / (c + d)
    se = np.sqrt(p1 * (1 - p1) / (a + b) + p0 * (1 - p0) / (c + d))
    row = t_or_z_row(p1 - p0, se)
    small = int(np.sum(res.expected_freq < 5))
    note = "Pearson chi-squared, no continuity correction; Wald CI of the risk difference"
    if small:
        note += f"; {small} expected count(s) < 5: prefer Fisher"
    return {**row, "p": float(res.pvalue), "measure": "risk difference", "note": note}


def _logistic(frame, table, *, treated, adjust, **_) -> dict:
    _need_both_arms(table)
    notes = []
    frame = frame.copy()
    for name in adjust:  # strata with one outcome only: infinite intercept, no information on the arm
        if pd.api.types.is_numeric_dtype(frame[name]):
            continue
        pure = frame.groupby(name)["value"].transform(lambda v: v.nunique() == 1)
        if pure.any() and not pure.all():
            levels = sorted(frame.loc[pure, name].astype(str).unique())
            notes.append(
                f"{int(pure.sum())} subject(s) of {name} {', '.join(levels)} (every outcome equal) left "
                "out: no information on the arm effect"
            )
            frame = frame[~pure]
    if frame["value"].nunique() < 2:
        raise ValueError("no variation in the outcome")
    X, names = adjustment_design(frame, adjust, treated)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.GLM(frame["value"].to_numpy(float), X, family=sm.families.Binomial()).fit(
            tol=1e-12, maxiter=200
        )
    beta, se = float(res.params[1]), float(res.bse[1])
    if not res.converged or not np.isfinite(se) or se > 50:
        return excluded_row("logistic regression did not converge (separation: an arm with all or no events)")
    notes.insert(0, f"adjusted for {', '.join(adjust) or 'nothing'}; Wald CI")
    return t_or_z_row(beta, se, ratio=True, measure="odds ratio", note="; ".join(notes))


def stratified_tables(frame, table_of, stratum) -> tuple[list, list]:
    """Per-stratum tables (strata of fewer than 2 subjects left out) and the left-out levels."""
    tables, dropped = [], []
    for level, sub in frame.groupby(stratum, sort=True):
        if len(sub) < 2:
            dropped.append(str(level))
            continue
        tables.append(table_of(sub))
    return tables, dropped


def _cmh(frame, table, *, treated, cmh_stratum, **_) -> dict:
    if not cmh_stratum:
        raise ValueError("no cmh_stratum in the trial spec")
    _need_both_arms(table)
    control = next(a for a in frame["arm"].unique() if a != treated)
    tables, dropped = stratified_tables(frame, lambda s: table_2x2(s, treated, control), cmh_stratum)
    if not tables:
        raise ValueError(f"no {cmh_stratum} stratum with 2 subjects")
    st = StratifiedTable([t.astype(float) for t in tables])
    with np.errstate(divide="ignore", invalid="ignore"):
        test = st.test_null_odds(correction=False)
        low, high = st.oddsratio_pooled_confint(alpha=1 - CI_LEVEL)
        estimate = float(st.oddsratio_pooled)
        homogeneity = st.test_equal_odds().pvalue
    if not np.isfinite(estimate) or estimate <= 0:
        raise ValueError(
            "Mantel-Haenszel odds ratio not finite (an arm with all or no events in every stratum)"
        )
    note = f"stratified by {cmh_stratum} ({len(tables)} strata); RBG CI"
    if dropped:
        note += f"; strata of one subject left out: {', '.join(dropped)}"
    if np.isfinite(homogeneity):
        note += f"; Breslow-Day homogeneity p = {homogeneity:.3g}"
    return {
        "estimate": estimate,
        "se": float(st.logodds_pooled_se),
        "df": np.nan,
        "ci_low": float(low),
        "ci_high": float(high),
        "p": float(test.pvalue),
        "measure": "Mantel-Haenszel odds ratio",
        "note": note,
    }


_MODELS = {
    "risk_difference": _risk_difference,
    "fisher_exact": _fisher,
    "chi_squared": _chi_squared,
    "logistic": _logistic,
    "cmh": _cmh,
}

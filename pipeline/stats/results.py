"""Rows of ``stats/results.tsv``: columns, their descriptions, and the helpers every model uses.

One row per outcome x analysis set x model x visit. A model that could not be
fitted (rank deficiency, no convergence, all-NA, constant, too few subjects
per arm) is still a row: ``status`` = ``excluded`` with the reason in
``note`` (and a line in ``exclusions.tsv``), never a crashed run.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

CI_LEVEL = 0.95

RESULT_DESCRIPTIONS = {
    "endpoint": "endpoint of the trial spec (a group such as imaging gives one outcome per biomarker)",
    "outcome": "variable analysed",
    "label": "readable name",
    "endpoint_type": "continuous (change from baseline) | binary | ordinal | count | time_to_event",
    "role": "primary | secondary | safety | exploratory (trial spec)",
    "confirmatory": "yes on the one confirmatory test: primary endpoint, main model, key visit, first set",
    "main_model": "yes when this is the endpoint's main model (summary table, BH family)",
    "family": "Benjamini-Hochberg family (trial spec families); empty = not in a family",
    "units": "units of the outcome (continuous estimates, SEs, CIs and LS means are in these units)",
    "better": "direction better for the patient (higher | lower | n/a), from the spec or features.json",
    "visit": "visit of the comparison (or the event window / follow-up)",
    "analysis_set": "analysis set (trial spec analysis_sets)",
    "model": "mmrm | ancova | random_intercept | t_test | mann_whitney | mcid_responders | risk_difference | "
    "fisher_exact | chi_squared | logistic | cmh | proportional_odds | cmh_mean_score | poisson | "
    "negative_binomial | cox | log_rank",
    "measure": "what estimate is: difference (treated minus control) or ratio (treated / control)",
    "estimate": "treatment effect, treated vs control (full precision)",
    "se": "standard error of the estimate (log scale for ratios; Kenward-Roger adjusted for mmrm with "
    "ddf_method kenward-roger)",
    "df": "degrees of freedom of the t reference (mmrm: ddf_method; t_test: Welch); empty = normal/exact",
    "ci_low": "lower 95% confidence limit",
    "ci_high": "upper 95% confidence limit",
    "p": "two-sided p value",
    "q": "Benjamini-Hochberg q within family x analysis set x model x visit (main-model rows only)",
    "favours": "treatment | control | no difference: the side of the estimate given the better direction",
    "n_treated": "subjects of the treated arm in this comparison",
    "n_control": "subjects of the control arm in this comparison",
    "lsmean_treated": "LS mean (change from baseline) of the treated arm, weights as lsmeans_weights",
    "lsmean_treated_se": "its standard error",
    "lsmean_control": "LS mean of the control arm",
    "lsmean_control_se": "its standard error",
    "summary_measure": "what summary_treated / summary_control are",
    "summary_treated": "descriptive value of the treated arm (mean change, proportion, rate, median)",
    "summary_control": "descriptive value of the control arm",
    "covariance": "within-subject covariance actually used (mixed models)",
    "ddf_method": "df method of this row (kenward-roger | satterthwaite | welch | ...)",
    "df_other": "mmrm: df by the other method (Satterthwaite when ddf_method is kenward-roger, and back)",
    "se_model": "mmrm: model-based SE (X'V^-1X)^-1, before the Kenward-Roger adjustment",
    "converged": "model converged",
    "status": "ok | excluded (not estimated: the reason is in note and exclusions.tsv)",
    "note": "fallbacks, warnings, reasons",
}
RESULT_COLUMNS = list(RESULT_DESCRIPTIONS)


def t_or_z_row(estimate, se, df=None, *, ratio=False, **extra) -> dict:
    """Estimate, CI and two-sided p of a Wald statistic (t with ``df``, normal without).

    For ``ratio`` the estimate and SE are on the log scale and the returned
    estimate and CI are exponentiated (SE stays on the log scale).
    """
    estimate, se = float(estimate), float(se)
    use_t = df is not None and np.isfinite(df) and df > 0
    if np.isfinite(se) and se > 0 and (use_t or df is None):
        crit = stats.t.ppf(0.5 + CI_LEVEL / 2, df) if use_t else stats.norm.ppf(0.5 + CI_LEVEL / 2)
        z = abs(estimate / se)
        p = float(2 * (stats.t.sf(z, df) if use_t else stats.norm.sf(z)))
        low, high = estimate - crit * se, estimate + crit * se
    else:
        p, low, high = np.nan, np.nan, np.nan
    if ratio:
        estimate, low, high = np.exp(estimate), np.exp(low), np.exp(high)
    return {
        "estimate": estimate,
        "se": se,
        "df": np.nan if df is None else float(df),
        "ci_low": low,
        "ci_high": high,
        "p": p,
        **extra,
    }


def excluded_row(reason: str, **extra) -> dict:
    """A results row for a model that was not estimated."""
    return {
        "estimate": np.nan,
        "se": np.nan,
        "df": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": np.nan,
        "converged": False,
        "status": "excluded",
        "note": reason,
        **extra,
    }


def favours(estimate, measure: str, better: str) -> str:
    """Which arm the estimate favours, given the outcome's better direction."""
    if better not in ("higher", "lower") or not np.isfinite(estimate):
        return ""
    null = 1.0 if "ratio" in measure else 0.0
    if estimate == null:
        return "no difference"
    treated_higher = estimate > null
    return "treatment" if treated_higher == (better == "higher") else "control"

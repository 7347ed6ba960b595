"""Every outcome in every analysis set: the rows of ``stats/results.tsv``."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.stats.data import AnalysisData, exclusion
from pipeline.stats.models import bh_qvalues, change_from_baseline, fit_outcome
from pipeline.stats.spec import AnalysisSpec

log = logging.getLogger(__name__)

MODEL_ORDER = ("mmrm", "ancova", "random_intercept", "t_test", "mann_whitney")
RESULT_COLUMNS = [
    "outcome", "outcome_type", "units", "visit", "analysis_set", "model", "covariance",
    "estimate", "se", "df", "ci_low", "ci_high", "p", "q", "n_treated", "n_control",
    "lsmean_treated", "lsmean_control", "mean_change_treated", "mean_change_control",
    "converged", "note"]

RESULT_DESCRIPTIONS = {
    "outcome": "outcome analysed (change from baseline of this column)",
    "outcome_type": "primary (clinical endpoint) or imaging (biomarker from features.tsv)",
    "units": "units of the outcome (and of estimate, se, ci, lsmeans)",
    "visit": "post-baseline visit of the treatment comparison",
    "analysis_set": "analysis set (config stats.analysis_sets)",
    "model": "mmrm | ancova (one post-baseline visit) | random_intercept | t_test | mann_whitney",
    "covariance": "within-subject covariance actually used",
    "estimate": "treated minus control difference in change from baseline (LS means for models; "
                "mean difference for t_test; Hodges-Lehmann shift for mann_whitney)",
    "se": "standard error of the estimate", "df": "degrees of freedom (Satterthwaite for mixed models, "
    "Welch for t_test)", "ci_low": "lower 95% confidence limit", "ci_high": "upper 95% confidence limit",
    "p": "two-sided p value", "q": "Benjamini-Hochberg q across imaging biomarkers within analysis set x "
    "model x visit (the primary visit is the confirmatory family); empty for the primary endpoint",
    "n_treated": "subjects of the treated arm with a change from baseline at this visit",
    "n_control": "subjects of the control arm with a change from baseline at this visit",
    "lsmean_treated": "LS mean change of the treated arm (at mean baseline and covariates)",
    "lsmean_control": "LS mean change of the control arm",
    "mean_change_treated": "raw mean change of the treated arm", "mean_change_control":
    "raw mean change of the control arm", "converged": "model converged", "note": "fallbacks and warnings"}


def analyse(data: AnalysisData, spec: AnalysisSpec) -> tuple[pd.DataFrame, list, dict]:
    """Fit every outcome in every analysis set.

    Returns
    -------
    results : DataFrame
        ``RESULT_COLUMNS``; q values within each imaging family.
    exclusions : list of dict
        The input exclusions plus those made while modelling.
    details : dict
        (outcome, analysis set) -> model diagnostics (see
        :func:`pipeline.stats.models.fit_outcome`).
    """
    excl = list(data.exclusions)
    rows, details = [], {}
    subjects = data.subjects.set_index("participant_id")
    for outcome in data.outcomes:
        values = data.values[data.values["outcome"] == outcome.name]
        change = change_from_baseline(values, baseline=spec.baseline_visit, visits=spec.post_visits)
        no_base = sorted(set(values["participant_id"]) - set(
            values.loc[values["session"] == spec.baseline_visit, "participant_id"]))
        for pid in no_base:
            if pid in subjects.index:
                excl.append(exclusion("outcome", f"no {spec.baseline_visit} value: no change from baseline",
                                      participant_id=pid, outcome=outcome.name))
        change = change[change["participant_id"].isin(subjects.index)]
        frame = change.join(subjects, on="participant_id")
        for set_name in spec.analysis_sets:
            in_set = frame[frame[f"set_{set_name}"]].reset_index(drop=True)
            out, info = fit_outcome(in_set, visits=spec.post_visits, covariates=spec.covariates,
                                    treated=spec.treated_arm, control=spec.control_arm,
                                    random_intercept=spec.random_intercept_model)
            details[(outcome.name, set_name)] = info
            for note in info["notes"]:
                excl.append(exclusion("model", note, outcome=outcome.name, analysis_set=set_name))
            for r in out:
                r.update(outcome=outcome.name, outcome_type=outcome.kind, units=outcome.units,
                         analysis_set=set_name)
            rows += out
            log.info("%s, %s: %d rows", outcome.name, set_name, len(out))
    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    results["q"] = np.nan
    imaging = results["outcome_type"] == "imaging"
    for _, idx in results[imaging].groupby(["analysis_set", "model", "visit"]).groups.items():
        results.loc[idx, "q"] = bh_qvalues(results.loc[idx, "p"].to_numpy(float))
    order = {v: i for i, v in enumerate(spec.post_visits)}
    models = {m: i for i, m in enumerate(MODEL_ORDER)}
    sets = {s: i for i, s in enumerate(spec.analysis_sets)}
    outcomes = {o.name: i for i, o in enumerate(data.outcomes)}
    keys = pd.DataFrame({"o": results["outcome"].map(outcomes), "s": results["analysis_set"].map(sets),
                         "m": results["model"].map(models), "v": results["visit"].map(order)})
    results = results.loc[keys.sort_values(["o", "s", "m", "v"], kind="stable").index]
    return results.reset_index(drop=True), excl, details

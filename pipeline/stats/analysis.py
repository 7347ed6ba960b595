"""Every outcome of the trial spec in every analysis set: the rows of ``stats/results.tsv``.

One function per endpoint type builds the analysis frame of an outcome in a
set and calls its models (:mod:`~pipeline.stats.continuous`,
:mod:`~pipeline.stats.binary`, :mod:`~pipeline.stats.ordinal`,
:mod:`~pipeline.stats.counts`, :mod:`~pipeline.stats.survival`). Any failure
of one outcome is a stated exclusion (a row with ``status`` excluded and a
line in ``exclusions.tsv``); the other outcomes go on.

Multiplicity: Benjamini & Hochberg (1995, JRSS-B 57:289-300) q values within
each family of the spec x analysis set x model x visit, over the endpoints'
main-model rows (statsmodels ``multipletests(method="fdr_bh")``).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from pipeline.stats.binary import fit_binary
from pipeline.stats.continuous import change_from_baseline, fit_continuous
from pipeline.stats.counts import fit_counts
from pipeline.stats.data import AnalysisData, exclusion
from pipeline.stats.ordinal import fit_ordinal, shift_table
from pipeline.stats.results import RESULT_COLUMNS, excluded_row, favours
from pipeline.stats.survival import fit_survival, kaplan_meier
from pipeline.stats.trialspec import MODELS, ROLE_ORDER, TrialSpec

log = logging.getLogger(__name__)
MODEL_ORDER = (
    "mmrm",
    "ancova",
    "random_intercept",
    "t_test",
    "mann_whitney",
    "mcid_responders",
    "risk_difference",
    "fisher_exact",
    "chi_squared",
    "logistic",
    "cmh",
    "proportional_odds",
    "cmh_mean_score",
    "negative_binomial",
    "poisson",
    "cox",
    "log_rank",
)


def bh_qvalues(p) -> np.ndarray:
    """Benjamini-Hochberg q values (statsmodels ``multipletests``); NaN p stay NaN."""
    p = np.asarray(p, float)
    q = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q


def _visit_order(spec, sessions) -> list:
    order = {v: i for i, v in enumerate(spec.visits)}
    return sorted(set(sessions), key=lambda s: (order.get(s, len(order)), s))


def _continuous(outcome, subjects, spec, info) -> list:
    e = outcome.endpoint
    visits = [v for v in spec.post_visits if not e.visits or v in e.visits]
    change = change_from_baseline(outcome.data, baseline=spec.baseline_visit, visits=visits)
    frame = change.join(subjects, on="participant_id", how="inner")
    rows, details = fit_continuous(
        frame,
        visits=visits,
        covariates=e.adjust if e.adjust is not None else spec.covariates,
        treated=spec.treated_arm,
        control=spec.control_arm,
        ddf=spec.ddf,
        lsmeans_weights=spec.lsmeans_weights,
        random_intercept=spec.random_intercept_model,
        simple_tests=spec.simple_tests,
        min_per_arm=spec.min_subjects_per_arm,
    )
    info.update(details)
    if e.mcid and outcome.better in ("higher", "lower"):
        rows += _mcid(frame, e, outcome, spec, info)
    return rows


def _mcid(frame, e, outcome, spec, info) -> list:
    present = [v for v in spec.post_visits if (frame["visit"] == v).any()]
    visit = e.mcid.get("visit") or (present[-1] if present else None)
    sub = frame[frame["visit"] == visit]
    sign = 1.0 if outcome.better == "higher" else -1.0
    value = float(e.mcid["value"])
    arms = {}
    for arm in (spec.treated_arm, spec.control_arm):
        change = sub.loc[sub["arm"] == arm, "change"].to_numpy(float)
        arms[arm] = {
            "n": len(change),
            "mean": float(np.mean(change)) if len(change) else np.nan,
            "sd": float(np.std(change, ddof=1)) if len(change) > 1 else np.nan,
            "reached": float(np.mean(sign * change >= value)) if len(change) else np.nan,
        }
    info["mcid"] = {
        "visit": visit,
        "value": value,
        "sign": sign,
        "reference": e.mcid.get("reference", ""),
        "arms": arms,
    }
    responders = sub.assign(value=(sign * sub["change"] >= value).astype(float))
    note = (
        f"MCID {value:g} {outcome.units} ({'increase' if sign > 0 else 'decrease'} of the score; "
        f"{e.mcid.get('reference') or 'no reference given'})"
    )
    if min(a["n"] for a in arms.values()) < spec.min_subjects_per_arm:
        return [excluded_row(f"too few subjects per arm at {visit}", model="mcid_responders", visit=visit)]
    row = fit_binary(
        responders, treated=spec.treated_arm, control=spec.control_arm, models=("risk_difference",)
    )[0]
    row.update(
        model="mcid_responders",
        visit=visit,
        measure="difference in proportion reaching the MCID",
        summary_measure="proportion reaching the MCID",
        note=f"{note}; {row.get('note', '')}",
    )
    return [row]


def _per_visit(outcome, subjects, spec, info, fit) -> list:
    rows = []
    for visit in _visit_order(spec, outcome.data["session"]):
        frame = outcome.data[outcome.data["session"] == visit].join(
            subjects, on="participant_id", how="inner"
        )
        out = fit(frame)
        for r in out:
            r["visit"] = visit
        rows += out
        if outcome.type == "ordinal":
            info.setdefault("shift", {})[visit] = shift_table(
                frame, levels=outcome.endpoint.levels, arms=(spec.treated_arm, spec.control_arm)
            )
        if outcome.type == "time_to_event":
            info.setdefault("km", {})[visit] = kaplan_meier(frame, (spec.treated_arm, spec.control_arm))
    return rows


def fit_one(outcome, subjects: pd.DataFrame, spec: TrialSpec) -> tuple[list, dict]:
    """Every model of one outcome for the ``subjects`` of one analysis set (indexed by participant_id)."""
    e, info = outcome.endpoint, {"notes": []}
    if outcome.type == "continuous":
        return _continuous(outcome, subjects, spec, info), info
    adjust = e.adjust if e.adjust is not None else spec.strata
    arms = dict(treated=spec.treated_arm, control=spec.control_arm)

    def guarded(fit):
        def run(frame):
            n = frame["arm"].value_counts()
            n1, n0 = int(n.get(spec.treated_arm, 0)), int(n.get(spec.control_arm, 0))
            if min(n1, n0) < spec.min_subjects_per_arm:
                reason = (
                    f"too few subjects per arm ({spec.treated_arm} {n1}, {spec.control_arm} {n0}; "
                    f"minimum {spec.min_subjects_per_arm})"
                )
                return [excluded_row(reason, model=m, n_treated=n1, n_control=n0) for m in MODELS[e.type]]
            return fit(frame)

        return run

    if outcome.type == "binary":
        fit = guarded(lambda f: fit_binary(f, adjust=adjust, cmh_stratum=spec.cmh_stratum, **arms))
    elif outcome.type == "ordinal":
        fit = guarded(
            lambda f: fit_ordinal(f, levels=e.levels, adjust=adjust, cmh_stratum=spec.cmh_stratum, **arms)
        )
    elif outcome.type == "count":
        fit = guarded(lambda f: fit_counts(f, adjust=adjust, **arms))
    else:
        fit = guarded(lambda f: fit_survival(f, adjust=adjust, **arms))
    return _per_visit(outcome, subjects, spec, info, fit), info


def analyse(data: AnalysisData, spec: TrialSpec) -> tuple[pd.DataFrame, list, dict]:
    """Fit every outcome in every analysis set.

    Returns
    -------
    results : DataFrame
        ``RESULT_COLUMNS``, the confirmatory test first.
    exclusions : list of dict
        The input exclusions plus those made while modelling.
    details : dict
        (outcome, analysis set) -> model diagnostics, shift tables, Kaplan-Meier
        curves and MCID summaries for the report.
    """
    excl = list(data.exclusions)
    rows, details = [], {}
    subjects = data.subjects.set_index("participant_id")
    for outcome in data.outcomes:
        e = outcome.endpoint
        for set_name in spec.analysis_sets:
            in_set = subjects[subjects[f"set_{set_name}"]]
            try:
                out, info = fit_one(outcome, in_set, spec)
            except (ValueError, KeyError, np.linalg.LinAlgError) as exc:  # a bug must not sink the run
                log.exception("%s, %s: not analysed", outcome.name, set_name)
                out, info = (
                    [
                        excluded_row(
                            f"not analysed: {type(exc).__name__}: {exc}", model=e.main_model, visit=""
                        )
                    ],
                    {"notes": []},
                )
            details[(outcome.name, set_name)] = info
            for note in info["notes"]:
                excl.append(exclusion("model", note, outcome=outcome.name, analysis_set=set_name))
            for r in out:
                r.update(
                    endpoint=e.name,
                    outcome=outcome.name,
                    label=outcome.label,
                    endpoint_type=e.type,
                    role=e.role,
                    family=e.family or "",
                    units=outcome.units,
                    better=outcome.better,
                    analysis_set=set_name,
                    main_model="yes"
                    if r["model"] == e.main_model or (e.main_model == "mmrm" and r["model"] == "ancova")
                    else "no",
                )
            rows += out
            log.info("%s, %s: %d rows", outcome.name, set_name, len(out))
    results = pd.DataFrame(rows).reindex(columns=RESULT_COLUMNS)
    results["status"] = results["status"].fillna("ok")
    results["favours"] = [
        favours(est, str(m), b)
        for est, m, b in zip(
            results["estimate"], results["measure"].fillna(""), results["better"], strict=True
        )
    ]
    mcid = (
        results["model"] == "mcid_responders"
    )  # reaching the MCID is better, whatever the score's direction
    results.loc[mcid, "favours"] = [
        favours(est, "difference", "higher") for est in results.loc[mcid, "estimate"]
    ]
    results["q"] = np.nan
    family = (results["family"] != "") & (results["main_model"] == "yes")
    for _, idx in results[family].groupby(["family", "analysis_set", "model", "visit"]).groups.items():
        results.loc[idx, "q"] = bh_qvalues(results.loc[idx, "p"].to_numpy(float))
    results = _order(results, data, spec)
    excl += _model_exclusions(results)
    return results, excl, details


def _key_visit(e, spec, visits) -> str:
    return e.visit or (spec.primary_visit if spec.primary_visit in visits else (visits[-1] if visits else ""))


def _order(results, data, spec) -> pd.DataFrame:
    outcomes = {o.name: i for i, o in enumerate(data.outcomes)}
    roles = {r: i for i, r in enumerate(ROLE_ORDER)}
    models = {m: i for i, m in enumerate(MODEL_ORDER)}
    sets = {s: i for i, s in enumerate(spec.analysis_sets)}
    visits = {v: i for i, v in enumerate(spec.visits)}
    results["confirmatory"] = "no"
    primary = spec.primary_endpoint
    if primary is not None:
        rows = results[
            (results["endpoint"] == primary.name)
            & (results["main_model"] == "yes")
            & (results["analysis_set"] == next(iter(spec.analysis_sets)))
        ]
        key = _key_visit(primary, spec, list(dict.fromkeys(rows["visit"])))
        results.loc[rows.index[rows["visit"] == key], "confirmatory"] = "yes"
    keys = pd.DataFrame(
        {
            "c": results["confirmatory"] != "yes",
            "r": results["role"].map(roles),
            "o": results["outcome"].map(outcomes),
            "s": results["analysis_set"].map(sets),
            "m": results["model"].map(models).fillna(len(models)),
            "v": results["visit"].map(visits).fillna(len(visits)),
        }
    )
    order = keys.sort_values(["c", "r", "o", "s", "v", "m"], kind="stable").index
    return results.loc[order].reset_index(drop=True)


def _model_exclusions(results) -> list:
    out = {}
    for r in results[results["status"] == "excluded"].itertuples():
        key = (r.outcome, r.analysis_set, r.note)
        out.setdefault(key, []).append(f"{r.model}" + (f" at {r.visit}" if r.visit else ""))
    return [
        exclusion("model", f"{note} [{', '.join(dict.fromkeys(where))}]", outcome=o, analysis_set=s)
        for (o, s, note), where in out.items()
    ]


def key_visit(endpoint, spec, results) -> str:
    """The endpoint's key visit among the visits it has results at."""
    visits = list(dict.fromkeys(results.loc[results["endpoint"] == endpoint.name, "visit"]))
    return _key_visit(endpoint, spec, visits)

"""Awkward trial data: each case gives results for the other outcomes and a stated exclusion, never a
crashed run (issue 24): a score constant at baseline, an outcome constant overall, 7 visits x 10 subjects
in the random-intercept model, a subject with a baseline visit only, an arm of 2 subjects, subjects only
in the key or only in the data, an all-NA outcome, separation in the logistic model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.stats.analysis import analyse
from pipeline.stats.report import render
from pipeline.stats.sources import assemble
from pipeline.stats.synthetic import synthetic_trial
from pipeline.stats.trialspec import trial_spec_from_dict

SESSIONS = ("baseline", "v2", "v3", "v4", "v5", "v6", "v7")
SCORE = dict(baseline_mean=10.0, baseline_sd=2.0, sd=1.5, effect=-1.0, rho=0.5)


def _spec(sessions=SESSIONS, extra=()):
    endpoints = [
        {
            "name": n,
            "type": "continuous",
            "source": {"file": "scores.tsv", "column": n},
            "units": "points",
            "better": "lower",
            "role": "primary" if n == "score" else "secondary",
        }
        for n in ("score", "zero_at_baseline", "constant", "all_na")
    ]
    return trial_spec_from_dict(
        {
            "trial": "T",
            "arms": {"treated": "ADSC", "control": "placebo"},
            "visits": [{"name": v} for v in sessions],
            "covariates": ["age", "sex"],
            "strata": ["center"],
            "cmh_stratum": "center",
            "analysis_sets": {"ITT": None},
            "endpoints": endpoints + list(extra),
        }
    )


def _trial(n, seed=0, sessions=SESSIONS):
    rng = np.random.default_rng(seed)
    table, participants, allocation, _ = synthetic_trial(
        rng,
        n_subjects=n,
        sessions=sessions,
        outcomes={"score": SCORE},
        missing_fraction=0.05,
        dropout_fraction=0.0,
    )
    base = table["session"] == "baseline"
    table["zero_at_baseline"] = np.where(base, 0.0, rng.poisson(2.0, len(table)))  # a count, 0 at baseline
    table["constant"] = 3.0
    table["all_na"] = np.nan
    return table, participants, allocation


def _run(table, participants, allocation, spec):
    data = assemble(spec=spec, participants=participants, allocation=allocation, tables={"scores.tsv": table})
    results, exclusions, details = analyse(data, spec)
    return data, results, pd.DataFrame(exclusions), details


def test_seven_visits_ten_subjects_and_constant_outcomes_do_not_sink_the_run():
    """7 visits x 10 subjects: the random-intercept model runs (it crashed on an unchecked None in
    satterthwaite); a count that is 0 at baseline is modelled without its baseline (stated); an outcome
    constant overall and an all-NA outcome are stated exclusions; the other outcome has results."""
    table, participants, allocation = _trial(10, seed=9)
    spec = _spec()
    _, results, excl, _ = _run(table, participants, allocation, spec)
    score = results[results["outcome"] == "score"]
    assert set(score["model"]) >= {"mmrm", "random_intercept", "t_test", "mann_whitney"}
    mmrm = score[score["model"] == "mmrm"]
    assert len(mmrm) == 6 and (mmrm["status"] == "ok").all() and np.isfinite(mmrm["estimate"]).all()
    ri = score[score["model"] == "random_intercept"]
    assert len(ri) == 6 and ((ri["status"] == "ok") | ri["note"].str.len().gt(0)).all()
    zero = results[(results["outcome"] == "zero_at_baseline") & (results["model"] == "mmrm")]
    assert (zero["status"] == "ok").all() and len(zero) == 6
    assert excl["reason"].str.contains("baseline value dropped").any()
    constant = results[results["outcome"] == "constant"]
    assert (constant["status"] == "excluded").all() and constant["note"].str.contains(
        "outcome constant"
    ).all()
    assert ((excl["outcome"] == "constant") & excl["reason"].str.contains("outcome constant")).any()
    assert ((excl["outcome"] == "all_na") & excl["reason"].str.contains("all values are NA")).any()


@pytest.mark.parametrize("seed", [9, 15, 23])
def test_random_intercept_at_the_boundary_is_least_squares_with_a_note(seed):
    """Seeds where the random-intercept variance goes to 0 (the former crash): stated, with the exact
    least-squares answer."""
    from pipeline.stats.continuous import fit_continuous

    rng = np.random.default_rng(seed)
    n, k = 10, 6
    visits = [f"v{j}" for j in range(2, 2 + k)]
    frame = pd.DataFrame(
        {
            "participant_id": np.repeat([f"s{i}" for i in range(n)], k),
            "visit": np.tile(visits, n),
            "baseline": np.repeat(rng.normal(0, 1, n), k),
            "arm": np.repeat(np.where(np.arange(n) < n // 2, "ADSC", "placebo"), k),
        }
    )
    frame["change"] = 0.3 * frame["baseline"] + rng.normal(0, 1, len(frame))
    rows, _ = fit_continuous(frame, visits=visits, covariates=[], treated="ADSC", control="placebo")
    ri = [r for r in rows if r["model"] == "random_intercept"]
    assert len(ri) == k and all(r["status"] == "ok" or r["note"] for r in ri)
    boundary = [r for r in ri if "boundary" in (r.get("note") or "")]
    assert boundary  # these seeds put the random-intercept variance at 0
    import statsmodels.formula.api as smf

    ols = smf.ols("change ~ baseline + C(visit) * C(arm, Treatment('placebo'))", data=frame).fit()
    first = ols.params["C(arm, Treatment('placebo'))[T.ADSC]"]
    assert boundary[0]["visit"] == "v2" and boundary[0]["estimate"] == pytest.approx(first, rel=1e-8)
    assert boundary[0]["se"] == pytest.approx(ols.bse["C(arm, Treatment('placebo'))[T.ADSC]"], rel=1e-8)
    for r in boundary:  # intercept, baseline, 5 visits, arm, 5 arm x visit
        assert r["df"] == len(frame) - (3 + 2 * (k - 1)) == ols.df_resid


def test_baseline_only_subject_small_arm_and_key_mismatches_are_listed_in_the_report():
    table, participants, allocation = _trial(12, seed=2, sessions=("baseline", "v2", "v3"))
    table = table[~((table["participant_id"] == "sub-003") & (table["session"] != "baseline"))]
    allocation = allocation.assign(arm=["ADSC" if i < 2 else "placebo" for i in range(len(allocation))])
    allocation = pd.concat(
        [
            allocation[allocation["participant_id"] != "sub-012"],
            pd.DataFrame({"participant_id": ["sub-099"], "arm": ["placebo"]}),
        ]
    )
    spec = _spec(sessions=("baseline", "v2", "v3"))
    data, results, excl, details = _run(table, participants, allocation, spec)
    reasons = dict(zip(excl["participant_id"] + "|" + excl["outcome"], excl["reason"], strict=True))
    assert any(k.startswith("sub-003|") and "baseline value only" in v for k, v in reasons.items())
    subject = excl[excl["scope"] == "subject"].set_index("participant_id")["reason"]
    assert "not in the allocation key" in subject["sub-012"]
    assert "not in participants.tsv" in subject["sub-099"]
    assert excl["reason"].str.contains("small arm: ADSC has 2 subject").any()
    score = results[results["outcome"] == "score"]
    assert (score["status"] == "excluded").all()
    assert score["note"].str.contains("too few subjects per arm").all()
    html = render(results=results, exclusions=excl, details=details, data=data, spec=spec, inputs={})
    assert "Nothing was excluded" not in html and "baseline value only" in html and "small arm" in html


def test_logistic_separation_is_an_excluded_row_and_the_other_binary_models_run():
    rng = np.random.default_rng(4)
    table, participants, allocation = _trial(40, seed=4, sessions=("baseline", "v2"))
    arm = table["participant_id"].map(allocation.set_index("participant_id")["arm"])
    table["healed"] = np.where(arm == "ADSC", 1.0, (rng.random(len(table)) < 0.3).astype(float))
    healed = {
        "name": "healed",
        "type": "binary",
        "source": {"file": "scores.tsv", "column": "healed"},
        "better": "higher",
        "visits": ["v2"],
    }
    spec = _spec(sessions=("baseline", "v2"), extra=[healed])
    _, results, excl, _ = _run(table, participants, allocation, spec)
    rows = results[results["outcome"] == "healed"].set_index("model")
    assert rows.loc["logistic", "status"] == "excluded" and "separation" in rows.loc["logistic", "note"]
    assert rows.loc["fisher_exact", "status"] == "ok" and rows.loc["fisher_exact", "p"] < 0.05
    assert rows.loc["risk_difference", "status"] == "ok" and rows.loc["risk_difference", "estimate"] > 0.5
    assert ((excl["outcome"] == "healed") & excl["reason"].str.contains("separation")).any()
    assert (
        results.loc[(results["outcome"] == "score") & (results["model"] == "ancova"), "status"] == "ok"
    ).all()

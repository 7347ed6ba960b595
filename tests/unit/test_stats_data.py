"""Stats inputs: the config route's spec, bad input (named errors or stated exclusions), QC ratings,
stream status, allocation mismatches, sets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import PipelineInputError
from pipeline.stats.analysis import bh_qvalues
from pipeline.stats.sources import assemble as assemble_spec
from pipeline.stats.spec import AnalysisSpec
from pipeline.stats.synthetic import synthetic_trial
from pipeline.stats.trialspec import trial_spec_from_config

SESSIONS = ("baseline", "m01", "m06")


def _inputs(seed=0, n=24):
    rng = np.random.default_rng(seed)
    outcomes = {"fa_cst_ipsilesional": dict(baseline_mean=0.5, baseline_sd=0.05, sd=0.02, effect=0.03),
                "t1w_snr": dict(baseline_mean=20, baseline_sd=2, sd=1, effect=0.0),
                "nihss_motor": dict(baseline_mean=6.5, baseline_sd=1.8, sd=2, effect=-1.5)}
    table, participants, allocation, _ = synthetic_trial(rng, n_subjects=n, sessions=SESSIONS,
                                                         outcomes=outcomes)
    features = table.drop(columns="nihss_motor").assign(bold_laterality_index=np.nan)
    dictionary = {
        "fa_cst_ipsilesional": {"Units": "ratio", "Better": "higher", "Stream": "dwi", "Description": "FA"},
        "t1w_snr": {"Units": "ratio", "Better": "higher", "Stream": "anat", "Description": "SNR"},
        "bold_laterality_index": {"Units": "ratio", "Better": "higher", "Stream": "bold",
                                  "Description": "LI"}}
    phenotype = table[["participant_id", "session", "nihss_motor"]].dropna()
    return dict(features=features, dictionary=dictionary, phenotype=phenotype,
                participants=participants, allocation=allocation)


def _spec(**stats):
    return trial_spec_from_config(stats, sessions=list(SESSIONS), baseline_session="baseline")


def assemble(*, features, dictionary, phenotype, participants, allocation, spec, ratings=None, paths=None):
    """The config route: the primary endpoint's table under the spec's file name."""
    return assemble_spec(spec=spec, participants=participants, allocation=allocation,
                         tables={"phenotype/nihss.tsv": phenotype}, features=features, dictionary=dictionary,
                         ratings=ratings, paths=paths)


def test_spec_defaults_and_snakemake_strings():
    spec = AnalysisSpec.from_config({}, sessions=list(SESSIONS), baseline_session="baseline")
    assert spec.post_visits == ["m01", "m06"] and spec.primary_visit == "m06"
    assert (spec.treated_arm, spec.control_arm) == ("ADSC", "placebo")
    assert spec.analysis_sets == {"ITT": None, "mITT": "alive_m06_1w", "PP": "per_protocol"}
    # what `--config stats='{...}'` produces: every scalar a string
    spec = _spec(allocation="key.tsv", visits="null", biomarkers="null", random_intercept_model="false",
                 analysis_sets={"ITT": "null", "PP": "per_protocol"}, arms={"treated": "A", "control": "B"},
                 ddf="satterthwaite", lsmeans_weights="observed")
    assert spec.visits == list(SESSIONS) and spec.primary_visit == "m06"
    assert spec.analysis_sets == {"ITT": None, "PP": "per_protocol"} and not spec.random_intercept_model
    assert (spec.treated_arm, spec.control_arm, spec.ddf, spec.lsmeans_weights) == ("A", "B", "satterthwaite",
                                                                                     "observed")
    assert [e.name for e in spec.endpoints] == ["nihss_motor", "imaging"]
    assert spec.primary_endpoint.name == "nihss_motor" and spec.endpoint("imaging").family == "biomarkers"
    with pytest.raises(PipelineInputError, match="primary_visit"):
        _spec(primary_visit="m12")
    with pytest.raises(PipelineInputError, match="baseline_visit"):
        _spec(baseline_visit="screening")


def test_config_schema_accepts_the_stats_section():
    from pipeline.config import validate_config

    cfg = validate_config({"bids_dir": "x", "stats": {"allocation": "k.tsv", "arms": {"treated": "A"}}})
    assert cfg["stats"]["arms"] == {"treated": "A", "control": "placebo"}
    assert cfg["stats"]["analysis_sets"]["mITT"] == "alive_m06_1w"
    with pytest.raises(PipelineInputError, match="alocation"):
        validate_config({"bids_dir": "x", "stats": {"alocation": "k.tsv"}})


def test_default_biomarkers_exclude_quality_metrics_and_all_na_is_stated():
    data = assemble(**_inputs(), spec=_spec())
    names = [o.name for o in data.outcomes]
    assert names == ["nihss_motor", "fa_cst_ipsilesional"]  # t1w_snr is an image-quality metric
    assert {"scope": "outcome", "participant_id": "", "session": "", "outcome": "bold_laterality_index",
            "analysis_set": "", "reason": "all values are NA (not modelled)"} in data.exclusions
    assert all("arm" not in o.data.columns for o in data.outcomes)
    assert set(data.subjects["arm"]) == {"ADSC", "placebo"}


def test_subjects_only_in_the_data_or_only_in_the_key_are_listed():
    inputs = _inputs()
    inputs["allocation"] = pd.concat([inputs["allocation"].iloc[1:], pd.DataFrame(
        {"participant_id": ["sub-900"], "arm": ["ADSC"]})])
    data = assemble(**inputs, spec=_spec(), paths={"allocation": "key.tsv"})
    reasons = {e["participant_id"]: e["reason"] for e in data.exclusions if e["scope"] == "subject"}
    assert "not in the allocation key" in reasons["sub-001"]
    assert "in the allocation key but not in participants.tsv" in reasons["sub-900"]
    assert "sub-001" not in set(data.subjects["participant_id"])
    inputs["allocation"] = pd.DataFrame({"participant_id": ["sub-800", "sub-801"],
                                         "arm": ["ADSC", "placebo"]})
    with pytest.raises(PipelineInputError, match="key.tsv: no subject of the data is in the allocation key"):
        assemble(**inputs, spec=_spec(), paths={"allocation": "key.tsv"})


def test_stream_status_not_ok_and_reviewer_exclusions_make_features_missing_and_are_listed():
    inputs = _inputs()
    features = inputs["features"]
    features["dwi_status"] = "ok"
    bad = features.index[(features["participant_id"] == "sub-002") & (features["session"] == "m06")]
    features.loc[bad, "dwi_status"] = "failed: eddy did not converge"
    features.loc[bad, "fa_cst_ipsilesional"] = 0.99  # a stale value that must not be used
    review = features.index[features["session"] == "m01"][3:4]
    reviewed = (features.loc[review[0], "participant_id"], "m01")
    features["qc_excluded_streams"] = ""
    features.loc[review, "qc_excluded_streams"] = "dwi"
    data = assemble(**inputs, spec=_spec())
    fa = next(o for o in data.outcomes if o.name == "fa_cst_ipsilesional").data
    assert not ((fa["participant_id"] == "sub-002") & (fa["session"] == "m06")).any()
    assert not ((fa["participant_id"] == reviewed[0]) & (fa["session"] == "m01")).any()
    assert (fa["value"] < 0.9).all()
    reasons = {(e["participant_id"], e["session"]): e["reason"] for e in data.exclusions
               if e["scope"] == "features"}
    assert "dwi_status 'failed: eddy did not converge'" in reasons[("sub-002", "m06")]
    assert "qc_excluded_streams" in reasons[reviewed]


def test_allocation_unknown_arm_is_a_named_error():
    inputs = _inputs()
    inputs["allocation"].loc[3, "arm"] = "Placebo "
    inputs["allocation"].loc[4, "arm"] = "active"
    with pytest.raises(PipelineInputError, match="unknown arm label.*sub-005='active'"):
        assemble(**inputs, spec=_spec())


def test_duplicate_subject_session_rows_are_named_errors():
    inputs = _inputs()
    inputs["features"] = pd.concat([inputs["features"], inputs["features"].iloc[[2]]])
    with pytest.raises(PipelineInputError, match="features.tsv: duplicate participant_id x session rows: "
                                                 "sub-001 m06"):
        assemble(**inputs, spec=_spec())
    inputs = _inputs()
    inputs["phenotype"] = pd.concat([inputs["phenotype"], inputs["phenotype"].iloc[[0]]])
    with pytest.raises(PipelineInputError, match="nihss.tsv: duplicate"):
        assemble(**inputs, spec=_spec())
    inputs = _inputs()
    inputs["allocation"] = pd.concat([inputs["allocation"], inputs["allocation"].iloc[[0]]])
    with pytest.raises(PipelineInputError, match="duplicate participant_id"):
        assemble(**inputs, spec=_spec())


def test_feature_table_with_arm_and_missing_covariate_column_are_rejected():
    inputs = _inputs()
    inputs["features"]["arm"] = "x"
    with pytest.raises(PipelineInputError, match="must not contain the arm"):
        assemble(**inputs, spec=_spec())
    inputs = _inputs()
    with pytest.raises(PipelineInputError, match=r"participants.tsv: missing column\(s\) \['nihss_bl'\]"):
        assemble(**inputs, spec=_spec(covariates=["age", "nihss_bl"]))


def test_missing_covariate_value_excludes_the_subject_with_reason():
    inputs = _inputs()
    inputs["participants"].loc[0, "age"] = np.nan
    data = assemble(**inputs, spec=_spec())
    assert "sub-001" not in set(data.subjects["participant_id"])
    assert any(e["participant_id"] == "sub-001" and "missing covariate" in e["reason"]
               for e in data.exclusions)


def test_qc_fail_removes_that_modality_only_and_latest_rating_wins():
    inputs = _inputs()
    ratings = pd.DataFrame([
        ("sub-002", "m06", "dwi", "fail", "AB", "eddy artefact", "2026-01-01T10:00:00"),
        ("sub-003", "ses-m01", "dwi", "fail", "AB", "", "2026-01-01T10:00:00"),
        ("sub-003", "m01", "dwi", "pass", "CD", "re-reviewed", "2026-01-02T10:00:00"),
        ("sub-004", "m06", "T1w", "fail", "AB", "", "2026-01-01T10:00:00"),
    ], columns=["participant_id", "session", "modality", "rating", "rater", "comment", "timestamp"])
    data = assemble(**inputs, spec=_spec(), ratings=ratings)
    fa = next(o for o in data.outcomes if o.name == "fa_cst_ipsilesional").data
    assert not ((fa["participant_id"] == "sub-002") & (fa["session"] == "m06")).any()
    assert ((fa["participant_id"] == "sub-003") & (fa["session"] == "m01")).any()  # pass overrides
    nihss = next(o for o in data.outcomes if o.name == "nihss_motor").data
    assert ((nihss["participant_id"] == "sub-002") & (nihss["session"] == "m06")).any()  # clinical kept
    reasons = [e for e in data.exclusions if e["scope"] == "features"]
    assert len(reasons) == 2
    assert "QC rating 'fail' of dwi by AB: eddy artefact" in reasons[0]["reason"]
    bad = ratings.assign(modality="DWI")
    with pytest.raises(PipelineInputError, match="unknown modality"):
        assemble(**inputs, spec=_spec(), ratings=bad)


def test_analysis_sets_follow_participants_columns():
    inputs = _inputs()
    data = assemble(**inputs, spec=_spec())
    subjects = data.subjects.set_index("participant_id")
    parts = inputs["participants"].set_index("participant_id")
    assert subjects["set_ITT"].all()
    assert (subjects["set_mITT"] == (parts["alive_m06_1w"] == "yes")).all()
    assert (subjects["set_PP"] == (parts["per_protocol"] == "yes")).all()


def _hand_written_bh(p):
    """The package's former hand-written Benjamini-Hochberg (kept here as the reference it replaced)."""
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


def test_bh_from_statsmodels_gives_the_q_values_of_the_former_hand_written_bh():
    rng = np.random.default_rng(3)
    for trial in range(200):
        p = rng.uniform(0, 1, rng.integers(1, 40)) ** rng.uniform(1, 4)
        if trial % 3 == 0:  # ties and missing p
            p[rng.integers(0, len(p), 3)] = p[0]
            p[rng.integers(0, len(p))] = np.nan
        np.testing.assert_allclose(bh_qvalues(p), _hand_written_bh(p), rtol=1e-12, atol=0, equal_nan=True)
    assert np.isnan(bh_qvalues([np.nan, np.nan])).all()


def test_cli_writes_results_report_and_named_error(tmp_path):
    from pipeline.cli import main

    inputs = _inputs(n=32)
    paths = {}
    for name in ("features", "phenotype", "participants", "allocation"):
        paths[name] = tmp_path / f"{name}.tsv"
        inputs[name].to_csv(paths[name], sep="\t", index=False, na_rep="n/a")
    (tmp_path / "features.json").write_text(json.dumps(inputs["dictionary"]))
    out = tmp_path / "stats"
    argv = ["stats", "--features", str(paths["features"]), "--dictionary", str(tmp_path / "features.json"),
            "--participants", str(paths["participants"]), "--phenotype", str(paths["phenotype"]),
            "--allocation", str(paths["allocation"]), "--sessions", *SESSIONS, "--baseline-session",
            "baseline", "--stats-config", json.dumps({"allocation": "x"}),
            "--out-results", str(out / "results.tsv"), "--out-exclusions", str(out / "exclusions.tsv"),
            "--out-report", str(out / "report.html")]
    assert main(argv) == 0
    results = pd.read_csv(out / "results.tsv", sep="\t", na_values="n/a")
    assert set(results["model"]) == {"mmrm", "random_intercept", "t_test", "mann_whitney"}
    assert set(results["analysis_set"]) == {"ITT", "mITT", "PP"}
    mmrm = results[(results["model"] == "mmrm")]
    assert (mmrm["ci_low"] < mmrm["estimate"]).all() and (mmrm["estimate"] < mmrm["ci_high"]).all()
    imaging = (results["endpoint"] == "imaging") & (results["main_model"] == "yes")
    assert results.loc[imaging, "q"].notna().all()
    assert results.loc[results["role"] == "primary", "q"].isna().all()
    assert results.iloc[0]["confirmatory"] == "yes" and results.iloc[0]["outcome"] == "nihss_motor"
    html = (out / "report.html").read_text()
    assert "nihss_motor" in html and "bold_laterality_index" in html and "all values are NA" in html
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    assert json.loads((out / "results.json").read_text())["Arms"] == {"treated": "ADSC",
                                                                     "control": "placebo"}
    inputs["allocation"].assign(arm="active").to_csv(paths["allocation"], sep="\t", index=False)
    assert main(argv) == 2


def test_needs_review_keeps_the_stream_out_of_the_models_until_reviewed():
    """A status 'needs_review: ...' (an implausible automatic lesion mask, pipeline.lesion
    .plausibility) is not 'ok': that session's features of the stream stay out of the
    models, stated, until a reviewer's rating or corrected mask makes the status 'ok'."""
    inputs = _inputs()
    features = inputs["features"]
    features["dwi_status"] = "ok"
    flagged = features.index[(features["participant_id"] == "sub-003")
                             & (features["session"] == "m06")]
    features.loc[flagged, "dwi_status"] = "needs_review: implausible: brighter than mirror"
    data = assemble(**inputs, spec=_spec())
    fa = next(o for o in data.outcomes if o.name == "fa_cst_ipsilesional").data
    assert not ((fa["participant_id"] == "sub-003") & (fa["session"] == "m06")).any()
    assert any("needs_review" in e["reason"] and e["participant_id"] == "sub-003"
               for e in data.exclusions)
    features.loc[flagged, "dwi_status"] = "ok"  # reviewed
    fa = next(o for o in assemble(**inputs, spec=_spec()).outcomes
              if o.name == "fa_cst_ipsilesional").data
    assert ((fa["participant_id"] == "sub-003") & (fa["session"] == "m06")).any()

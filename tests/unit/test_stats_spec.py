"""Trial specs: the shipped RESSTORE and ADUSE specs validate, and bad specs are errors naming the file
and the problem (schema and semantic checks)."""

from __future__ import annotations

import copy

import pytest
import yaml

from pipeline.errors import PipelineInputError
from pipeline.stats.trialspec import load_trial_spec, trial_spec_from_dict
from tests.conftest import REPO

TRIALS = REPO / "configs" / "trials"


def test_resstore_spec_holds_the_protocol():
    spec = load_trial_spec(TRIALS / "resstore.yaml")
    assert spec.visits == ["baseline", "w01", "w02", "m03", "m06", "m12", "m24"]  # V1 inclusion .. V7 2 years
    assert spec.primary_endpoint.name == "nihss_motor" and spec.primary_endpoint.main_model == "mmrm"
    assert spec.primary_visit == "m06" and spec.ddf == "kenward-roger" and spec.lsmeans_weights == "equal"
    types = {e.type for e in spec.endpoints}
    assert types == {"continuous", "binary", "ordinal", "count", "time_to_event"}
    mrs = spec.endpoint("mrs")
    assert mrs.levels == [0, 1, 2, 3, 4, 5, 6] and mrs.main_model == "proportional_odds"
    assert {e.name for e in spec.endpoints if e.mcid} == {"barthel_index", "fugl_meyer_ue"}
    assert all(e.mcid["visit"] == "m24" for e in spec.endpoints if e.mcid)  # the 2-year MCID analysis
    assert {e.name for e in spec.endpoints if e.family == "biomarkers"} == {"blood", "imaging"}
    assert spec.dsmb["looks"] == [15, 30, 60] and spec.dsmb["completed_after_days"] == 14
    assert list(spec.analysis_sets) == ["ITT", "mITT", "PP"] and spec.cmh_stratum == "center"
    assert "phenotype/adverse_events.tsv" in spec.files() and spec.uses_features()


def test_aduse_spec_is_clinical_only_with_a_binary_primary():
    spec = load_trial_spec(TRIALS / "aduse.yaml")
    primary = spec.primary_endpoint
    assert (primary.name, primary.type, primary.visit, primary.main_model) == (
        "healing",
        "binary",
        "w16",
        "risk_difference",
    )
    assert spec.visits[-1] == "w16" and not spec.uses_features()
    assert {e.type for e in spec.endpoints} == {"binary", "time_to_event", "count", "continuous"}
    assert spec.ordered_endpoints()[0] is primary


def _base():
    return yaml.safe_load((TRIALS / "aduse.yaml").read_text())


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d.update(arms={"treated": "A", "contrl": "B"}), "arms.*contrl"),
        (lambda d: d["endpoints"][0].update(type="binomial"), "endpoints/0/type"),
        (lambda d: d["endpoints"][0].update(visit="w20"), "visit 'w20' is not one of the visits"),
        (lambda d: d["endpoints"][1].update(role="primary"), "more than one primary endpoint"),
        (lambda d: d["endpoints"][1].update(family="tertiary"), "family 'tertiary' is not declared"),
        (lambda d: d["endpoints"][3].update(model="cox"), "model 'cox' does not fit type count"),
        (lambda d: d["endpoints"][6]["source"].pop("followup"), "events source needs followup"),
        (
            lambda d: d["endpoints"].append(
                {"name": "mrs", "type": "ordinal", "source": {"file": "x.tsv", "column": "m"}}
            ),
            "ordinal needs source file \\+ column and levels",
        ),
        (lambda d: d.update(baseline_visit="screening"), "baseline_visit 'screening'"),
    ],
)
def test_bad_specs_are_named_errors(tmp_path, change, message):
    data = copy.deepcopy(_base())
    change(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PipelineInputError, match=message) as info:
        load_trial_spec(path)
    assert str(info.value).startswith(str(path))


def test_missing_spec_and_not_yaml_are_named_errors(tmp_path):
    with pytest.raises(PipelineInputError, match="trial spec not found"):
        load_trial_spec(tmp_path / "none.yaml")
    (tmp_path / "x.yaml").write_text("trial: [unclosed")
    with pytest.raises(PipelineInputError, match="x.yaml: not valid YAML"):
        load_trial_spec(tmp_path / "x.yaml")


def test_defaults_are_filled():
    data = _base()
    for key in ("continuous", "min_subjects_per_arm", "families"):
        data.pop(key, None)
    for e in data["endpoints"]:
        e.pop("family", None)
    spec = trial_spec_from_dict(data)
    assert (spec.ddf, spec.lsmeans_weights, spec.min_subjects_per_arm, spec.random_intercept_model) == (
        "kenward-roger",
        "equal",
        3,
        True,
    )


def test_config_schema_takes_a_spec_and_the_continuous_options():
    from pipeline.config import validate_config

    cfg = validate_config(
        {"bids_dir": "x", "stats": {"spec": "configs/trials/aduse.yaml", "ddf": "satterthwaite"}}
    )
    assert cfg["stats"]["spec"] == "configs/trials/aduse.yaml" and cfg["stats"]["lsmeans_weights"] == "equal"
    with pytest.raises(PipelineInputError, match="ddf"):
        validate_config({"bids_dir": "x", "stats": {"ddf": "kr"}})

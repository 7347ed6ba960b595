"""The clinical phantoms of both trials through the real commands: results.tsv and report.html with the
confirmatory endpoint first, planted effects recovered, and the blinded DSMB tables (groups A/B)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.simulate.clinical import simulate_clinical_trial
from pipeline.stats.analysis import analyse
from pipeline.stats.sources import assemble
from pipeline.stats.trialspec import load_trial_spec
from tests.conftest import REPO

TRIALS = REPO / "configs" / "trials"


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    root = tmp_path_factory.mktemp("clinical")
    for trial, n in (("aduse", 60), ("resstore", 80)):
        assert (
            main(
                [
                    "simulate-clinical",
                    "--trial",
                    trial,
                    "--out",
                    str(root / trial),
                    "--subjects",
                    str(n),
                    "--seed",
                    "5",
                ]
            )
            == 0
        )
    return root


def _stats(root, trial, *extra):
    out = root / trial / "stats"
    argv = [
        "stats",
        "--spec",
        str(TRIALS / f"{trial}.yaml"),
        "--bids-dir",
        str(root / trial / "bids"),
        "--allocation",
        str(root / trial / "allocation.tsv"),
        "--out-dir",
        str(out),
        *extra,
    ]
    assert main(argv) == 0
    results = pd.read_csv(out / "results.tsv", sep="\t", na_values="n/a", keep_default_na=False)
    return results, (out / "report.html").read_text(), pd.read_csv(out / "exclusions.tsv", sep="\t")


def test_aduse_phantom_binary_primary_first(phantoms):
    results, html, _ = _stats(phantoms, "aduse")
    first = results.iloc[0]
    assert (
        first["outcome"],
        first["model"],
        first["visit"],
        first["analysis_set"],
        first["confirmatory"],
    ) == ("healing", "risk_difference", "w16", "ITT", "yes")
    assert (results["confirmatory"] == "yes").sum() == 1
    assert first["estimate"] > 0 and first["favours"] == "treatment"  # planted: healing hazard ratio 2
    assert set(results["endpoint_type"]) == {"binary", "time_to_event", "count", "continuous"}
    assert not (results["status"] == "excluded").all()
    # the confirmatory endpoint is the first result shown, and marked
    assert html.index("CONFIRMATORY") < html.index("time to healing of all active ulcers")
    assert "favours control | favours treatment" in html and "http://" not in html and "https://" not in html
    mcid = results[results["model"] == "mcid_responders"]
    assert set(mcid["outcome"]) == {"haq_di", "pain_nrs"} and (mcid["visit"] == "w16").all()


def test_resstore_phantom_mmrm_primary_first_with_kenward_roger(phantoms):
    root = phantoms / "resstore"
    results, html, excl = _stats(
        phantoms,
        "resstore",
        "--features",
        str(root / "features.tsv"),
        "--dictionary",
        str(root / "features.json"),
    )
    first = results.iloc[0]
    assert (first["outcome"], first["model"], first["visit"], first["confirmatory"], first["ddf_method"]) == (
        "nihss_motor",
        "mmrm",
        "m06",
        "yes",
        "kenward-roger",
    )
    assert first["se"] > first["se_model"] and np.isfinite(first["df_other"])
    assert np.isfinite(first["lsmean_treated_se"]) and np.isfinite(first["lsmean_control_se"])
    assert first["favours"] == ("treatment" if first["estimate"] < 0 else "control")
    types = set(results["endpoint_type"])
    assert types == {"continuous", "binary", "ordinal", "count", "time_to_event"}
    imaging = results[(results["endpoint"] == "imaging") & (results["main_model"] == "yes")]
    assert imaging["q"].notna().all() and "t1w_snr" not in set(results["outcome"])
    assert excl["reason"].str.contains("dwi_status 'failed").sum() == 2
    for text in (
        "Kenward-Roger",
        "weight the levels of each factor covariate equally",
        "LS mean ADSC (SE)",
        "Minimum clinically important difference",
        "Adverse events by arm",
    ):
        assert text in html, text
    assert html.index("CONFIRMATORY") < html.index("NIHSS total score")


def test_dsmb_tables_are_blinded_and_count_the_events(phantoms, tmp_path):
    root = phantoms / "resstore"
    argv = [
        "dsmb-safety",
        "--spec",
        str(TRIALS / "resstore.yaml"),
        "--bids-dir",
        str(root / "bids"),
        "--groups",
        str(root / "allocation_coded.tsv"),
        "--out-tsv",
        str(tmp_path / "dsmb.tsv"),
        "--out-report",
        str(tmp_path / "dsmb.html"),
    ]
    assert main(argv) == 0
    html = (tmp_path / "dsmb.html").read_text()
    assert "ADSC" not in html and "placebo" not in html and "BLINDED" in html
    table = pd.read_csv(tmp_path / "dsmb.tsv", sep="\t")
    assert list(dict.fromkeys(table["look"])) == ["15 patients", "30 patients", "60 patients"]
    assert set(table["group"]) == {"A", "B", "total"}
    # the first look: the first 15 patients (inclusion order) followed >= 14 days; AE in the first 24 h
    people = pd.read_csv(root / "bids" / "participants.tsv", sep="\t").sort_values("inclusion_date")
    follow = pd.read_csv(root / "bids" / "phenotype" / "followup.tsv", sep="\t").set_index("participant_id")
    ids = [p for p in people["participant_id"] if follow.loc[p, "followup_days"] >= 14][:15]
    ae = pd.read_csv(root / "bids" / "phenotype" / "adverse_events.tsv", sep="\t")
    expected = ae[ae["participant_id"].isin(ids) & (ae["onset_day"] <= 1)]["participant_id"].nunique()
    row = table[
        (table["look"] == "15 patients")
        & (table["window"] == "first 24 h")
        & (table["group"] == "total")
        & (table["measure"] == "patients with >= 1 adverse event")
    ]
    assert int(row["value"].iloc[0]) == expected
    argv[argv.index("--groups") + 1] = str(root / "allocation.tsv")  # the unblinded key is refused
    assert main(argv) == 2


def _within(row, truth, k=4.0) -> bool:
    """|estimate - truth| within k standard errors (log scale for ratios; SE from the CI when absent)."""
    ratio = "ratio" in row["measure"]
    f = np.log if ratio else (lambda x: x)
    se = row["se"] if np.isfinite(row["se"]) else (f(row["ci_high"]) - f(row["ci_low"])) / 3.92
    return abs(f(row["estimate"]) - f(truth)) < k * se


@pytest.mark.parametrize("trial,n", [("aduse", 900), ("resstore", 700)])
def test_planted_effects_are_recovered_in_a_large_phantom(trial, n):
    """Every planted effect of the phantom (its estimand: exact, or by Monte Carlo) lies within 4 SE of
    the estimate of a large trial (ITT)."""
    spec = load_trial_spec(TRIALS / f"{trial}.yaml")
    spec.analysis_sets = {"ITT": None}
    spec.random_intercept_model = spec.simple_tests = False
    ph = simulate_clinical_trial(trial, np.random.default_rng(17), n)
    data = assemble(
        spec=spec,
        participants=ph["participants"],
        allocation=ph["allocation"],
        tables=ph["tables"],
        features=ph["features"],
        dictionary=ph["dictionary"],
    )
    results, _, _ = analyse(data, spec)
    rows = results.set_index(["outcome", "visit", "model"])
    checked = 0
    for t in ph["truth"]:
        key = (t["outcome"], t["visit"], t["model"])
        assert key in rows.index, key
        row = rows.loc[key]
        assert row["status"] == "ok" and row["measure"] == t["measure"], (key, row["note"])
        assert _within(row, t["value"]), (key, row["estimate"], t["value"], row["se"])
        checked += 1
    assert checked >= 12

"""The stats rule: absent without an allocation key (blinding), and a real run on a phantom trial."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import yaml

from tests.workflow.conftest import snakemake


def _jobs(stdout: str) -> dict:
    if "Job stats:" not in stdout:
        return {}
    table = stdout.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_no_allocation_no_stats_job(tmp_path):
    bids, key, out = _clinical_trial_with_features(tmp_path)
    proc = snakemake(tmp_path / "work", {"bids_dir": str(bids), "output_dir": str(out)}, "-n", "--cores", "1",
                     "--forceall", "-p")
    jobs = _jobs(proc.stdout)
    assert jobs["features"] == 1 and "stats" not in jobs
    assert "resstore collect-features" in proc.stdout and str(key) not in proc.stdout


def test_allocation_given_at_analysis_time_adds_the_stats_job(tmp_path):
    """--config stats='{allocation: ...}' is merged into the configured defaults (the other stats
    keys keep their values) and adds the stats job; so does a second --configfile."""
    bids, key, out = _clinical_trial_with_features(tmp_path)
    config = {"bids_dir": str(bids), "output_dir": str(out)}
    proc = snakemake(tmp_path / "a", config, "-n", "--cores", "1", "-p", "--config",
                     f"stats={{allocation: {key}}}")
    assert _jobs(proc.stdout)["stats"] == 1
    assert '"control": "placebo"' in proc.stdout and '"mITT": "alive_m06_1w"' in proc.stdout
    extra = tmp_path / "analysis.yaml"
    extra.write_text(yaml.safe_dump({"stats": {"allocation": str(key), "arms": {"treated": "ADSC"}}}))
    proc = snakemake(tmp_path / "b", config, "-n", "--cores", "1", "-p", "--configfile",
                     str(tmp_path / "b" / "config.yaml"), str(extra))
    assert _jobs(proc.stdout)["stats"] == 1
    assert f"--allocation {key}" in proc.stdout and '"control": "placebo"' in proc.stdout


def _clinical_trial_with_features(root, n=40):
    """A BIDS folder without images (participants, phenotype), an allocation key and a features
    table with a planted FA effect (+0.03, treated minus control) -- no image processing needed."""
    import json

    import numpy as np

    from pipeline.simulate.clinical import simulate_clinical

    bids = root / "bids"
    (bids / "phenotype").mkdir(parents=True)
    participants, allocation, nihss, _ = simulate_clinical(np.random.default_rng(0), n, effect_nihss=1.5)
    participants.to_csv(bids / "participants.tsv", sep="\t", index=False)
    nihss.to_csv(bids / "phenotype" / "nihss.tsv", sep="\t", index=False)
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "clinical", "BIDSVersion": "1.9.0"}))
    allocation.to_csv(root / "allocation.tsv", sep="\t", index=False)
    rng = np.random.default_rng(1)
    treated = (allocation["arm"] == "ADSC").to_numpy()
    base = rng.normal(0.45, 0.05, n)
    m06 = base - 0.06 + 0.03 * treated + rng.normal(0, 0.02, n)
    out = root / "out"
    out.mkdir()
    pd.DataFrame({"participant_id": np.repeat(participants["participant_id"], 2),
                  "session": ["baseline", "m06"] * n, "fa_cst_ipsilesional": np.c_[base, m06].ravel(),
                  "dwi_status": "ok", "lesion_source": ["automatic", "reviewed"] * (n - 1)
                  + ["manual", "none"]}).to_csv(out / "features.tsv", sep="\t", index=False)
    (out / "features.json").write_text(json.dumps({"fa_cst_ipsilesional": {
        "Description": "FA", "Units": "ratio", "Better": "higher", "Stream": "dwi"}}))
    return bids, root / "allocation.tsv", out


def test_stats_rule_runs_through_snakemake(tmp_path):
    """The real stats rule, given the key with --config, on an existing feature table (other
    rules not allowed): results and report hold the primary endpoint and the FA effect."""
    bids, key, out = _clinical_trial_with_features(tmp_path)
    config = {"bids_dir": str(bids), "output_dir": str(out)}
    targets = [str(out / "stats" / "results.tsv"), str(out / "stats" / "report.html")]
    snakemake(tmp_path / "work", config, "--cores", "1", "--allowed-rules", "stats", "--config",
              f"stats={{allocation: {key}}}", "--", *targets)
    results = pd.read_csv(out / "stats" / "results.tsv", sep="\t", na_values="n/a")
    assert list(dict.fromkeys(results["analysis_set"])) == ["ITT", "mITT", "PP"]
    ancova = results[(results["model"] == "ancova") & (results["analysis_set"] == "ITT")].set_index("outcome")
    assert ancova.loc["nihss_motor", "ci_high"] < 0  # planted: treated 1.5 points lower (latent)
    fa = ancova.loc["fa_cst_ipsilesional"]
    assert fa["ci_low"] < 0.03 < fa["ci_high"] and fa["q"] == fa["p"]
    assert results.iloc[0]["confirmatory"] == "yes" and results.iloc[0]["outcome"] == "nihss_motor"
    assert results.iloc[0]["ddf_method"] == "kenward-roger"
    html = (out / "stats" / "report.html").read_text()
    assert "CONFIRMATORY" in html and "nihss_motor" in html and "fa_cst_ipsilesional" in html
    assert "ADSC" in html and (out / "logs" / "stats.log").exists()
    # where each session's lesion mask came from, per visit (QC review: reviewed masks)
    table = html.split('id="lesion-source-counts"')[1].split("</table>")[0]
    rows = [re.findall(r">([^<]*)</t[hd]>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)]
    assert rows[1:] == [["baseline", "39", "0", "1", "0", "40"], ["m06", "0", "39", "0", "1", "40"],
                        ["all visits", "39", "39", "1", "1", "80"]]


def test_stats_rule_takes_a_trial_spec_aduse_from_clinical_tables_alone(tmp_path):
    """config stats.spec = configs/trials/aduse.yaml: the rule reads the spec's tables (no features.tsv
    needed) and the binary primary endpoint comes first in results.tsv."""
    from pipeline.cli import main
    from tests.conftest import REPO

    phantom = tmp_path / "aduse"
    assert main(["simulate-clinical", "--trial", "aduse", "--out", str(phantom), "--subjects", "60",
                 "--seed", "2"]) == 0
    out = tmp_path / "out"
    out.mkdir()
    config = {"bids_dir": str(phantom / "bids"), "output_dir": str(out),
              "stats": {"spec": str(REPO / "configs" / "trials" / "aduse.yaml")}}
    targets = [str(out / "stats" / "results.tsv"), str(out / "stats" / "report.html")]
    given = f"stats={{allocation: {phantom / 'allocation.tsv'}}}"
    dry = snakemake(tmp_path / "dry", config, "-n", "-p", "--cores", "1", "--allowed-rules", "stats",
                    "--config", given, "--", *targets)
    assert "--spec" in dry.stdout and "features.tsv" not in dry.stdout
    snakemake(tmp_path / "work", config, "--cores", "1", "--allowed-rules", "stats", "--config", given, "--",
              *targets)
    results = pd.read_csv(out / "stats" / "results.tsv", sep="\t", na_values="n/a")
    first = results.iloc[0]
    assert (first["outcome"], first["endpoint_type"], first["visit"], first["confirmatory"]) == (
        "healing", "binary", "w16", "yes")
    assert {"cox", "negative_binomial", "mmrm", "logistic", "cmh"} <= set(results["model"])


@pytest.fixture(scope="module")
def six_subject_trial(tmp_path_factory):
    from pipeline.simulate import TrialSpec, simulate_trial

    out = tmp_path_factory.mktemp("trial6")
    simulate_trial(out, TrialSpec(n_subjects=6, seed=11, anat_voxel_mm=3.0, dwi_voxel_mm=4.0,
                                  bold_voxel_mm=4.0, n_bold_volumes=30, n_dwi_directions=8))
    return out


@pytest.mark.slow
def test_stats_run_on_phantom_trial(six_subject_trial, tmp_path):
    """The whole workflow runs blinded; the key given later adds the stats job only, and its results
    and report hold the primary endpoint."""
    out = tmp_path / "out"
    # six subjects: adjust for age only, so that the ANCOVA keeps residual degrees of freedom
    config = {"bids_dir": str(six_subject_trial / "bids"), "output_dir": str(out),
              "stats": {"covariates": ["age"]}}
    snakemake(tmp_path / "work", config, "--cores", "2")
    assert (out / "features.tsv").exists() and not (out / "stats").exists()
    assert "arm" not in pd.read_csv(out / "features.tsv", sep="\t").columns

    key = six_subject_trial / "allocation.tsv"
    given = f"stats={{allocation: {key}}}"
    dry = snakemake(tmp_path / "work", config, "-n", "--cores", "2", "--config", given)
    snakemake(tmp_path / "work", config, "--cores", "2", "--config", given)
    results = pd.read_csv(out / "stats" / "results.tsv", sep="\t", na_values="n/a")
    primary = results[(results["outcome"] == "nihss_motor") & (results["analysis_set"] == "ITT")]
    ancova = primary[primary["model"] == "ancova"]
    assert len(ancova) == 1
    low, estimate, high = ancova[["ci_low", "estimate", "ci_high"]].iloc[0]
    assert low < estimate < high
    html = (out / "stats" / "report.html").read_text()
    assert "CONFIRMATORY" in html and "nihss_motor" in html and "data:image/png;base64," in html
    assert (out / "logs" / "stats.log").exists() and (out / "benchmarks" / "stats.tsv").exists()
    # blinding: the key must not change anything upstream (config_hash must leave `stats` out)
    assert _jobs(dry.stdout) == {"all": 1, "stats": 1}, dry.stdout[-3000:]

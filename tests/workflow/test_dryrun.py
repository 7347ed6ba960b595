"""`snakemake -n` and `--lint` over a simulated dataset."""

import re

from tests.conftest import REPO
from tests.workflow.conftest import snakemake


def _job_counts(stdout: str) -> dict:
    table = stdout.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_dry_run_lists_expected_jobs(tiny_trial, tmp_path):
    proc = snakemake(tmp_path, {"bids_dir": str(tiny_trial / "bids"),
                                "output_dir": str(tmp_path / "out")}, "-n", "--cores", "2")
    counts = _job_counts(proc.stdout)
    # 2 subjects x 2 sessions, every modality present: one job per session for
    # each per-session rule, one per subject for the lesion side, one per group rule
    per_session = {"anat_brainmask", "anat_register", "anat_segment", "anat_thickness",
                   "flair_qc", "lesion_segment", "lesion_load", "dwi_qc", "dwi_preproc",
                   "dwi_regions", "func_preproc", "func_coreg", "func_glm", "session_features",
                   "report_session", "report_review"}
    assert {rule for rule, n in counts.items() if n == 4} == per_session
    assert counts["lesion_side"] == 2
    assert all(counts[rule] == 1 for rule in ("all", "inventory", "features", "report_index",
                                              "dataset_description"))
    assert "stats" not in counts  # no allocation key given


def test_session_subset_and_missing_modality(tiny_trial, tmp_path):
    bids = tmp_path / "bids"
    import shutil

    shutil.copytree(tiny_trial / "bids", bids)
    shutil.rmtree(bids / "sub-001" / "ses-m06" / "dwi")
    proc = snakemake(tmp_path / "run", {"bids_dir": str(bids), "output_dir": str(tmp_path / "o"),
                                        "sessions": ["baseline", "m06"],
                                        "participant_label": ["001"]}, "-n", "--cores", "1")
    counts = _job_counts(proc.stdout)
    assert counts["anat_brainmask"] == 2 and counts["dwi_qc"] == 1
    assert counts["session_features"] == 2


def test_misspelled_config_key_fails_naming_it(tiny_trial, tmp_path):
    proc = snakemake(tmp_path, {"bids_dir": str(tiny_trial / "bids"), "sesions": ["baseline"]},
                     "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "sesions" in proc.stdout + proc.stderr


def test_lint_is_clean(tiny_trial, tmp_path):
    proc = snakemake(tmp_path, {"bids_dir": str(tiny_trial / "bids"),
                                "output_dir": str(tmp_path / "out")}, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


def test_snakefile_uses_schema_from_package():
    link = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert link.resolve() == (REPO / "pipeline" / "schemas" / "config.schema.yaml").resolve()

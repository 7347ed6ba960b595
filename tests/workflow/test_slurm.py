"""The demo through the SLURM profile on a real (one-node) SLURM: jobs ran there
(sacct), completed, and the outputs equal a local run's. CI starts SLURM with
.ci/slurm/start.sh; elsewhere the test is skipped when no SLURM answers."""

import os
import shutil
import subprocess
import time

import pandas as pd
import pytest

from tests.conftest import REPO
from tests.workflow.conftest import EXACT, snakemake
from tests.workflow.test_robustness import assert_tables_equal


def _slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return proc.returncode == 0 and any(s in proc.stdout for s in ("idle", "mixed", "alloc"))


pytestmark = [
    pytest.mark.slow,
    pytest.mark.cluster,  # selected by make test: runs where SLURM answers, and always in CI
    pytest.mark.skipif(not _slurm_up() and not os.environ.get("CI"),
                       reason="no SLURM cluster answers (CI starts one)"),
]


def test_demo_on_slurm_matches_local(reference_bids, reference_run, tmp_path):
    """The reference dataset (faults included: failures are recorded on SLURM too)."""
    assert _slurm_up(), "CI must start SLURM before the tests (.ci/slurm/start.sh)"
    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    # one subject (two sessions, one with the planted DWI failure) keeps CI short; its rows
    # must equal the local reference run's
    base = {"bids_dir": str(reference_bids), "participant_label": ["001"], **EXACT}
    slurm_out, local_out = tmp_path / "slurm" / "out", reference_run
    snakemake(tmp_path / "slurm", {**base, "output_dir": str(slurm_out)},
              "--profile", str(REPO / "configs" / "profiles" / "slurm"),
              "--jobs", "4", "--slurm-init-seconds-before-status-checks", "5",
              "--default-resources", "slurm_partition=debug", "slurm_account=ci", "mem_mb=1500",
              "runtime=20")

    def table(path):
        frame = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a"])
        return frame[frame.participant_id == "sub-001"].reset_index(drop=True)

    slurm = table(slurm_out / "features.tsv")
    assert len(slurm) == 2 and slurm.dwi_status.str.startswith("failed").sum() == 1
    assert_tables_equal(table(local_out / "features.tsv"), slurm)

    acct = subprocess.run(["sacct", "-n", "-X", "-P", "-S", since, "-o", "JobName,State,ExitCode"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    jobs = [line.split("|") for line in acct if line]
    assert jobs, "sacct lists no job: nothing ran on SLURM"
    assert all(state == "COMPLETED" and code == "0:0" for _, state, code in jobs), jobs
    assert len(jobs) >= 2  # at least one SLURM job per session (anat)
    # every SLURM job parsed the Snakefile; the dataset was indexed once
    assert len((slurm_out / ".resstore" / "index.log").read_text().splitlines()) == 1

"""The README's own command: resumes after kill -9 with a byte-identical features.tsv, and a
second run on the same output folder from another working directory refuses, naming the lock.

A one-session dataset (T1w, FLAIR, manual mask) keeps it to a few minutes; CI runs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.workflow.conftest import EXACT

# the README's command, run from the repository as the README says
README_COMMAND = ["snakemake", "--cores", "2", "--configfile"]


def _env():
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def _command(cfg):
    return [sys.executable, "-m", *README_COMMAND, str(cfg)]


@pytest.fixture(scope="module")
def small_bids(tiny_trial, tmp_path_factory):
    bids = tmp_path_factory.mktemp("small") / "bids"
    src = tiny_trial / "bids"
    for name in ("dataset_description.json", "README", "participants.tsv", "participants.json"):
        if (src / name).exists():
            (bids / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / name, bids / name)
    shutil.copytree(src / "sub-001" / "ses-baseline" / "anat", bids / "sub-001" / "ses-baseline" / "anat")
    return bids


def _config(tmp_path, bids, out, name):
    cfg = tmp_path / f"{name}.yaml"
    # a coarse Laplace grid (the 2.5 mm T1w not subdivided): the test is about resuming,
    # and thickness is the slowest job
    cfg.write_text(yaml.safe_dump({"bids_dir": str(bids), "output_dir": str(out),
                                   "sessions": ["baseline"], "anat": {"thickness_grid_mm": 2.5},
                                   **EXACT}))
    return cfg


def test_kill_then_readme_command_resumes_and_second_run_refuses(small_bids, tmp_path):
    reference_out, killed_out = tmp_path / "reference", tmp_path / "killed"
    done = subprocess.run(_command(_config(tmp_path, small_bids, reference_out, "a")),
                          cwd=REPO, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    cfg = _config(tmp_path, small_bids, killed_out, "b")
    proc = subprocess.Popen(_command(cfg), cwd=REPO, env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 1200
        while (time.time() < deadline and proc.poll() is None
               and len(list(killed_out.glob("benchmarks/*/*.tsv"))) < 2):
            time.sleep(0.2)
        assert (killed_out / ".resstore.lock").exists(), "the run took no lock"
        # a second run on the same output folder, from another working directory
        other = tmp_path / "elsewhere"
        other.mkdir()
        second = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile",
                                 str(REPO / "Snakefile"), "--cores", "1", "--configfile", str(cfg)],
                                cwd=other, env=_env(), capture_output=True, text=True)
        assert second.returncode != 0
        assert "another run holds this output folder" in second.stdout + second.stderr
        assert ".resstore.lock" in second.stdout + second.stderr
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert not (killed_out / "features.tsv").exists(), "killed too late: the run had finished"

    resumed = subprocess.run(_command(cfg), cwd=REPO, env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "stale lock" in resumed.stdout + resumed.stderr
    assert (killed_out / "features.tsv").read_bytes() == \
        (reference_out / "features.tsv").read_bytes()
    assert not (killed_out / ".resstore.lock").exists()

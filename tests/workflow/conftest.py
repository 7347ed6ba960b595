"""Helpers to run the real Snakefile on a phantom trial."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO


def snakemake(workdir, config: dict, *args, check=True) -> subprocess.CompletedProcess:
    """Run snakemake on REPO/Snakefile with ``config`` written to ``workdir``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(cfg), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-8000:]}")
    return proc


@pytest.fixture
def bids_copy(tiny_trial, tmp_path):
    """A writable copy of the tiny trial's BIDS folder."""
    dst = tmp_path / "bids"
    shutil.copytree(tiny_trial / "bids", dst)
    return dst


def make_read_only(root) -> None:
    for path in Path(root).rglob("*"):
        path.chmod(0o555 if path.is_dir() else 0o444)
    Path(root).chmod(0o555)


def make_writable(root) -> None:
    Path(root).chmod(0o755)
    for path in Path(root).rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


# One ITK thread per job: the feature table is then bit-identical run to run.
EXACT = {"resources": {"threads_per_job": 1}}


@pytest.fixture(scope="session")
def reference_run(tiny_trial, tmp_path_factory):
    """The whole pipeline once on the tiny trial (shared by every workflow test that
    only reads outputs). Returns the output folder."""
    work = tmp_path_factory.mktemp("reference")
    out = work / "out"
    snakemake(work, {"bids_dir": str(tiny_trial / "bids"), "output_dir": str(out), **EXACT},
              "--cores", "2")
    return out


def strip_modalities(bids, keep=()) -> None:
    """Remove dwi/ and func/ folders (except ``keep``: paths relative to ``bids``) to
    make a workflow test that is about something else cheaper."""
    for folder in list(Path(bids).glob("sub-*/ses-*/dwi")) + list(Path(bids).glob("sub-*/ses-*/func")):
        if str(folder.relative_to(bids)) not in keep:
            shutil.rmtree(folder)

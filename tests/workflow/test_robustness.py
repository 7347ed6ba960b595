"""Resume after SIGKILL, determinism, read-only input (issue 9)."""

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, tree_checksums
from tests.workflow.conftest import EXACT, make_read_only, make_writable, snakemake

# Runs the whole pipeline on the tiny trial: minutes; `make test-all` runs it.
pytestmark = pytest.mark.slow

# Seeds are fixed (ANTS_RANDOM_SEED, numpy generators). With one ITK thread per
# job (EXACT) the feature table is identical run to run; with more threads ITK's
# threaded metric sums make registrations differ slightly (about 0.4 % in brain
# volume measured), which is why the reproducibility tests run with EXACT.


def _table(path):
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a"])


def assert_tables_equal(a: pd.DataFrame, b: pd.DataFrame, rtol: float = 0.0):
    assert list(a.columns) == list(b.columns)
    numeric = a.select_dtypes("number").columns
    text = [c for c in a.columns if c not in numeric and c != "config_hash"]
    pd.testing.assert_frame_equal(a[text], b[text])
    # Values, not dtypes: a column with an n/a in one table (a failed session) reads as
    # float there and as int in a table without it (the SLURM run's subset of rows).
    if rtol == 0:
        pd.testing.assert_frame_equal(a[numeric], b[numeric], check_exact=True, check_dtype=False)
    else:
        pd.testing.assert_frame_equal(a[numeric], b[numeric], rtol=rtol, check_exact=False,
                                      check_dtype=False)


def test_deterministic_on_read_only_bids(reference_bids, reference_run, tmp_path):
    """A second run, over a read-only copy of the BIDS folder, changes nothing in it
    and gives the identical feature table."""
    bids = tmp_path / "bids"
    shutil.copytree(reference_bids, bids)
    before = tree_checksums(bids)
    make_read_only(bids)
    out = tmp_path / "out"
    try:
        snakemake(tmp_path / "work", {"bids_dir": str(bids), "output_dir": str(out), **EXACT},
                  "--cores", "2")
    finally:
        make_writable(bids)
    assert tree_checksums(bids) == before
    assert_tables_equal(_table(reference_run / "features.tsv"), _table(out / "features.tsv"))


def _incomplete_outputs(workdir: Path) -> set[Path]:
    """Outputs Snakemake marked incomplete: those of the jobs running when it died.

    Snakemake keeps one marker per output in ``.snakemake/incomplete``, named by
    the urlsafe base64 of the output path (split in ``@``-prefixed folders when
    long) and removed when the job's outputs are complete.
    """
    root = workdir / ".snakemake" / "incomplete"
    found = set()
    for marker in root.rglob("*") if root.exists() else ():
        if marker.is_file() and marker.name != "migration_underway":
            encoded = "".join(part.lstrip("@") for part in marker.relative_to(root).parts)
            found.add((workdir / base64.urlsafe_b64decode(encoded).decode()).resolve())
    return found


def test_resume_after_sigkill(tiny_trial, reference_run, tmp_path):
    out = tmp_path / "out"
    config = {"bids_dir": str(tiny_trial / "bids"), "output_dir": str(out), **EXACT}
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(tmp_path), "--configfile", str(cfg), "--cores", "1"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # wait until a few jobs have finished (benchmark files are written when a job
    # completes), then kill the whole process group mid-way through the next one
    try:
        deadline = time.time() + 1800  # generous: the machine may be busy
        while (time.time() < deadline and proc.poll() is None
               and len(list(out.glob("benchmarks/*/*.tsv"))) < 3):
            time.sleep(0.2)
        assert len(list(out.glob("benchmarks/*/*.tsv"))) >= 3, "the run finished no job"
        time.sleep(1.0)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert not (out / "features.tsv").exists(), "killed too late: the run had finished"
    interrupted = _incomplete_outputs(tmp_path)  # rerun by --rerun-incomplete
    done_before = {p: p.stat().st_mtime_ns for p in out.rglob("*_metrics.json")
                   if p.resolve() not in interrupted}

    snakemake(tmp_path, config, "--unlock")
    proc = snakemake(tmp_path, config, "--cores", "2", "--rerun-incomplete")
    # completed outputs were not recomputed
    for path, mtime in done_before.items():
        if path.exists():
            assert path.stat().st_mtime_ns == mtime, f"{path} was recomputed"
    assert_tables_equal(_table(reference_run / "features.tsv"), _table(out / "features.tsv"))

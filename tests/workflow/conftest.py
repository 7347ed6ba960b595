"""Helpers to run the real Snakefile on a phantom trial."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.simulate.invariance import EXACT  # noqa: F401  (one ITK thread per job; tests import it from here)
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


# Faults planted in the reference dataset: each one a stream that must fail (or be flagged)
# for its session while everything else is built.
FAULTS = {
    ("001", "m06"): "dwi: NaN voxels in one volume (passes discovery, fails in the stream)",
    ("002", "m06"): "bold: a 5-volume run (named error in the stream)",
    ("002", "baseline"): "lesion: FLAIR whose CSF is not suppressed, no manual mask "
                         "(the automatic lesion is implausible: needs review)",
}


def plant_faults(bids, truth) -> None:
    """Write :data:`FAULTS` into a writable copy of the tiny trial's BIDS folder."""
    import nibabel as nib
    import numpy as np

    dwi = bids / "sub-001" / "ses-m06" / "dwi" / "sub-001_ses-m06_dwi.nii.gz"
    img = nib.load(dwi)
    data = np.asarray(img.dataobj, dtype=np.float32)
    data[5:7, 5:7, 5:7, 3] = np.nan
    nan_dwi = nib.Nifti1Image(data, img.affine, img.header)
    nan_dwi.set_data_dtype(np.float32)  # NaN needs a float type
    nib.save(nan_dwi, dwi)
    bold = bids / "sub-002" / "ses-m06" / "func" / "sub-002_ses-m06_task-motor_bold.nii.gz"
    img = nib.load(bold)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., :5], img.affine, img.header), bold)
    anat = bids / "sub-002" / "ses-baseline" / "anat"
    (anat / "sub-002_ses-baseline_label-lesion_roi.nii.gz").unlink(missing_ok=True)
    flair = anat / "sub-002_ses-baseline_FLAIR.nii.gz"
    img = nib.load(flair)
    dseg = nib.load(truth / "sub-002" / "ses-baseline" / "anat" / "sub-002_ses-baseline_dseg.nii.gz")
    csf = np.asarray(dseg.dataobj) == 1  # truth labels on the same stored grid
    data = np.asarray(img.dataobj, dtype=np.float32)
    wm = float(np.median(data[np.asarray(dseg.dataobj) == 3]))
    data[csf] = 2.0 * wm  # CSF bright, as on a T2 or a failed inversion
    nib.save(nib.Nifti1Image(data.astype(img.get_data_dtype()), img.affine, img.header), flair)


@pytest.fixture(scope="session")
def reference_bids(tiny_trial, tmp_path_factory):
    """The tiny trial's BIDS folder with :data:`FAULTS` planted."""
    bids = tmp_path_factory.mktemp("reference-bids") / "bids"
    shutil.copytree(tiny_trial / "bids", bids)
    plant_faults(bids, tiny_trial / "truth")
    return bids


@pytest.fixture(scope="session")
def reference_run(reference_bids, tmp_path_factory):
    """The whole pipeline once on the reference dataset (the tiny trial with
    :data:`FAULTS`), shared by every workflow test that reads outputs (the SLURM
    test compares its own run with it). Returns the output folder."""
    work = tmp_path_factory.mktemp("reference")
    out = work / "out"
    snakemake(work, {"bids_dir": str(reference_bids), "output_dir": str(out), **EXACT},
              "--cores", "2")
    return out


def strip_modalities(bids, keep=()) -> None:
    """Remove dwi/ and func/ folders (except ``keep``: paths relative to ``bids``) to
    make a workflow test that is about something else cheaper."""
    for folder in list(Path(bids).glob("sub-*/ses-*/dwi")) + list(Path(bids).glob("sub-*/ses-*/func")):
        if str(folder.relative_to(bids)) not in keep:
            shutil.rmtree(folder)

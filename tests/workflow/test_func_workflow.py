"""The fMRI rules inside the real Snakefile, on the tiny phantom trial.

The cross-stream inputs (ATLAS_T1W, LESION_MASK, LESION_SIDE, T1W_PREPROC,
BRAIN_MASK) are written from the phantom's truth and only the func rules are
allowed to run (``--allowed-rules``), so the stream is tested on its own.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pipeline.features.dictionary import FEATURES
from tests.conftest import dice
from tests.workflow.conftest import snakemake
from tests.workflow.func_fixtures import write_cross_stream_inputs

SUB, SES = "001", "baseline"


@pytest.mark.slow
def test_func_rules_on_a_phantom_session(tiny_trial, tmp_path):
    out = tmp_path / "out"
    write_cross_stream_inputs(tiny_trial, out, SUB, SES)
    func = out / f"sub-{SUB}" / f"ses-{SES}" / "func"
    stem = f"sub-{SUB}_ses-{SES}_task-motor"
    target = func / f"{stem}_desc-activation_metrics.json"
    snakemake(tmp_path, {"bids_dir": str(tiny_trial / "bids"), "output_dir": str(out)},
              "--cores", "2", str(target), "--allowed-rules", "func_preproc", "func_coreg",
              "func_glm")
    metrics = json.loads(target.read_text())
    preproc = json.loads((func / f"{stem}_desc-preproc_metrics.json").read_text())
    for key in (*metrics, *preproc):
        assert key in FEATURES, key  # declared in the bold feature dictionary
    assert preproc["bold_n_volumes"] == 80

    truth_dir = tiny_trial / "truth" / f"sub-{SUB}" / f"ses-{SES}" / "func"
    truth = pd.read_csv(tiny_trial / "truth" / "sessions.tsv", sep="\t")
    truth = truth[(truth.participant_id == f"sub-{SUB}") & (truth.session == SES)].iloc[0]
    # motion recovered (the reference is volume 0, the phantom has no dummy scans)
    motion = pd.read_csv(truth_dir / f"{stem}_desc-motion_truth.tsv", sep="\t").to_numpy()
    conf = pd.read_csv(func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t")
    err = conf[["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]].to_numpy() - motion
    assert np.sqrt((err[:, :3] ** 2).mean()) <= 0.2 and np.sqrt((err[:, 3:] ** 2).mean()) <= 0.2
    # the atlas came back to the BOLD grid through the BOLD->T1w registration
    m1 = nib.load(func / f"{stem}_space-bold_desc-m1_dseg.nii.gz").get_fdata()
    side = json.loads((out / f"sub-{SUB}" / f"sub-{SUB}_desc-lesionside_metrics.json").read_text())
    contra_label = 3 if side["lesion_side"] == "right" else 4
    contra_truth = nib.load(truth_dir / f"{stem}_space-bold_desc-m1_contralesional_truth.nii.gz")
    assert dice(m1 == contra_label, contra_truth.get_fdata()) > 0.7
    # activation: peak in the planted hemisphere's M1
    assert truth["bold_peak_hemisphere"] == "ipsilesional"
    assert metrics["bold_m1_peak_z_ipsilesional"] > 3.1
    # small-volume FWE threshold over bilateral M1, from the residuals' smoothness
    # (4 mm voxels, 6 mm smoothing on top of the phantom's own)
    assert 4.5 < metrics["bold_smoothness_fwhm_mm"] < 14.0  # measured 5.8 (lag-1 estimate, 1.5 voxels)
    assert 3.5 < metrics["bold_m1_fwe_z_threshold"] < 5.0
    assert metrics["bold_m1_active_fwe_ml_contralesional"] <= metrics["bold_m1_active_ml_contralesional"]
    for name in ("motion", "tsnr", "coreg", "design", "zmap"):
        assert (out / f"sub-{SUB}" / f"ses-{SES}" / "figures"
                / f"{stem}_desc-{name}_bold.png").stat().st_size > 5000
    zmap = nib.load(func / f"{stem}_space-bold_desc-affectedhand_zmap.nii.gz")
    assert zmap.shape == nib.load(func / f"{stem}_space-bold_boldref.nii.gz").shape


def test_bad_bold_skips_only_the_func_stream(bids_copy, tmp_path):
    """TR disagreement, a 3D BOLD and missing events: those sessions get no func jobs,
    their other streams still run (dry run), and sessions.tsv says why."""
    func = bids_copy / "sub-001" / "ses-baseline" / "func"
    sidecar = func / "sub-001_ses-baseline_task-motor_bold.json"
    meta = json.loads(sidecar.read_text())
    meta["RepetitionTime"] = 3.0
    sidecar.write_text(json.dumps(meta))
    (bids_copy / "sub-001" / "ses-m06" / "func" / "sub-001_ses-m06_task-motor_events.tsv").unlink()
    bold3d = bids_copy / "sub-002" / "ses-baseline" / "func" / "sub-002_ses-baseline_task-motor_bold.nii.gz"
    img = nib.load(bold3d)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine), bold3d)
    out = tmp_path / "out"
    proc = snakemake(tmp_path, {"bids_dir": str(bids_copy), "output_dir": str(out)}, "-n",
                     "--cores", "1", "--quiet", "rules")
    jobs = proc.stdout
    assert "func_preproc" in jobs  # sub-002 ses-m06 is intact
    plan = snakemake(tmp_path, {"bids_dir": str(bids_copy), "output_dir": str(out)}, "-n",
                     "--cores", "1", "-p").stdout
    preproc_cmds = [line for line in plan.splitlines() if "resstore func-preproc" in line]
    assert len(preproc_cmds) == 1 and "sub-002_ses-m06" in preproc_cmds[0]
    anat_cmds = [line for line in plan.splitlines() if "resstore anat-" in line
                 and "sub-001_ses-baseline" in line]
    assert anat_cmds  # the session's other streams still run

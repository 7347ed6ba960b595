"""Real Snakemake runs on a phantom trial: the table, bad input, read-only BIDS."""

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tests.conftest import tree_checksums
from tests.workflow.conftest import make_read_only, make_writable, snakemake, strip_modalities

# Runs the whole pipeline on the tiny trial: minutes; `make test-all` runs it.
pytestmark = pytest.mark.slow


def _read(path):
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a"])


def test_bad_inputs_reported_others_finish_bids_untouched(bids_copy, tmp_path):
    """Discovery-level problems become inventory rows; every other session runs."""
    ses = bids_copy / "sub-001" / "ses-m06" / "anat"
    t1w = ses / "sub-001_ses-m06_T1w.nii.gz"
    t1w.write_bytes(t1w.read_bytes()[:-5000])                       # corrupt (truncated) NIfTI
    (bids_copy / "sub-002" / "ses-m06" / "anat" / "sub-002_ses-m06_T1w.nii.gz").unlink()
    (bids_copy / "sub-002" / "ses-m06" / "anat" / "sub-002_ses-m06_T1w.json").unlink()
    odd = bids_copy / "sub-002" / "ses-baseline" / "anat" / "sub-002_ses-baseline_T1.nii.gz"
    shutil.copy(bids_copy / "sub-002" / "ses-baseline" / "anat" / "sub-002_ses-baseline_T1w.nii.gz",
                odd)                                                # non-BIDS file name
    bval = bids_copy / "sub-001" / "ses-baseline" / "dwi" / "sub-001_ses-baseline_dwi.bval"
    bval.write_text(" ".join(bval.read_text().split()[:-1]) + "\n")  # one b-value short
    strip_modalities(bids_copy, keep=("sub-001/ses-baseline/dwi",))  # keep the test cheap
    before = tree_checksums(bids_copy)
    make_read_only(bids_copy)
    out = tmp_path / "out"
    try:
        snakemake(tmp_path / "work", {"bids_dir": str(bids_copy), "output_dir": str(out)},
                  "--cores", "2", "--keep-going")
    finally:
        make_writable(bids_copy)
    assert tree_checksums(bids_copy) == before

    inventory = _read(out / "sessions.tsv").set_index(["participant_id", "session"])
    assert inventory.loc[("sub-001", "m06"), "status"] == "skipped"
    assert "sub-001_ses-m06_T1w.nii.gz: is truncated or corrupt" in \
        inventory.loc[("sub-001", "m06"), "problems"]
    assert inventory.loc[("sub-002", "m06"), "status"] == "skipped"
    assert "no T1w image" in inventory.loc[("sub-002", "m06"), "problems"]
    assert "sub-002_ses-baseline_T1.nii.gz: not a valid BIDS file name" in \
        inventory.loc[("sub-002", "baseline"), "problems"]
    assert "dwi" not in inventory.loc[("sub-001", "baseline"), "modalities"]
    assert "sub-001_ses-baseline_dwi.bval: has" in inventory.loc[("sub-001", "baseline"), "problems"]

    features = _read(out / "features.tsv").set_index(["participant_id", "session"])
    assert len(features) == 4                       # one row per subject x session
    assert features.loc[("sub-002", "baseline"), "anat_status"] == "ok"
    assert features.loc[("sub-002", "baseline"), "dwi_status"] == "no dwi in this session"
    assert features.loc[("sub-001", "baseline"), "dwi_status"].startswith("/")
    assert "DWI skipped" in features.loc[("sub-001", "baseline"), "dwi_status"]
    assert np.isnan(features.loc[("sub-001", "baseline"), "dwi_b0_snr"])
    assert np.isnan(features.loc[("sub-001", "m06"), "brain_mask_volume_ml"])
    assert features.loc[("sub-002", "baseline"), "brain_mask_volume_ml"] > 800


def test_runtime_error_names_file_keep_going_then_exclude(bids_copy, tmp_path):
    """A T1w whose voxels are NaN fails its job with the file named; the others finish;
    excluding the session in config then completes the table."""
    path = bids_copy / "sub-002" / "ses-m06" / "anat" / "sub-002_ses-m06_T1w.nii.gz"
    img = nib.load(path)
    data = img.get_fdata(dtype=np.float32)
    data[10:12, 10:12, 10:12] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), path)
    strip_modalities(bids_copy)  # keep the test cheap
    out = tmp_path / "out"
    config = {"bids_dir": str(bids_copy), "output_dir": str(out)}
    proc = snakemake(tmp_path / "work", config, "--cores", "2", "--keep-going", check=False)
    assert proc.returncode != 0
    log = (out / "logs" / "anat_brainmask" / "sub-002_ses-m06.log").read_text()
    assert "sub-002_ses-m06_T1w.nii.gz: contains 8 NaN or infinite voxels" in log
    for sub, ses in (("001", "baseline"), ("001", "m06"), ("002", "baseline")):
        assert (out / f"sub-{sub}" / f"ses-{ses}" / "anat" /
                f"sub-{sub}_ses-{ses}_desc-brainmask_metrics.json").exists()
    assert not (out / "features.tsv").exists()

    config["exclude"] = ["sub-002_ses-m06"]
    snakemake(tmp_path / "work", config, "--cores", "2")
    features = _read(out / "features.tsv").set_index(["participant_id", "session"])
    assert len(features) == 4
    assert features.loc[("sub-002", "m06"), "anat_status"] == \
        "session skipped: sub-002_ses-m06: excluded by config"


def test_feature_table_against_truth(tiny_trial, reference_run, tmp_path):
    """The spine's features agree with the phantom's truth; provenance is recorded."""
    out = reference_run
    features = _read(out / "features.tsv")
    truth = _read(tiny_trial / "truth" / "sessions.tsv")
    merged = features.merge(truth, on=["participant_id", "session"])
    assert len(merged) == 4
    # affine template mask vs the phantom's intracranial mask: within 12 %
    rel = merged.brain_mask_volume_ml_x / merged.brain_mask_volume_ml_y
    assert rel.between(0.88, 1.12).all(), rel.tolist()
    assert (merged.dwi_n_volumes_x == merged.dwi_n_volumes_y).all()
    assert (merged.bold_n_volumes_x == merged.bold_n_volumes_y).all()
    assert (features.bold_n_volumes == 80).all()
    assert (features.dwi_n_b0 >= 3).all()
    assert features.pipeline_version.nunique() == 1 and features.config_hash.nunique() == 1
    assert "arm" not in features.columns and "ADSC" not in features.to_string()
    dictionary = json.loads((out / "features.json").read_text())
    assert set(dictionary) == set(features.columns)
    assert dictionary["brain_mask_volume_ml"]["Units"] == "mL"
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "resstore-pipeline"
    sidecar = json.loads(next(out.rglob("*desc-brain_mask.json")).read_text())
    assert sidecar["Sources"] and sidecar["GeneratedBy"]["Version"]
    # nothing to do on a second run
    proc = snakemake(tmp_path / "work", {"bids_dir": str(tiny_trial / "bids"),
                                         "output_dir": str(out), "resources": {"threads_per_job": 1}},
                     "-n", "--cores", "1")
    assert "Nothing to be done" in proc.stdout + proc.stderr

"""Gradient and events files are found by pybids under BIDS inheritance (issue 25)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np

from pipeline.bids import discover

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])
EVENTS = "onset\tduration\ttrial_type\n0\t10\tmove\n20\t10\tmove\n"


def _save(path, shape, tr=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.zeros(shape, np.float32), AFFINE)
    if tr:
        img.header.set_zooms((2.0, 2.0, 2.0, tr))
        img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)


def _dataset(root, sessions=("baseline", "m06")):
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.9.0"}))
    # dataset-level files that every run inherits
    (root / "dwi.bval").write_text("0 1000 1000 1000\n")
    (root / "dwi.bvec").write_text("0 1 0 0\n0 0 1 0\n0 0 0 1\n")
    (root / "task-motor_bold.json").write_text(json.dumps({"RepetitionTime": 2.0}))
    (root / "task-motor_events.tsv").write_text(EVENTS)
    for ses in sessions:
        stem = root / "sub-01" / f"ses-{ses}"
        _save(stem / "anat" / f"sub-01_ses-{ses}_T1w.nii.gz", (6, 6, 6))
        _save(stem / "dwi" / f"sub-01_ses-{ses}_dwi.nii.gz", (6, 6, 6, 4))
        _save(stem / "func" / f"sub-01_ses-{ses}_task-motor_bold.nii.gz", (6, 6, 6, 20), tr=2.0)
    return root


def test_inherited_gradients_and_events_are_found(tmp_path):
    """A dataset-level dwi.bval/.bvec and task-motor_events.tsv serve every session; the
    string arithmetic they replace looked only beside the run and skipped DWI and BOLD."""
    bids = _dataset(tmp_path / "bids")
    inventory = discover(bids, sessions=["baseline", "m06"])
    assert list(inventory["status"]) == ["ok", "ok"], inventory["problems"].tolist()
    for row in inventory.itertuples():
        assert row.modalities.split(",") == ["T1w", "dwi", "bold"], row.problems
        assert row.bval == str((bids / "dwi.bval").resolve())
        assert row.bvec == str((bids / "dwi.bvec").resolve())
        assert row.events == str((bids / "task-motor_events.tsv").resolve())
        assert row.bold_tr_s == 2.0


def test_the_nearest_file_wins_and_a_missing_one_is_named(tmp_path):
    """A session's own events file overrides the dataset-level one; without any
    gradient file the error names the file the run would need."""
    bids = _dataset(tmp_path / "bids")
    own = bids / "sub-01" / "ses-m06" / "func" / "sub-01_ses-m06_task-motor_events.tsv"
    own.write_text(EVENTS)
    (bids / "dwi.bvec").unlink()
    inventory = discover(bids, sessions=["baseline", "m06"]).set_index("session")
    assert inventory.loc["baseline", "events"] == str((bids / "task-motor_events.tsv").resolve())
    assert inventory.loc["m06", "events"] == str(own.resolve())
    for ses in ("baseline", "m06"):
        assert "dwi" not in inventory.loc[ses, "modalities"].split(",")
        assert f"sub-01_ses-{ses}_dwi.bvec" in inventory.loc[ses, "problems"]


def test_reverse_phase_encoding_b0_found(tmp_path):
    """The reverse b=0 of the susceptibility correction: an fmap/*_epi whose IntendedFor
    names the DWI with the opposite PhaseEncodingDirection (baseline), or a dir-AP /
    dir-PA pair of DWI series, the longer one processed (m06); an epi intended for
    another run, or of the same polarity, is not used."""
    bids = _dataset(tmp_path / "bids")
    base = bids / "sub-01" / "ses-baseline"
    (bids / "dwi.json").write_text(json.dumps({"PhaseEncodingDirection": "j-"}))
    epi = base / "fmap" / "sub-01_ses-baseline_dir-PA_epi.nii.gz"
    _save(epi, (6, 6, 6))
    sidecar = {"PhaseEncodingDirection": "j",
               "IntendedFor": ["ses-baseline/dwi/sub-01_ses-baseline_dwi.nii.gz"]}
    epi.with_name(epi.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar))
    m06 = bids / "sub-01" / "ses-m06" / "dwi"
    (m06 / "sub-01_ses-m06_dwi.nii.gz").unlink()
    _save(m06 / "sub-01_ses-m06_dir-AP_dwi.nii.gz", (6, 6, 6, 4))
    _save(m06 / "sub-01_ses-m06_dir-PA_dwi.nii.gz", (6, 6, 6, 2))
    (m06 / "sub-01_ses-m06_dir-PA_dwi.json").write_text(json.dumps({"PhaseEncodingDirection": "j"}))
    (m06 / "sub-01_ses-m06_dir-PA_dwi.bval").write_text("0 1000\n")
    (m06 / "sub-01_ses-m06_dir-PA_dwi.bvec").write_text("0 1\n0 0\n0 0\n")
    inventory = discover(bids, sessions=["baseline", "m06"]).set_index("session")
    assert inventory.loc["baseline", "dwi_reverse"] == str(epi)
    assert inventory.loc["m06", "dwi"].endswith("dir-AP_dwi.nii.gz")
    assert inventory.loc["m06", "dwi_reverse"].endswith("dir-PA_dwi.nii.gz")
    # the dataset-level gradients serve dir-AP though a dir-PA_dwi.bval sits beside it
    assert inventory.loc["m06", "bval"] == str((bids / "dwi.bval").resolve())
    assert "dwi" in inventory.loc["m06", "modalities"].split(","), inventory.loc["m06", "problems"]
    # the same polarity: not a reverse b=0
    epi.with_name(epi.name.replace(".nii.gz", ".json")).write_text(
        json.dumps(dict(sidecar, PhaseEncodingDirection="j-")))
    assert discover(bids, sessions=["baseline"])["dwi_reverse"].isna().all()
    # intended for another run
    epi.with_name(epi.name.replace(".nii.gz", ".json")).write_text(
        json.dumps(dict(sidecar, IntendedFor="ses-baseline/dwi/sub-01_ses-baseline_run-2_dwi.nii.gz")))
    assert discover(bids, sessions=["baseline"])["dwi_reverse"].isna().all()

"""Real Snakemake runs of the lesion stream on the tiny phantom trial."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from pipeline.features.dictionary import FEATURES
from pipeline.paths import bids_path
from tests.conftest import dice
from tests.workflow.conftest import snakemake

pytestmark = pytest.mark.slow


def _path(out, sub, ses, suffix, ext, **entities):
    return bids_path(out, datatype="anat", subject=sub, session=ses, suffix=suffix,
                     extension=ext, **entities)


def _targets(out, sessions):
    targets = [f"{out}/sub-{sub}/sub-{sub}_desc-lesionside_metrics.json" for sub in
               sorted({s for s, _ in sessions})]
    for sub, ses in sessions:
        targets.append(_path(out, sub, ses, "metrics", ".json", desc="lesionload"))
    return targets


def test_manual_masks_side_and_load(tiny_trial, tmp_path):
    """Manual masks override (default): volume = voxel count x voxel volume exactly;
    the automatic mask is still computed and its Dice reported; the side comes
    from participants.tsv; CST load and volume change are written."""
    out = tmp_path / "out"
    sessions = [(s, v) for s in ("001", "002") for v in ("baseline", "m06")]
    snakemake(tmp_path / "work", {"bids_dir": str(tiny_trial / "bids"), "output_dir": str(out)},
              "--cores", "2", *_targets(out, sessions))
    participants = pd.read_csv(tiny_trial / "bids" / "participants.tsv", sep="\t")
    volumes = {}
    for sub, ses in sessions:
        mask_img = nib.load(_path(out, sub, ses, "mask", ".nii.gz", space="T1w", desc="lesion"))
        roi = tiny_trial / "bids" / f"sub-{sub}" / f"ses-{ses}" / "anat" / \
            f"sub-{sub}_ses-{ses}_label-lesion_roi.nii.gz"
        metrics = json.loads(open(_path(out, sub, ses, "metrics", ".json", desc="lesion")).read())
        assert set(metrics) <= set(FEATURES)
        if roi.exists():
            manual = np.asarray(nib.load(roi).dataobj) > 0
            np.testing.assert_array_equal(np.asarray(mask_img.dataobj) > 0, manual)
            voxel_ml = abs(np.linalg.det(mask_img.affine[:3, :3])) / 1000
            assert metrics["lesion_volume_ml"] == manual.sum() * voxel_ml
            assert metrics["lesion_source"] == "manual"
            if metrics["lesion_volume_ml"] >= 5.0:  # 2.5 mm voxels: small lesions are coarse
                assert metrics["lesion_manual_automatic_dice"] > 0.6
        volumes[(sub, ses)] = metrics["lesion_volume_ml"]
        load = json.loads(open(_path(out, sub, ses, "metrics", ".json", desc="lesionload")).read())
        assert set(load) <= set(FEATURES)
        assert load["cst_lesion_load_ipsilesional_fraction"] is not None
        if ses == "m06":
            assert load["lesion_volume_change_ml"] == pytest.approx(
                volumes[(sub, "m06")] - volumes[(sub, "baseline")])
        else:
            assert load["lesion_volume_change_ml"] == 0.0
    for sub in ("001", "002"):
        side = json.loads((out / f"sub-{sub}" / f"sub-{sub}_desc-lesionside_metrics.json")
                          .read_text())
        expected = participants.set_index("participant_id").loc[f"sub-{sub}", "lesion_side"]
        assert (side["lesion_side"], side["source"]) == (expected, "participants.tsv")
        assert side["lesion_side_from_mask"] == expected


def test_automatic_path_and_bad_manual_mask(tiny_trial, tmp_path):
    """Without participants' lesion_side and with manual masks not overriding, the
    automatic mask decides volume and side; a manual mask on another grid fails its
    session with a named error while the other sessions finish."""
    bids = tmp_path / "bids"
    shutil.copytree(tiny_trial / "bids", bids)
    tsv = bids / "participants.tsv"
    table = pd.read_csv(tsv, sep="\t").drop(columns=["lesion_side"])
    table.to_csv(tsv, sep="\t", index=False)
    bad = bids / "sub-002" / "ses-m06" / "anat" / "sub-002_ses-m06_label-lesion_roi.nii.gz"
    img = nib.load(bad)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:-1], img.affine), bad)
    out = tmp_path / "out"
    proc = snakemake(tmp_path / "work", {
        "bids_dir": str(bids), "output_dir": str(out),
        "lesion": {"manual_overrides_automatic": False}},
        "--cores", "2", "--keep-going", *_targets(out, [("001", "baseline"), ("001", "m06"),
                                                          ("002", "m06")]), check=False)
    assert proc.returncode != 0
    log = (out / "logs" / "lesion_segment" / "sub-002_ses-m06.log").read_text()
    assert "sub-002_ses-m06_label-lesion_roi.nii.gz: manual lesion mask shape" in log
    truth = pd.read_csv(tiny_trial / "truth" / "sessions.tsv", sep="\t").set_index(
        ["participant_id", "session"])
    for ses in ("baseline", "m06"):
        metrics = json.loads(open(_path(out, "001", ses, "metrics", ".json",
                                        desc="lesion")).read())
        assert metrics["lesion_source"] == "automatic"
        auto = nib.load(_path(out, "001", ses, "mask", ".nii.gz", space="T1w", desc="lesion"))
        planted = nib.load(tiny_trial / "truth" / "sub-001" / f"ses-{ses}" / "anat" /
                           f"sub-001_ses-{ses}_desc-lesion_mask.nii.gz")
        assert dice(auto.get_fdata(), planted.get_fdata()) > 0.7
        assert metrics["lesion_volume_ml"] == pytest.approx(
            truth.loc[("sub-001", ses), "lesion_volume_ml"], rel=0.25)
    side = json.loads((out / "sub-001" / "sub-001_desc-lesionside_metrics.json").read_text())
    assert side["source"] == "lesion mask ses-baseline"
    assert side["lesion_side"] == truth.loc[("sub-001", "baseline"), "lesion_side"]

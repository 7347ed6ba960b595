"""The phantom trial as a whole: valid BIDS, blinded, truth consistent with the data."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from tests.conftest import tree_checksums


def _tsv(path):
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a"])


def test_pybids_indexes_every_file_with_validation(tiny_trial):
    from bids import BIDSLayout

    layout = BIDSLayout(tiny_trial / "bids", validate=True)
    indexed = {f for f in layout.get_files()}
    images = sorted((tiny_trial / "bids").rglob("*.nii.gz"))
    missing = [p for p in images if str(p) not in indexed
               and not p.name.endswith("_label-lesion_roi.nii.gz")]
    assert not missing
    assert layout.get_subjects() == ["001", "002"]
    assert layout.get_sessions() == ["baseline", "m06"]
    assert len(layout.get(suffix="bold", extension=".nii.gz")) == 4
    bold = layout.get(suffix="bold", extension=".nii.gz", return_type="file")[0]
    assert layout.get_metadata(bold)["RepetitionTime"] == 2.0


def test_allocation_outside_bids_and_blinded(tiny_trial):
    allocation = _tsv(tiny_trial / "allocation.tsv")
    assert set(allocation.arm) <= {"ADSC", "placebo"}
    assert not any("allocation" in p.name for p in (tiny_trial / "bids").rglob("*"))
    participants = _tsv(tiny_trial / "bids" / "participants.tsv")
    assert "arm" not in participants.columns
    for path in (tiny_trial / "bids").rglob("*"):
        if path.suffix in (".tsv", ".json"):
            assert "ADSC" not in path.read_text() and "placebo" not in path.read_text(), path
    assert {"age", "sex", "center", "recanalization", "lesion_side"} <= set(participants.columns)


def test_nihss_follows_protocol(tiny_trial):
    nihss = _tsv(tiny_trial / "bids" / "phenotype" / "nihss.tsv")
    total = nihss.nihss_motor_upper_limb + nihss.nihss_motor_lower_limb + nihss.nihss_motor_hand
    assert (total == nihss.nihss_motor).all()
    assert nihss.nihss_motor.between(0, 10).all()
    assert set(nihss.session) == {"baseline", "m06"}


def test_lesion_truth_matches_mask_and_manual_roi(tiny_trial):
    truth = _tsv(tiny_trial / "truth" / "sessions.tsv")
    for row in truth.itertuples():
        stem = f"{row.participant_id}_ses-{row.session}"
        mask = nib.load(tiny_trial / "truth" / row.participant_id / f"ses-{row.session}" /
                        "anat" / f"{stem}_desc-lesion_mask.nii.gz")
        voxel_ml = np.prod(mask.header.get_zooms()[:3]) / 1000
        assert row.lesion_volume_ml == pytest.approx((mask.get_fdata() > 0).sum() * voxel_ml)
        roi = (tiny_trial / "bids" / row.participant_id / f"ses-{row.session}" / "anat" /
               f"{stem}_label-lesion_roi.nii.gz")
        assert roi.exists() == bool(row.manual_mask)
        if roi.exists():
            assert np.array_equal(nib.load(roi).get_fdata(), mask.get_fdata())
        participants = _tsv(tiny_trial / "bids" / "participants.tsv").set_index("participant_id")
        assert row.lesion_side == participants.loc[row.participant_id, "lesion_side"]


def test_events_match_block_design(tiny_trial):
    for events_path in (tiny_trial / "bids").rglob("*_events.tsv"):
        events = _tsv(events_path)
        assert set(events.trial_type) == {"move_affected_hand"}
        assert np.allclose(events.duration, 20.0)
        assert np.allclose(events.onset, 20.0 + 40.0 * np.arange(len(events)))
        sidecar = json.loads(events_path.with_name(
            events_path.name.replace("_events.tsv", "_bold.json")).read_text())
        img = nib.load(events_path.with_name(events_path.name.replace("_events.tsv",
                                                                      "_bold.nii.gz")))
        run_s = img.shape[3] * sidecar["RepetitionTime"]
        assert (events.onset + events.duration <= run_s + 1e-6).all()
        assert img.header.get_zooms()[3] == pytest.approx(sidecar["RepetitionTime"])


def test_bvecs_unit_and_counts(tiny_trial):
    for bvec_path in (tiny_trial / "bids").rglob("*_dwi.bvec"):
        bvecs = np.loadtxt(bvec_path)
        bvals = np.loadtxt(bvec_path.with_suffix(".bval"))
        n = nib.load(bvec_path.with_suffix(".nii.gz")).shape[3]
        assert bvecs.shape == (3, n) and bvals.shape == (n,)
        norms = np.linalg.norm(bvecs, axis=0)
        assert np.allclose(norms[bvals > 50], 1, atol=1e-5)
        assert np.allclose(norms[bvals <= 50], 0)
        assert (bvals <= 50).sum() >= 3


def test_planted_effects_in_truth(tiny_trial):
    truth = _tsv(tiny_trial / "truth" / "sessions.tsv").set_index(["participant_id", "session"])
    allocation = _tsv(tiny_trial / "allocation.tsv").set_index("participant_id")
    effects = json.loads((tiny_trial / "truth" / "effects.json").read_text())
    for pid in allocation.index:
        treated = allocation.loc[pid, "arm"] == effects["treated_arm"]
        change = (truth.loc[(pid, "m06"), "dwi_fa_cst_ipsilesional"]
                  - truth.loc[(pid, "baseline"), "dwi_fa_cst_ipsilesional"])
        expected = effects["spec"]["fa_change_control"] + effects["effect_fa_change"] * treated
        assert change == pytest.approx(expected, abs=1e-9)
        assert truth.loc[(pid, "m06"), "thinning_m1_mm"] == pytest.approx(
            effects["spec"]["thinning_control_mm"] - effects["effect_thinning_mm"] * treated)
        assert truth.loc[(pid, "m06"), "lesion_volume_ml"] < \
            truth.loc[(pid, "baseline"), "lesion_volume_ml"]


def test_deterministic_and_refuses_overwrite(tmp_path):
    from pipeline.simulate import TrialSpec, simulate_trial

    spec = TrialSpec(n_subjects=1, seed=3, anat_voxel_mm=4.0, modalities=("T1w",))
    simulate_trial(tmp_path / "a", spec)
    simulate_trial(tmp_path / "b", spec)
    assert tree_checksums(tmp_path / "a" / "bids") == tree_checksums(tmp_path / "b" / "bids")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        simulate_trial(tmp_path / "a", spec)

import pytest

from pipeline.paths import bids_name, bids_path


def test_entity_order_and_wildcards():
    assert bids_name(desc="brain", subject="{subject}", session="{session}", suffix="mask",
                     extension=".nii.gz") == "sub-{subject}_ses-{session}_desc-brain_mask.nii.gz"
    assert bids_name(subject="01", from_="MNI152NLin6Asym", to="T1w", mode="image",
                     suffix="xfm", extension=".h5") == \
        "sub-01_from-MNI152NLin6Asym_to-T1w_mode-image_xfm.h5"


def test_path_layout():
    assert bids_path("out", datatype="anat", subject="01", session="m06", space="T1w",
                     desc="lesion", suffix="mask", extension=".nii.gz") == \
        "out/sub-01/ses-m06/anat/sub-01_ses-m06_space-T1w_desc-lesion_mask.nii.gz"


def test_unknown_entity_rejected():
    with pytest.raises(KeyError, match="colour"):
        bids_name(subject="01", colour="red", suffix="T1w", extension=".nii.gz")

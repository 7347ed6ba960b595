"""The DWI reportlets' methods text names exactly the steps the config runs."""

import pytest

from pipeline.config import validate_config
from pipeline.dwi.methods import TENSOR_FIT_METHODS, preproc_methods


def _defaults() -> dict:
    """The dwi section of the schema defaults (required keys filled in)."""
    return validate_config({"bids_dir": "bids", "output_dir": "out"})["dwi"]


def test_default_methods_name_no_gibbs_removal():
    dwi = _defaults()
    text = preproc_methods(dwi)
    assert not dwi["gibbs"] and "Gibbs" not in text
    assert text.startswith("MP-PCA denoising") and "b-vectors rotated" in text


@pytest.mark.parametrize(("option", "value", "present", "absent"), [
    ("gibbs", True, "Gibbs-ringing removal", None),
    ("denoise", "patch2self", "Patch2Self", "MP-PCA"),
    ("denoise", "none", None, "denois"),
    ("motion_correction", "rigid", "leave-one-out", "eddy currents"),
    ("motion_correction", "none", "no motion correction", "b-vectors rotated"),
])
def test_methods_follow_the_config(option, value, present, absent):
    text = preproc_methods({**_defaults(), option: value})
    assert present is None or present in text
    assert absent is None or absent not in text
    assert text[0].isupper() and text.endswith(".")


def test_every_tensor_fit_has_a_methods_text():
    from pipeline.config import schema

    assert set(TENSOR_FIT_METHODS) == set(schema()["properties"]["dwi"]["properties"]["tensor_fit"]["enum"])


def test_tensor_methods_name_the_shells():
    from pipeline.dwi.methods import tensor_methods

    text = tensor_methods({**_defaults(), "dti_max_b": 1200})
    assert "1200 s/mm2" in text and "least squares" in text

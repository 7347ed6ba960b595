"""Bad input gives a named error: the file and what is wrong."""

import nibabel as nib
import numpy as np
import pytest

from pipeline import validate
from pipeline.errors import PipelineInputError


def _img(shape=(7, 8, 9), value=1.0):
    img = nib.Nifti1Image(np.full(shape, value, np.float32), np.eye(4))
    img.header.set_xyzt_units("mm", "sec")
    return img


def test_truncated_gzip_is_named(tmp_path):
    path = tmp_path / "sub-01_T1w.nii.gz"
    nib.save(_img(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PipelineInputError, match=r"sub-01_T1w.nii.gz: .*(truncated|cannot be read)"):
        validate.load_header(path)


def test_garbage_file_is_named(tmp_path):
    path = tmp_path / "sub-01_T1w.nii.gz"
    path.write_bytes(b"not a nifti at all")
    with pytest.raises(PipelineInputError, match="sub-01_T1w.nii.gz: cannot be read as NIfTI"):
        validate.load_header(path)


def test_4d_t1w_rejected_single_volume_accepted(tmp_path):
    path = tmp_path / "t1.nii.gz"
    nib.save(_img((7, 8, 9, 3)), path)
    with pytest.raises(PipelineInputError, match=r"T1w must be 3D, got shape \(7, 8, 9, 3\)"):
        validate.load_header(path, what="T1w")
    nib.save(_img((7, 8, 9, 1)), path)
    assert validate.load_data(path, what="T1w").shape == (7, 8, 9)


def test_nan_voxels_rejected(tmp_path):
    path = tmp_path / "t1.nii.gz"
    data = np.ones((7, 8, 9), np.float32)
    data[3, 4, 5] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    with pytest.raises(PipelineInputError, match="1 NaN or infinite voxels"):
        validate.load_data(path)


def _gradients(tmp_path, bvals, bvecs):
    bval, bvec = tmp_path / "dwi.bval", tmp_path / "dwi.bvec"
    np.savetxt(bval, np.asarray(bvals)[None], fmt="%g")
    np.savetxt(bvec, np.asarray(bvecs, dtype=float))
    return bval, bvec


def test_gradients_ok(tmp_path):
    bval, bvec = _gradients(tmp_path, [0, 1000, 1000], [[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    bvals, bvecs = validate.read_gradients(bval, bvec, 3)
    assert bvecs.shape == (3, 3)
    assert validate.shells(bvals) == [0, 1000]


@pytest.mark.parametrize(("bvals", "bvecs", "message"), [
    ([0, 1000], [[0, 1, 0], [0, 0, 1], [0, 0, 0]], "has 2 b-values but the DWI has 3 volumes"),
    ([0, 1000, 1000], [[0, 0.5, 0], [0, 0, 1], [0, 0, 0]], "not unit length"),
    ([1000, 1000, 1000], [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "no b=0 volume"),
])
def test_bad_gradients_named(tmp_path, bvals, bvecs, message):
    bval, bvec = _gradients(tmp_path, bvals, bvecs)
    with pytest.raises(PipelineInputError, match=message):
        validate.read_gradients(bval, bvec, 3)


def test_3d_dwi_rejected(tmp_path):
    path = tmp_path / "dwi.nii.gz"
    nib.save(_img(), path)
    bval, bvec = _gradients(tmp_path, [0, 1000, 1000], [[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    with pytest.raises(PipelineInputError, match="DWI must be 4D"):
        validate.check_dwi(path, bval, bvec)


def _bold(tmp_path, tr_header=2.0):
    img = _img((7, 8, 9, 10))
    img.header.set_zooms((1, 1, 1, tr_header))
    path = tmp_path / "bold.nii.gz"
    nib.save(img, path)
    return path


def test_bold_missing_events_named(tmp_path):
    with pytest.raises(PipelineInputError, match="events.tsv: is missing"):
        validate.check_bold(_bold(tmp_path), tmp_path / "events.tsv", {"RepetitionTime": 2.0})


def test_bold_tr_disagreement_named(tmp_path):
    events = tmp_path / "events.tsv"
    events.write_text("onset\tduration\ttrial_type\n20\t20\tmove\n")
    with pytest.raises(PipelineInputError, match=r"TR in the header \(2 s\) disagrees"):
        validate.check_bold(_bold(tmp_path), events, {"RepetitionTime": 2.5})
    assert validate.check_bold(_bold(tmp_path), events, {"RepetitionTime": 2.0}) == 2.0


def test_events_missing_column_named(tmp_path):
    events = tmp_path / "events.tsv"
    events.write_text("onset\tduration\n20\t20\n")
    with pytest.raises(PipelineInputError, match=r"lacks column\(s\) \['trial_type'\]"):
        validate.read_events(events)

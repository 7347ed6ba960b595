"""Reviewed lesion masks (pipeline.lesion.reviewed): provenance checks, named errors,
grids, hashes, discovery."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from pipeline.errors import PipelineInputError
from pipeline.lesion.reviewed import read_reviewed_mask, reviewed_name, voxel_sha256

SHAPE = (7, 8, 9)  # non-cubic: catches axis mix-ups
AFFINE = np.array([[1.0, 0, 0, -3], [0, 1.2, 0, -4], [0, 0, 1.5, -5], [0, 0, 0, 1]])
NAME = reviewed_name("01", "baseline")


def _t1w():
    rng = np.random.default_rng(0)
    return nib.Nifti1Image(rng.uniform(50, 100, SHAPE).astype(np.float32), AFFINE)


def _start():
    start = np.zeros(SHAPE, bool)
    start[2:4, 3:5, 4:6] = True
    return start


def _write(tmp_path, mask, *, sidecar=None, affine=AFFINE, name=NAME, stored=None, **changes):
    """A reviewed mask and its sidecar as the review page saves them (``stored``: the
    voxels as written, another storage of ``mask``)."""
    path = tmp_path / name
    nib.save(nib.Nifti1Image((mask if stored is None else stored).astype(np.uint8), affine), path)
    start = _start()
    side = {"Rater": "Dr A", "Timestamp": "2025-05-01T10:00:00.123Z",
            "StartedFrom": {"File": "sub-01_ses-baseline_space-T1w_desc-lesion_mask.nii.gz",
                            "SHA256": "0" * 64, "VoxelSHA256": voxel_sha256(start),
                            "Source": "automatic", "Voxels": int(start.sum())},
            "VoxelsPainted": int((mask & ~start).sum()), "VoxelsErased": int((start & ~mask).sum()),
            "VoxelSHA256": voxel_sha256(mask)}
    side.update(changes)
    if sidecar is not False:
        (tmp_path / name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar or side))
    return path


def _edited():
    mask = _start()
    mask[5, 6, 7] = mask[0, 0, 0] = True        # painted 2
    mask[2, 3, 4] = False                       # erased 1
    return mask


def test_reviewed_mask_is_read_with_its_provenance(tmp_path):
    mask = _edited()
    review = read_reviewed_mask(_write(tmp_path, mask), _t1w(),
                                versions={"manual": None, "automatic": _start()})
    np.testing.assert_array_equal(review.mask, mask)
    assert (review.rater, review.started_from_version) == ("Dr A", "automatic")
    assert (review.voxels_painted, review.voxels_erased) == (2, 1)
    assert review.metrics() == {"lesion_reviewed_by": "Dr A",
                                "lesion_reviewed_at": "2025-05-01T10:00:00.123Z",
                                "lesion_reviewed_from": "automatic"}
    assert not review.warnings


def test_reviewed_mask_in_another_storage_of_the_grid(tmp_path):
    """Stored LAS (x flipped, affine flipped with it): the same voxels on the T1w grid."""
    mask = _edited()
    flip = AFFINE @ np.array([[-1, 0, 0, SHAPE[0] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    path = _write(tmp_path, mask, stored=mask[::-1], affine=flip)
    review = read_reviewed_mask(path, _t1w(), versions={"automatic": _start()})
    np.testing.assert_array_equal(review.mask, mask)


def test_unknown_starting_mask_is_a_warning_not_an_error(tmp_path, caplog):
    other = np.zeros(SHAPE, bool)
    other[1, 1, 1] = True
    review = read_reviewed_mask(_write(tmp_path, _edited()), _t1w(),
                                versions={"automatic": other, "manual": None})
    assert review.started_from_version == "unverified"
    assert "matches none of the versions rebuilt now (automatic)" in review.warnings[0]
    assert "+2 / -1 voxels" in review.warnings[0]          # what the sidecar says
    assert "matches none" in caplog.text


@pytest.mark.parametrize("change, message", [
    ({"Rater": "  "}, "has no Rater"),
    ({"Rater": None}, "has no Rater"),
    ({"Timestamp": "yesterday"}, "is not ISO 8601"),
    ({"StartedFrom": {"File": "x.nii.gz"}}, "no StartedFrom"),
    ({"VoxelsPainted": -1}, "VoxelsPainted must be a count"),
    ({"StartedFrom": {"File": "sub-02_ses-baseline_space-T1w_desc-lesion_mask.nii.gz",
                      "VoxelSHA256": "a" * 64}}, "belongs to another session"),
    ({"VoxelSHA256": "b" * 64}, "does not match its sidecar"),
])
def test_bad_sidecars_are_named_errors(tmp_path, change, message):
    with pytest.raises(PipelineInputError, match=message):
        read_reviewed_mask(_write(tmp_path, _edited(), **change), _t1w())


def test_missing_sidecar_other_grid_and_labels_are_named_errors(tmp_path):
    with pytest.raises(PipelineInputError, match="without its sidecar"):
        read_reviewed_mask(_write(tmp_path, _edited(), sidecar=False), _t1w())
    other = tmp_path / "other"
    other.mkdir()
    shifted = AFFINE.copy()
    shifted[0, 3] += 5.0
    with pytest.raises(PipelineInputError, match=r"not on the grid of the T1w.*shape \(7, 8, 9\)"):
        read_reviewed_mask(_write(other, _edited(), affine=shifted), _t1w())
    labels = tmp_path / "labels"
    labels.mkdir()
    data = _edited().astype(np.uint8)
    data[0, 0, 0] = 2
    path = _write(labels, data.astype(bool), stored=data)
    with pytest.raises(PipelineInputError, match="2 labels"):
        read_reviewed_mask(path, _t1w())


def test_discovery_finds_reviewed_masks(tmp_path):
    from pipeline.bids import FILE_COLUMNS, _find_reviewed_mask

    assert "lesion_reviewed" in FILE_COLUMNS
    folder = tmp_path / "reviewed" / "sub-01" / "ses-baseline" / "anat"
    folder.mkdir(parents=True)
    (folder / NAME).write_bytes(b"")
    assert _find_reviewed_mask("01", "baseline", tmp_path / "reviewed").endswith(
        "sub-01/ses-baseline/anat/sub-01_ses-baseline_space-T1w_desc-reviewed_mask.nii.gz")
    assert _find_reviewed_mask("01", "m06", tmp_path / "reviewed") is None
    assert _find_reviewed_mask("01", "baseline", None) is None


def test_review_of_an_empty_mask_starts_from_none(tmp_path):
    """A session without FLAIR or manual mask: the review drew the lesion from scratch."""
    mask = np.zeros(SHAPE, bool)
    mask[1:3, 1:3, 1:3] = True
    empty = np.zeros(SHAPE, bool)
    path = _write(tmp_path, mask, StartedFrom={
        "File": "sub-01_ses-baseline_space-T1w_desc-lesion_mask.nii.gz",
        "VoxelSHA256": voxel_sha256(empty), "Source": "none", "Voxels": 0})
    review = read_reviewed_mask(path, _t1w(), versions={"automatic": None, "manual": None})
    assert review.started_from_version == "none" and not review.warnings


def test_inventory_finds_a_reviewed_mask_placed_after_a_run(tmp_path):
    """The cached inventory (indexed once per dataset state) sees a mask placed in
    lesion.reviewed_dir later: the folder is part of the cache key."""
    from pipeline.bids import cached_inventory

    bids = tmp_path / "bids"
    anat = bids / "sub-01" / "ses-baseline" / "anat"
    anat.mkdir(parents=True)
    (bids / "dataset_description.json").write_text(json.dumps({"Name": "t", "BIDSVersion": "1.9.0"}))
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.float32), AFFINE), anat / "sub-01_ses-baseline_T1w.nii.gz")
    reviewed = tmp_path / "reviewed"
    reviewed.mkdir()
    options = dict(sessions=["baseline"], reviewed_dir=str(reviewed))
    first = cached_inventory(bids, tmp_path / "cache", **options)
    assert first["lesion_reviewed"].isna().all()
    folder = reviewed / "sub-01" / "ses-baseline" / "anat"
    folder.mkdir(parents=True)
    _write(folder, _edited())
    again = cached_inventory(bids, tmp_path / "cache", **options)
    assert again["lesion_reviewed"].iloc[0].endswith(NAME)
    assert len((tmp_path / "cache" / "index.log").read_text().splitlines()) == 2

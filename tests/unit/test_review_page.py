"""The lesion review page's data (pipeline.report.review): crop, encodings, the saved
mask's header, the starting mask's hashes, layers, colour FA."""

from __future__ import annotations

import base64
import gzip
import json

import nibabel as nib
import numpy as np
import pytest

from pipeline.lesion.reviewed import voxel_sha256
from pipeline.report.review import (
    ReviewInputs,
    colour_fa_on_grid,
    crop_box,
    mask_header,
    review_context,
)

AFFINE = np.array([[1.0, 0, 0, -3], [0, 1.2, 0, -4], [0, 0, 1.5, -5], [0, 0, 0, 1]])


def _volume(spec) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(base64.b64decode(spec)))


def _session_files(tmp_path, *, head_box=True):
    t1 = np.zeros((20, 22, 24), np.float32)
    t1[3:17, 2:19, 4:21] = 100.0 if head_box else 0.0
    affine = np.diag([2.0, 2.0, 2.5, 1.0])
    files = {}
    for name, data in (("t1w", t1), ("flair", t1 * 0.5),
                       ("zmap", np.where(t1 > 0, 4.0, 1.0).astype(np.float32))):
        files[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), files[name])
    mask = np.zeros(t1.shape, np.uint8)
    mask[6:9, 7:9, 10:12] = 1
    files["mask"] = tmp_path / "sub-01_ses-baseline_space-T1w_desc-lesion_mask.nii.gz"
    nib.save(nib.Nifti1Image(mask, affine), files["mask"])
    files["mask"].with_name(files["mask"].name.replace(".nii.gz", ".json")).write_text(
        json.dumps({"Parameters": {"source": "manual"}}))
    return files, mask, affine


def test_review_page_data(tmp_path):
    files, mask, affine = _session_files(tmp_path)
    context = review_context("sub-01", "baseline", ReviewInputs(
        t1w=str(files["t1w"]), mask=str(files["mask"]), flair=str(files["flair"]),
        zmap=str(files["zmap"]), z_threshold=3.1), qc_page="sub-01_ses-baseline.html")
    data = context["page_data"]
    assert [v["key"] for v in data["volumes"]] == ["flair", "t1w", "zmap"]
    start, shape = data["crop_start"], data["crop_shape"]
    assert start == [0, 0, 1] and shape == [20, 22, 23]       # head box + 3 voxels, clipped
    t1 = _volume(data["volumes"][1]["b64"])
    assert t1.shape == tuple(shape) and t1.get_data_dtype() == np.uint8
    np.testing.assert_allclose(t1.affine[:3, 3], (affine @ [*start, 1])[:3])
    z = _volume(data["volumes"][2]["b64"])
    assert set(np.unique(z.dataobj.get_unscaled())) == {0, 400}       # |z| < 3.1 -> 0
    np.testing.assert_allclose(np.unique(np.asarray(z.dataobj)), [0.0, 4.0], rtol=1e-6)
    # the mask the page edits, and what the page needs to save it on the full grid
    cropped = np.asarray(_volume(data["mask_b64"]).dataobj)
    box = tuple(slice(a, a + n) for a, n in zip(start, shape, strict=True))
    np.testing.assert_array_equal(cropped, mask[box])
    assert data["started_from"]["VoxelSHA256"] == voxel_sha256(mask)
    assert data["started_from"]["Source"] == "manual" and data["started_from"]["Voxels"] == 12
    header = base64.b64decode(data["mask_header_b64"])
    saved = nib.Nifti1Image.from_bytes(header + mask.tobytes(order="F"))
    assert saved.shape == mask.shape and saved.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(saved.dataobj), mask)
    np.testing.assert_allclose(saved.affine, affine)
    assert data["voxel_ml"] == pytest.approx(0.01)
    assert data["save_names"]["mask"] == "sub-01_ses-baseline_space-T1w_desc-reviewed_mask.nii.gz"
    assert "allocation" not in json.dumps(context["page_data"]).lower()


def test_review_page_without_a_lesion_mask_says_why(tmp_path):
    from pipeline import status

    files, _, _ = _session_files(tmp_path)
    status.write_records([files["mask"]], {"status": "failed", "error": "bad FLAIR"})
    context = review_context("sub-01", "baseline", ReviewInputs(
        t1w=str(files["t1w"]), mask=str(files["mask"])), qc_page="x.html")
    assert "failed: bad FLAIR" in context["unavailable"]


def test_crop_box_keeps_the_mask():
    t1 = np.zeros((10, 10, 10))
    t1[4:6, 4:6, 4:6] = 100
    keep = np.zeros(t1.shape, bool)
    keep[0, 9, 5] = True
    box = crop_box(t1, keep)
    assert [(s.start, s.stop) for s in box] == [(0, 9), (1, 10), (1, 9)]


def test_mask_header_is_the_t1w_grid():
    ref = nib.Nifti1Image(np.zeros((5, 6, 7), np.float32), AFFINE @ np.diag([1, 1, 1, 1]))
    header = mask_header(ref)
    assert len(header) == 352
    img = nib.Nifti1Image.from_bytes(header + bytes(5 * 6 * 7))
    np.testing.assert_allclose(img.affine, ref.affine)


def test_colour_fa_follows_the_rigid_rotation():
    """V1 along the DWI x axis; the T1w frame rotated 90 degrees about z: the fibre runs along
    the T1w's y axis (green) there."""
    shape = (6, 7, 8)
    fa = nib.Nifti1Image(np.full(shape, 0.5, np.float32), np.eye(4))
    v1 = np.zeros((*shape, 3), np.float32)
    v1[..., 0] = 1.0
    rot = np.array([[0, -1, 0, 5.0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # T1w -> DWI
    ref = nib.Nifti1Image(np.zeros((7, 6, 8), np.float32), np.eye(4))
    rgb = colour_fa_on_grid(fa, nib.Nifti1Image(v1, np.eye(4)), rot, ref)
    centre = rgb[3, 3, 4]
    assert centre[1] > 150 and centre[0] == 0 and centre[2] == 0
    same = colour_fa_on_grid(fa, nib.Nifti1Image(v1, np.eye(4)), np.eye(4),
                             nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)))
    assert same[3, 3, 4, 0] > 150 and same[3, 3, 4, 1] == 0

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
    colour_fa,
    crop_box,
    mask_header,
    review_context,
    review_region,
)

AFFINE = np.array([[1.0, 0, 0, -3], [0, 1.2, 0, -4], [0, 0, 1.5, -5], [0, 0, 0, 1]])


def _volume(spec) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(base64.b64decode(spec)))


SHAPE = (30, 32, 34)
HEAD = (slice(8, 22), slice(9, 23), slice(10, 24))
BRAIN = (slice(10, 20), slice(11, 21), slice(12, 22))


def _session_files(tmp_path):
    rng = np.random.default_rng(3)
    t1 = rng.uniform(0, 5, SHAPE).astype(np.float32)           # background noise
    t1[HEAD] = 100.0
    affine = np.diag([2.0, 2.0, 2.5, 1.0])
    brain = np.zeros(SHAPE, np.uint8)
    brain[BRAIN] = 1
    files = {}
    for name, data in (("t1w", t1), ("flair", t1 * 0.5), ("brain", brain),
                       ("zmap", np.where(t1 > 50, 4.0, 1.0).astype(np.float32))):
        files[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), files[name])
    mask = np.zeros(SHAPE, np.uint8)
    mask[12:15, 13:15, 15:17] = 1
    files["mask"] = tmp_path / "sub-01_ses-baseline_space-T1w_desc-lesion_mask.nii.gz"
    nib.save(nib.Nifti1Image(mask, affine), files["mask"])
    files["mask"].with_name(files["mask"].name.replace(".nii.gz", ".json")).write_text(
        json.dumps({"Parameters": {"source": "manual"}}))
    return files, mask, affine


def test_review_page_data(tmp_path):
    files, mask, affine = _session_files(tmp_path)
    context = review_context("sub-01", "baseline", ReviewInputs(
        t1w=str(files["t1w"]), mask=str(files["mask"]), brain_mask=str(files["brain"]),
        flair=str(files["flair"]), zmap=str(files["zmap"]), z_threshold=3.1),
        qc_page="sub-01_ses-baseline.html")
    data = context["page_data"]
    assert [v["key"] for v in data["volumes"]] == ["flair", "t1w", "zmap"]
    # brain mask + 10 mm (5 voxels in x, y; 4 in z) + 2 voxels of margin
    start, shape = data["crop_start"], data["crop_shape"]
    assert start == [3, 4, 6] and shape == [24, 24, 22]
    t1 = _volume(data["volumes"][1]["b64"])
    assert t1.shape == tuple(shape) and t1.get_data_dtype() == np.uint8
    np.testing.assert_allclose(t1.affine[:3, 3], (affine @ [*start, 1])[:3])
    values = np.asarray(t1.dataobj)
    assert values[0, 0, 0] == 0 and values[12, 12, 11] == 255   # outside the region: 0
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


def test_review_region_without_a_brain_mask_is_the_head(tmp_path):
    files, mask, _ = _session_files(tmp_path)
    data = review_context("sub-01", "baseline", ReviewInputs(
        t1w=str(files["t1w"]), mask=str(files["mask"])), qc_page="x.html")["page_data"]
    # head (above 10 % of the 99th percentile, noise left out) + 2 voxels, + 2 of margin
    assert data["crop_start"] == [4, 5, 6] and data["crop_shape"] == [22, 22, 22]


def test_review_page_without_a_lesion_mask_says_why(tmp_path):
    from pipeline import status

    files, _, _ = _session_files(tmp_path)
    status.write_records([files["mask"]], {"status": "failed", "error": "bad FLAIR"})
    context = review_context("sub-01", "baseline", ReviewInputs(
        t1w=str(files["t1w"]), mask=str(files["mask"])), qc_page="x.html")
    assert "failed: bad FLAIR" in context["unavailable"]


def test_region_keeps_the_mask_and_crop_box_has_a_margin():
    t1 = np.zeros((10, 10, 10))
    t1[4:6, 4:6, 4:6] = 100
    keep = np.zeros(t1.shape, bool)
    keep[0, 9, 5] = True
    region = review_region(t1, (1.0, 1.0, 1.0), keep=[keep])
    assert region[0, 9, 5] and region[2, 4, 4] and not region[1, 4, 4] and not region[2, 2, 2]
    box = crop_box(region)
    assert [(s.start, s.stop) for s in box] == [(0, 10), (0, 10), (0, 10)]
    assert [(s.start, s.stop) for s in crop_box(t1 > 0)] == [(2, 8), (2, 8), (2, 8)]


def test_mask_header_is_the_t1w_grid():
    ref = nib.Nifti1Image(np.zeros((5, 6, 7), np.float32), AFFINE @ np.diag([1, 1, 1, 1]))
    header = mask_header(ref)
    assert len(header) == 352
    img = nib.Nifti1Image.from_bytes(header + bytes(5 * 6 * 7))
    np.testing.assert_allclose(img.affine, ref.affine)


def test_colour_fa_follows_the_rigid_rotation():
    """V1 along the DWI x axis; the T1w frame rotated 90 degrees about z: the fibre runs along
    the T1w's y axis (green) there, and the DWI grid is placed in the T1w's world."""
    shape = (6, 7, 8)
    fa = nib.Nifti1Image(np.full(shape, 0.5, np.float32), np.diag([2.0, 2.0, 2.0, 1.0]))
    v1 = np.zeros((*shape, 3), np.float32)
    v1[..., 0] = 1.0
    rot = np.array([[0, -1, 0, 5.0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # T1w -> DWI
    rgb, affine = colour_fa(fa, nib.Nifti1Image(v1, fa.affine), rot)
    assert rgb.shape == (*shape, 3) and rgb.dtype == np.uint8
    assert rgb[3, 3, 4, 1] > 150 and rgb[3, 3, 4, 0] == 0 and rgb[3, 3, 4, 2] == 0
    np.testing.assert_allclose(rot @ affine, fa.affine)       # DWI voxel -> T1w world
    same, _ = colour_fa(fa, nib.Nifti1Image(v1, fa.affine), np.eye(4))
    assert same[3, 3, 4, 0] > 150 and same[3, 3, 4, 1] == 0

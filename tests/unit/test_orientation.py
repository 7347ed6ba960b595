"""The orientation contract: one reader, one canonical grid, storage-frame metadata carried."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from pipeline.errors import PipelineInputError
from pipeline.orientation import (
    check_same_grid,
    on_grid_of,
    read_image,
    read_image_storage,
    read_storage,
    resolve_affine,
)
from pipeline.simulate.storage import StorageSpec, store_axis, store_bvecs

SHAPE = (7, 8, 9)  # non-cubic: axis mix-ups show


def _ras_image(rng, shape=SHAPE, voxel=(2.0, 2.5, 3.0)):
    affine = np.diag([*voxel, 1.0])
    affine[:3, 3] = [-6.0, -9.0, -12.0]
    return nib.Nifti1Image(rng.random(shape).astype(np.float32) + 1.0, affine)


def _save(tmp_path, name, img):
    path = tmp_path / name
    nib.save(img, path)
    return path


@pytest.mark.parametrize("storage", ["RAS", "LAS", "LPS", "oblique"])
def test_every_storage_reads_as_the_same_canonical_voxels(tmp_path, storage):
    rng = np.random.default_rng(0)
    ras = _ras_image(rng)
    spec = StorageSpec(storage, (4.0, -8.0, 7.0) if storage == "oblique" else (0, 0, 0))
    stored = spec.apply(ras)
    assert "".join(nib.aff2axcodes(stored.affine)) == ("RAS" if storage == "oblique" else storage)
    img, record = read_image_storage(_save(tmp_path, "x.nii.gz", stored), what="T1w")
    assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
    np.testing.assert_array_equal(np.asarray(img.dataobj), np.asarray(ras.dataobj))
    if storage == "oblique":
        assert 10.0 < record.obliquity_deg < 12.0
        # same voxels, world frame rotated about the grid centre
        centre = (np.asarray(SHAPE) - 1) / 2.0
        np.testing.assert_allclose(nib.affines.apply_affine(img.affine, centre),
                                   nib.affines.apply_affine(ras.affine, centre), atol=1e-6)
    else:
        np.testing.assert_allclose(img.affine, ras.affine, atol=1e-9)
        assert record.obliquity_deg == pytest.approx(0.0)
    assert record.sidecar()["StorageOrientation"] == "".join(nib.aff2axcodes(stored.affine))


def test_stored_frame_vectors_and_axis_codes_follow_the_flips(tmp_path):
    rng = np.random.default_rng(1)
    bvecs_ras = rng.normal(size=(3, 5))
    bvecs_ras /= np.linalg.norm(bvecs_ras, axis=0)
    for name in ("RAS", "LAS", "LPS"):
        spec = StorageSpec(name)
        stored = spec.apply(_ras_image(rng))
        storage = read_storage(_save(tmp_path, f"{name}.nii.gz", stored))
        # the .bvec the phantom writes, read back the pipeline's way, is the RAS-built vector
        from pipeline.dwi.gradients import fsl_to_voxel

        fsl = store_bvecs(bvecs_ras, spec, stored.affine)
        back = storage.vectors(fsl_to_voxel(fsl.T, stored.affine))
        np.testing.assert_allclose(back, bvecs_ras.T, atol=1e-12)
        for code in ("i", "j-", "k", "k-"):
            assert storage.axis(store_axis(code, spec)) == code
    lps = read_storage(_save(tmp_path, "lps.nii.gz", StorageSpec("LPS").apply(_ras_image(rng))))
    assert lps.axis("j-") == "j" and lps.axis("i") == "i-" and lps.axis("k") == "k"
    axis, timing = lps.slice_timing([0.0, 1.0, 2.0], "j")
    assert axis == "j" and timing == [2.0, 1.0, 0.0]   # flipped slice axis: order reversed
    with pytest.raises(ValueError, match="axis code"):
        lps.axis("x")


def test_qform_sform_rule(tmp_path, caplog):
    rng = np.random.default_rng(2)
    img = _ras_image(rng)
    shifted = img.affine.copy()
    shifted[:3, 3] += [5.0, 0.0, 0.0]
    both = nib.Nifti1Image(np.asarray(img.dataobj), None)
    both.set_sform(img.affine, code=2)
    both.set_qform(shifted, code=1)
    affine, source, note = resolve_affine(both)
    assert source == "sform" and "disagree by up to 5.00 mm" in note
    np.testing.assert_allclose(affine, img.affine)
    only_q = nib.Nifti1Image(np.asarray(img.dataobj), None)
    only_q.set_qform(shifted, code=1)
    only_q.set_sform(np.eye(4), code=0)
    assert resolve_affine(only_q)[1] == "qform"
    broken = nib.Nifti1Image(np.asarray(img.dataobj), None)
    broken.set_qform(None, code=0)
    broken.set_sform(np.diag([7.0, 7.0, 7.0, 1.0]), code=2)  # voxel sizes disagree with pixdim
    broken.header.set_zooms((2.0, 2.5, 3.0))
    affine, source, note = resolve_affine(broken)
    assert source == "base" and "sform ignored" in note and "orientation unknown" in note
    path = _save(tmp_path, "both.nii.gz", both)
    read_image(path, what="T1w")
    assert "qform and sform disagree" in caplog.text


def test_a_mask_on_the_same_grid_in_another_storage_is_accepted_else_both_grids_named(tmp_path):
    rng = np.random.default_rng(3)
    t1w_las = StorageSpec("LAS").apply(_ras_image(rng))
    t1w = read_image(_save(tmp_path, "t1w.nii.gz", t1w_las), what="T1w")
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:3, 2:5, 3:4] = 1
    mask_ras = nib.Nifti1Image(mask, _ras_image(rng).affine)
    for name, stored in (("las", StorageSpec("LAS").apply(mask_ras)), ("ras", mask_ras)):
        # a tiny affine difference (0.01 voxel), as masks saved by other tools have
        jitter = stored.affine.copy()
        jitter[:3, 3] += 0.01
        on = on_grid_of(read_image(_save(tmp_path, f"{name}.nii.gz",
                                         nib.Nifti1Image(np.asarray(stored.dataobj), jitter)),
                                   what="mask"),
                        t1w, path=name, what="manual lesion mask")
        np.testing.assert_array_equal(np.asarray(on.dataobj), mask)
        np.testing.assert_array_equal(on.affine, t1w.affine)
    moved = mask_ras.affine.copy()
    moved[:3, 3] += 4.0
    with pytest.raises(PipelineInputError, match=r"not on the grid of the T1w.*shape \(7, 8, 9\)"):
        on_grid_of(nib.Nifti1Image(mask, moved), t1w, path="m.nii.gz", what="manual lesion mask")
    with pytest.raises(PipelineInputError, match="other shape"):
        on_grid_of(nib.Nifti1Image(mask[:, :, :5], mask_ras.affine), t1w, path="m", what="mask")
    with pytest.raises(ValueError, match="another grid"):
        check_same_grid(t1w, lesion=nib.Nifti1Image(mask, moved))


def test_save_image_refuses_a_non_canonical_grid_and_states_the_contract(tmp_path):
    from pipeline.io import read_json, save_image

    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match="canonical"):
        save_image(StorageSpec("LAS").apply(_ras_image(rng)), tmp_path / "x.nii.gz")
    save_image(_ras_image(rng), tmp_path / "y.nii.gz")
    assert "closest RAS+" in read_json(tmp_path / "y.json")["Grid"]


def test_bold_slice_timing_follows_the_storage(tmp_path):
    from pipeline.func.inputs import load_bold_run

    rng = np.random.default_rng(5)
    data = rng.random((6, 7, 5, 14)).astype(np.float32) + 1
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    timing = [0.0, 0.4, 0.8, 1.2, 1.6]
    events = tmp_path / "events.tsv"
    events.write_text("onset\tduration\ttrial_type\n0\t10\tmove\n")
    runs = {}
    for name, stored, meta in (
            ("ras", nib.Nifti1Image(data, affine), {"SliceEncodingDirection": "k",
                                                   "SliceTiming": timing}),
            # stored with z reversed (LAI), timing listed along the stored axis
            ("lai", nib.Nifti1Image(np.ascontiguousarray(data[::-1, :, ::-1]),
                                    affine @ np.array([[-1, 0, 0, 5], [0, 1, 0, 0],
                                                       [0, 0, -1, 4], [0, 0, 0, 1.0]])),
             {"SliceEncodingDirection": "k", "SliceTiming": timing[::-1]}),
            # the same file as ras, timing given in the reverse order of k ("k-")
            ("kminus", nib.Nifti1Image(data, affine), {"SliceEncodingDirection": "k-",
                                                      "SliceTiming": timing[::-1]})):
        stored.header.set_zooms((3.0, 3.0, 3.0, 2.0))
        path = _save(tmp_path, f"{name}_bold.nii.gz", stored)
        meta = {"RepetitionTime": 2.0, **meta}
        (tmp_path / f"{name}_bold.json").write_text(json.dumps(meta))
        runs[name] = load_bold_run(path, events, metadata=meta)
    for name in ("lai", "kminus"):
        np.testing.assert_array_equal(runs[name].image.get_fdata(), runs["ras"].image.get_fdata())
        np.testing.assert_allclose(runs[name].slice_timing_s, timing)
        assert runs[name].slice_axis == 2

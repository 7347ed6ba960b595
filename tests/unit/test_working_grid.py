"""T1w finer than anat.max_voxel_mm: one working grid for every T1w-space step, and a
manual mask drawn on the raw grid carried to it with its volume (known sphere)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from pipeline.anat.inputs import load_t1w, manual_lesion
from pipeline.errors import PipelineInputError
from pipeline.lesion.manual import read_manual_mask

RADIUS_MM = 6.0


def _write(tmp_path, voxel_mm=0.5, n=64, flip_x=False):
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = -voxel_mm * n / 2
    ijk = np.indices((n, n, n)).reshape(3, -1).T
    xyz = ijk * voxel_mm + affine[:3, 3]
    inside = (np.linalg.norm(xyz - [3.0, -2.0, 1.0], axis=1) <= RADIUS_MM).reshape(n, n, n)
    t1w = (100.0 + 50.0 * inside).astype(np.float32)
    mask = inside.astype(np.uint8)
    if flip_x:  # stored LAS, as dcm2niix writes
        flip = np.diag([-1.0, 1, 1, 1])
        flip[0, 3] = (n - 1) * voxel_mm
        affine = affine @ flip
        t1w, mask = t1w[::-1], mask[::-1]
    nib.save(nib.Nifti1Image(t1w, affine), tmp_path / "t1w.nii.gz")
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
    return tmp_path / "t1w.nii.gz", tmp_path / "mask.nii.gz", int(inside.sum()) * voxel_mm**3


@pytest.mark.parametrize("flip_x", [False, True])
def test_fine_t1w_goes_to_the_working_grid_and_the_mask_keeps_its_volume(tmp_path, flip_x):
    t1w_path, mask_path, volume_mm3 = _write(tmp_path, flip_x=flip_x)
    raw = load_t1w(t1w_path)
    work = load_t1w(t1w_path, 0.8)
    assert np.allclose(np.sqrt((work.affine[:3, :3] ** 2).sum(0)), 0.8)
    assert np.allclose(np.sqrt((raw.affine[:3, :3] ** 2).sum(0)), 0.5)
    mask = manual_lesion(mask_path, work, threshold=0.5, drawn_on=raw)
    assert mask.shape == work.shape and np.allclose(mask.affine, work.affine)
    got = mask.get_fdata().sum() * 0.8**3
    assert got == pytest.approx(volume_mm3, rel=0.05)  # a sphere of 905 mm3; edge voxels
    assert got == pytest.approx(4 / 3 * np.pi * RADIUS_MM**3, rel=0.06)
    read = read_manual_mask(mask_path, work, drawn_on=raw)
    assert "working grid" in read.rule


def test_coarse_t1w_or_zero_keeps_its_grid(tmp_path):
    t1w_path, _, _ = _write(tmp_path, voxel_mm=1.0, n=32)
    img = load_t1w(t1w_path, 0.8)
    assert np.allclose(np.sqrt((img.affine[:3, :3] ** 2).sum(0)), 1.0)
    (tmp_path / "fine").mkdir()
    fine, _, _ = _write(tmp_path / "fine", voxel_mm=0.5)
    assert np.allclose(np.sqrt((load_t1w(fine, 0).affine[:3, :3] ** 2).sum(0)), 0.5)


def test_mask_on_the_working_grid_is_taken_as_is_and_another_grid_refused(tmp_path):
    t1w_path, _, _ = _write(tmp_path)
    raw, work = load_t1w(t1w_path), load_t1w(t1w_path, 0.8)
    on_work = tmp_path / "on_work.nii.gz"
    data = np.zeros(work.shape, np.uint8)
    data[20:24, 20:24, 20:24] = 1
    nib.save(nib.Nifti1Image(data, work.affine), on_work)
    assert read_manual_mask(on_work, work, drawn_on=raw).mask.sum() == 64  # e.g. a reviewed mask
    other = tmp_path / "other.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 20), np.uint8), np.diag([1.0, 1, 1, 1])), other)
    with pytest.raises(PipelineInputError, match="not on the grid"):
        read_manual_mask(other, work, drawn_on=raw)

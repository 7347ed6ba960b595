"""Resources from the input: a + b x Mvoxels of the session's image (on the T1w working
grid when finer than anat.max_voxel_mm), times the SLURM attempt."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from pipeline import resources


def _image(tmp_path, shape, voxel_mm, name="t1w.nii.gz"):
    path = tmp_path / name
    nib.save(nib.Nifti1Image(np.zeros(shape, np.uint8), np.diag([voxel_mm] * 3 + [1.0])), path)
    return path


def test_voxel_count_follows_the_working_grid(tmp_path):
    fine = _image(tmp_path, (200, 240, 200), 0.5)
    assert resources.mvoxels(fine) == pytest.approx(9.6)
    # on the 1 mm working grid: an eighth of the voxels
    assert resources.mvoxels(fine, 1.0) == pytest.approx(1.2)
    coarse = _image(tmp_path, (100, 120, 100), 1.0, "coarse.nii.gz")
    assert resources.mvoxels(coarse, 1.0) == pytest.approx(1.2)
    dwi = _image(tmp_path, (50, 60, 40, 33), 2.0, "dwi.nii.gz")
    assert resources.mvoxels(dwi) == pytest.approx(3.96)
    assert resources.mvoxels(None) == 0.0


def test_declared_resources_scale_with_size_and_attempt():
    entry = {"mem_a": 1000, "mem_b": 100, "time_a": 5, "time_b": 2.0}
    assert resources.declared(entry, 10.0) == (2000, 26)
    assert resources.declared(entry, 10.0, attempt=2) == (4000, 51)


def test_every_heavy_rule_has_a_model():
    model = resources.load_model()
    for rule in ("anat_brainmask", "anat_register", "anat_segment", "anat_thickness",
                 "lesion_segment", "lesion_load", "dwi_preproc", "dwi_regions", "func_preproc",
                 "func_glm"):
        assert {"image", "mem_a", "mem_b", "time_a", "time_b"} <= set(model[rule])

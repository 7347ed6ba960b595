"""Gradient reading, frames, rotation and the named errors of bad DWI input."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from pipeline.dwi.gradients import (
    fsl_to_voxel,
    load_dwi,
    rotate_bvecs,
    rotation_of,
    voxel_to_world,
    world_to_voxel,
)
from pipeline.errors import PipelineInputError
from pipeline.simulate.space import rigid_matrix
from pipeline.simulate.tensor import bvecs_fsl_convention, gradient_scheme

RAS = np.diag([2.0, 2.0, 2.5, 1.0])
LAS = np.diag([-2.0, 2.0, 2.5, 1.0])


@pytest.mark.parametrize("affine", [RAS, LAS])
def test_fsl_file_frame_round_trip(affine):
    _, bvecs = gradient_scheme(n_b0=2, n_directions=10)
    on_disk = bvecs_fsl_convention(bvecs, affine).T          # what the simulator writes
    back = fsl_to_voxel(on_disk, affine)
    np.testing.assert_allclose(back, bvecs.T)
    if np.linalg.det(affine[:3, :3]) > 0:
        assert not np.allclose(on_disk[:, 0], bvecs.T[:, 0])  # the file is not the voxel frame


def test_voxel_world_frames_and_rotation():
    oblique = np.eye(4)
    oblique[:3, :3] = rigid_matrix((0, 0, 0), (10.0, -20.0, 30.0))[:3, :3] @ np.diag([-2.0, 2.0, 3.0])
    v = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    world = voxel_to_world(v, oblique)
    np.testing.assert_allclose(np.linalg.norm(world, axis=1), 1.0)
    np.testing.assert_allclose(world_to_voxel(world, oblique), v, atol=1e-12)
    # x voxel axis points to world -x rotated
    np.testing.assert_allclose(world[1], -rigid_matrix((0, 0, 0), (10.0, -20.0, 30.0))[:3, 0])
    rotation = rigid_matrix((0, 0, 0), (0.0, 0.0, 90.0))[:3, :3]
    np.testing.assert_allclose(rotation_of(rotation @ np.diag([1.1, 0.9, 1.0])), rotation, atol=0.1)
    # head turned +90 deg about z: the scanner's x gradient is the head's -y direction
    g = np.array([[1.0, 0.0, 0.0]])
    out = rotate_bvecs(g, rotation[None], RAS)
    np.testing.assert_allclose(out, [[0.0, -1.0, 0.0]], atol=1e-12)


def _write(tmp_path, shape=(5, 6, 7), n=8, bvals=None, bvecs=None, name="dwi"):
    rng = np.random.default_rng(0)
    img = nib.Nifti1Image(rng.uniform(10, 100, shape + ((n,) if n else ())).astype(np.float32), RAS)
    path = tmp_path / f"{name}.nii.gz"
    nib.save(img, path)
    if bvals is None:
        bvals, vecs = gradient_scheme(n_b0=1, n_directions=max(n - 1, 6))
        bvals, bvecs = bvals[:n], vecs[:, :n]
    np.savetxt(tmp_path / f"{name}.bval", np.atleast_2d(bvals), fmt="%g")
    np.savetxt(tmp_path / f"{name}.bvec", np.atleast_2d(bvecs), fmt="%.6f")
    return path, tmp_path / f"{name}.bval", tmp_path / f"{name}.bvec"


def test_good_input_loads_in_voxel_frame(tmp_path):
    bvals, bvecs = gradient_scheme(n_b0=2, n_directions=8)
    dwi, bval, bvec = _write(tmp_path, n=10, bvals=bvals, bvecs=bvecs_fsl_convention(bvecs, RAS))
    loaded = load_dwi(dwi, bval, bvec)
    np.testing.assert_allclose(loaded.bvecs, bvecs.T, atol=1e-6)
    assert loaded.is_b0.sum() == 2 and loaded.image.shape == (5, 6, 7, 10)


@pytest.mark.parametrize("problem, message", [
    ("bval_count", r"dwi\.bval: has 9 b-values but .* has 10 volumes"),
    ("bvec_count", r"dwi\.bvec: has 9 b-vectors but .* has 10 volumes"),
    ("non_unit", r"dwi\.bvec: b-vectors of volumes \[3\] are not unit length"),
    ("no_b0", r"dwi\.bval: has no b=0 volume"),
    ("three_d", r"dwi\.nii\.gz: DWI must be 4D"),
    ("few_directions", r"dwi\.bval: has 4 diffusion-weighted volumes; a tensor fit needs"),
])
def test_bad_input_is_a_named_error(tmp_path, problem, message):
    bvals, bvecs = gradient_scheme(n_b0=2, n_directions=8)
    n = 10
    if problem == "bval_count":
        bvals = bvals[:-1]
    elif problem == "bvec_count":
        bvecs = bvecs[:, :-1]
    elif problem == "non_unit":
        bvecs = bvecs.copy()
        bvecs[:, 3] *= 0.5
    elif problem == "no_b0":
        bvals = np.full(n, 1000.0)
        bvecs = np.where(np.linalg.norm(bvecs, axis=0) > 0, bvecs, [[1.0], [0.0], [0.0]])
    elif problem == "few_directions":
        bvals, bvecs = bvals[:6], bvecs[:, :6]
        n = 6
    shape_n = None if problem == "three_d" else n
    dwi, bval, bvec = _write(tmp_path, n=shape_n, bvals=bvals, bvecs=bvecs)
    with pytest.raises(PipelineInputError, match=message):
        load_dwi(dwi, bval, bvec)


def test_rotation_matches_the_world_frame_formula_on_oblique_storage():
    """dipy's reorient_bvecs through the voxel frame gives R_i^T g_i in the world frame
    (the formula of Leemans & Jones 2009 written out), for an oblique LAS-like affine;
    b=0 rows and zero vectors stay zero."""
    rng = np.random.default_rng(3)
    oblique = np.eye(4)
    oblique[:3, :3] = rigid_matrix((0, 0, 0), (12.0, -7.0, 25.0))[:3, :3] @ np.diag([-2.0, 2.0, 2.5])
    n = 9
    g = rng.normal(size=(n, 3))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    g[0] = 0.0
    bvals = np.full(n, 1000.0)
    bvals[[0, 4]] = 0.0
    rotations = np.stack([rigid_matrix((0, 0, 0), tuple(rng.uniform(-8, 8, 3)))[:3, :3]
                          for _ in range(n)])
    out = rotate_bvecs(g, rotations, oblique, bvals)
    expected = world_to_voxel(np.einsum("nji,nj->ni", rotations, voxel_to_world(g, oblique)),
                              oblique)
    weighted = bvals > 0
    np.testing.assert_allclose(out[weighted], expected[weighted], atol=1e-10)
    np.testing.assert_array_equal(out[~weighted], 0.0)
    assert np.abs(out[weighted] - g[weighted]).max() > 0.05  # the rotations did something

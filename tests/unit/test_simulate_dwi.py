"""Unit tests of the diffusion MRI phantom (pipeline.simulate.dwi)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from dipy.core.gradients import gradient_table
from dipy.reconst.dti import TensorModel
from scipy import ndimage

from pipeline.simulate import dwi as simulate_dwi_module
from pipeline.simulate.dwi import simulate_dwi
from pipeline.simulate.space import (
    SessionMap,
    apply_affine,
    grid_for_fov,
    random_subject_warp,
    rigid_matrix,
)
from pipeline.simulate.tensor import (
    bvecs_fsl_convention,
    eigenvalues_for,
    fit_single_tensor,
    fractional_anisotropy,
    gradient_scheme,
)

NOISE_AND_MOTION_FREE = {"snr_b0": np.inf, "max_translation_mm": 0.0,
                         "max_rotation_deg": 0.0, "eddy_mm": 0.0}


@pytest.fixture(scope="module")
def session_map():
    warp = random_subject_warp(np.random.default_rng(0))
    return SessionMap(warp, rigid_matrix((1.0, -2.0, 0.5), (2.0, -1.0, 3.0)))


def _linear_scanner_from_template(session_map, extra_pose):
    """3x3 linear part of the template -> DWI scanner map."""
    linear = (session_map.warp.template_from_native[:3, :3]
              @ session_map.native_from_scanner[:3, :3] @ extra_pose[:3, :3])
    return np.linalg.inv(linear)


def _sphere_lesion(session_map, centre_mni, radius_mm, voxel_mm=2.0):
    """Binary lesion on a structural grid (non-cubic), around a template point."""
    shape, affine = grid_for_fov((180.0, 216.0, 170.0), voxel_mm)
    linear = session_map.warp.template_from_native @ session_map.native_from_scanner
    centre = apply_affine(np.linalg.inv(linear), np.asarray([centre_mni], dtype=float))[0]
    ijk = np.indices(shape).reshape(3, -1).T.astype(float)
    inside = np.linalg.norm(apply_affine(affine, ijk) - centre, axis=1) < radius_mm
    return nib.Nifti1Image(inside.reshape(shape).astype(np.uint8), affine)


def _simulate(layers, session_map, seed=1, **options):
    defaults = {"lesion": None, "lesion_stage": None, "lesion_side": "left",
                "voxel_mm": 4.0, "n_directions": 12}
    return simulate_dwi(rng=np.random.default_rng(seed), layers=layers,
                        session_map=session_map, **{**defaults, **options})


def test_gradient_table_and_shapes(layers, session_map):
    result = _simulate(layers, session_map)
    bvals, bvecs = result.bvals, result.bvecs
    is_b0 = bvals == 0
    norms = np.linalg.norm(bvecs, axis=0)
    assert is_b0.sum() >= 3 and is_b0[0]
    assert np.all(np.abs(norms[~is_b0] - 1.0) < 1e-6)
    assert np.all(bvecs[:, is_b0] == 0)
    assert np.all(bvals[~is_b0] == 1000.0)
    assert len(bvals) == bvecs.shape[1] == result.image.shape[3] == 15
    assert result.image.shape[:3] == (50, 58, 40)
    assert result.image.get_data_dtype() == np.float32
    assert np.linalg.det(result.image.affine[:3, :3]) > 0
    assert result.motion.shape == (15, 6) and np.all(result.motion[0] == 0)
    assert np.abs(result.motion[:, :3]).max() <= 1.0 + 1e-12
    assert np.abs(result.motion[:, 3:]).max() <= 1.0 + 1e-12
    assert result.sidecar["PhaseEncodingDirection"] == "j-"
    assert result.truth["n_volumes"] == 15 and result.truth["shells"] == [1000.0]
    assert np.isnan(result.truth["fa_lesion"])
    # directions spread over the half sphere (antipodally symmetric angles)
    cosines = np.abs(bvecs[:, ~is_b0].T @ bvecs[:, ~is_b0])
    np.fill_diagonal(cosines, 0.0)
    assert np.degrees(np.arccos(cosines.max())) > 25.0
    # the protocol is fixed: the same table for every session
    np.testing.assert_array_equal(gradient_scheme(n_b0=3, n_directions=12)[1], bvecs)
    fsl = bvecs_fsl_convention(bvecs, result.image.affine)
    np.testing.assert_array_equal(fsl, bvecs * np.array([[-1.0], [1.0], [1.0]]))


@pytest.mark.parametrize("fa", [0.0, 0.15, 0.45, 0.7, 0.95])
@pytest.mark.parametrize("md", [0.7e-3, 3.0e-3])
def test_eigenvalues_for(fa, md):
    eigenvalues = eigenvalues_for(fa, md)
    assert eigenvalues.shape == (3,)
    assert eigenvalues[0] >= eigenvalues[1] == eigenvalues[2] >= 0
    assert abs(fractional_anisotropy(eigenvalues) - fa) < 1e-9
    assert abs(eigenvalues.mean() - md) < 1e-9 * md


def test_eigenvalues_for_broadcasts():
    fa = np.array([[0.2, 0.5], [0.6, 0.8]])
    eigenvalues = eigenvalues_for(fa, 0.8e-3)
    assert eigenvalues.shape == (2, 2, 3)
    np.testing.assert_allclose(fractional_anisotropy(eigenvalues), fa, atol=1e-9)


def test_fit_single_tensor_recovers_a_single_tensor():
    bvals, bvecs = gradient_scheme(n_b0=2, n_directions=12)
    rotation = rigid_matrix((0.0, 0.0, 0.0), (30.0, -20.0, 50.0))[:3, :3]
    eigenvalues = eigenvalues_for(0.7, 0.7e-3)
    tensor = rotation @ np.diag(eigenvalues) @ rotation.T
    signal = 800.0 * np.exp(-bvals * np.einsum("in,ij,jn->n", bvecs, tensor, bvecs))
    evals, evecs = fit_single_tensor(signal[None], bvals, bvecs)
    np.testing.assert_allclose(evals[0], np.sort(eigenvalues), rtol=1e-9)
    assert abs(abs(evecs[0, :, 2] @ rotation[:, 0]) - 1.0) < 1e-9


def test_noise_free_tensor_fit_matches_truth(layers, session_map):
    """The truth maps are the single tensor fitting the noiseless signal, so dipy's
    WLS fit of a still, noiseless phantom reproduces them voxel by voxel."""
    result = _simulate(layers, session_map, voxel_mm=2.0, n_directions=30,
                       cst_fa_change=-0.06, **NOISE_AND_MOTION_FREE)
    gtab = gradient_table(result.bvals, bvecs=result.bvecs.T)
    data = result.image.get_fdata()
    brain = data[..., 0] > 0
    fit = TensorModel(gtab, fit_method="WLS").fit(data, mask=brain)
    fa_truth = result.truth_maps["fa"].get_fdata()
    md_truth = result.truth_maps["md"].get_fdata()
    v1_truth = result.truth_maps["v1"].get_fdata()
    assert np.abs(fit.fa[brain] - fa_truth[brain]).max() < 2e-3
    assert np.abs(fit.md[brain] - md_truth[brain]).max() < 2e-6
    z_scanner = _linear_scanner_from_template(session_map, result.extra_pose) @ [0.0, 0.0, 1.0]
    z_scanner /= np.linalg.norm(z_scanner)
    truth = result.truth
    for side in ("ipsilesional", "contralesional"):
        mask = result.truth_maps[f"cst_{side}"].get_fdata() > 0
        assert mask.sum() > 200
        assert abs(fit.fa[mask].mean() - truth[f"fa_cst_{side}_apparent"]) < 1e-3
        assert abs(fit.md[mask].mean() - truth[f"md_cst_{side}_apparent"]) < 1e-6
        # "pure" white matter (fraction > 0.9) still holds a few percent of GM and
        # CSF, which lowers the apparent FA below the planted tissue FA
        assert 0.005 < truth[f"fa_cst_{side}"] - truth[f"fa_cst_{side}_apparent"] < 0.03
        assert abs(truth[f"md_cst_{side}_apparent"] - truth[f"md_cst_{side}"]) < 0.02e-3
        v1 = fit.evecs[mask][:, :, 0]
        to_z = np.degrees(np.arccos(np.clip(np.abs(v1 @ z_scanner), 0, 1)))
        to_truth = np.degrees(np.arccos(np.clip(np.abs((v1 * v1_truth[mask]).sum(1)), 0, 1)))
        assert to_z.mean() < 15.0
        assert to_truth.max() < 1.0
    assert truth["fa_cst_ipsilesional"] == pytest.approx(0.64)
    assert truth["fa_cst_contralesional"] == pytest.approx(0.70)
    assert truth["fa_nawm"] - 0.03 < truth["fa_nawm_apparent"] < truth["fa_nawm"]


def _cst_fa_with_motion_undone(result) -> dict:
    """CST FA after resampling every volume back to the volume-0 head pose with the
    recorded motion and eddy shift (cubic B-spline) and turning its gradient into
    the head frame, minus the apparent truth."""
    data = result.image.get_fdata(dtype=np.float32)
    affine = result.image.affine
    bvecs = np.empty_like(result.bvecs)
    for i in range(len(result.bvals)):
        pose = rigid_matrix(result.motion[i, :3], result.motion[i, 3:])
        eddy = np.eye(4)
        eddy[1, 3] = 0.3 * result.bvecs[1, i]  # eddy_mm = 0.3
        vox = np.linalg.inv(affine) @ eddy @ pose @ affine
        data[..., i] = ndimage.affine_transform(data[..., i], vox[:3, :3], offset=vox[:3, 3],
                                                order=3)
        bvecs[:, i] = pose[:3, :3].T @ result.bvecs[:, i]
    model = TensorModel(gradient_table(result.bvals, bvecs=bvecs.T), fit_method="WLS")
    errors = {}
    for side in ("ipsilesional", "contralesional"):
        mask = result.truth_maps[f"cst_{side}"].get_fdata() > 0
        fa = model.fit(data, mask=mask).fa[mask].mean()
        errors[side] = float(fa - result.truth[f"fa_cst_{side}_apparent"])
    return errors


def test_head_motion_does_not_blur_the_phantom(layers, session_map, monkeypatch):
    """Undoing the recorded motion gives back the still CST FA: the phantom moves the
    head by a cubic B-spline, close to the exact (band-limited) move, as a scanner
    does. Trilinear resampling blurred each moved volume and lowered the FA by
    0.02-0.04, a loss no pipeline could recover."""
    moving = {**NOISE_AND_MOTION_FREE, "max_translation_mm": 1.0, "max_rotation_deg": 1.0,
              "eddy_mm": 0.3}
    errors = {}
    for order in (simulate_dwi_module.MOTION_SPLINE_ORDER, 1):
        monkeypatch.setattr(simulate_dwi_module, "MOTION_SPLINE_ORDER", order)
        result = _simulate(layers, session_map, seed=2, n_directions=20, **moving)
        assert np.abs(result.motion).max() > 0.5
        errors[order] = _cst_fa_with_motion_undone(result)
    # measured at 4 mm: -0.004 / -0.006 (cubic) vs -0.037 / -0.039 (trilinear)
    assert all(abs(e) < 0.01 for e in errors[3].values()), errors
    assert all(e < -0.02 for e in errors[1].values()), errors


def test_cst_fa_change_moves_only_the_ipsilesional_truth(layers, session_map):
    base = _simulate(layers, session_map, lesion_side="right", **NOISE_AND_MOTION_FREE)
    changed = _simulate(layers, session_map, lesion_side="right", cst_fa_change=-0.1,
                        **NOISE_AND_MOTION_FREE)
    for result in (base, changed):
        assert result.truth_maps["cst_ipsilesional"].get_fdata().sum() > 20
    difference = base.truth["fa_cst_ipsilesional"] - changed.truth["fa_cst_ipsilesional"]
    assert difference == pytest.approx(0.1, abs=1e-9)
    assert changed.truth["fa_cst_contralesional"] == base.truth["fa_cst_contralesional"]
    assert changed.truth["md_cst_ipsilesional"] == pytest.approx(base.truth["md_cst_ipsilesional"])
    # the images differ only in the ipsilesional (right, x > 0) hemisphere
    diff = np.abs(base.image.get_fdata() - changed.image.get_fdata()).sum(axis=(1, 2, 3))
    assert diff[:20].sum() == 0 and diff[30:].sum() > 0


def test_same_seed_gives_identical_results(layers, session_map):
    lesion = _sphere_lesion(session_map, (-26.0, -14.0, 18.0), 10.0)
    runs = [_simulate(layers, session_map, seed=7, lesion=lesion, lesion_stage="subacute")
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].image.get_fdata(), runs[1].image.get_fdata())
    np.testing.assert_array_equal(runs[0].motion, runs[1].motion)
    np.testing.assert_array_equal(runs[0].bvecs, runs[1].bvecs)
    for name in runs[0].truth_maps:
        np.testing.assert_array_equal(runs[0].truth_maps[name].get_fdata(),
                                      runs[1].truth_maps[name].get_fdata())
    assert runs[0].truth == runs[1].truth
    other = _simulate(layers, session_map, seed=8, lesion=lesion, lesion_stage="subacute")
    assert not np.array_equal(other.motion, runs[0].motion)


def test_lesion_lowers_fa_and_raises_md(layers, session_map):
    lesion = _sphere_lesion(session_map, (-26.0, -14.0, 18.0), 12.0)
    chronic = _simulate(layers, session_map, lesion=lesion, lesion_stage="chronic",
                        **NOISE_AND_MOTION_FREE)
    truth = chronic.truth
    assert truth["fa_lesion"] < 0.6 * truth["fa_nawm"]
    assert truth["md_lesion"] > 1.3 * truth["md_nawm"]
    fraction = chronic.truth_maps["lesion"].get_fdata()
    sphere_ml = 4.0 / 3.0 * np.pi * 12.0**3 / 1000.0
    assert fraction.sum() * 4.0**3 / 1000.0 == pytest.approx(sphere_ml, rel=0.15)
    # chronic lesions are brighter at b=0 (CSF-like T2) than the same tissue intact
    intact = _simulate(layers, session_map, **NOISE_AND_MOTION_FREE)
    core = fraction > 0.9
    assert (chronic.image.get_fdata()[..., 0][core].mean()
            > 1.3 * intact.image.get_fdata()[..., 0][core].mean())
    with pytest.raises(ValueError, match="lesion_stage"):
        _simulate(layers, session_map, lesion=lesion, lesion_stage=None)


def _centre_of_mass(volume, affine):
    ijk = np.indices(volume.shape).reshape(3, -1).T.astype(float)
    weights = volume.ravel()
    return apply_affine(affine, (ijk * weights[:, None]).sum(0, keepdims=True) / weights.sum())[0]


def test_motion_and_eddy_move_the_head_as_recorded(layers, session_map):
    still = _simulate(layers, session_map, **NOISE_AND_MOTION_FREE)
    moving = _simulate(layers, session_map, **{**NOISE_AND_MOTION_FREE,
                                               "max_translation_mm": 3.0,
                                               "max_rotation_deg": 3.0, "eddy_mm": 2.0})
    affine = still.image.affine
    np.testing.assert_array_equal(still.image.dataobj[..., 0], moving.image.dataobj[..., 0])
    for i in np.flatnonzero(moving.bvals == 0)[1:]:  # b=0: rigid motion only
        pose = rigid_matrix(moving.motion[i, :3], moving.motion[i, 3:])
        expected = apply_affine(pose, _centre_of_mass(still.image.dataobj[..., i], affine)[None])
        moved = _centre_of_mass(moving.image.dataobj[..., i], affine)
        assert np.abs(moved - expected[0]).max() < 0.3
    # diffusion-weighted: head-frame gradient and eddy shift along y
    i = int(np.argmax(np.abs(moving.bvecs[1])))
    pose = rigid_matrix(moving.motion[i, :3], moving.motion[i, 3:])
    no_eddy = _simulate(layers, session_map, **{**NOISE_AND_MOTION_FREE,
                                                "max_translation_mm": 3.0,
                                                "max_rotation_deg": 3.0})
    shift = (_centre_of_mass(moving.image.dataobj[..., i], affine)
             - _centre_of_mass(no_eddy.image.dataobj[..., i], affine))
    np.testing.assert_allclose(shift, [0.0, 2.0 * moving.bvecs[1, i], 0.0], atol=0.2)
    assert np.abs(moving.motion).max() > 0.5
    assert not np.allclose(pose, np.eye(4))

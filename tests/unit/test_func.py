"""Unit tests of the fMRI stream's science (pipeline.func) against phantom truth."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from pipeline.func.activation import bootstrap_laterality_index, laterality_index, m1_activation
from pipeline.func.glm import confound_regressors, fit_first_level
from pipeline.func.motion import (
    framewise_displacement,
    friston24,
    parameters_from_transforms,
    realign,
)
from pipeline.func.preprocess import preprocess_bold, slice_timing_correct
from pipeline.simulate import bold as bold_sim
from pipeline.simulate.space import SessionMap, random_subject_warp, rigid_matrix

N_DUMMY = 2


def _phantom(layers, *, seed, ipsi, contra, n_volumes=80, voxel_mm=4.0):
    rng = np.random.default_rng(seed)
    warp = random_subject_warp(rng)
    smap = SessionMap(warp, rigid_matrix((1.0, -2.0, 1.0), (2.0, -1.0, 3.0)))
    return bold_sim.simulate_bold(
        rng=rng, layers=layers, session_map=smap, lesion=None, lesion_side="right",
        amplitude_ipsilesional=ipsi, amplitude_contralesional=contra, n_volumes=n_volumes,
        voxel_mm=voxel_mm, n_dummy=N_DUMMY)


@pytest.fixture(scope="module")
def active(layers):
    return _phantom(layers, seed=3, ipsi=1.6, contra=0.6)


@pytest.fixture(scope="module")
def active_pre(active):
    return preprocess_bold(active.image, tr_s=active.sidecar["RepetitionTime"], n_dummy=N_DUMMY,
                           slice_timing_s=active.sidecar["SliceTiming"])


def _truth_relative(motion, reference):
    """Truth motion re-expressed relative to volume ``reference`` (M_i inv(M_r))."""
    mats = np.array([rigid_matrix(p[:3], p[3:]) for p in motion])
    return parameters_from_transforms(mats @ np.linalg.inv(mats[reference]))


def _glm(result, pre, *, motion_model="24"):
    conf = confound_regressors(pre.motion.parameters, pre.confounds["framewise_displacement"],
                               motion_model=motion_model)
    brain = ndimage.binary_erosion(pre.mask.get_fdata() > 0, iterations=1)
    mask = nib.Nifti1Image(brain.astype(np.uint8), pre.mask.affine)
    return fit_first_level(pre.bold, result.events, conf, tr_s=result.sidecar["RepetitionTime"],
                           mask=mask, contrasts={"task": "move_affected_hand"},
                           slice_time_ref=pre.slice_time_ref, smoothing_fwhm_mm=6.0)


def test_rotation_parameters_round_trip():
    rng = np.random.default_rng(0)
    params = np.c_[rng.uniform(-5, 5, (20, 3)), rng.uniform(-10, 10, (20, 3))]
    mats = np.array([rigid_matrix(p[:3], p[3:]) for p in params])
    np.testing.assert_allclose(parameters_from_transforms(mats), params, atol=1e-9)


def test_framewise_displacement_matches_the_phantom_definition(active):
    np.testing.assert_allclose(framewise_displacement(active.motion),
                               bold_sim.framewise_displacement(active.motion))
    assert friston24(active.motion).shape == (active.motion.shape[0], 24)


def test_motion_recovered_in_the_truth_convention(active, active_pre):
    """Estimated motion vs simulated motion: RMS <= 0.2 mm and <= 0.2 degrees.

    The estimate is relative to the first kept volume (after the dummy scans) and
    expressed like the truth (rotation Rz Ry Rx about the scanner origin), so the
    truth is re-expressed relative to that volume: M_i inv(M_r).
    """
    truth = _truth_relative(active.motion, N_DUMMY)[N_DUMMY:]
    error = active_pre.motion.parameters - truth
    assert np.sqrt((error[:, :3] ** 2).mean()) <= 0.2
    assert np.sqrt((error[:, 3:] ** 2).mean()) <= 0.2
    assert np.abs(truth).max() > 0.5  # the phantom did move
    # without the conversion (e.g. a bare volume-0 frame) the comparison would be off
    assert active_pre.bold.shape[3] == active.image.shape[3] - N_DUMMY


def test_motion_recovered_closer_without_trilinear_phantom_blur(layers):
    """Noise-free runs: the cubic-spline phantom's motion is recovered ~10x closer.

    The trilinear phantom blurs each moved volume by an amount set by its
    sub-voxel shift, which no rigid transform undoes; this is the motion-locked
    residual that realignment (and the GLM) then sees.
    """
    errors = {}
    for interpolation in ("linear", "cubic"):
        rng = np.random.default_rng(11)
        smap = SessionMap(random_subject_warp(rng), rigid_matrix((1.0, -2.0, 1.0), (2.0, -1.0, 3.0)))
        result = bold_sim.simulate_bold(
            rng=rng, layers=layers, session_map=smap, lesion=None, lesion_side="left",
            amplitude_ipsilesional=0.0, amplitude_contralesional=0.0, n_volumes=12, voxel_mm=4.0,
            tsnr=np.inf, drift_percent=0.0, motion_interpolation=interpolation)
        estimate = realign(np.asarray(result.image.dataobj, dtype=np.float32), result.image.affine)
        error = estimate.parameters - _truth_relative(result.motion, 0)
        errors[interpolation] = float(np.sqrt((error[:, :3] ** 2).mean()))
    assert errors["cubic"] < 0.01
    assert errors["cubic"] < errors["linear"] / 3


def test_realign_on_a_known_rigid_shift():
    """A volume moved by a known transform: realign returns that transform (not its inverse)."""
    rng = np.random.default_rng(1)
    shape = (30, 34, 26)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = -1.5 * (np.array(shape) - 1)
    base = ndimage.gaussian_filter(rng.normal(size=shape), 2.5)
    yy = np.indices(shape) - (np.array(shape)[:, None, None, None] - 1) / 2
    base = (base * 20 + 100) * (np.sqrt((yy**2).sum(0)) < 11)
    move = rigid_matrix((1.2, -0.7, 0.5), (2.0, -1.5, 1.0))
    vox = np.linalg.inv(affine) @ np.linalg.inv(move) @ affine
    moved = ndimage.affine_transform(base, vox[:3, :3], offset=vox[:3, 3], order=3)
    est = realign(np.stack([base, moved], axis=-1).astype(np.float32), affine)
    np.testing.assert_allclose(est.parameters[1], [1.2, -0.7, 0.5, 2.0, -1.5, 1.0], atol=0.1)


def test_slice_timing_correction_aligns_slices():
    tr, n = 2.0, 120
    times = np.array([0.0, 1.0, 0.5, 1.5])
    t = np.arange(n) * tr
    data = np.zeros((3, 2, 4, n), dtype=np.float32)
    for k, s in enumerate(times):
        data[:, :, k, :] = np.sin(2 * np.pi * (t + s) / 40.0)
    out = slice_timing_correct(data, times, tr_s=tr)
    want = np.sin(2 * np.pi * (t + 1.0) / 40.0)  # the middle of the TR
    assert np.abs(out[0, 0, :, 3:-3] - want[3:-3]).max() < 0.01
    assert np.abs(data[0, 0, 0, 3:-3] - want[3:-3]).max() > 0.1


def test_glm_peak_in_the_correct_hemisphere_and_li(active, active_pre):
    glm = _glm(active, active_pre)
    z = glm.z_maps["task"].get_fdata()
    psc = glm.effect_maps["task"].get_fdata()
    m1 = {h: active.truth_maps[f"m1_{h}"].get_fdata() > 0 for h in ("ipsilesional", "contralesional")}
    metrics = m1_activation(z, psc, m1, lesion=None, z_threshold=3.1, voxel_volume_ml=0.064,
                            rng=np.random.default_rng(0))
    assert active.truth["peak_hemisphere"] == "ipsilesional"
    assert metrics["bold_m1_peak_z_ipsilesional"] > metrics["bold_m1_peak_z_contralesional"]
    assert metrics["bold_m1_peak_z_ipsilesional"] > 3.1
    assert metrics["bold_m1_active_ml_ipsilesional"] > 0
    # the ROI (summed PSC) LI estimates the truth's definition but is compressed towards 0
    # by noise (see benchmarks/func_accuracy.py); the thresholded ones exaggerate
    assert 0 < metrics["bold_laterality_index_roi"] < active.truth["laterality_index"] + 0.1
    assert abs(metrics["bold_laterality_index_roi"] - active.truth["laterality_index"]) <= 0.25
    assert metrics["bold_laterality_index_threshold"] > 0
    assert metrics["bold_laterality_index_bootstrap"] > 0
    assert set(glm.design_matrix.columns) >= {"move_affected_hand", "trans_x", "constant"}


@pytest.fixture(scope="module")
def null_session(layers):
    result = _phantom(layers, seed=5, ipsi=0.0, contra=0.0)
    pre = preprocess_bold(result.image, tr_s=2.0, n_dummy=N_DUMMY,
                          slice_timing_s=result.sidecar["SliceTiming"])
    return result, pre, _glm(result, pre).z_maps["task"].get_fdata()


def test_null_session_zmap_is_calibrated(null_session):
    """No task effect: z over the brain is ~N(0, 1).

    nilearn's FirstLevelModel AR(1) (raw residual autocorrelation) gave SD 1.43 here.
    """
    result, _, z = null_session
    assert result.truth["task_effect"] is False
    brain = z != 0  # the GLM mask
    assert brain.sum() > 5000
    assert 0.9 <= z[brain].std() <= 1.1
    assert (z[brain] > 3.1).mean() <= 0.004  # nominal 0.001


def _max_of_null_field_quantile(region, *, fwhm_mm, voxel_mm, quantile, n_fields=300):
    """Quantile of the maximum over ``region`` of smoothed unit Gaussian noise (Monte Carlo)."""
    rng = np.random.default_rng(0)
    sigma = fwhm_mm / np.sqrt(8 * np.log(2)) / voxel_mm
    impulse = np.zeros((25, 25, 25))
    impulse[12, 12, 12] = 1.0
    scale = np.sqrt((ndimage.gaussian_filter(impulse, sigma) ** 2).sum())
    maxima = [(ndimage.gaussian_filter(rng.standard_normal(region.shape), sigma)[region]
               / scale).max() for _ in range(n_fields)]
    return float(np.quantile(maxima, quantile))


def test_null_session_m1_peak_within_the_valid_null_range(null_session):
    """M1 peak z of a null session stays below the 95th percentile of a valid null's M1 maximum.

    The acceptance criterion "no M1 voxel above z 3.1 in >= 90 % of null sessions"
    cannot be met by any valid z-map: smoothed noise (6 mm FWHM) exceeds 3.1
    somewhere in the ~35 mL of bilateral M1 in 30-60 % of sessions (Monte Carlo,
    ``null_floor_p`` in benchmarks/func_accuracy.py). What can be tested is that
    the null peak is no higher than chance allows (small-volume FWE 5 %); with
    nilearn's FirstLevelModel AR(1) it was 4.6 here, above that limit (3.7).
    """
    result, _, z = null_session
    m1 = (result.truth_maps["m1_ipsilesional"].get_fdata() > 0) | (
        result.truth_maps["m1_contralesional"].get_fdata() > 0)
    limit = _max_of_null_field_quantile(m1, fwhm_mm=6.0, voxel_mm=4.0, quantile=0.95)
    assert 3.1 < limit < 4.5
    assert z[m1].max() <= limit


def test_m1_activation_excludes_lesion_voxels():
    shape = (6, 5, 4)
    z = np.zeros(shape)
    psc = np.zeros(shape)
    ipsi = np.zeros(shape, bool)
    contra = np.zeros(shape, bool)
    ipsi[:3] = True
    contra[3:] = True
    z[0] = 8.0  # only inside the lesion
    psc[0] = 2.0
    z[4] = 5.0
    psc[4] = 1.0
    lesion = np.zeros(shape, bool)
    lesion[0] = True
    m1 = {"ipsilesional": ipsi, "contralesional": contra}
    out = m1_activation(z, psc, m1, lesion=lesion, z_threshold=3.1, voxel_volume_ml=0.027,
                        rng=np.random.default_rng(0))
    assert out["bold_m1_peak_z_ipsilesional"] == 0.0
    assert out["bold_m1_active_ml_ipsilesional"] == 0.0
    assert out["bold_m1_active_ml_contralesional"] == pytest.approx(20 * 0.027)
    assert out["bold_m1_lesion_excluded_ml"] == pytest.approx(20 * 0.027)
    assert out["bold_laterality_index_threshold"] == -1.0
    assert out["bold_laterality_index_roi"] == -1.0
    without = m1_activation(z, psc, m1, lesion=None, z_threshold=3.1, voxel_volume_ml=0.027,
                            rng=np.random.default_rng(0))
    assert without["bold_m1_peak_z_ipsilesional"] == 8.0


def test_laterality_indices():
    assert laterality_index(3.0, 1.0) == 0.5
    assert np.isnan(laterality_index(0.0, 0.0))
    rng = np.random.default_rng(0)
    values = rng.gamma(2.0, 1.0, 500)
    assert abs(bootstrap_laterality_index(values, values.copy(), rng=rng)) < 0.05
    assert bootstrap_laterality_index(values, np.zeros(500), rng=rng) == pytest.approx(1.0)
    assert bootstrap_laterality_index(0.5 * values, values, rng=rng) < -0.2
    assert np.isnan(bootstrap_laterality_index(-values, -values, rng=rng))


def test_confound_regressors_models_and_spikes():
    rng = np.random.default_rng(0)
    params = np.cumsum(rng.normal(0, 0.05, (50, 6)), axis=0)
    fd = framewise_displacement(params)
    fd[[10, 30]] = 1.0
    six = confound_regressors(params, fd, motion_model="6", spike_threshold_mm=None)
    assert six.shape == (50, 6)
    full = confound_regressors(params, fd, motion_model="24", spike_threshold_mm=0.5)
    spikes = [c for c in full.columns if c.startswith("motion_outlier")]
    assert full.shape[1] == 24 + len(spikes)
    assert full.loc[10, "motion_outlier_010"] == 1 and full["motion_outlier_010"].sum() == 1
    with pytest.raises(ValueError):
        confound_regressors(params, fd, motion_model="12")

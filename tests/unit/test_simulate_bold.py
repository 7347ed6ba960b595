"""Unit tests of the motor-task BOLD phantom (pipeline.simulate.bold)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from nilearn.glm.first_level import compute_regressor
from scipy import ndimage

from pipeline.simulate.bold import simulate_bold
from pipeline.simulate.space import (
    SessionMap,
    apply_affine,
    grid_affine,
    random_subject_warp,
    rigid_matrix,
)

BLOCK_S = 20.0
TR_S = 2.0


@pytest.fixture(scope="module")
def session_map():
    warp = random_subject_warp(np.random.default_rng(0))
    return SessionMap(warp, rigid_matrix((2.0, -3.0, 1.5), (3.0, -2.0, 4.0)))


def run(layers, session_map, seed=1, **options):
    kwargs = dict(
        lesion=None, lesion_side="left", amplitude_ipsilesional=1.0,
        amplitude_contralesional=2.0, n_volumes=60, voxel_mm=4.0, block_s=BLOCK_S, tr_s=TR_S,
    )
    kwargs.update(options)
    return simulate_bold(rng=np.random.default_rng(seed), layers=layers,
                         session_map=session_map, **kwargs)


def test_events_sidecar_and_image(layers, session_map):
    n_volumes, n_dummy = 70, 2
    result = run(layers, session_map, n_volumes=n_volumes, n_dummy=n_dummy)
    events = result.events
    run_s = (n_volumes - n_dummy) * TR_S
    assert list(events.columns[:3]) == ["onset", "duration", "trial_type"]
    assert (events["trial_type"] == "move_affected_hand").all()
    np.testing.assert_allclose(events["onset"], BLOCK_S + 2 * BLOCK_S * np.arange(len(events)))
    np.testing.assert_allclose(events["duration"], BLOCK_S)
    assert (events["onset"] + events["duration"] <= run_s).all()
    assert events["onset"].iloc[-1] + 3 * BLOCK_S > run_s  # no complete block left out

    image = result.image
    assert image.ndim == 4 and image.shape[3] == n_volumes
    assert image.get_data_dtype() == np.float32
    assert result.sidecar["RepetitionTime"] == pytest.approx(float(image.header.get_zooms()[3]))
    assert result.sidecar["TaskName"] == "motor"
    assert result.sidecar["EchoTime"] == 0.03
    slice_timing = np.array(result.sidecar["SliceTiming"])
    assert slice_timing.size == image.shape[2]
    assert slice_timing.min() == 0 and slice_timing.max() < TR_S
    np.testing.assert_allclose(np.diag(image.affine)[:3], 4.0)
    # dummy scans are brighter (T1 saturation not yet reached)
    means = image.get_fdata().mean(axis=(0, 1, 2))
    assert means[0] > 1.05 * means[n_dummy:].mean()
    for name in ("activation_psc", "m1_ipsilesional", "m1_contralesional"):
        assert result.truth_maps[name].shape == image.shape[:3]


def glm_psc(result, *, poly_order=3):
    """Voxel-wise least-squares PSC with a slice-timed nilearn regressor and drift terms."""
    data = result.image.get_fdata()
    n_volumes = data.shape[3]
    frame_times = np.arange(n_volumes) * TR_S
    onsets = result.events[["onset", "duration"]].to_numpy().T
    condition = np.vstack([onsets, np.ones(onsets.shape[1])])
    # an isolated block peaks at 1 (the simulator's definition of peak PSC)
    single_times = np.arange(0, 60, 0.05)
    single, _ = compute_regressor(np.array([[0.0], [BLOCK_S], [1.0]]), "spm", single_times)
    scale = single.max()
    t = (frame_times - frame_times.mean()) / np.ptp(frame_times)
    drift_terms = np.vstack([t**p for p in range(poly_order + 1)]).T
    psc = np.zeros(data.shape[:3])
    for k, slice_time in enumerate(result.sidecar["SliceTiming"]):
        regressor, _ = compute_regressor(condition, "spm", frame_times + slice_time)
        design = np.column_stack([regressor[:, 0] / scale, drift_terms])
        y = data[:, :, k, :].reshape(-1, n_volumes).T
        beta = np.linalg.pinv(design) @ y
        with np.errstate(divide="ignore", invalid="ignore"):
            est = np.where(beta[1] > 1.0, 100 * beta[0] / beta[1], 0.0)
        psc[:, :, k] = est.reshape(data.shape[:2])
    return psc


def laterality_from_maps(result):
    psc = result.truth_maps["activation_psc"].get_fdata()
    a_ipsi = psc[result.truth_maps["m1_ipsilesional"].get_fdata() > 0].sum()
    a_contra = psc[result.truth_maps["m1_contralesional"].get_fdata() > 0].sum()
    return (a_ipsi - a_contra) / (a_ipsi + a_contra)


def test_glm_recovers_planted_activation(layers, session_map):
    amplitude_ipsi, amplitude_contra = 1.5, 2.5
    result = run(layers, session_map, n_volumes=80, amplitude_ipsilesional=amplitude_ipsi,
                 amplitude_contralesional=amplitude_contra, max_translation_mm=0.0,
                 max_rotation_deg=0.0, tsnr=np.inf, drift_percent=1.0)
    assert not result.motion.any()
    truth_psc = result.truth_maps["activation_psc"].get_fdata()
    ipsi = result.truth_maps["hand_area_ipsilesional"].get_fdata() > 0
    contra = result.truth_maps["hand_area_contralesional"].get_fdata() > 0
    assert ipsi.sum() > 20 and contra.sum() > 20
    assert truth_psc[ipsi].max() == pytest.approx(amplitude_ipsi, rel=1e-6)
    assert result.truth["amplitude_ipsilesional_psc"] == pytest.approx(amplitude_ipsi)
    assert result.truth["activated_voxels_ipsilesional"] == ipsi.sum()

    est = glm_psc(result)
    np.testing.assert_array_less(np.abs(est[ipsi] - truth_psc[ipsi]), 0.1 * amplitude_ipsi)
    np.testing.assert_array_less(np.abs(est[contra] - truth_psc[contra]), 0.1 * amplitude_contra)
    assert est[ipsi].max() == pytest.approx(amplitude_ipsi, rel=0.1)
    brain = result.image.get_fdata()[..., 5] > 500
    np.testing.assert_array_less(np.abs(est[brain & (truth_psc == 0)]), 0.1 * amplitude_ipsi)

    li = result.truth["laterality_index"]
    assert li < 0 and result.truth["peak_hemisphere"] == "contralesional"
    assert laterality_from_maps(result) == pytest.approx(li, rel=1e-5)
    assert result.truth["task_effect"] is True


def test_peak_hemisphere_is_the_higher_peak_not_the_larger_sum(layers, session_map):
    """A weaker activation over a larger hand area holds more summed signal
    (LI towards it) but not the peak."""
    equal = run(layers, session_map, amplitude_ipsilesional=1.0, amplitude_contralesional=1.0,
                tsnr=np.inf)
    li_equal = equal.truth["laterality_index"]  # area (x GM) asymmetry of the two hand areas
    assert li_equal != 0
    sizes = {"ipsilesional": 1 + li_equal, "contralesional": 1 - li_equal}
    small, large = sorted(sizes, key=sizes.get)
    weaker = (1 + sizes[small] / sizes[large]) / 2  # lower peak, still the larger sum
    amplitudes = {f"amplitude_{small}": 1.0, f"amplitude_{large}": weaker}
    result = run(layers, session_map, tsnr=np.inf, **amplitudes)
    li = result.truth["laterality_index"]
    assert (li > 0) == (large == "ipsilesional")
    assert result.truth["peak_hemisphere"] == small


def test_null_session(layers, session_map):
    result = run(layers, session_map, amplitude_ipsilesional=0.0, amplitude_contralesional=0.0)
    assert np.isnan(result.truth["laterality_index"])
    assert not result.truth_maps["activation_psc"].get_fdata().any()
    assert result.truth["peak_hemisphere"] == "none"
    assert result.truth["task_effect"] is False
    assert result.truth["activated_voxels_ipsilesional"] == 0


def test_lesion_removes_activation(layers, session_map):
    plain = run(layers, session_map, n_volumes=20)
    area = plain.truth_maps["hand_area_ipsilesional"]
    ijk = np.argwhere(area.get_fdata() > 0).mean(axis=0)
    # a 10 mm lesion on a 2 mm "T1w" grid, placed via the BOLD-to-session pose
    centre = apply_affine(plain.session_from_bold, apply_affine(area.affine, ijk[None]))[0]
    shape = (60, 70, 50)
    t1_affine = grid_affine(shape, 2.0, center_mm=centre)
    grid = np.stack(np.indices(shape), axis=-1).reshape(-1, 3).astype(float)
    distance = np.linalg.norm(apply_affine(t1_affine, grid) - centre, axis=1)
    lesion = nib.Nifti1Image((distance <= 10.0).reshape(shape).astype(np.uint8), t1_affine)

    lesioned = run(layers, session_map, n_volumes=20, lesion=lesion)
    before = plain.truth["activated_voxels_ipsilesional"]
    after = lesioned.truth["activated_voxels_ipsilesional"]
    assert 0 < after < before - 5
    assert lesioned.truth["activated_voxels_contralesional"] == (
        plain.truth["activated_voxels_contralesional"])
    assert lesioned.truth["laterality_index"] < plain.truth["laterality_index"]
    assert laterality_from_maps(lesioned) == pytest.approx(
        lesioned.truth["laterality_index"], rel=1e-5)


def correlation(a, b, mask):
    return float(np.corrcoef(a[mask], b[mask])[0, 1])


def test_motion_convention(layers, session_map):
    max_t, max_r = 3.0, 3.0
    moving = run(layers, session_map, n_volumes=40, max_translation_mm=max_t,
                 max_rotation_deg=max_r, tsnr=np.inf)
    still = run(layers, session_map, n_volumes=40, max_translation_mm=0.0,
                max_rotation_deg=0.0, tsnr=np.inf)
    motion = moving.motion
    assert motion.shape == (40, 6)
    assert not motion[0].any()
    assert np.abs(motion[:, :3]).max() <= max_t + 1e-9
    assert np.abs(motion[:, 3:]).max() <= max_r + 1e-9
    assert np.abs(motion).max() > 0.5

    affine = moving.image.affine
    i = int(np.argmax(np.abs(motion).sum(axis=1)))
    moved = moving.image.get_fdata()[..., i]
    reference = still.image.get_fdata()[..., i]
    head = reference > 50  # brain and scalp
    matrix = rigid_matrix(motion[i, :3], motion[i, 3:])

    def resample(volume, world_map):
        """out(x) = volume(world_map(x)), x in scanner mm, trilinear."""
        vox = np.linalg.inv(affine) @ world_map @ affine
        return ndimage.affine_transform(volume, vox[:3, :3], offset=vox[:3, 3], order=1)

    # documented convention: volume_i(x) = motion-free volume(M_i^-1 x)
    forward = resample(reference, np.linalg.inv(matrix))
    assert correlation(moved, forward, head) > 0.9999
    assert correlation(moved, resample(reference, matrix), head) < 0.95
    # undoing the motion: volume_i(M_i x) matches the motion-free volume (up to the blur
    # of two trilinear interpolations; low GM/WM contrast makes brain-only r ~0.9)
    right = correlation(resample(moved, matrix), reference, head)
    wrong = correlation(resample(moved, np.linalg.inv(matrix)), reference, head)
    untouched = correlation(moved, reference, head)
    assert right > 0.98
    assert right > untouched + 0.02 and right > wrong + 0.05


def test_noise_level_and_autocorrelation(layers, session_map):
    tsnr = 50.0
    result = run(layers, session_map, n_volumes=80, amplitude_ipsilesional=0.0,
                 amplitude_contralesional=0.0, max_translation_mm=0.0, max_rotation_deg=0.0,
                 tsnr=tsnr, drift_percent=0.0)
    data = result.image.get_fdata()
    mean = data.mean(axis=3)
    voxels = data[mean > 900]
    measured = np.median(voxels.mean(axis=1) / voxels.std(axis=1))
    assert measured == pytest.approx(tsnr, rel=0.15)
    centred = voxels - voxels.mean(axis=1, keepdims=True)
    lag1 = (centred[:, 1:] * centred[:, :-1]).sum() / (centred**2).sum()
    assert lag1 == pytest.approx(0.3, abs=0.08)


def test_deterministic(layers, session_map):
    first = run(layers, session_map, seed=7, n_volumes=20)
    second = run(layers, session_map, seed=7, n_volumes=20)
    other = run(layers, session_map, seed=8, n_volumes=20)
    np.testing.assert_array_equal(first.image.get_fdata(), second.image.get_fdata())
    np.testing.assert_array_equal(first.motion, second.motion)
    np.testing.assert_array_equal(first.truth_maps["activation_psc"].get_fdata(),
                                  second.truth_maps["activation_psc"].get_fdata())
    assert first.truth == second.truth
    assert not np.array_equal(first.image.get_fdata(), other.image.get_fdata())

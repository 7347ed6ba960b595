"""Grey/white partial-volume fractions (pipeline.anat.partial_volume) against a
planted sub-voxel interface."""

import numpy as np
import pytest

from pipeline.anat.partial_volume import interface_fractions

MU_GM, MU_WM, MU_CSF = 600.0, 1000.0, 200.0


def _slab(boundary_vox: float, *, shift_vox: int = 0, bias: float = 0.0, noise: float = 0.0,
          seed: int = 0):
    """x < 6: CSF; 6 <= x < boundary: GM; beyond: WM (sub-voxel boundary, exact
    fractions). Posteriors are hard labels with the GM/WM edge moved ``shift_vox``
    voxels into white matter, as Atropos does on real T1w (issue 21)."""
    nx, ny, nz = 40, 24, 24
    x = np.arange(nx, dtype=float)[:, None, None] * np.ones((1, ny, nz))
    f_wm = np.clip(x + 0.5 - boundary_vox, 0.0, 1.0)
    csf = (x < 6).astype(float)
    f_gm = (1 - f_wm) * (1 - csf)
    field = 1.0 + bias * (np.arange(ny)[None, :, None] / ny - 0.5) * np.ones((nx, 1, nz))
    image = field * (f_wm * MU_WM + f_gm * MU_GM + csf * MU_CSF)
    image += np.random.default_rng(seed).normal(0, noise, image.shape) if noise else 0
    labels = np.where(csf > 0, 1, np.where(x - shift_vox > boundary_vox, 3, 2))
    probs = np.stack([labels == k for k in (1, 2, 3)], axis=-1).astype(np.float32)
    return image.astype(np.float32), probs, f_wm


@pytest.mark.parametrize("boundary", [20.0, 20.3, 20.7])
def test_interface_moves_back_to_the_half_white_voxel(boundary):
    image, probs, f_wm = _slab(boundary, shift_vox=1)
    mask = np.ones(image.shape, bool)
    out, info = interface_fractions(image, probs, mask, (1.0, 1.0, 1.0), smooth_vox=0.0)
    # the white-matter volume per row equals the planted one (biased input: 1 voxel less)
    assert probs[..., 2].sum(axis=0).mean() == pytest.approx(f_wm.sum(axis=0).mean() - 1, abs=0.51)
    assert out[..., 2].sum(axis=0).mean() == pytest.approx(f_wm.sum(axis=0).mean(), abs=0.02)
    # labels: white matter from the first voxel at least half white
    labels = 1 + np.argmax(out, axis=-1)
    first_wm = np.argmax(labels[:, 5, 5] == 3)
    assert f_wm[first_wm, 5, 5] >= 0.5 and f_wm[first_wm - 1, 5, 5] <= 0.5
    assert info["pv_gm_to_wm_ml"] > 0 and info["pv_wm_to_gm_ml"] == 0
    # CSF untouched, tissue (GM + WM) kept per voxel
    np.testing.assert_array_equal(out[..., 0], probs[..., 0])
    np.testing.assert_allclose(out[..., 1] + out[..., 2], probs[..., 1] + probs[..., 2], atol=1e-6)


def test_local_means_follow_a_bias_field_and_noise_averages_out():
    boundary = 20.4
    image, probs, f_wm = _slab(boundary, shift_vox=1, bias=0.3, noise=40.0, seed=3)
    out, info = interface_fractions(image, probs, np.ones(image.shape, bool), (1.0, 1.0, 1.0),
                                    sigma_mm=6.0)
    wm_per_row = out[..., 2].sum(axis=0)
    truth = f_wm.sum(axis=0).mean()
    # across the 30 % bias, both ends of the field recover the boundary
    assert wm_per_row[:, :4].mean() == pytest.approx(truth, abs=0.15)
    assert wm_per_row[:, -4:].mean() == pytest.approx(truth, abs=0.15)
    assert info["pv_gm_mean"] == pytest.approx(MU_GM, rel=0.05)
    assert info["pv_wm_mean"] == pytest.approx(MU_WM, rel=0.05)


def test_unbiased_input_stays_and_without_contrast_nothing_changes():
    image, probs, f_wm = _slab(20.5, shift_vox=0)  # no partial-volume voxel
    out, _ = interface_fractions(image, probs, np.ones(image.shape, bool), (1.0, 1.0, 1.0),
                                 smooth_vox=0.0)
    np.testing.assert_allclose(out, probs, atol=1e-6)
    flat = np.full(image.shape, 700.0, np.float32)
    out, info = interface_fractions(flat, probs, np.ones(image.shape, bool), (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(out, probs)
    assert info["pv_gm_to_wm_ml"] == 0 and info["pv_wm_to_gm_ml"] == 0


def test_coarse_grids_keep_the_atropos_posteriors():
    """Above MAX_VOXEL_MM the pure-class means are not estimable (2.5 mm tiny trial)."""
    image, probs, _ = _slab(20.3, shift_vox=1)
    out, info = interface_fractions(image, probs, np.ones(image.shape, bool), (2.0, 2.0, 2.0))
    np.testing.assert_array_equal(out, probs)
    assert info["pv_band_ml"] == 0 and info["pv_gm_to_wm_ml"] == 0

"""Plausibility gates and acute DWI/ADC evidence on synthetic images with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.lesion import plausibility
from pipeline.lesion.acute import acute_core, adc_in_mm2_s, component_adc, diffusion_brain_mask, trace_and_adc

SHAPE = (30, 34, 26)


def _head(rng):
    """A brain (ellipsoid) with WM core, GM shell, CSF ventricles; T1w/FLAIR in WM units."""
    x, y, z = np.indices(SHAPE)
    r = ((x - 15) / 13) ** 2 + ((y - 17) / 15) ** 2 + ((z - 13) / 11) ** 2
    brain = r < 1
    csf = brain & (((x - 15) / 3) ** 2 + ((y - 17) / 6) ** 2 + ((z - 13) / 3) ** 2 < 1)
    gm = brain & (r > 0.6) & ~csf
    t1 = np.where(brain, 1.0, 0.0) - 0.3 * gm - 0.75 * csf
    flair = np.where(brain, 1.0, 0.0) + 0.15 * gm - 0.85 * csf
    noise = rng.normal(0, 0.02, SHAPE)
    return brain, csf, (t1 + noise * brain).astype(np.float32), (flair + noise * brain).astype(np.float32)


def _gates(lesion, t1, flair, brain, **kw):
    mirrored = flair[::-1]  # the phantom is symmetric about its x centre
    return {g.name: g for g in plausibility.session_gates(
        lesion, brain=brain, t1n=t1, flairn=flair, flair_mirror=mirrored, csf_t1_level=0.25,
        gm_t1_level=0.7, baseline=True, **kw)}


def test_a_plausible_lesion_passes_every_gate():
    rng = np.random.default_rng(0)
    brain, _, t1, flair = _head(rng)
    lesion = np.zeros(SHAPE, bool)
    lesion[5:9, 12:18, 10:15] = True
    flair[lesion] += 0.6
    t1[lesion] -= 0.15
    gates = _gates(lesion, t1, flair, brain, dwi_bright=lesion.copy())
    assert all(g.passed for g in gates.values()), gates
    assert plausibility.summary(list(gates.values())) == "plausible"


def test_csf_taken_for_lesion_fails_csf_and_suppression_gates():
    """A T2 given as FLAIR: bright CSF is segmented as 'lesion'."""
    rng = np.random.default_rng(1)
    brain, csf, t1, _ = _head(rng)
    t2_like = np.where(brain, 1.0, 0.0) + 1.5 * csf + rng.normal(0, 0.02, SHAPE) * brain
    lesion = csf & (np.indices(SHAPE)[0] < 15)           # the left ventricle "lesion"
    gates = _gates(lesion, t1, t2_like.astype(np.float32), brain & ~lesion | csf)
    assert not gates["csf_like"].passed and gates["csf_like"].value > 0.9
    assert not gates["flair_suppresses_csf"].passed
    text = plausibility.summary(list(gates.values()))
    assert text.startswith("implausible: ") and "CSF-like" in text


def test_huge_or_mirror_symmetric_or_dwi_dark_masks_fail():
    rng = np.random.default_rng(2)
    brain, _, t1, flair = _head(rng)
    huge = brain & (np.indices(SHAPE)[1] < 20)
    assert not _gates(huge, t1, flair, brain)["brain_fraction"].passed
    symmetric = np.zeros(SHAPE, bool)
    symmetric[6:9, 14:18, 10:14] = True
    assert not _gates(symmetric, t1, flair, brain)["flair_brighter_than_mirror"].passed
    flair[symmetric] += 0.5
    gates = _gates(symmetric, t1, flair, brain, dwi_bright=np.zeros(SHAPE, bool))
    assert gates["flair_brighter_than_mirror"].passed and not gates["dwi_support"].passed


@pytest.mark.parametrize("volume, base, side, base_side, ok", [
    (40.0, 50.0, "left", "left", True),          # shrinks as it cavitates
    (90.0, 50.0, "left", "left", False),         # grows
    (0.2, 50.0, "left", "left", False),          # vanished
    (30.0, 50.0, "bilateral", "left", False),    # new contralateral lesion
])
def test_follow_up_gates(volume, base, side, base_side, ok):
    gates = plausibility.change_gates(volume_ml=volume, baseline_ml=base, side=side,
                                      baseline_side=base_side)
    assert all(g.passed for g in gates) == ok


def test_trace_adc_and_core_recover_a_planted_infarct():
    """Mono-exponential signal with known ADC: restricted core found, T2 shine-through not."""
    rng = np.random.default_rng(3)
    brain = np.zeros(SHAPE, bool)
    brain[3:27, 3:31, 3:23] = True
    adc_true = np.where(brain, 0.8e-3, 0.0)
    s0 = np.where(brain, 1000.0, 0.0)
    infarct = np.zeros(SHAPE, bool)
    infarct[8:13, 8:14, 8:12] = True                     # 120 voxels, ADC 0.45e-3
    adc_true[infarct] = 0.45e-3
    s0[infarct] = 1150.0
    shine = np.zeros(SHAPE, bool)
    shine[18:23, 20:26, 14:18] = True                     # T2 shine-through: bright, ADC normal
    s0[shine] = 2200.0
    adc_true[shine] = 0.9e-3
    bvals = np.array([0, 0, 1000, 1000, 1000, 1000, 1000, 1000.0])
    data = np.stack([s0 * np.exp(-b * adc_true) for b in bvals], -1)
    data += rng.normal(0, 5, data.shape) * brain[..., None]
    maps = trace_and_adc(np.clip(data, 0, None), bvals)
    assert maps.bval == 1000
    np.testing.assert_allclose(np.median(maps.adc[infarct]), 0.45e-3, rtol=0.05)
    core, bright = acute_core(maps.trace, maps.adc, brain, voxel_ml=0.001)
    assert bright[shine].mean() > 0.9 and not core[shine].any()   # bright, not restricted
    assert core[infarct].mean() > 0.9 and (core & ~infarct).sum() < 5
    parts = component_adc(core, maps.adc, 0.001)
    assert len(parts) == 1 and parts[0]["median_adc_mm2_s"] < 620e-6
    assert diffusion_brain_mask(maps.trace, maps.adc)[brain].mean() > 0.95


@pytest.mark.parametrize("factor", [1.0, 1e3, 1e6])
def test_adc_units_are_read_from_the_values(factor):
    adc = np.full((4, 5, 6), 0.8e-3) * factor
    out, applied = adc_in_mm2_s(adc)
    np.testing.assert_allclose(out, 0.8e-3, rtol=1e-6)
    assert applied == pytest.approx(1 / factor)


def test_an_empty_mask_at_baseline_goes_to_review():
    """Every patient of a stroke trial has an infarct: no lesion at baseline fails
    ``lesion_found``; at follow-up (a lesion may have resolved) there is no such gate;
    ``min_baseline_ml: 0`` turns it off."""
    rng = np.random.default_rng(4)
    brain, _, t1, flair = _head(rng)
    empty = np.zeros(SHAPE, bool)
    gates = _gates(empty, t1, flair, brain, voxel_mm=2.0)
    assert not gates["lesion_found"].passed and gates["lesion_found"].value == 0.0
    assert "no lesion found at baseline" in plausibility.summary(list(gates.values()))
    small = empty.copy()
    small[5:7, 12:14, 10:12] = True                         # 8 voxels of 8 uL = 0.064 mL
    assert not _gates(small, t1, flair, brain, voxel_mm=2.0)["lesion_found"].passed
    small[5:8, 12:15, 10:12] = True                         # 18 voxels = 0.144 mL
    assert _gates(small, t1, flair, brain, voxel_mm=2.0)["lesion_found"].passed
    follow_up = plausibility.session_gates(
        empty, brain=brain, t1n=t1, flairn=flair, flair_mirror=flair[::-1], csf_t1_level=0.25,
        gm_t1_level=0.7, baseline=False, voxel_mm=2.0)
    assert "lesion_found" not in {g.name for g in follow_up}
    off = _gates(empty, t1, flair, brain, voxel_mm=2.0, limits={"min_baseline_ml": 0})
    assert "lesion_found" not in off


def test_a_lesion_beyond_a_malignant_infarct_goes_to_review():
    """``volume``: above ``max_volume_ml`` (150 mL) the mask is reviewed, in any session;
    0 turns the gate off. 2 mm voxels: 8 uL each."""
    rng = np.random.default_rng(5)
    brain, _, t1, flair = _head(rng)
    lesion = np.zeros(SHAPE, bool)
    lesion[3:15, 5:29, 4:22] = True                          # 5184 voxels = 41.5 mL
    gates = _gates(lesion, t1, flair, brain, voxel_mm=2.0, limits={"max_volume_ml": 40.0})
    assert not gates["volume"].passed and gates["volume"].value == pytest.approx(41.47)
    assert "larger than a malignant MCA infarct" in gates["volume"].message
    assert _gates(lesion, t1, flair, brain, voxel_mm=2.0)["volume"].passed   # default 150 mL
    assert "volume" not in _gates(lesion, t1, flair, brain, voxel_mm=2.0,
                                  limits={"max_volume_ml": 0})

"""The structural phantom against its own truth."""

import numpy as np
import pytest

from pipeline.simulate.anatomy import plan_lesion, simulate_structural
from pipeline.simulate.space import SessionMap, random_subject_warp, rigid_matrix


@pytest.fixture(scope="module")
def subject(layers):
    rng = np.random.default_rng(3)
    warp = random_subject_warp(rng)
    plan = plan_lesion(rng, layers, side="right", volume_ml=30.0, chronic_fraction=0.7)
    smap = SessionMap(warp, rigid_matrix([2.0, -1.0, 3.0], [3.0, -2.0, 4.0]))
    return warp, plan, smap


@pytest.fixture(scope="module")
def sessions(layers, subject):
    _, plan, smap = subject
    out = {}
    for stage in ("subacute", "chronic"):
        out[stage] = simulate_structural(rng=np.random.default_rng(1), layers=layers,
                                         session_map=smap, lesion_plan=plan, lesion_stage=stage,
                                         thinning_mm=0.3 if stage == "chronic" else 0.0,
                                         thinning_side="right", voxel_mm=3.0)
    out["free"] = simulate_structural(rng=np.random.default_rng(1), layers=layers,
                                      session_map=smap, lesion_plan=None, lesion_stage=None,
                                      voxel_mm=3.0)
    return out


def test_lesion_volume_is_voxel_count_times_voxel_volume(sessions):
    for stage in ("subacute", "chronic"):
        ses = sessions[stage]
        mask = ses.lesion.get_fdata() > 0
        voxel_ml = np.prod(ses.lesion.header.get_zooms()[:3]) / 1000
        assert ses.truth["lesion_volume_ml"] == pytest.approx(mask.sum() * voxel_ml)
    assert sessions["subacute"].truth["lesion_volume_ml"] == pytest.approx(30.0, rel=0.1)


def test_chronic_lesion_smaller_and_inside(sessions):
    acute = sessions["subacute"].lesion.get_fdata() > 0
    chronic = sessions["chronic"].lesion.get_fdata() > 0
    assert chronic.sum() < acute.sum()
    assert (chronic & ~acute).sum() <= 0.05 * chronic.sum()


def test_lesion_side_and_contrast(sessions, subject):
    ses = sessions["subacute"]
    assert ses.truth["lesion_side"] == "right"
    assert ses.truth["lesion_centroid_mni_x"] > 0  # MNI x > 0 is right
    lesion = ses.lesion.get_fdata() > 0
    dseg = ses.dseg.get_fdata()
    t1, flair = ses.t1w.get_fdata(), ses.flair.get_fdata()
    wm = dseg == 3
    assert np.median(t1[lesion]) < 0.7 * np.median(t1[wm])      # T1-hypointense
    assert np.median(flair[lesion]) > 1.4 * np.median(flair[wm])  # FLAIR-hyperintense


def test_chronic_core_is_csf_like(sessions):
    ses = sessions["chronic"]
    lesion = ses.lesion.get_fdata() > 0
    csf = ses.dseg.get_fdata() == 1
    flair = ses.flair.get_fdata()
    assert np.percentile(flair[lesion], 20) < 2 * np.median(flair[csf])


def test_lesion_free_session(sessions):
    ses = sessions["free"]
    assert ses.truth["lesion_volume_ml"] == 0
    assert not (ses.lesion.get_fdata() > 0).any()
    assert ses.truth["lesion_side"] == "none"


def test_volumes_plausible(sessions):
    truth = sessions["free"].truth
    assert 1000 < truth["brain_volume_ml"] < 1600
    assert truth["gm_volume_ml"] > truth["wm_volume_ml"] > truth["csf_volume_ml"] > 50


def test_thinning_reduces_m1_grey_matter(layers, subject):
    _, _, smap = subject
    kw = dict(rng=np.random.default_rng(1), layers=layers, session_map=smap, lesion_plan=None,
              lesion_stage=None, thinning_side="right", voxel_mm=3.0)
    before = simulate_structural(thinning_mm=0.0, **kw)
    after = simulate_structural(thinning_mm=0.5, **kw)
    assert after.truth["gm_volume_ml"] < before.truth["gm_volume_ml"] - 0.5
    assert after.truth["thinning_m1_mm"] == 0.5


def test_deterministic(layers, subject):
    _, plan, smap = subject
    a, b = (simulate_structural(rng=np.random.default_rng(5), layers=layers, session_map=smap,
                                lesion_plan=plan, lesion_stage="subacute", voxel_mm=4.0)
            for _ in range(2))
    assert np.array_equal(a.t1w.get_fdata(), b.t1w.get_fdata())
    assert np.array_equal(a.lesion.get_fdata(), b.lesion.get_fdata())


def test_head_has_skull_and_scalp(sessions):
    ses = sessions["free"]
    brain = ses.brain_mask.get_fdata() > 0
    head = ses.t1w.get_fdata() > 300
    assert (head & ~brain).sum() > 0.2 * brain.sum()  # scalp is present outside the brain


@pytest.mark.parametrize("side", ["left", "right"])
def test_planted_thinning_lowers_every_m1_column(layers, side):
    """On the noise-free template, the planted 0.3 mm thinning lowers the M1
    thickness measured on the central surface (Laplace, 0.5 mm grid) by
    0.15-0.35 mm -- thinning only the surface
    exposed to CSF moved 0.09 mm, since most M1 cortex lies in a sulcus whose
    banks touch -- and leaves the other M1 alone. Measured 2026-12-07 (the
    phantom's own sulcal crease, M1 as maximum-probability BA4): 0.217 left,
    0.227 right (0.203, 0.215 with the pipeline's sulcal skeleton and BA4 > 25 %)."""
    from pipeline.anat import laplace
    from pipeline.simulate.anatomy import ATLAS_THRESHOLD, thin_cortex

    regions = {s: layers.m1[s] > ATLAS_THRESHOLD for s in ("left", "right")}
    other = "right" if side == "left" else "left"
    idx = np.argwhere(regions["left"] | regions["right"])
    box = tuple(slice(max(a - 12, 0), b + 13) for a, b in zip(idx.min(0), idx.max(0), strict=True))
    means = {}
    for thinning in (0.0, 0.3):
        gm, csf = layers.gm.copy(), layers.csf.copy()
        thin_cortex(gm, csf, layers.wm, regions[side], thinning, voxel_mm=1.0)
        factors = np.array([2, 2, 2])
        tissue = laplace.partial_volume_mask((gm + layers.wm)[box], factors)
        white = laplace.partial_volume_mask(layers.wm[box], factors) & tissue
        thick, depth = laplace.laplace_thickness(tissue & ~white, white, [0.5] * 3,
                                                 return_depth=True)
        central = (thick > 0) & (np.abs(2 * depth - 1) * thick <= 0.5)
        values = laplace.block_mean(thick, thick > 0, factors)
        weight = laplace.block_mean(central.astype(np.float32), np.ones_like(thick), factors)
        means[thinning] = {s: np.average(values[m[box] & (values > 0)],
                                         weights=weight[m[box] & (values > 0)] + 1e-9)
                           for s, m in regions.items()}
    assert 0.15 <= means[0.0][side] - means[0.3][side] <= 0.35, means
    assert abs(means[0.0][other] - means[0.3][other]) <= 0.02, means


def test_atlases_reach_the_2009a_anatomy_through_a_registration(layers, sessions):
    """The FSL template registered onto the 2009a brain matches it far better than
    through the identity, and the session's atlas truth follows the stream's rule."""
    from pipeline.templates import ATLAS_REGION_LABELS

    assert layers.atlas_transfer["correlation_syn"] > layers.atlas_transfer["correlation_identity"] + 0.1
    ses = sessions["free"]
    atlas = np.asarray(ses.atlas_dseg.dataobj)
    for label, name in ATLAS_REGION_LABELS.items():
        region = np.asarray(ses.regions[name].dataobj) > 0
        # every labelled voxel lies in its region; overlap voxels go to one region only
        assert region[atlas == label].all()
        assert (atlas == label).sum() >= 0.5 * region.sum()


def test_a_large_lesion_near_the_midline_stays_in_its_hemisphere(layers, subject):
    """An infarct follows an arterial territory, which does not cross the midline: a
    150 mL left lesion centred 6 mm from the midline is all left of the falx (template
    x < -MIDLINE_MARGIN_MM) and still about 150 mL (it grows away from the midline)."""
    from dataclasses import replace

    from pipeline.simulate.anatomy import MIDLINE_MARGIN_MM
    from pipeline.simulate.space import apply_affine

    _, plan, smap = subject
    radius = (3.0 * 150.0 * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    near = replace(plan, side="left", seed_mni=(-6.0, -10.0, 20.0), volume_ml=150.0,
                   radius_mm=radius)
    ses = simulate_structural(rng=np.random.default_rng(2), layers=layers, session_map=smap,
                              lesion_plan=near, lesion_stage="subacute", voxel_mm=3.0)
    lesion = ses.lesion.get_fdata() > 0
    template = smap(apply_affine(ses.lesion.affine, np.argwhere(lesion).astype(float)))
    assert template[:, 0].max() < -MIDLINE_MARGIN_MM
    assert ses.truth["lesion_volume_ml"] == pytest.approx(150.0, rel=0.1)
    assert ses.truth["lesion_side"] == "left"


@pytest.mark.parametrize("gap", [6, 7])
def test_sulcal_crease_is_the_midplane_of_touching_banks(gap):
    """Two white-matter walls with grey matter filling the gap between them (the
    banks of a sulcus touching): the phantom's crease is one voxel wide, in the
    middle; a free cortical surface (grey matter over white, CSF beyond) has none.
    Independent of the pipeline's nearest-point jump (anat.laplace)."""
    from pipeline.simulate.anatomy import sulcal_crease

    white = np.zeros((30, 12, 12), bool)
    white[:5], white[5 + gap:5 + gap + 5] = True, True
    grey = np.zeros_like(white)
    grey[5:5 + gap] = True  # banks touching: no CSF between them
    grey[5 + gap + 5:5 + gap + 8] = True  # a free cortex over the second wall
    crease = sulcal_crease(grey, white, voxel_mm=1.0)
    rows = np.unique(np.nonzero(crease)[0])
    assert rows.tolist() == [5 + (gap - 1) // 2], rows
    assert crease[5 + (gap - 1) // 2].all()

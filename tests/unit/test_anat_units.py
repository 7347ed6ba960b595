"""Anatomy stream: fast tests of the pieces (inputs, transforms, thickness) on
small synthetic images with known answers."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from pipeline.errors import PipelineInputError


def _sphere_phantom(shape=(41, 44, 39), voxel=1.0, wm_radius=9.0, gm_thickness=3.0):
    """WM ball inside a GM shell of known thickness inside CSF (non-cubic grid)."""
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = -voxel * (np.asarray(shape) - 1) / 2
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = ijk * voxel + affine[:3, 3]
    r = np.linalg.norm(xyz, axis=1).reshape(shape)
    wm = np.clip(wm_radius + 0.5 - r, 0, 1)
    gm = np.clip(wm_radius + gm_thickness + 0.5 - r, 0, 1) - wm
    csf = np.clip(1 - wm - gm, 0, 1) * (r < wm_radius + gm_thickness + 6)
    return affine, r, np.stack([csf, gm, wm], axis=-1).astype(np.float32)


def _save(tmp_path, name, data, affine):
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


# --- inputs ---------------------------------------------------------------------

def test_4d_and_nan_t1w_are_named_errors(tmp_path):
    from pipeline.anat.inputs import load_t1w

    rng = np.random.default_rng(0)
    four_d = _save(tmp_path, "t1w_4d.nii.gz", rng.random((7, 8, 9, 3)).astype(np.float32), np.eye(4))
    with pytest.raises(PipelineInputError, match="T1w must be 3D"):
        load_t1w(four_d)
    data = rng.random((7, 8, 9)).astype(np.float32)
    data[3, 4, 5] = np.nan
    with pytest.raises(PipelineInputError, match="NaN"):
        load_t1w(_save(tmp_path, "t1w_nan.nii.gz", data, np.eye(4)))


def test_lpi_t1w_loads_as_the_same_ras_image(tmp_path):
    from pipeline.anat.inputs import load_t1w

    rng = np.random.default_rng(1)
    ras = rng.random((7, 8, 9)).astype(np.float32) + 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-6, -7, -8]
    flip = np.diag([-1.0, 1.0, -1.0, 1.0])
    flip[:3, 3] = [6, 0, 8]  # LPI: x and z axes reversed, same world grid
    lpi_affine = affine @ flip
    lpi = ras[::-1, :, ::-1]
    a = load_t1w(_save(tmp_path, "ras.nii.gz", ras, affine))
    b = load_t1w(_save(tmp_path, "lpi.nii.gz", np.ascontiguousarray(lpi), lpi_affine))
    assert nib.aff2axcodes(b.affine) == ("R", "A", "S")
    np.testing.assert_allclose(b.affine, a.affine)
    np.testing.assert_array_equal(b.get_fdata(), a.get_fdata())


# --- transforms -----------------------------------------------------------------

def test_composed_h5_equals_the_transform_chain(tmp_path):
    import ants

    from pipeline.anat.xfm import compose_to_h5, linear_matrix, write_inverse_linear
    from pipeline.antsio import to_ants

    _, r, probs = _sphere_phantom(shape=(21, 24, 19), voxel=2.0)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    img = to_ants(nib.Nifti1Image(probs[..., 2] + 0.5 * probs[..., 1], affine))
    rigid = ants.create_ants_transform(transform_type="Euler3DTransform", dimension=3)
    rigid.set_parameters([0.1, -0.05, 0.08, 3.0, -2.0, 1.5])
    ants.write_transform(rigid, str(tmp_path / "rigid.mat"))
    inverse = write_inverse_linear(tmp_path / "rigid.mat", tmp_path / "inverse.mat")
    m, t = linear_matrix(tmp_path / "rigid.mat")
    mi, ti = linear_matrix(inverse)
    np.testing.assert_allclose(mi @ m, np.eye(3), atol=1e-5)
    np.testing.assert_allclose(mi @ t + ti, 0, atol=1e-4)
    compose_to_h5(img, [str(tmp_path / "rigid.mat"), inverse, str(tmp_path / "rigid.mat")],
                  tmp_path / "chain.h5")
    direct = ants.apply_transforms(fixed=img, moving=img, transformlist=[str(tmp_path / "rigid.mat")])
    chained = ants.apply_transforms(fixed=img, moving=img, transformlist=[str(tmp_path / "chain.h5")])
    inside = direct.numpy() > 0.05
    assert np.abs(direct.numpy() - chained.numpy())[inside].mean() < 0.01


def test_follow_up_chain_applies_rigid_then_baseline_syn(tmp_path):
    """A follow-up session's MNI -> T1w warp must equal warping to the baseline
    and then through the rigid transform: a baseline composite (affine + SyN
    field, as ants.registration writes it) chained with a rigid .mat."""
    import ants

    from pipeline.anat.register import chain_through_baseline
    from pipeline.antsio import from_ants, to_ants

    _, r, probs = _sphere_phantom(shape=(30, 34, 28), voxel=2.0, wm_radius=12.0)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = -np.array([30, 34, 28])
    base = nib.Nifti1Image((probs[..., 2] + 0.5 * probs[..., 1]).astype(np.float32), affine)
    coords = np.indices(r.shape)
    template = to_ants(nib.Nifti1Image(
        (base.get_fdata() * (1 + 0.02 * coords[0]) + 0.01 * coords[1]).astype(np.float32),
        affine))
    template.set_origin([o + 3.0 for o in template.origin])  # a template shifted 3 mm
    reg = ants.registration(fixed=to_ants(base), moving=template, type_of_transform="SyN",
                            reg_iterations=(5, 0, 0), write_composite_transform=True,
                            outprefix=str(tmp_path / "base_"), verbose=False)
    base_h5 = reg["fwdtransforms"]
    base_h5 = base_h5 if isinstance(base_h5, str) else base_h5[0]
    rigid = ants.create_ants_transform(transform_type="Euler3DTransform", dimension=3,
                                       center=[0.0, 0.0, 0.0])
    rigid.set_parameters([0.12, -0.05, 0.08, 4.0, -3.0, 2.0])
    ants.write_transform(rigid, str(tmp_path / "rigid.mat"))
    chain_through_baseline(base, str(tmp_path / "rigid.mat"), base_h5, base_h5,
                           baseline_preproc=base, mni_to_t1w_out=tmp_path / "fwd.h5",
                           t1w_to_mni_out=tmp_path / "inv.h5")
    composite = ants.apply_transforms(fixed=to_ants(base), moving=template,
                                      transformlist=[str(tmp_path / "fwd.h5")]).numpy()
    on_baseline = ants.apply_transforms(fixed=to_ants(base), moving=template,
                                        transformlist=[base_h5])
    two_step = ants.apply_transforms(fixed=to_ants(base), moving=on_baseline,
                                     transformlist=[str(tmp_path / "rigid.mat")]).numpy()
    inside = from_ants(to_ants(base)).get_fdata() > 0.2
    inside[:4], inside[-4:], inside[:, :4], inside[:, -4:] = False, False, False, False
    assert np.abs(composite - two_step)[inside].mean() < 0.02 * np.abs(two_step[inside]).mean()


def test_enantiomorphic_fill_mirrors_about_the_subjects_midline(tmp_path):
    """A head whose mid-sagittal plane is x = +5 mm (RAS): the template
    registration maps its points 5 mm to the left. The lesion must be
    replaced by the value at the homologous point, x -> 10 - x, with the
    subject's own image kept away from the lesion."""
    import ants

    from pipeline.anat.register import enantiomorphic_fill, reflection_ras

    # subject RAS (x, y, z) -> template (x - 5, y, z); ANTs stores LPS: x_lps + 5
    tx = ants.create_ants_transform(transform_type="AffineTransform", dimension=3,
                                    matrix=np.eye(3), offset=[5.0, 0.0, 0.0])
    ants.write_transform(tx, str(tmp_path / "t1w_to_template.mat"))
    reflection = reflection_ras(tmp_path / "t1w_to_template.mat")
    np.testing.assert_allclose(reflection @ [7.0, 3.0, -2.0, 1.0], [3.0, 3.0, -2.0, 1.0],
                               atol=1e-6)

    shape = (41, 20, 20)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-15.0, -10.0, -10.0]  # x from -15 to 25 mm: midline at voxel 20
    x = (np.arange(shape[0]) - 15.0)[:, None, None] * np.ones(shape)
    image = (100.0 + 3.0 * x + 0.2 * (x - 5.0) ** 2).astype(np.float32)  # asymmetric
    lesion = np.zeros(shape, np.uint8)
    lesion[28:33, 8:12, 8:12] = 1  # x = 13..17 mm: homologous x = -7..-3 mm
    damaged = image.copy()
    damaged[lesion > 0] = 0.0
    filled = enantiomorphic_fill(nib.Nifti1Image(damaged, affine),
                                 nib.Nifti1Image(lesion, affine), reflection,
                                 margin_mm=1.0).get_fdata()
    mirror = 100.0 + 3.0 * (10.0 - x) + 0.2 * (5.0 - x) ** 2
    inside = lesion > 0
    np.testing.assert_allclose(filled[inside], mirror[inside], rtol=1e-5)
    far = np.ones(shape, bool)
    far[25:36, 5:15, 5:15] = False
    np.testing.assert_array_equal(filled[far], damaged[far])


# --- thickness ------------------------------------------------------------------

def test_direct_thickness_of_shells_with_a_lesion():
    """Two GM shells 2.5 and 4 mm thick: DiReCT must rank them and measure the
    1.5 mm difference; lesion voxels and non-GM voxels get no thickness."""
    from pipeline.anat.thickness import cortical_thickness

    medians = {}
    for truth in (2.5, 4.0):
        affine, r, probs = _sphere_phantom(gm_thickness=truth)
        labels = np.where(probs.sum(-1) > 0.5, 1 + np.argmax(probs, -1), 0).astype(np.uint8)
        lesion = (r < 14) & (np.indices(r.shape)[0] > 30)  # a wedge of WM and GM on one side
        labels[lesion] = 4
        probs[lesion] = 0
        thick = cortical_thickness(nib.Nifti1Image(labels, affine), nib.Nifti1Image(probs, affine),
                                   method="direct", iterations=45).get_fdata()
        assert not thick[lesion].any()
        assert not thick[labels != 2].any()
        far = (labels == 2) & (np.indices(r.shape)[0] < 15)
        medians[truth] = float(np.median(thick[far]))
        # DiReCT with ANTs' default step underestimates a thin synthetic shell (~25 %)
        assert 0.6 * truth < medians[truth] < truth + 0.3, medians
    assert abs((medians[4.0] - medians[2.5]) - 1.5) < 0.6, medians


def test_regional_thickness_and_sides():
    from pipeline.anat.thickness import regional_thickness
    from pipeline.side import LesionSide
    from pipeline.templates import ATLAS_REGION_LABELS

    shape, affine = (12, 10, 8), np.eye(4)
    dseg = np.full(shape, 2, np.uint8)
    dk = np.zeros(shape, np.int16)
    dk[:6] = 1024  # ctx-lh-precentral
    dk[6:] = 2024  # ctx-rh-precentral
    thick = np.where(np.arange(12)[:, None, None] < 6, 2.0, 3.0) * np.ones(shape)
    atlas = np.zeros(shape, np.uint8)
    inv = {v: k for k, v in ATLAS_REGION_LABELS.items()}
    atlas[:3] = inv["m1_left"]
    atlas[9:] = inv["m1_right"]
    thick[:3] = 1.5
    # the atlas's M1 spills onto postcentral cortex (as Juelich BA4 does on real
    # brains): thickness there is not M1's
    dk[:3, :, :2] = 1022  # ctx-lh-postcentral
    thick[:3, :, :2] = 9.0
    imgs = [nib.Nifti1Image(a, affine) for a in (thick.astype(np.float32), dseg, atlas, dk)]
    metrics, table = regional_thickness(*imgs, lesion_side="right")
    assert metrics["thickness_m1_ipsilesional_mm"] == pytest.approx(3.0)
    assert metrics["thickness_m1_contralesional_mm"] == pytest.approx(1.5)
    assert metrics["thickness_m1_asymmetry_mm"] == pytest.approx(1.5)
    assert metrics["thickness_hemisphere_ipsilesional_mm"] == pytest.approx(3.0)
    assert metrics["thickness_hemisphere_contralesional_mm"] == pytest.approx(thick[:6].mean())
    assert set(table["side"]) == {"ipsilesional", "contralesional"}
    nan_metrics, _ = regional_thickness(*imgs, lesion_side="none")
    assert np.isnan(nan_metrics["thickness_m1_ipsilesional_mm"])
    assert np.isnan(nan_metrics["thickness_m1_asymmetry_mm"])
    # left/right values are filled with or without a lesion
    for values in (metrics, nan_metrics):
        assert values["thickness_m1_left_mm"] == pytest.approx(1.5)
        assert values["thickness_m1_right_mm"] == pytest.approx(3.0)
        assert values["thickness_hemisphere_left_mm"] == pytest.approx(thick[:6].mean())
    # a bilateral lesion: the hemisphere holding more of it is ipsilesional (one rule)
    bilateral = LesionSide.from_side("bilateral", left_ml=4.0, right_ml=1.0)
    both, _ = regional_thickness(*imgs, lesion_side=bilateral)
    assert both["thickness_m1_ipsilesional_mm"] == pytest.approx(1.5)


def test_atlas_region_labels_threshold_and_overlap():
    """Above 25 % a voxel joins a region; where two overlap the more probable wins."""
    from pipeline.templates import ATLAS_REGION_LABELS, atlas_region_labels

    probs = {name: np.zeros(5, np.float32) for name in ATLAS_REGION_LABELS.values()}
    probs["cst_left"][:] = [0.0, 0.2, 0.6, 0.6, 0.3]
    probs["m1_left"][:] = [0.0, 0.24, 0.4, 0.7, 0.0]
    label = {name: k for k, name in ATLAS_REGION_LABELS.items()}
    np.testing.assert_array_equal(atlas_region_labels(probs),
                                  [0, 0, label["cst_left"], label["m1_left"], label["cst_left"]])


def test_commands_leave_nothing_in_the_temporary_directory(tiny_trial, tmp_path, monkeypatch):
    """ANTsPy names every registration's transforms with ``tempfile.mktemp()`` and
    never deletes them; a ``resstore`` command cleans them up with its private
    temporary directory (and a failing command too)."""
    import tempfile

    from pipeline.cli import main

    system_tmp = tmp_path / "system_tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    t1w = next((tiny_trial / "bids").glob("sub-*/ses-baseline/anat/*_T1w.nii.gz"))
    out = {k: str(tmp_path / k) for k in ("pre.nii.gz", "mask.nii.gz", "aff.mat", "m.json",
                                          "f.png")}
    args = ["anat-preproc", "--t1w", str(t1w), "--out-preproc", out["pre.nii.gz"],
            "--out-mask", out["mask.nii.gz"], "--out-xfm", out["aff.mat"],
            "--out-metrics", out["m.json"], "--out-figure", out["f.png"], "--threads", "1"]
    assert main(args) == 0
    assert nib.load(out["mask.nii.gz"]).shape == nib.load(t1w).shape
    assert list(system_tmp.iterdir()) == []
    assert tempfile.tempdir == str(system_tmp)
    # a command that fails on its input restores the temporary directory as well
    assert main([*args[:2], str(tmp_path / "missing_T1w.nii.gz"), *args[3:]]) == 2
    assert list(system_tmp.iterdir()) == [] and tempfile.tempdir == str(system_tmp)

"""Regional DWI metrics on a synthetic head with known regions (non-cubic grids)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from pipeline.dwi import regions
from pipeline.simulate.space import rigid_matrix


def _grid(shape, voxel_mm):
    affine = np.diag([voxel_mm] * 3 + [1.0])
    affine[:3, 3] = -np.array(shape) * voxel_mm / 2.0 + voxel_mm / 2.0
    xyz = nib.affines.apply_affine(affine, np.indices(shape).reshape(3, -1).T).reshape(*shape, 3)
    return affine, xyz


def _head(xyz):
    """Labels at world points: WM ellipsoid in GM, CSTs as vertical cylinders,
    M1 caps, a lesion sphere touching the left CST."""
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    brain = (x / 60) ** 2 + (y / 70) ** 2 + (z / 55) ** 2 < 1
    wm = (x / 50) ** 2 + (y / 60) ** 2 + (z / 45) ** 2 < 1
    cst_left = wm & ((x + 20) ** 2 + y**2 < 10**2)
    cst_right = wm & ((x - 20) ** 2 + y**2 < 10**2)
    m1_left = brain & ~wm & (x < -5) & (z > 30)
    m1_right = brain & ~wm & (x > 5) & (z > 30)
    lesion = (x + 34) ** 2 + y**2 + (z - 10) ** 2 < 8**2
    return brain, wm, cst_left, cst_right, m1_left, m1_right, lesion


@pytest.fixture(scope="module")
def head():
    t1_affine, t1_xyz = _grid((66, 76, 60), 2.0)
    brain, wm, cl, cr, ml, mr, lesion = _head(t1_xyz)
    atlas = np.zeros(brain.shape, np.uint8)
    for value, mask in ((1, cl), (2, cr), (3, ml), (4, mr)):
        atlas[mask] = value
    tissue = np.where(brain, 2, 1).astype(np.uint8)
    tissue[wm] = 3
    tissue[lesion & brain] = 4
    dwi_affine, dwi_xyz = _grid((33, 38, 31), 4.0)
    b_brain, b_wm, b_cl, b_cr, _, _, b_lesion = _head(dwi_xyz)
    fa = np.where(b_brain, 0.15, 0.0)
    fa[b_wm] = 0.45
    fa[b_cl] = 0.6
    fa[b_cr] = 0.7
    fa[b_lesion] = 0.2
    md = np.where(b_lesion, 1.2e-3, 0.7e-3) * b_brain
    return dict(atlas=nib.Nifti1Image(atlas, t1_affine), tissue=nib.Nifti1Image(tissue, t1_affine),
                lesion=nib.Nifti1Image((lesion & brain).astype(np.uint8), t1_affine),
                dwi_mask=b_brain, dwi_affine=dwi_affine, fa=fa, md=md, dwi_xyz=dwi_xyz)


@pytest.mark.parametrize("side", ["left", "right"])
def test_cst_nawm_lesion_metrics_follow_the_lesion_side(head, side):
    masks = regions.region_masks(dwi_mask=head["dwi_mask"], dwi_affine=head["dwi_affine"],
                                 atlas=head["atlas"], tissue=head["tissue"], lesion=head["lesion"],
                                 matrix=np.eye(4), lesion_side=side)
    m = regions.regional_metrics(head["fa"], head["md"], masks, 0.064)
    ipsi, contra = (0.6, 0.7) if side == "left" else (0.7, 0.6)
    assert m["fa_cst_ipsilesional"] == pytest.approx(ipsi)
    assert m["fa_cst_contralesional"] == pytest.approx(contra)
    assert m["fa_plic_ipsilesional"] == pytest.approx(ipsi)
    assert m["fa_cst_asymmetry_ratio"] == pytest.approx(ipsi / contra)
    assert m["fa_cst_asymmetry_index"] == pytest.approx((contra - ipsi) / (contra + ipsi))
    assert m["fa_nawm"] == pytest.approx(0.45)
    assert m["fa_nawm_ipsilesional"] == pytest.approx(0.45)
    assert m["fa_lesion"] == pytest.approx(0.2)
    assert m["md_lesion_um2_ms"] == pytest.approx(1.2)
    assert m["md_cst_ipsilesional_um2_ms"] == pytest.approx(0.7)
    # the lesion (8 mm sphere, dilated 2 mm) never reaches a CST or NAWM voxel
    near = np.linalg.norm(head["dwi_xyz"] - [-34.0, 0.0, 10.0], axis=-1) < 8.0
    for key in ("cst_ipsilesional", "cst_contralesional", "nawm"):
        assert not (masks[key] & near).any()
    # hemispheres split at the midline; PLIC is a thin slab of the CST
    x = head["dwi_xyz"][..., 0]
    ipsi_sign = -1 if side == "left" else 1
    assert np.all(x[masks["nawm_ipsilesional"]] * ipsi_sign >= 0)
    assert 0 < masks["plic_ipsilesional"].sum() < 0.3 * masks["cst_ipsilesional"].sum()
    z = head["dwi_xyz"][..., 2][masks["plic_contralesional"]]
    assert z.max() - z.min() <= 0.12 * 90 + 4.0
    assert m["dwi_cst_ipsilesional_ml"] == pytest.approx(masks["cst_ipsilesional"].sum() * 0.064)


def test_no_lesion_side_gives_no_ipsi_contra(head):
    masks = regions.region_masks(dwi_mask=head["dwi_mask"], dwi_affine=head["dwi_affine"],
                                 atlas=head["atlas"], tissue=head["tissue"], lesion=None,
                                 matrix=np.eye(4), lesion_side="none")
    m = regions.regional_metrics(head["fa"], head["md"], masks, 0.064)
    assert np.isnan(m["fa_cst_ipsilesional"]) and np.isnan(m["fa_cst_asymmetry_ratio"])
    assert m["fa_nawm"] == pytest.approx(0.45, abs=0.01)


def test_fractions_follow_the_registration(head):
    """A T1w -> DWI rigid moves the carried masks with it."""
    move = rigid_matrix((6.0, -4.0, 2.0), (0.0, 0.0, 0.0))
    cst = np.asarray(head["atlas"].dataobj) == 1
    moved = regions.to_dwi_fraction(cst, head["atlas"].affine, move, head["dwi_mask"].shape,
                                    head["dwi_affine"])
    still = regions.to_dwi_fraction(cst, head["atlas"].affine, np.eye(4), head["dwi_mask"].shape,
                                    head["dwi_affine"])
    centre = lambda f: (head["dwi_xyz"] * f[..., None]).sum((0, 1, 2)) / f.sum()  # noqa: E731
    np.testing.assert_allclose(centre(moved) - centre(still), [6.0, -4.0, 2.0], atol=0.5)
    assert moved.sum() == pytest.approx(still.sum(), rel=0.05)

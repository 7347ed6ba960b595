"""Laplace-equation cortical thickness against shapes of known thickness."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from tests.unit.test_anat_units import _sphere_phantom


def _labels(probs):
    return np.where(probs.sum(-1) > 0.5, 1 + np.argmax(probs, -1), 0).astype(np.uint8)


@pytest.mark.parametrize("voxel, grid, tol", [(1.0, 1.0, 0.2), (1.0, 0.5, 0.1), (2.0, 0.5, 0.2)])
def test_shell_thickness_is_measured(voxel, grid, tol):
    """GM shells 2.5 and 4 mm thick around a WM ball: the median thickness is
    the shell's, at the T1w grid and on a sub-voxel grid."""
    from pipeline.anat.thickness import cortical_thickness

    for truth in (2.5, 4.0):
        shape = tuple(int(round(s / voxel)) for s in (41, 44, 39))
        affine, _, probs = _sphere_phantom(shape=shape, voxel=voxel, gm_thickness=truth)
        thick = cortical_thickness(nib.Nifti1Image(_labels(probs), affine),
                                   nib.Nifti1Image(probs, affine), grid_mm=grid).get_fdata()
        gm = _labels(probs) == 2
        assert (thick[gm] > 0).mean() > 0.99
        assert not thick[~gm].any()
        assert abs(np.median(thick[gm]) - truth) <= tol, (truth, np.median(thick[gm]))


def _slab(thickness_mm, voxel, *, shape=(12, 12, 40)):
    """Planar cortex along z: WM below z = 10 mm, GM of ``thickness_mm``, then
    CSF, as partial-volume fractions on a ``voxel`` grid."""
    z = (np.arange(shape[2]) + 0.5) * voxel  # voxel centres (mm)
    lo, hi = z - voxel / 2, z + voxel / 2

    def frac(a, b):
        return np.clip((np.minimum(hi, b) - np.maximum(lo, a)) / voxel, 0, 1)

    wm = frac(-1e9, 10.0)
    gm = frac(10.0, 10.0 + thickness_mm)
    csf = 1 - wm - gm
    probs = np.stack([np.broadcast_to(p, shape) for p in (csf, gm, wm)], -1).astype(np.float32)
    return np.diag([voxel, voxel, voxel, 1.0]), probs


@pytest.mark.parametrize("voxel", [1.0, 2.0])
def test_sub_voxel_thinning_is_measured_from_partial_volume(voxel):
    """0.3 mm moved from GM to CSF at the pial surface (partial volume only, no
    label changes at 2 mm) lowers the measured thickness by 0.3 +- 0.1 mm."""
    from pipeline.anat.thickness import cortical_thickness

    means = {}
    for truth in (3.0, 2.7):
        affine, probs = _slab(truth, voxel)
        labels = _labels(probs)
        thick = cortical_thickness(nib.Nifti1Image(labels, affine), nib.Nifti1Image(probs, affine),
                                   grid_mm=0.5).get_fdata()
        inner = thick[3:-3, 3:-3][labels[3:-3, 3:-3] == 2]
        means[truth] = float(inner.mean())
        assert abs(means[truth] - truth) <= 0.25, means
    assert abs((means[3.0] - means[2.7]) - 0.3) <= 0.1, means


def test_touching_sulcal_banks_are_separated_on_the_medial_surface():
    """Two gyri whose GM touch across a sulcus without visible CSF: the cortex
    of each bank is 3 mm (half the 6 mm between the white-matter banks), not the
    sulcus depth; without sulcal reconstruction it would be measured up to the
    sulcus top."""
    from pipeline.anat.laplace import laplace_thickness

    voxel = 0.5
    shape = (24, 80, 60)
    y, z = np.meshgrid((np.arange(shape[1]) + 0.5) * voxel, (np.arange(shape[2]) + 0.5) * voxel,
                       indexing="ij")
    # white matter: a base (z < 5 mm) and two blades either side of y = 20 mm,
    # 6 mm apart, up to z = 22 mm; grey matter 3 mm around all white matter
    wm2 = (z < 5) | ((np.abs(y - 20) > 3) & (np.abs(y - 20) < 12) & (z < 22))
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(~wm2, sampling=voxel)
    gm2 = ~wm2 & (dist <= 3.0)
    wm = np.broadcast_to(wm2, shape).astype(np.float32)
    gm = np.broadcast_to(gm2, shape).astype(np.float32)
    spacing = [voxel] * 3
    opened = laplace_thickness(gm > 0, wm > 0, spacing)
    closed = laplace_thickness(gm > 0, wm > 0, spacing, sulcal_jump_mm=None)
    bank = (np.abs(y - 20) < 3) & (z > 8) & (z < 18)  # GM inside the sulcus, mid-depth
    bank3 = np.broadcast_to(bank, shape)[4:-4]
    inside = opened[4:-4][bank3 & (opened[4:-4] > 0)]
    assert abs(np.median(inside) - 3.0) <= 0.3, np.median(inside)
    assert np.median(closed[4:-4][bank3 & (closed[4:-4] > 0)]) > 5.0


def test_lesion_voxels_get_no_thickness():
    from pipeline.anat.thickness import cortical_thickness

    affine, r, probs = _sphere_phantom(gm_thickness=3.0)
    labels = _labels(probs)
    lesion = (r < 14) & (np.indices(r.shape)[0] > 30)
    labels[lesion] = 4
    probs[lesion] = 0
    thick = cortical_thickness(nib.Nifti1Image(labels, affine),
                               nib.Nifti1Image(probs, affine)).get_fdata()
    assert not thick[lesion].any()
    far = (labels == 2) & (np.indices(r.shape)[0] < 15)
    assert abs(np.median(thick[far]) - 3.0) <= 0.2


def test_unknown_method_is_a_named_error():
    from pipeline.anat.thickness import cortical_thickness

    affine, _, probs = _sphere_phantom()
    with pytest.raises(ValueError, match="unknown thickness method"):
        cortical_thickness(nib.Nifti1Image(_labels(probs), affine), nib.Nifti1Image(probs, affine),
                           method="freesurfer")


def test_methods_text_follows_the_config():
    import yaml

    from pipeline.anat.thickness import thickness_methods
    from tests.conftest import REPO

    anat = yaml.safe_load((REPO / "configs" / "config.yaml").read_text())["anat"]
    text = thickness_methods(anat)
    assert "Laplace" in text and "0.5 mm" in text and "3 mm" in text and "DiReCT" not in text
    assert "opened" not in thickness_methods({**anat, "thickness_sulcal_jump_mm": 0})
    direct = thickness_methods({**anat, "thickness_method": "direct"})
    assert direct.startswith("DiReCT") and "Laplace" not in direct

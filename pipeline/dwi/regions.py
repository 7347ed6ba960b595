"""DWI -> T1w registration and regional tensor metrics (CST, PLIC, NAWM, lesion).

Metrics are computed on the native DWI grid (FA/MD are never interpolated):
T1w-space masks are carried into DWI space as *fractions* (box-averaged to the
DWI voxel, then trilinear through the inverse of the DWI -> T1w rigid), and
voxels are selected by fraction thresholds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline.dwi.tensor import MD_UNIT_SCALE
from pipeline.side import as_lesion_side
from pipeline.templates import ATLAS_REGION_LABELS

logger = logging.getLogger(__name__)

LABEL = {name: value for value, name in ATLAS_REGION_LABELS.items()}
TISSUE = {"csf": 1, "gm": 2, "wm": 3, "lesion": 4}
PLIC_HEIGHT_FRACTION = (0.25, 0.37)
"""Posterior limb of the internal capsule: the part of the CST between 25 % and
37 % of its inferior -> superior extent. In MNI152NLin6Asym the Juelich CST
(probability > 25 %) runs from z = -24 to z = +79 mm, and the PLIC lies at
z = +2 to +14 mm (the level of the thalamus and lentiform nucleus)."""


@dataclass
class RegionOptions:
    """Thresholds of the regional masks (see :func:`region_masks`).

    Attributes
    ----------
    wm_fraction_min : float
        White-matter fraction (0-1) a voxel needs to count as white matter.
    region_fraction_min : float
        Atlas-region (CST) fraction a voxel needs.
    lesion_fraction_max : float
        Voxels with a (dilated) lesion fraction above this are excluded from
        CST and NAWM.
    lesion_fraction_min : float
        Lesion fraction for the lesion's own FA/MD.
    lesion_dilation_mm : float
        Dilation of the lesion before it is removed from white matter (mm).
    """

    wm_fraction_min: float = 0.9
    region_fraction_min: float = 0.5
    lesion_fraction_max: float = 0.01
    lesion_fraction_min: float = 0.5
    lesion_dilation_mm: float = 2.0


def register_dwi_to_t1w(b0: nib.Nifti1Image, dwi_mask: np.ndarray, t1w: nib.Nifti1Image,
                        t1w_mask: nib.Nifti1Image):
    """Rigid registration of the mean b=0 to the T1w (Mattes mutual information).

    Returns
    -------
    matrix : ndarray (4, 4)
        World (RAS, mm) map from T1w points to DWI points: a T1w point x is
        at ``matrix @ x`` in the DWI scanner world.
    transform_path : str
        The ANTs transform file (moving = DWI, fixed = T1w).

    Notes
    -----
    Both images are brain-masked; b=0 (CSF bright) and T1w (CSF dark) differ
    in contrast, so the metric is mutual information (Mattes et al. 2003).
    """
    import ants

    from pipeline.antsio import read_ants_affine, to_ants

    t1 = np.asarray(t1w.dataobj, np.float32) * (np.asarray(t1w_mask.dataobj) > 0)
    b = np.asarray(b0.dataobj, np.float32) * dwi_mask
    fixed = to_ants(nib.Nifti1Image(t1, t1w.affine))
    moving = to_ants(nib.Nifti1Image(b.astype(np.float32), b0.affine))
    reg = ants.registration(fixed=fixed, moving=moving, type_of_transform="Rigid",
                            aff_metric="mattes", aff_iterations=(200, 100, 50),
                            aff_shrink_factors=(4, 2, 1), aff_smoothing_sigmas=(2, 1, 0),
                            verbose=False)
    path = reg["fwdtransforms"][0]
    return read_ants_affine(path), path


def to_dwi_fraction(mask: np.ndarray, t1w_affine: np.ndarray, matrix: np.ndarray,
                    dwi_shape, dwi_affine: np.ndarray) -> np.ndarray:
    """A T1w-grid indicator (0/1) as a fraction of each DWI voxel.

    Parameters
    ----------
    mask : ndarray (T1w grid)
    matrix : ndarray (4, 4)
        T1w world -> DWI world (see :func:`register_dwi_to_t1w`).

    Notes
    -----
    The indicator is Gaussian-smoothed to the DWI voxel size (sigma =
    ratio / sqrt(12) T1w voxels, the standard deviation of a box) and sampled
    trilinearly at each DWI voxel centre.
    """
    data = np.asarray(mask, dtype=np.float32)
    t1_vox = np.sqrt((t1w_affine[:3, :3] ** 2).sum(axis=0))
    dwi_vox = np.sqrt((dwi_affine[:3, :3] ** 2).sum(axis=0))
    ratio = dwi_vox.mean() / t1_vox
    sigma = np.where(ratio > 1, ratio / np.sqrt(12.0), 0.0)
    if np.any(sigma > 0):
        data = ndimage.gaussian_filter(data, sigma)
    # DWI voxel -> DWI world -> T1w world -> T1w voxel
    vox = np.linalg.inv(t1w_affine) @ np.linalg.inv(matrix) @ dwi_affine
    out = ndimage.affine_transform(data, vox[:3, :3], offset=vox[:3, 3], output_shape=tuple(dwi_shape),
                                   order=1, mode="constant", cval=0.0)
    return np.clip(out, 0.0, 1.0)


def hemisphere_split(left: np.ndarray, right: np.ndarray, affine: np.ndarray, shape):
    """Left/right hemisphere masks from the plane bisecting two label centroids."""
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = nib.affines.apply_affine(affine, ijk)
    c_left = nib.affines.apply_affine(affine, np.argwhere(left).mean(axis=0))
    c_right = nib.affines.apply_affine(affine, np.argwhere(right).mean(axis=0))
    normal = c_right - c_left
    side = (xyz - (c_left + c_right) / 2.0) @ normal
    right_mask = (side > 0).reshape(shape)
    return ~right_mask, right_mask


def region_masks(*, dwi_mask: np.ndarray, dwi_affine: np.ndarray, atlas: nib.Nifti1Image,
                 tissue: nib.Nifti1Image, lesion: nib.Nifti1Image | None, matrix: np.ndarray,
                 lesion_side, options: RegionOptions | None = None) -> dict:
    """Boolean masks on the DWI grid, keyed by region and hemisphere.

    Parameters
    ----------
    dwi_mask : ndarray of bool
        DWI brain mask.
    atlas : nibabel image
        T1w-space dseg with :data:`pipeline.templates.ATLAS_REGION_LABELS`.
    tissue : nibabel image
        T1w-space dseg (1 CSF, 2 GM, 3 WM, 4 lesion).
    lesion : nibabel image or None
        T1w-space lesion mask.
    matrix : ndarray (4, 4)
        T1w world -> DWI world.
    lesion_side : LesionSide or str
        The subject's lesion side (:mod:`pipeline.side`); not lateralised gives no
        ipsi/contra masks.

    Returns
    -------
    dict
        ``cst_ipsilesional``, ``cst_contralesional``, ``plic_ipsilesional``,
        ``plic_contralesional``, ``nawm``, ``nawm_ipsilesional``,
        ``nawm_contralesional``, ``lesion`` (bool arrays), and ``fractions``
        (dict of float maps: wm, lesion, cst_left, cst_right).

    Notes
    -----
    CST: white-matter fraction >= ``wm_fraction_min``, CST fraction >=
    ``region_fraction_min``, no lesion (dilated by ``lesion_dilation_mm``).
    NAWM: the same white matter outside both CSTs (reported separately) and
    outside the dilated lesion.
    """
    opt = options or RegionOptions()
    shape = dwi_mask.shape
    frac = lambda m: to_dwi_fraction(m, atlas.affine, matrix, shape, dwi_affine)  # noqa: E731
    atlas_data = np.asarray(atlas.dataobj).astype(np.int16)
    tissue_data = np.asarray(tissue.dataobj).astype(np.int16)
    lesion_t1 = tissue_data == TISSUE["lesion"]
    if lesion is not None:
        lesion_t1 = lesion_t1 | (np.asarray(lesion.dataobj) > 0.5)
    if opt.lesion_dilation_mm > 0 and lesion_t1.any():
        t1_vox = np.sqrt((tissue.affine[:3, :3] ** 2).sum(axis=0))
        radius = np.ceil(opt.lesion_dilation_mm / t1_vox).astype(int)
        grid = np.indices(2 * radius + 1).T - radius
        ball = ((grid * t1_vox) ** 2).sum(axis=-1).T <= opt.lesion_dilation_mm ** 2
        dilated_t1 = ndimage.binary_dilation(lesion_t1, structure=ball)
    else:
        dilated_t1 = lesion_t1
    fractions = {
        "wm": frac(tissue_data == TISSUE["wm"]),
        "lesion": frac(lesion_t1),
        "lesion_dilated": frac(dilated_t1),
        "cst_left": frac(atlas_data == LABEL["cst_left"]),
        "cst_right": frac(atlas_data == LABEL["cst_right"]),
    }
    wm = dwi_mask & (fractions["wm"] >= opt.wm_fraction_min)
    clean = fractions["lesion_dilated"] <= opt.lesion_fraction_max
    cst = {s: wm & clean & (fractions[f"cst_{s}"] >= opt.region_fraction_min)
           for s in ("left", "right")}
    any_cst = (fractions["cst_left"] > opt.lesion_fraction_max) | (
        fractions["cst_right"] > opt.lesion_fraction_max)
    nawm = wm & clean & ~any_cst

    # PLIC level: a height band of the CST (both sides together), along world z.
    plic = {s: np.zeros(shape, bool) for s in cst}
    both = (fractions["cst_left"] >= opt.region_fraction_min) | (
        fractions["cst_right"] >= opt.region_fraction_min)
    if both.any():
        z = nib.affines.apply_affine(dwi_affine, np.indices(shape).reshape(3, -1).T)[:, 2]
        z = z.reshape(shape)
        lo, hi = z[both].min(), z[both].max()
        band = ((z >= lo + PLIC_HEIGHT_FRACTION[0] * (hi - lo))
                & (z <= lo + PLIC_HEIGHT_FRACTION[1] * (hi - lo)))
        plic = {s: cst[s] & band for s in cst}

    out = {"nawm": nawm, "lesion": dwi_mask & (fractions["lesion"] >= opt.lesion_fraction_min),
           "fractions": fractions}
    side = as_lesion_side(lesion_side)
    if side.lateralised:
        left_t1 = np.isin(atlas_data, [LABEL["cst_left"], LABEL["m1_left"]])
        right_t1 = np.isin(atlas_data, [LABEL["cst_right"], LABEL["m1_right"]])
        if left_t1.any() and right_t1.any():
            # hemispheres in DWI space from the atlas centroids carried across
            lh, rh = hemisphere_split(frac(left_t1) > 0.5, frac(right_t1) > 0.5, dwi_affine, shape)
            hemi = {"left": lh, "right": rh}
        else:
            hemi = {"left": np.zeros(shape, bool), "right": np.zeros(shape, bool)}
        for role, hemisphere in side.roles().items():
            out[f"cst_{role}"] = cst[hemisphere]
            out[f"plic_{role}"] = plic[hemisphere]
            out[f"nawm_{role}"] = nawm & hemi[hemisphere]
    return out


def _summary(values: np.ndarray, mask: np.ndarray | None, statistic: str) -> float:
    if mask is None or not mask.any():
        return float("nan")
    return float(np.median(values[mask]) if statistic == "median" else values[mask].mean())


def regional_metrics(fa: np.ndarray, md: np.ndarray, masks: dict, voxel_volume_ml: float, *,
                     statistic: str = "median") -> dict:
    """FA and MD (um^2/ms) per region, CST asymmetry and region volumes.

    Parameters
    ----------
    statistic : {"median", "mean"}
        Summary over the voxels of a region. The median is less pulled down by
        the partial-volume tail (voxels mixing grey matter or CSF, FA low) that
        a 2 mm grid and a registration leave at a region's border.

    Returns
    -------
    dict
        ``fa_<region>``, ``md_<region>_um2_ms`` for cst / plic / nawm
        (ipsilesional, contralesional; nawm also whole-brain) and the lesion;
        ``fa_cst_asymmetry_ratio`` = ipsi / contra;
        ``fa_cst_asymmetry_index`` = (contra - ipsi) / (contra + ipsi);
        ``dwi_cst_ipsilesional_ml`` etc. (volume of the masks used).
    """
    md_scaled = md * MD_UNIT_SCALE
    out = {}
    regions = ["cst_ipsilesional", "cst_contralesional", "plic_ipsilesional",
               "plic_contralesional", "nawm", "nawm_ipsilesional", "nawm_contralesional", "lesion"]
    for region in regions:
        mask = masks.get(region)
        out[f"fa_{region}"] = _summary(fa, mask, statistic)
        out[f"md_{region}_um2_ms"] = _summary(md_scaled, mask, statistic)
        if region.startswith(("cst", "plic")) or region == "lesion":
            out[f"dwi_{region}_ml"] = float(mask.sum() * voxel_volume_ml) if mask is not None \
                else float("nan")
    ipsi, contra = out["fa_cst_ipsilesional"], out["fa_cst_contralesional"]
    out["fa_cst_asymmetry_ratio"] = ipsi / contra if contra > 0 else float("nan")
    out["fa_cst_asymmetry_index"] = ((contra - ipsi) / (contra + ipsi)
                                     if (contra + ipsi) > 0 else float("nan"))
    return out

"""Cortical thickness with the lesion excluded, and regional values.

Two methods, both on the Atropos GM/WM probabilities:

- ``laplace`` (default): the Laplace-equation thickness of
  :mod:`pipeline.anat.laplace` (Jones et al. 2000; Yezzi & Prince 2003), on a
  grid that subdivides the T1w voxels to at most ``grid_mm`` (probabilities
  interpolated: sub-voxel boundaries), with sulci whose banks touch opened on
  their medial surface (as projection-based thickness, Dahnke et al. 2013).
  About 15 s for a whole 1 mm brain.
- ``direct``: DiReCT (``ants.kelly_kapowski``, Das et al. 2009) on the brain's
  bounding box, on an isotropic grid of ``voxel_mm``; with ANTs' defaults on a
  whole 1 mm head it takes tens of minutes on two cores.

``benchmarks/anat_stream.py --compare-default`` measures the speed ratio and
the thickness difference of the configured method against DiReCT with ANTs'
default settings on the same input.
"""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from pipeline import templates
from pipeline.anat.laplace import SULCAL_JUMP_MM
from pipeline.antsio import from_ants, to_ants
from pipeline.side import HEMISPHERES, ROLES, as_lesion_side

log = logging.getLogger(__name__)

# Default settings of ANTs KellyKapowski (ants.kelly_kapowski).
KK_DEFAULT = {"iterations": 45, "gradient_step": 0.025, "smoothing_sigma": 1.5}


def _crop_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


def _cropped(arr: np.ndarray, affine: np.ndarray, box) -> nib.Nifti1Image:
    shift = np.eye(4)
    shift[:3, 3] = [s.start for s in box]
    return nib.Nifti1Image(np.ascontiguousarray(arr[box], dtype=np.float32), affine @ shift)


def thickness_methods(anat: dict) -> str:
    """Methods text of the thickness reportlet for the ``anat`` config section."""
    regions = ("per hemisphere, in M1 (Juelich BA4a+BA4p as maximum-probability label, "
               "> 25 %, on cortex the Desikan-Killiany atlas calls precentral gyrus) and "
               "per Desikan-Killiany region; "
               "lesion voxels are excluded (the lesion bounds the cortex as white matter does).")
    if anat["thickness_method"] == "direct":
        return (f"DiReCT (ANTs KellyKapowski, Das et al. 2009; {anat['thickness_iterations']} "
                f"iterations) on the GM/WM probabilities, cropped to the brain, on a "
                f"{anat['thickness_voxel_mm']:g} mm grid. Means over GM voxels " + regions)
    jump = anat["thickness_sulcal_jump_mm"]
    sulci = (f" Sulci whose banks touch (nearest white-matter point jumping by more than "
             f"{jump:g} mm between neighbours) are opened on their medial surface "
             "(as projection-based thickness, Dahnke et al. 2013)." if jump else "")
    band = anat.get("partial_volume_band_mm", 0)
    fractions = (f" GM/WM fractions: Atropos posteriors, replaced within {band:g} mm of the "
                 "grey/white interface by the white-matter fraction of a two-class "
                 "partial-volume model with local class means (as FSL FAST, Zhang et al. "
                 "2001), so the boundary sits where a voxel is half white matter."
                 if band else " GM/WM fractions: Atropos posteriors.")
    return ("Laplace-equation thickness (Jones et al. 2000; field-line lengths by the "
            "PDEs of Yezzi & Prince 2003) on a grid subdividing the T1w voxels to at most "
            f"{anat['thickness_grid_mm']:g} mm, each voxel keeping its GM/WM fractions (sub-voxel "
            "boundaries)." + fractions + sulci + " Means weighted to the central surface (one value per "
            "cortical column) " + regions)


def _lesion_as_white_matter(dseg: nib.Nifti1Image, probseg: nib.Nifti1Image):
    """Labels, GM and WM probabilities with the lesion (label 4) given as white
    matter: its surface bounds no cortex, and it must not open a cavity that
    the thickness would be measured across."""
    labels = np.asarray(dseg.dataobj).astype(np.uint8)
    probs = probseg.get_fdata(dtype=np.float32)
    lesion = labels == 4
    gm = np.where(lesion, 0.0, probs[..., 1]).astype(np.float32)
    wm = np.where(lesion, 1.0, probs[..., 2]).astype(np.float32)
    return labels, lesion, gm, wm


def cortical_thickness(dseg: nib.Nifti1Image, probseg: nib.Nifti1Image, *,
                       method: str = "laplace", grid_mm: float = 0.5,
                       sulcal_jump_mm: float | None = SULCAL_JUMP_MM,
                       with_surface_weight: bool = False,
                       **direct_options):
    """Cortical thickness (mm) on the T1w grid, 0 outside the cortex and in the lesion.

    Parameters
    ----------
    dseg : nibabel image
        Labels 1 CSF, 2 GM, 3 WM, 4 lesion (T1w grid).
    probseg : nibabel image
        4D (CSF, GM, WM) probabilities on the same grid.
    method : {"laplace", "direct"}
        Laplace-equation thickness (:func:`laplace_cortical_thickness`) or
        DiReCT (:func:`direct_thickness`, which takes ``direct_options``).
    grid_mm : float
        Laplace: each T1w voxel is subdivided so the grid is at most this
        fine-grid spacing (mm).
    sulcal_jump_mm : float or None
        Laplace: see :func:`pipeline.anat.laplace.sulcal_skeleton`.
    with_surface_weight : bool
        Also return the central-surface weight image (Laplace; None for
        DiReCT, whose regional means are over GM voxels).

    Returns
    -------
    nibabel image, or (image, weight image or None) with ``with_surface_weight``
    """
    if method == "direct":
        thick = direct_thickness(dseg, probseg, **direct_options)
        return (thick, None) if with_surface_weight else thick
    if method != "laplace":
        raise ValueError(f"unknown thickness method {method!r} (laplace or direct)")
    if direct_options:
        raise TypeError(f"DiReCT options {sorted(direct_options)} given to the Laplace method")
    return laplace_cortical_thickness(dseg, probseg, grid_mm=grid_mm,
                                      sulcal_jump_mm=sulcal_jump_mm,
                                      with_surface_weight=with_surface_weight)


def laplace_cortical_thickness(dseg: nib.Nifti1Image, probseg: nib.Nifti1Image, *,
                               grid_mm: float = 0.5, sulcal_jump_mm: float | None = SULCAL_JUMP_MM,
                               crop_margin_mm: float = 6.0, with_surface_weight: bool = False):
    """Laplace-equation thickness (mm) on the T1w grid (see :mod:`pipeline.anat.laplace`).

    Each T1w voxel is subdivided (grid at most ``grid_mm``), filling as many
    sub-voxels with tissue (GM + WM) and with WM as its probabilities say
    (:func:`pipeline.anat.laplace.partial_volume_mask`); the thickness is
    solved on that grid and each GM voxel of the T1w gets the mean over its
    sub-voxels (GM voxels whose sub-voxels all fell outside the fine grey
    matter take the nearest value).

    With ``with_surface_weight`` also returns, per T1w voxel, the share of its
    sub-voxels on the central surface (mid-depth, ``|L0 - L1| <= h``): regional
    means weighted by it count each cortical column once, as thickness sampled
    on the central surface (CAT12; FreeSurfer averages over vertices), whereas
    a mean over GM voxels weights a column by its thickness and overstates the
    mean (the MNI152 2009a: 4.3 mm over voxels, 3.7 mm on the central surface).
    """
    from pipeline.anat import laplace

    labels, lesion, gm, wm = _lesion_as_white_matter(dseg, probseg)
    zooms = np.asarray(dseg.header.get_zooms()[:3], float)
    box = _crop_box(np.isin(labels, (2, 3, 4)),
                    int(np.ceil(crop_margin_mm / float(zooms.min()))))
    factors = laplace.subdivision(zooms, grid_mm)
    tissue = laplace.partial_volume_mask(gm[box] + wm[box], factors)
    white = laplace.partial_volume_mask(wm[box], factors) & tissue
    fine, depth = laplace.laplace_thickness(tissue & ~white, white, zooms / factors,
                                            sulcal_jump_mm=sulcal_jump_mm, return_depth=True)
    del tissue, white
    values = laplace.block_mean(fine, fine > 0, factors)
    cortex = (labels[box] == 2) & ~lesion[box]
    if (values > 0).any():
        _, nearest = ndimage.distance_transform_edt(values <= 0, return_indices=True)
        values = np.where(values > 0, values, values[tuple(nearest)])
    out = np.zeros(labels.shape, np.float32)
    out[box] = np.where(cortex, values, 0.0)
    thickness = nib.Nifti1Image(out, dseg.affine)
    if not with_surface_weight:
        return thickness
    h = float(np.min(zooms / factors))
    central = (fine > 0) & (np.abs(2 * depth - 1) * fine <= h)
    weight = np.zeros(labels.shape, np.float32)
    weight[box] = np.where(cortex, laplace.block_mean(central.astype(np.float32),
                                                      np.ones_like(fine), factors), 0.0)
    return thickness, nib.Nifti1Image(weight, dseg.affine)


def direct_thickness(dseg: nib.Nifti1Image, probseg: nib.Nifti1Image, *,
                     voxel_mm: float | None = None, iterations: int = 45,
                     gradient_step: float = 0.025, smoothing_sigma: float = 1.5,
                     crop_margin_mm: float = 6.0) -> nib.Nifti1Image:
    """DiReCT cortical thickness (mm) on the T1w grid, 0 outside the cortex.

    Parameters
    ----------
    dseg : nibabel image
        Labels 1 CSF, 2 GM, 3 WM, 4 lesion (T1w grid).
    probseg : nibabel image
        4D (CSF, GM, WM) probabilities on the same grid.
    voxel_mm : float or None
        Isotropic grid (mm) DiReCT runs on when coarser than the T1w (never
        finer); None keeps the T1w grid.
    iterations, gradient_step, smoothing_sigma : float
        DiReCT convergence iterations, gradient step and gradient-field
        smoothing (ANTs defaults 45, 0.025, 1.5).
    crop_margin_mm : float
        Margin (mm) of the bounding box around GM + WM.

    Returns
    -------
    nibabel image
        float32 thickness (mm) on the T1w grid, non-zero only on GM voxels
        (never on lesion voxels).

    Notes
    -----
    DiReCT (Das et al., NeuroImage 2009;45:867-879): the white matter is
    diffeomorphically expanded into grey matter; the thickness at a GM voxel
    is the distance travelled. The lesion is given to DiReCT as white matter
    (its surface bounds no cortex and it must not open a cavity that the
    expansion would measure across); lesion voxels are then set to 0.
    """
    import ants

    labels, lesion, gm, wm = _lesion_as_white_matter(dseg, probseg)
    seg = np.where(lesion, 3, labels).astype(np.float32)
    native_voxel = float(np.mean(np.abs(dseg.header.get_zooms()[:3])))
    box = _crop_box(np.isin(labels, (2, 3, 4)),
                    int(np.ceil(crop_margin_mm / native_voxel)))
    images = [_cropped(a, dseg.affine, box) for a in (seg, gm, wm)]
    if voxel_mm is not None and voxel_mm > native_voxel + 1e-3:
        from pipeline.anat.register import resample_iso

        gm_c, wm_c = (resample_iso(img, voxel_mm) for img in images[1:])
        g, w = gm_c.get_fdata(), wm_c.get_fdata()
        seg_c = np.where((g + w) > 0.5, np.where(w >= g, 3, 2), 1).astype(np.float32)
        images = [nib.Nifti1Image(seg_c, gm_c.affine), gm_c, wm_c]
    s, g, w = (to_ants(img) for img in images)
    thick = ants.kelly_kapowski(s=s, g=g, w=w, its=int(iterations), r=float(gradient_step),
                                m=float(smoothing_sigma), gm_label=2, wm_label=3)
    thick_img = from_ants(thick)
    crop_ref = _cropped(seg, dseg.affine, box)
    if thick_img.shape != crop_ref.shape:
        # back to the T1w grid: nearest cortical value, so thin ribbons keep their values
        coarse = thick_img.get_fdata(dtype=np.float32)
        inside = coarse > 0
        _, nearest = ndimage.distance_transform_edt(~inside, return_indices=True)
        filled = coarse[tuple(nearest)]
        back = ants.resample_image_to_target(to_ants(nib.Nifti1Image(filled, thick_img.affine)),
                                             to_ants(crop_ref), interp_type="linear")
        values = from_ants(back).get_fdata(dtype=np.float32)
    else:
        values = thick_img.get_fdata(dtype=np.float32)
    out = np.zeros(labels.shape, np.float32)
    out[box] = values
    out[(labels != 2) | lesion] = 0.0
    return nib.Nifti1Image(out, dseg.affine)


def _cortical_labels(gm: np.ndarray, dk: np.ndarray, max_distance_vox: float) -> np.ndarray:
    """Each GM voxel takes the nearest Desikan-Killiany cortical label (0 if
    the nearest label is not cortical or is further than ``max_distance_vox``)."""
    labelled = dk > 0
    if not labelled.any():
        return np.zeros(dk.shape, np.int32)
    dist, nearest = ndimage.distance_transform_edt(~labelled, return_indices=True)
    nearest_label = dk[tuple(nearest)]
    cortical = (nearest_label >= 1000) & (nearest_label < 3000)
    return np.where(gm & cortical & (dist <= max_distance_vox), nearest_label, 0).astype(np.int32)


def regional_thickness(thickness: nib.Nifti1Image, dseg: nib.Nifti1Image,
                       atlas: nib.Nifti1Image, dk: nib.Nifti1Image, *,
                       lesion_side,
                       weight: nib.Nifti1Image | None = None) -> tuple[dict, pd.DataFrame]:
    """Mean thickness per hemisphere, in M1 and per Desikan-Killiany region.

    M1 is the atlas's M1 label where the cortex's Desikan-Killiany label is the
    precentral gyrus of that hemisphere (:data:`pipeline.templates.DK_PRECENTRAL`).

    Parameters
    ----------
    thickness : nibabel image
        Output of :func:`cortical_thickness`.
    dseg : nibabel image
        Tissue labels (GM = 2).
    atlas : nibabel image
        Region labels :data:`pipeline.templates.ATLAS_REGION_LABELS` (T1w grid).
    dk : nibabel image
        Desikan-Killiany labels on the T1w grid (FreeSurfer numbering:
        1000s left cortex, 2000s right cortex).
    lesion_side : LesionSide, str or None
        The subject's lesion side (:mod:`pipeline.side`); ipsi/contralesional
        values are NaN when it is not lateralised (left/right values are filled).
    weight : nibabel image or None
        Per-voxel weight of the means (the central-surface weight of
        :func:`cortical_thickness`); None: plain means over GM voxels. A
        region with no weight falls back to its plain mean.

    Returns
    -------
    metrics : dict
        ``thickness_mean_mm``, ``thickness_hemisphere_{left,right}_mm``,
        ``thickness_m1_{left,right}_mm``, the same as
        ``..._{ipsi,contra}lesional_mm`` and
        ``thickness_m1_asymmetry_mm`` (ipsilesional minus contralesional M1, mm).
    table : DataFrame
        One row per cortical region: ``region``, ``hemisphere`` (left/right),
        ``side`` (ipsilesional/contralesional/n/a), ``thickness_mean_mm``,
        ``thickness_sd_mm``, ``n_voxels``.
    """
    thick = thickness.get_fdata(dtype=np.float32)
    voxel = float(np.mean(np.abs(dseg.header.get_zooms()[:3])))
    cortex = _cortical_labels((np.asarray(dseg.dataobj) == 2) & (thick > 0),
                              np.asarray(dk.dataobj).astype(np.int32), 3.0 / voxel)
    regions = np.asarray(atlas.dataobj).astype(np.int32)
    side = as_lesion_side(lesion_side)

    wgt = None if weight is None else weight.get_fdata(dtype=np.float32)

    def mean(mask):
        values = thick[mask]
        if not values.size:
            return float("nan")
        if wgt is not None and wgt[mask].sum() > 0:
            return float(np.average(values, weights=wgt[mask]))
        return float(values.mean())

    hemi = {"left": (cortex >= 1000) & (cortex < 2000), "right": cortex >= 2000}
    inv = {v: k for k, v in templates.ATLAS_REGION_LABELS.items()}
    metrics = {"thickness_mean_mm": mean(cortex > 0)}
    for hemisphere in HEMISPHERES:
        metrics[f"thickness_hemisphere_{hemisphere}_mm"] = mean(hemi[hemisphere])
        # M1 on the subject's cortex: Juelich BA4 (maximum-probability label) where
        # the cortical ribbon is precentral gyrus (issue 21: thresholded BA4 alone was
        # a third postcentral and a quarter paracentral cortex on a real brain)
        metrics[f"thickness_m1_{hemisphere}_mm"] = mean(
            (regions == inv[f"m1_{hemisphere}"])
            & (cortex == templates.DK_PRECENTRAL[hemisphere]))
    for role in ROLES:
        hemisphere = side.hemisphere(role)
        for part in ("hemisphere", "m1"):
            metrics[f"thickness_{part}_{role}_mm"] = (
                metrics[f"thickness_{part}_{hemisphere}_mm"] if hemisphere else float("nan"))
    # the contralesional M1 as the subject's own reference: a change common to
    # both hemispheres (the session's segmentation, hydration, scanner drift)
    # cancels in the change of the asymmetry between visits
    metrics["thickness_m1_asymmetry_mm"] = (metrics["thickness_m1_ipsilesional_mm"]
                                            - metrics["thickness_m1_contralesional_mm"])
    names = templates.atlas_labels("desikan_killiany").set_index("index")["name"]
    rows = []
    for label in np.unique(cortex[cortex > 0]):
        values = thick[cortex == label]
        hemisphere = "left" if label < 2000 else "right"
        rows.append({"region": names.get(int(label), str(label)), "hemisphere": hemisphere,
                     "side": side.role(hemisphere) or "n/a",
                     "thickness_mean_mm": mean(cortex == label),
                     "thickness_sd_mm": float(values.std()), "n_voxels": int(values.size)})
    return metrics, pd.DataFrame(rows, columns=["region", "hemisphere", "side",
                                                "thickness_mean_mm", "thickness_sd_mm",
                                                "n_voxels"])

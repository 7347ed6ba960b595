"""Unsupervised stroke-lesion segmentation from a FLAIR and a T1w.

Method (one session, every image on the T1w grid):

1. **Intensity normalisation.** T1w and FLAIR are divided by their white-matter
   level (the upper T1w histogram mode, and the FLAIR median in the voxels at
   that T1w level), so the thresholds below are contrast-free numbers.
2. **Normal-tissue model with outlier detection** (Van Leemput et al. 2001,
   IEEE TMI 20:677). Tissue levels (CSF, GM, WM) and the upper limit of
   normal FLAIR (a high quantile of tissue FLAIR, i.e. the purest grey matter
   plus noise) are estimated in the hemisphere with less FLAIR hyperintensity,
   so that even a 150 mL lesion does not bias the model; lesions are outliers.
3. **Hyperintense lesion** (subacute lesion, chronic gliotic rim): voxels whose
   FLAIR lies more than ``seed_z`` white-matter SDs above the upper limit of
   normal seed the lesion, which grows into connected voxels above ``grow_z``
   (hysteresis, as in the lesion-growth algorithm of Schmidt et al. 2012,
   NeuroImage 59:3774); each component's edge is then placed at half maximum
   between its FLAIR plateau and that of the surrounding parenchyma
   (partial-volume voxels are lesion when they are more lesion than not).
4. **Left-right asymmetry**: a hyperintense component must be brighter than
   its mirror image across the template's mid-sagittal plane (through the
   affine template registration, with a few millimetres' tolerance), as LINDA
   uses left-right asymmetry (Pustina et al. 2016, Hum Brain Mapp 37:1405);
   symmetric bright structures (deep grey nuclei) are normal anatomy.
5. **Cavitated core** (chronic lesion): T1w-hypointense, CSF-like voxels are
   lesion when the hyperintense (gliotic) rim encloses them: rays cast from
   them in 26 directions meet the rim before normal tissue. Ventricles and
   sulci next to a lesion open onto normal tissue in most directions.
6. **Clean-up**: holes are filled and connected components smaller than
   ``min_component_ml`` are dropped.

Steps 1 and 2 (the normal-tissue model) are in :mod:`pipeline.lesion.tissue_model`.

Vascular-territory priors are deliberately not used to accept or reject a
component: they would bias against non-MCA strokes, and the template
registration they need is affine at this point (the lesion mask feeds the
nonlinear registration).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline.lesion.space import mirror, template_x
from pipeline.lesion.tissue_model import (
    CLASSES,
    TissueModel,
    fit_tissue_model,
    white_matter_level,
)
from pipeline.orientation import check_same_grid

__all__ = ["CLASSES", "LesionSegmentation", "TissueModel", "fit_tissue_model", "segment_lesion",
           "white_matter_level"]

log = logging.getLogger(__name__)


@dataclass
class LesionSegmentation:
    """Output of :func:`segment_lesion`.

    Attributes
    ----------
    mask : ndarray of bool
        Lesion mask on the T1w grid.
    hyperintense : ndarray of bool
        The FLAIR-hyperintense part (subacute lesion or chronic rim).
    model : TissueModel
    metrics : dict
        QC numbers of the model (normalisation levels, number of components,
        core volume).
    """

    mask: np.ndarray
    hyperintense: np.ndarray
    model: TissueModel
    metrics: dict


def _components(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if n == 0:
        return mask
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes >= min_voxels
    return keep[labels]


def _half_maximum_boundary(hyper: np.ndarray, fln: np.ndarray, brain: np.ndarray,
                           parenchyma: np.ndarray | None = None) -> np.ndarray:
    """Move each component's edge to half way between its FLAIR and its surroundings'.

    Partial-volume boundary voxels are lesion when they are more lesion than
    not: the threshold is the mean of the component's plateau (its 90th
    percentile FLAIR: the median of a rim thinner than the blur is lowered by
    partial volume, which put the edge too far out) and the median FLAIR in a
    1-voxel shell around it (the half-maximum rule). The shell's level
    is taken over ``parenchyma`` only (not CSF-like voxels): the dark cavity
    that a chronic gliotic rim encloses, and sulcal CSF, are not the tissue
    the lesion edge fades into; counting them lowered the threshold into the
    surrounding white matter. The two changes took a 9 mL chronic phantom
    lesion at 2 mm from +13 % (a one-voxel outer shell of white matter) to
    within 4 % (``benchmarks/lesion_accuracy.py``, two seeds).
    """
    labels, n = ndimage.label(hyper, structure=np.ones((3, 3, 3)))
    out = np.zeros_like(hyper)
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        sl = tuple(slice(max(s.start - 3, 0), s.stop + 3) for s in sl)
        comp = labels[sl] == k
        region = ndimage.binary_dilation(comp, iterations=1)
        shell = ndimage.binary_dilation(region, iterations=1) & ~region & brain[sl]
        if parenchyma is not None and (shell & parenchyma[sl]).any():
            shell &= parenchyma[sl]
        inside = np.percentile(fln[sl][comp], 90)
        outside = np.median(fln[sl][shell]) if shell.any() else inside / 2
        threshold = 0.5 * (inside + outside)
        grown = region & brain[sl] & (fln[sl] >= threshold)
        lab2, _ = ndimage.label(grown, structure=np.ones((3, 3, 3)))
        kept = np.unique(lab2[comp & grown])
        out[sl] |= np.isin(lab2, kept[kept > 0])
    return out


DIRECTIONS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                       if (i, j, k) != (0, 0, 0)])


def _enclosed_cavity(rim: np.ndarray, csf_like: np.ndarray, min_fraction: float) -> np.ndarray:
    """CSF-like voxels that the rim encloses, one rim component at a time.

    From each CSF-like voxel near a rim component, rays are cast in the 26
    neighbourhood directions through CSF-like voxels; a ray is enclosed when
    it meets the rim before normal tissue or the edge of the component's
    bounding box. Voxels enclosed in at least ``min_fraction`` of the
    directions, connected to the rim, form the cavity. Ventricles and sulci
    next to a lesion open onto normal tissue in most directions.
    """
    out = np.zeros_like(rim)
    labels, _ = ndimage.label(rim, structure=np.ones((3, 3, 3)))
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        sl = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in sl)
        ring = labels[sl] == k
        free = csf_like[sl] & ~ring
        start = np.argwhere(free)
        if start.size == 0:
            continue
        shape = np.array(free.shape)
        enclosed = np.zeros(len(start))
        for step in DIRECTIONS:
            pos = start.copy()
            alive = np.ones(len(start), bool)
            hit = np.zeros(len(start), bool)
            for _ in range(int(shape.max())):
                pos[alive] += step
                inside = np.all((pos >= 0) & (pos < shape), axis=1)
                alive &= inside
                if not alive.any():
                    break
                p = pos[alive]
                on_rim = ring[p[:, 0], p[:, 1], p[:, 2]]
                passable = free[p[:, 0], p[:, 1], p[:, 2]]
                idx = np.flatnonzero(alive)
                hit[idx[on_rim]] = True
                alive[idx[~passable | on_rim]] = False
            enclosed += hit
        cavity = np.zeros_like(free)
        sel = start[enclosed / len(DIRECTIONS) >= min_fraction]
        cavity[sel[:, 0], sel[:, 1], sel[:, 2]] = True
        lab, _ = ndimage.label(cavity | ring, structure=np.ones((3, 3, 3)))
        attached = np.unique(lab[ring])
        out[sl] |= cavity & np.isin(lab, attached[attached > 0])
    return out


def _drop_symmetric(hyper: np.ndarray, fln: np.ndarray, mirrored: np.ndarray,
                    min_difference: float) -> tuple[np.ndarray, int]:
    """Drop components no brighter than their mirror image (normal symmetric anatomy).

    The component's 90th-percentile FLAIR is compared with the median, over
    the component, of the mirrored FLAIR's local maximum (``mirrored`` is
    expected max-filtered), so that a few millimetres of mirror misalignment
    do not make a symmetric bright structure look asymmetric.
    """
    labels, n = ndimage.label(hyper, structure=np.ones((3, 3, 3)))
    if n == 0:
        return hyper, 0
    index = np.arange(1, n + 1)
    bright = ndimage.labeled_comprehension(fln, labels, index, lambda v: np.percentile(v, 90),
                                           float, np.nan)
    other = ndimage.median(mirrored, labels, index=index)
    keep = np.zeros(n + 1, bool)
    keep[1:] = (np.asarray(bright) - np.asarray(other)) >= min_difference
    return keep[labels], int(n - keep[1:].sum())


def segment_lesion(t1w: nib.Nifti1Image, flair: nib.Nifti1Image, brain_mask: nib.Nifti1Image,
                   t1w_to_mni: np.ndarray, *, seed_z: float = 3.5, grow_z: float = 1.0,
                   min_component_ml: float = 0.1, core_enclosure: float = 0.6,
                   brain_dilation_mm: float = 2.0,
                   refine_boundary: bool = True, asymmetry_z: float = 2.0,
                   mirror_tolerance_mm: float = 4.0,
                   seed_smoothing_mm: float = 1.0) -> LesionSegmentation:
    """Segment a subacute or chronic stroke lesion (see the module docstring).

    Parameters
    ----------
    t1w : nibabel image
        Bias-corrected T1w (the reference grid).
    flair : nibabel image
        Bias-corrected FLAIR already resampled on the T1w grid.
    brain_mask : nibabel image
        Brain mask on the T1w grid.
    t1w_to_mni : ndarray (4, 4)
        RAS world map of T1w points to MNI152NLin6Asym points (affine).
    seed_z, grow_z : float
        Hysteresis thresholds on the FLAIR hyperintensity (standard deviations
        above the upper limit of normal FLAIR).
    min_component_ml : float
        Connected components (26-neighbourhood) smaller than this (mL) are dropped.
    core_enclosure : float
        A CSF-like voxel belongs to a chronic cavity when the hyperintense rim
        encloses it in at least this fraction of 26 directions.
    brain_dilation_mm : float
        The brain mask is dilated by this (mm) so that cortical lesions cut by
        the template mask are kept.
    refine_boundary : bool
        Place each component's edge at half maximum (see
        :func:`_half_maximum_boundary`) instead of at ``grow_z``.
    asymmetry_z : float
        A hyperintense component is kept only if its median FLAIR exceeds
        that of its mirror image (other hemisphere, through the template) by
        this many FLAIR SDs; symmetric bright structures (deep grey nuclei)
        are normal. 0 disables the check (bilateral symmetric lesions).
    seed_smoothing_mm : float
        Gaussian sigma (mm) of the FLAIR smoothing before seeding (noise peaks
        do not seed a lesion).
    mirror_tolerance_mm : float
        The mirror image is compared through its local maximum within this
        distance (mm): the affine template registration misplaces the mirror
        by a few millimetres.

    Returns
    -------
    LesionSegmentation
    """
    check_same_grid(t1w, flair=flair, brain_mask=brain_mask)
    t1 = t1w.get_fdata(dtype=np.float32)
    fl = flair.get_fdata(dtype=np.float32)
    zooms = np.abs(np.linalg.eigvalsh(t1w.affine[:3, :3] @ t1w.affine[:3, :3].T)) ** 0.5
    voxel_mm = float(np.mean(zooms))
    voxel_ml = float(abs(np.linalg.det(t1w.affine[:3, :3]))) / 1000.0
    brain0 = np.asarray(brain_mask.dataobj) > 0
    brain = ndimage.binary_dilation(brain0, iterations=max(1, round(brain_dilation_mm / voxel_mm)))
    inner = ndimage.binary_erosion(brain0, iterations=max(1, round(3.0 / voxel_mm)))
    # normal-tissue model from the hemisphere with less FLAIR hyperintensity
    x = np.broadcast_to(template_x(t1w, t1w_to_mni), t1.shape)
    hemis = [inner & (x < 0), inner & (x >= 0)]
    p99 = [np.percentile(fl[h] / max(np.median(fl[h]), 1e-6), 99) if h.sum() > 1000 else np.inf
           for h in hemis]
    healthy = hemis[int(np.argmin(p99))] if np.isfinite(min(p99)) else inner
    model = fit_tissue_model(t1[healthy], fl[healthy])
    t1n = t1 / model.wm_t1w_raw
    fln = fl / model.wm_flair_raw

    csf_gm_t1 = 0.5 * (model.t1w["csf"] + model.t1w["gm"])  # CSF-like below, parenchyma above

    # 3. FLAIR-hyperintense lesion by hysteresis
    z = model.hyperintensity_z(fln)
    grow = brain & (z > grow_z)
    labels, n = ndimage.label(grow, structure=np.ones((3, 3, 3)))
    # seeds on a lightly smoothed FLAIR: a lesion is a bright region, not a noise peak;
    # or, for a thin gliotic rim that the smoothing dilutes with its dark cavity, a
    # region holding a cluster of unsmoothed seed-level voxels (at least a quarter of
    # the smallest lesion kept, and never fewer than 3)
    z_seed = model.hyperintensity_z(ndimage.gaussian_filter(fln, seed_smoothing_mm / voxel_mm))
    seeded = np.unique(labels[brain & (z_seed > seed_z)])
    keep = np.zeros(n + 1, bool)
    keep[seeded[seeded > 0]] = True
    if n:
        peaks = ndimage.sum(brain & (z > seed_z), labels, index=np.arange(1, n + 1))
        keep[1:] |= peaks >= max(3, round(0.25 * min_component_ml / voxel_ml))
    hyper = _components(keep[labels], max(1, round(min_component_ml / voxel_ml)))
    if hyper.any() and refine_boundary:
        hyper = _half_maximum_boundary(hyper, fln, brain, parenchyma=t1n >= csf_gm_t1)
        hyper = _components(hyper, max(1, round(min_component_ml / voxel_ml)))
    n_symmetric = 0
    if hyper.any() and asymmetry_z > 0:
        mirrored_f = mirror(ndimage.gaussian_filter(fln, 1.0), t1w.affine, t1w_to_mni)
        radius = max(1, round(mirror_tolerance_mm / voxel_mm))
        mirrored_f = ndimage.maximum_filter(mirrored_f, size=2 * radius + 1)
        hyper, n_symmetric = _drop_symmetric(hyper, fln, mirrored_f,
                                             asymmetry_z * model.flair_sd)

    # 4. cavitated core: T1w-hypointense (CSF-like) voxels enclosed by the rim
    core = np.zeros_like(hyper)
    if hyper.any():
        csf_like = brain0 & ~hyper & (t1n < csf_gm_t1)
        core = _enclosed_cavity(hyper, csf_like, core_enclosure)
    lesion = hyper | core
    if lesion.any():
        lesion = ndimage.binary_fill_holes(ndimage.binary_closing(lesion, iterations=1)) & brain \
            | lesion
        lesion = _components(lesion, max(1, round(min_component_ml / voxel_ml)))
    metrics = {
        "lesion_model_t1w_levels": {k: round(v, 4) for k, v in model.t1w.items()},
        "lesion_model_flair_gm": model.flair_gm,
        "lesion_model_flair_upper": model.flair_upper,
        "lesion_model_flair_sd": model.flair_sd,
        "lesion_core_volume_ml": float(core.sum() * voxel_ml),
        "lesion_hyperintense_volume_ml": float(hyper.sum() * voxel_ml),
        "lesion_n_symmetric_dropped": n_symmetric,
        "lesion_n_components": int(ndimage.label(lesion, structure=np.ones((3, 3, 3)))[1]),
    }
    log.info("lesion: %.2f mL (hyperintense %.2f, core %.2f), %d component(s)",
             lesion.sum() * voxel_ml, metrics["lesion_hyperintense_volume_ml"],
             metrics["lesion_core_volume_ml"], metrics["lesion_n_components"])
    return LesionSegmentation(lesion, hyper, model, metrics)

"""Brain mask refinement and tissue segmentation with template priors; the
lesion is its own class, never counted as grey or white matter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline import templates
from pipeline.anat.register import to_t1w
from pipeline.antsio import from_ants, to_ants
from pipeline.io import private_tempdir
from pipeline.qc.iqm import largest_component

log = logging.getLogger(__name__)

TISSUE_LABELS = {1: "CSF", 2: "GM", 3: "WM", 4: "lesion"}


@dataclass
class SegmentationResult:
    """Outputs of :func:`segment_tissues`.

    Attributes
    ----------
    brain_mask : nibabel image
        uint8 intracranial mask (the template brain mask through the SyN warp).
    dseg : nibabel image
        uint8 labels :data:`TISSUE_LABELS`.
    probseg : nibabel image
        float32 4D (CSF, GM, WM) posterior probabilities, 0 in the lesion.
    metrics : dict
        Volumes in mL (see :func:`tissue_volumes`).
    """

    brain_mask: nib.Nifti1Image
    dseg: nib.Nifti1Image
    probseg: nib.Nifti1Image
    metrics: dict


def template_tissue_probabilities() -> list[nib.Nifti1Image]:
    """CSF, GM and WM probabilities of nilearn's MNI152 2009a (GM + WM at most 1,
    CSF the rest of the template's brain mask)."""
    tissue = templates.nilearn_tissue_templates()
    gm = tissue["gm"].get_fdata(dtype=np.float32)
    wm = tissue["wm"].get_fdata(dtype=np.float32)
    over = (gm + wm) > 1
    total = np.where(over, gm + wm, 1.0)
    gm, wm = gm / total, wm / total
    csf = np.clip(np.maximum(tissue["mask"].get_fdata(dtype=np.float32), gm + wm) - gm - wm, 0, 1)
    return [nib.Nifti1Image(arr.astype(np.float32), tissue["gm"].affine) for arr in (csf, gm, wm)]


def tissue_priors_t1w(reference: nib.Nifti1Image, mni_to_t1w: str) -> list[np.ndarray]:
    """CSF, GM and WM priors of nilearn's MNI152 2009a on the T1w grid.

    The priors are MNI152NLin2009aSym maps; they follow the T1w <-> MNI152NLin6Asym
    warp through world coordinates (the two MNI spaces differ by a few mm).
    """
    return [np.clip(to_t1w(img, reference, mni_to_t1w).get_fdata(dtype=np.float32), 0, 1)
            for img in template_tissue_probabilities()]


def tissue_volumes(probseg: np.ndarray, lesion: np.ndarray, voxel_ml: float) -> dict:
    """Volumes (mL) from posterior probabilities (partial-volume aware).

    ``brain_volume_ml`` is the parenchyma: GM + WM + lesion.
    """
    csf, gm, wm = (float(probseg[..., k].sum() * voxel_ml) for k in range(3))
    lesion_ml = float(lesion.sum() * voxel_ml)
    return {"csf_volume_ml": csf, "gm_volume_ml": gm, "wm_volume_ml": wm,
            "brain_volume_ml": gm + wm + lesion_ml,
            "intracranial_volume_ml": gm + wm + csf + lesion_ml}


def segment_tissues(t1w_preproc: nib.Nifti1Image, mni_to_t1w: str, *,
                    lesion: nib.Nifti1Image | None = None, prior_weight: float = 0.25,
                    mrf_weight: float = 0.1, iterations: int = 5,
                    partial_volume_band_mm: float = 2.0) -> SegmentationResult:
    """Template-based brain mask and 3-class Atropos segmentation with priors.

    Parameters
    ----------
    t1w_preproc : nibabel image
        Bias-corrected T1w.
    mni_to_t1w : str
        ANTs transform resampling MNI152NLin6Asym images onto the T1w grid.
    lesion : nibabel image or None
        Lesion mask (T1w grid): removed from the segmentation mask and labelled 4.
    prior_weight : float
        Atropos prior weight (0 = priors only initialise, 1 = priors dominate).
    mrf_weight : float
        Markov random field smoothing weight.
    iterations : int
        EM iterations.
    partial_volume_band_mm : float
        Within this distance (mm, at least one voxel) of the grey/white
        interface, GM/WM probabilities become partial-volume fractions
        (:func:`pipeline.anat.partial_volume.interface_fractions`); 0 = off.

    Returns
    -------
    SegmentationResult

    Notes
    -----
    Brain mask: the FSL MNI152 brain mask brought through the lesion-masked
    SyN warp (template-based brain extraction as in antsBrainExtraction,
    Avants et al. 2011), holes filled. Segmentation: Atropos (Avants et al.,
    Neuroinformatics 2011;9:381-400) with MNI152 2009a priors, prior-based
    posterior formulation, MRF smoothing; at the grey/white interface the GM/WM
    posteriors are replaced by partial-volume fractions from the intensity
    (:mod:`pipeline.anat.partial_volume`). The lesion is excluded from the EM
    (it would bias the class means) and given its own label. Atropos runs with
    a constant seed (``-r 0``): with its default random seed two runs of the
    same session differed by ~0.05 mL in the tissue volumes (and so in
    thickness and NAWM), which broke the pipeline's bit-identical rerun.
    """
    import ants

    voxel_ml = float(abs(np.linalg.det(t1w_preproc.affine[:3, :3]))) / 1000.0
    warped = to_t1w(templates.fsl_mni152_brain_mask(), t1w_preproc, mni_to_t1w)
    brain = ndimage.binary_fill_holes(largest_component(warped.get_fdata() > 0.5))
    les = np.zeros(brain.shape, bool) if lesion is None else np.asarray(lesion.dataobj) > 0
    les &= brain
    seg_mask = brain & ~les
    priors = tissue_priors_t1w(t1w_preproc, mni_to_t1w)
    affine = t1w_preproc.affine
    prior_imgs = [to_ants(nib.Nifti1Image(p * seg_mask, affine)) for p in priors]
    mask_img = to_ants(nib.Nifti1Image(seg_mask.astype(np.float32), affine))
    # ANTsPy's atropos leaves its prior and posterior images in the temporary directory
    from pipeline.progress import step

    with private_tempdir(prefix="resstore-atropos-"), step(f"Atropos ({iterations} iterations)"):
        result = ants.atropos(a=to_ants(t1w_preproc), x=mask_img, i=prior_imgs,
                              m=f"[{mrf_weight},1x1x1]", c=f"[{iterations},0]",
                              priorweight=prior_weight, r=0, verbose=0)  # r=0: constant seed
        probs = np.stack([from_ants(p).get_fdata(dtype=np.float32) * seg_mask
                          for p in result["probabilityimages"]], axis=-1)
    pv_info = {"pv_band_ml": 0.0, "pv_gm_to_wm_ml": 0.0, "pv_wm_to_gm_ml": 0.0,
               "pv_gm_wm_ratio": float("nan")}
    if partial_volume_band_mm > 0:
        from pipeline.anat.partial_volume import MAX_VOXEL_MM, interface_fractions

        zooms = np.asarray(t1w_preproc.header.get_zooms()[:3], float)
        probs, info = interface_fractions(
            t1w_preproc.get_fdata(dtype=np.float32), probs, seg_mask, zooms,
            band_mm=max(partial_volume_band_mm, float(zooms.max())))
        pv_info = {k: info[k] for k in ("pv_band_ml", "pv_gm_to_wm_ml", "pv_wm_to_gm_ml")}
        pv_info["pv_gm_wm_ratio"] = info["pv_gm_mean"] / info["pv_wm_mean"]
        if pv_info["pv_band_ml"] == 0:
            log.warning("grey/white partial volume not estimated (voxel %.2f mm > %.1f mm, or "
                        "too few pure voxels): Atropos posteriors kept", zooms.max(),
                        MAX_VOXEL_MM)
        else:
            log.info("grey/white partial volume: band %.0f mL, %.1f mL GM -> WM, %.1f mL WM -> "
                     "GM", pv_info["pv_band_ml"], pv_info["pv_gm_to_wm_ml"],
                     pv_info["pv_wm_to_gm_ml"])
    dseg = np.zeros(brain.shape, np.uint8)
    dseg[seg_mask] = 1 + np.argmax(probs[seg_mask], axis=1)
    dseg[les] = 4
    metrics = {**tissue_volumes(probs, les, voxel_ml), **pv_info}
    log.info("volumes (mL): GM %.0f, WM %.0f, CSF %.0f, brain %.0f", metrics["gm_volume_ml"],
             metrics["wm_volume_ml"], metrics["csf_volume_ml"], metrics["brain_volume_ml"])
    return SegmentationResult(
        brain_mask=nib.Nifti1Image(brain.astype(np.uint8), affine),
        dseg=nib.Nifti1Image(dseg, affine),
        probseg=nib.Nifti1Image(probs.astype(np.float32), affine),
        metrics=metrics,
    )

"""The automatic lesion path of one session: FLAIR to T1w, two-pass segmentation."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline.lesion.preprocess import FlairToT1w, flair_to_t1w, lesion_masked_n4
from pipeline.lesion.segment import LesionSegmentation, segment_lesion
from pipeline.orientation import check_same_grid
from pipeline.progress import step

log = logging.getLogger(__name__)


def automatic_lesion(t1w_raw: nib.Nifti1Image, t1w_preproc: nib.Nifti1Image,
                     flair: nib.Nifti1Image, brain_mask: nib.Nifti1Image,
                     t1w_to_mni: np.ndarray, *, n4_shrink_factor: int = 4,
                     registration_voxel_mm: float = 2.0, exclusion_mm: float = 4.0,
                     two_pass_min_ml: float = 0.0, **options) -> tuple[LesionSegmentation, FlairToT1w]:
    """Register the FLAIR to the T1w and segment the lesion in two passes.

    Pass 1 segments on the N4-corrected images (the anatomy stream's T1w, the
    FLAIR corrected here with a stiff field). N4 fitted over a large lesion
    takes part of it for bias, so when pass 1 finds a lesion larger than
    ``two_pass_min_ml`` (mL), both raw images are N4-corrected
    again with the lesion (dilated by ``exclusion_mm``) left out of the fit,
    and pass 2 segments on those.

    Parameters
    ----------
    t1w_raw, t1w_preproc : nibabel image
        The session's raw T1w and the anatomy stream's N4-corrected T1w, both on the
        canonical T1w grid (:mod:`pipeline.orientation`; checked).
    flair : nibabel image
        Raw FLAIR (its own grid).
    brain_mask : nibabel image
        Brain mask on the T1w grid.
    t1w_to_mni : ndarray (4, 4)
        Affine T1w -> template map (RAS world).
    options
        Passed to :func:`pipeline.lesion.segment.segment_lesion`.

    Returns
    -------
    (LesionSegmentation, FlairToT1w)
        The final segmentation (with ``flair_t1w`` replaced by the pass-2 FLAIR
        when there was a second pass) and the registration.
    """
    check_same_grid(t1w_preproc, t1w_raw=t1w_raw, brain_mask=brain_mask)
    with step("lesion: FLAIR N4 and registration to the T1w", logger=log):
        reg = flair_to_t1w(flair, t1w_preproc, n4_shrink_factor=n4_shrink_factor,
                           registration_voxel_mm=registration_voxel_mm)
    with step("lesion: segmentation, pass 1", logger=log):
        seg = segment_lesion(t1w_preproc, reg.flair_t1w, brain_mask, t1w_to_mni, **options)
    voxel_ml = abs(np.linalg.det(t1w_preproc.affine[:3, :3])) / 1000
    if seg.mask.sum() * voxel_ml <= two_pass_min_ml:
        return seg, reg
    voxel_mm = float(np.mean(np.abs(np.linalg.svd(t1w_preproc.affine[:3, :3])[1])))
    exclude = ndimage.binary_dilation(seg.mask, iterations=max(1, round(exclusion_mm / voxel_mm)))
    with step("lesion: lesion-masked N4 of FLAIR and T1w", logger=log):
        flair2 = lesion_masked_n4(reg.raw_t1w, exclude, shrink_factor=n4_shrink_factor)
        t1w2 = lesion_masked_n4(t1w_raw, exclude, shrink_factor=n4_shrink_factor)
    with step("lesion: segmentation, pass 2", logger=log):
        seg2 = segment_lesion(t1w2, flair2, brain_mask, t1w_to_mni, **options)
    log.info("lesion-masked N4, pass 2: %.2f mL (pass 1: %.2f mL)",
             seg2.mask.sum() * voxel_ml, seg.mask.sum() * voxel_ml)
    reg.flair_t1w = flair2
    return seg2, reg

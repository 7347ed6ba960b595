"""FLAIR preprocessing: N4 bias correction and rigid registration to the T1w."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from pipeline.antsio import from_ants, to_ants
from pipeline.qc import iqm

log = logging.getLogger(__name__)

# First pass (no lesion known yet): three B-spline fitting levels (final mesh
# 4 intervals across the field of view, ~45 mm), too stiff to take a large
# lesion for bias. Second pass (lesion left out of the fit): ANTs' default
# four levels (8 intervals), which follows the coil non-uniformity closely.
N4_STIFF = {"iters": [50, 50, 50], "tol": 1e-7}
N4_CONVERGENCE = {"iters": [50, 50, 50, 50], "tol": 1e-7}


@dataclass
class FlairToT1w:
    """Outputs of :func:`flair_to_t1w`.

    Attributes
    ----------
    flair_t1w : nibabel image
        N4-corrected FLAIR resampled on the T1w grid (float32, linear).
    rigid : ndarray (4, 4)
        RAS world map of T1w points to FLAIR points (the resampling transform).
    metrics : dict
        ``flair_t1w_registration_mi`` (negative Mattes MI after registration).
    raw_t1w : nibabel image
        The FLAIR *before* N4, resampled on the T1w grid (for a second,
        lesion-masked N4: :func:`lesion_masked_n4`).
    """

    flair_t1w: nib.Nifti1Image
    rigid: np.ndarray
    metrics: dict
    raw_t1w: nib.Nifti1Image | None = None


def lesion_masked_n4(img: nib.Nifti1Image, exclude: np.ndarray, *,
                     shrink_factor: int = 4) -> nib.Nifti1Image:
    """N4 bias correction with the bias field fitted outside ``exclude``.

    Parameters
    ----------
    img : nibabel image
        Raw (not bias-corrected) image.
    exclude : ndarray of bool
        Voxels left out of the fit (a dilated lesion): a large lesion is
        otherwise partly taken for bias and flattened (a hyperintense FLAIR
        lesion darkened, a hypointense T1w lesion brightened). The field is
        still applied everywhere (B-spline, smooth through the lesion).
    shrink_factor : int
        N4's shrink factor.

    Notes
    -----
    Tustison NJ et al. (2010), N4ITK: improved N3 bias correction, IEEE TMI
    29:1310-1320; masking pathology out of the fit is the usual practice.
    """
    import ants

    data = img.get_fdata(dtype=np.float32)
    head = iqm.head_mask(data)
    fit = head & ~exclude
    mask = to_ants(nib.Nifti1Image(head.astype(np.float32), img.affine))
    weight = to_ants(nib.Nifti1Image(fit.astype(np.float32), img.affine))
    corrected = ants.n4_bias_field_correction(to_ants(img), mask=mask, weight_mask=weight,
                                              shrink_factor=shrink_factor,
                                              convergence=N4_CONVERGENCE)
    return nib.Nifti1Image(np.clip(from_ants(corrected).get_fdata(dtype=np.float32), 0, None),
                           img.affine)


def flair_to_t1w(flair: nib.Nifti1Image, t1w: nib.Nifti1Image, *, n4_shrink_factor: int = 4,
                 registration_voxel_mm: float = 2.0, seed: int = 1) -> FlairToT1w:
    """N4-correct a FLAIR and register it rigidly to the (bias-corrected) T1w.

    Parameters
    ----------
    flair : nibabel image
        3D FLAIR, any grid and orientation.
    t1w : nibabel image
        The session's bias-corrected T1w (reference grid of every lesion output).
    n4_shrink_factor : int
        N4's shrink factor.
    registration_voxel_mm : float
        Both images are resampled to this isotropic voxel size (mm) for the
        registration; the FLAIR is then resampled once, at full resolution.
    seed : int
        Random seed of ANTs' metric sampling.

    Returns
    -------
    FlairToT1w

    Notes
    -----
    N4 (Tustison et al. 2010, IEEE TMI 29:1310) inside a head mask; rigid
    registration by Mattes mutual information (Mattes et al. 2003, IEEE TMI
    22:120), the usual inter-contrast metric, multi-resolution, starting from
    the scanner (world) alignment of the two acquisitions.
    """
    import ants

    fl = to_ants(flair)
    head = iqm.head_mask(flair.get_fdata(dtype=np.float32))
    head_img = to_ants(nib.Nifti1Image(head.astype(np.float32), flair.affine))
    corrected = ants.n4_bias_field_correction(fl, mask=head_img, shrink_factor=n4_shrink_factor,
                                              convergence=N4_STIFF)
    fixed_full = to_ants(t1w)
    fixed = ants.resample_image(fixed_full, [registration_voxel_mm] * 3, use_voxels=False,
                                interp_type=0)
    moving = ants.resample_image(corrected, [registration_voxel_mm] * 3, use_voxels=False,
                                 interp_type=0)
    reg = ants.registration(fixed=fixed, moving=moving, type_of_transform="Rigid",
                            aff_metric="mattes", aff_random_sampling_rate=0.3,
                            random_seed=seed, verbose=False)
    warped = ants.apply_transforms(fixed=fixed_full, moving=corrected,
                                   transformlist=reg["fwdtransforms"], interpolator="linear")
    raw_warped = ants.apply_transforms(fixed=fixed_full, moving=fl,
                                       transformlist=reg["fwdtransforms"], interpolator="linear")
    from pipeline.antsio import read_ants_affine

    rigid = read_ants_affine(reg["fwdtransforms"][0])
    mi = float(ants.image_mutual_information(fixed, reg["warpedmovout"]))
    out = from_ants(warped)
    data = np.clip(out.get_fdata(dtype=np.float32), 0, None)
    log.info("FLAIR -> T1w rigid: translation %s mm, MI %.3f",
             np.round(rigid[:3, 3], 2).tolist(), mi)
    raw = np.clip(from_ants(raw_warped).get_fdata(dtype=np.float32), 0, None)
    return FlairToT1w(nib.Nifti1Image(data, t1w.affine), rigid,
                      {"flair_t1w_registration_mi": mi}, nib.Nifti1Image(raw, t1w.affine))

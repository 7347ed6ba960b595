"""BOLD -> T1w rigid registration and T1w-space masks brought to the BOLD grid."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline.antsio import from_ants, read_ants_affine, to_ants

logger = logging.getLogger(__name__)


@dataclass
class Coregistration:
    """Result of :func:`register_bold_to_t1w`.

    Attributes
    ----------
    transform_path : str
        ANTs rigid transform (.mat, fixed = T1w, moving = BOLD reference): with
        ``ants.apply_transforms`` it brings BOLD-space images to the T1w, and
        with ``whichtoinvert=[True]`` T1w-space images to the BOLD grid.
    t1w_from_bold : ndarray, shape (4, 4)
        The same map as a RAS world matrix: BOLD scanner mm -> T1w scanner mm.
    metrics : dict
        ``bold_t1w_registration_mi`` (Mattes mutual information after registration).
    """

    transform_path: str
    t1w_from_bold: np.ndarray
    metrics: dict


def register_bold_to_t1w(boldref: nib.Nifti1Image, t1w: nib.Nifti1Image, brain_mask: nib.Nifti1Image,
                         *, out_transform, registration_voxel_mm: float = 2.0,
                         seed: int = 1) -> Coregistration:
    """Rigid registration of the BOLD reference to the subject's T1w (mutual information).

    Parameters
    ----------
    boldref : nibabel.Nifti1Image
        Temporal mean of the motion-corrected BOLD.
    t1w : nibabel.Nifti1Image
        Bias-corrected T1w of the same session.
    brain_mask : nibabel.Nifti1Image
        T1w brain mask (the T1w is skull-stripped with it, dilated by 2 voxels).
    out_transform : path-like
        Where the ANTs .mat is copied.
    registration_voxel_mm : float
        The T1w is resampled to this isotropic voxel size (mm) first.

    Notes
    -----
    ANTs (antspyx) ``Rigid`` with Mattes mutual information, multi-resolution,
    starting from the identity (both images of one session share the scanner
    world), like fMRIPrep's boldref-to-T1w step without boundary-based
    registration.
    """
    import ants

    from pipeline.orientation import resample_iso

    mask = ndimage.binary_dilation(np.asarray(brain_mask.dataobj) > 0, iterations=2)
    brain = resample_iso(nib.Nifti1Image(t1w.get_fdata(dtype=np.float32) * mask, t1w.affine),
                         registration_voxel_mm)
    fixed = to_ants(brain)
    moving = to_ants(boldref)
    reg = ants.registration(fixed=fixed, moving=moving, type_of_transform="Rigid",
                            initial_transform="Identity", aff_metric="mattes",
                            aff_random_sampling_rate=0.5, random_seed=seed, verbose=False)
    Path(out_transform).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(reg["fwdtransforms"][0], out_transform)
    mi = float(ants.image_mutual_information(fixed, reg["warpedmovout"]))
    bold_from_t1w = read_ants_affine(out_transform)
    logger.info("BOLD->T1w rigid registration, MI %.3f", mi)
    return Coregistration(str(out_transform), np.linalg.inv(bold_from_t1w),
                          {"bold_t1w_registration_mi": mi})


def t1w_to_bold(image: nib.Nifti1Image, boldref: nib.Nifti1Image, transform_path, *,
                interpolator: str = "linear") -> nib.Nifti1Image:
    """Resample a T1w-space image onto the BOLD grid (inverse of the BOLD->T1w transform)."""
    import ants

    out = ants.apply_transforms(fixed=to_ants(boldref), moving=to_ants(image),
                                transformlist=[str(transform_path)], whichtoinvert=[True],
                                interpolator=interpolator)
    return from_ants(out)


def bold_to_t1w(image: nib.Nifti1Image, t1w: nib.Nifti1Image, transform_path, *,
                interpolator: str = "linear") -> nib.Nifti1Image:
    """Resample a BOLD-grid 3D image onto the T1w grid."""
    import ants

    out = ants.apply_transforms(fixed=to_ants(t1w), moving=to_ants(image),
                                transformlist=[str(transform_path)], interpolator=interpolator)
    return from_ants(out)


def labels_to_bold(labels: nib.Nifti1Image, boldref: nib.Nifti1Image, transform_path, *,
                   label_values, min_fraction: float = 0.5) -> dict:
    """Binary masks on the BOLD grid of selected labels of a T1w-space label image.

    Each label's indicator is resampled linearly (its partial-volume fraction
    in a BOLD voxel) and kept where the fraction is at least ``min_fraction``.

    Returns
    -------
    dict of int to ndarray of bool
    """
    data = np.asarray(labels.dataobj)
    out = {}
    for value in label_values:
        indicator = nib.Nifti1Image((np.rint(data) == value).astype(np.float32), labels.affine)
        fraction = t1w_to_bold(indicator, boldref, transform_path).get_fdata()
        out[value] = fraction >= min_fraction
    return out

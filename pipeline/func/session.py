"""The first-level analysis of one motor-task session, as a pure function.

:func:`analyse_session` takes the preprocessed run (images, confounds, events), the
BOLD-to-T1w transform and the T1w-space regions, fits the GLM and measures M1
activation and laterality; :mod:`pipeline.func.commands` only reads and writes files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline.func.activation import HEMISPHERES, m1_activation, m1_fwe
from pipeline.func.glm import check_events, confound_regressors, fit_first_level
from pipeline.func.registration import labels_to_bold, t1w_to_bold
from pipeline.orientation import check_same_grid
from pipeline.side import LesionSide
from pipeline.templates import ATLAS_REGION_LABELS

log = logging.getLogger(__name__)

MOTION_COLUMNS = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
LABEL = {name: value for value, name in ATLAS_REGION_LABELS.items()}
LESION_LABEL = max(ATLAS_REGION_LABELS) + 1
"""Label of the lesion in the BOLD-grid region map (after the atlas labels)."""


@dataclass
class GlmOptions:
    """Options of :func:`analyse_session` (config sections ``func`` and ``qc``)."""

    hrf_model: str = "spm"
    high_pass_hz: float = 1 / 128
    smoothing_fwhm_mm: float = 6.0
    noise_model: str = "ar1"
    motion_regressors: str = "24"
    spike_regressors: bool = True
    fd_threshold_mm: float = 0.5
    z_threshold: float = 3.1
    fwe_alpha: float = 0.05
    atlas_min_fraction: float = 0.5
    lesion_min_fraction: float = 0.5
    seed: int = 0


@dataclass
class SessionGlm:
    """Everything :func:`analyse_session` produces.

    Attributes
    ----------
    glm : pipeline.func.glm.FirstLevel
        z-maps and effect maps per contrast, design matrix, smoothness.
    regions : nibabel image
        M1 left/right (atlas labels) and the lesion (:data:`LESION_LABEL`) on the BOLD grid.
    metrics : dict
        M1 activation, laterality and small-volume FWE figures.
    """

    glm: object
    regions: nib.Nifti1Image
    metrics: dict


def analyse_session(bold: nib.Nifti1Image, head_mask: nib.Nifti1Image, boldref: nib.Nifti1Image,
                    confounds: pd.DataFrame, events: pd.DataFrame, *, contrasts: dict,
                    primary: str, tr_s: float, slice_time_ref: float, xfm,
                    brain_t1w: nib.Nifti1Image, atlas_t1w: nib.Nifti1Image,
                    lesion_t1w: nib.Nifti1Image | None, side: LesionSide,
                    options: GlmOptions, events_path=None) -> SessionGlm:
    """GLM, M1 regions on the BOLD grid, activation and laterality of one session.

    Parameters
    ----------
    bold, head_mask, boldref : nibabel images
        Preprocessed series, its head mask and mean (one BOLD grid).
    confounds : DataFrame
        Motion parameters (:data:`MOTION_COLUMNS`) and ``framewise_displacement``.
    events : DataFrame
        BIDS events (onset, duration, trial_type).
    contrasts : dict
        name -> nilearn contrast expression; ``primary`` is measured in M1.
    xfm : path
        ANTs rigid transform BOLD -> T1w.
    brain_t1w, atlas_t1w, lesion_t1w : nibabel images
        T1w-space brain mask, atlas regions and lesion mask (one T1w grid).
    side : LesionSide
        The subject's lesion side; not lateralised gives NA ipsi/contra metrics.
    """
    check_same_grid(boldref, head_mask=head_mask,
                    bold=nib.Nifti1Image(np.zeros(bold.shape[:3], np.uint8), bold.affine))
    check_same_grid(brain_t1w, atlas=atlas_t1w, lesion=lesion_t1w)
    events = check_events(events, contrasts, run_s=bold.shape[3] * tr_s, path=events_path)
    regressors = confound_regressors(
        confounds[MOTION_COLUMNS].to_numpy(), confounds["framewise_displacement"].to_numpy(),
        motion_model=options.motion_regressors,
        spike_threshold_mm=options.fd_threshold_mm if options.spike_regressors else None)
    brain_frac = t1w_to_bold(nib.Nifti1Image(np.asarray(brain_t1w.dataobj, dtype=np.float32),
                                             brain_t1w.affine), boldref, xfm).get_fdata()
    head = np.asarray(head_mask.dataobj) > 0
    glm_mask = nib.Nifti1Image(((brain_frac >= 0.5) & head).astype(np.uint8), boldref.affine)
    glm = fit_first_level(bold, events, regressors, tr_s=tr_s, mask=glm_mask, contrasts=contrasts,
                          slice_time_ref=slice_time_ref, hrf_model=options.hrf_model,
                          high_pass_hz=options.high_pass_hz,
                          smoothing_fwhm_mm=options.smoothing_fwhm_mm or None,
                          noise_model=options.noise_model)
    z = glm.z_maps[primary].get_fdata()
    psc = glm.effect_maps[primary].get_fdata()
    m1_side = labels_to_bold(atlas_t1w, boldref, xfm,
                             label_values=(LABEL["m1_left"], LABEL["m1_right"]),
                             min_fraction=options.atlas_min_fraction)
    lesion = None
    if lesion_t1w is not None:
        frac = t1w_to_bold(nib.Nifti1Image((np.asarray(lesion_t1w.dataobj) > 0).astype(np.float32),
                                           lesion_t1w.affine), boldref, xfm).get_fdata()
        lesion = frac >= options.lesion_min_fraction
    regions = np.zeros(z.shape, dtype=np.uint8)
    for name in ("m1_left", "m1_right"):
        regions[m1_side[LABEL[name]]] = LABEL[name]
    if lesion is not None:
        regions[lesion] = LESION_LABEL
    voxel_ml = float(abs(np.linalg.det(boldref.affine[:3, :3]))) / 1000.0
    fwhm_voxels = glm.smoothness_fwhm_mm / np.sqrt((boldref.affine[:3, :3] ** 2).sum(axis=0))
    if side.lateralised:
        m1 = {role: m1_side[LABEL[f"m1_{hemisphere}"]] for role, hemisphere in side.roles().items()}
        metrics = m1_activation(z, psc, m1, lesion=lesion, z_threshold=options.z_threshold,
                                voxel_volume_ml=voxel_ml, rng=np.random.default_rng(options.seed))
        metrics.update(m1_fwe(z, m1, lesion=lesion, fwhm_voxels=fwhm_voxels,
                              voxel_volume_ml=voxel_ml, alpha=options.fwe_alpha))
    else:
        log.warning("lesion side %r: ipsilesional/contralesional metrics are NA", side.side)
        empty = {h: np.zeros(z.shape, dtype=bool) for h in HEMISPHERES}
        metrics = {k: float("nan") for k in m1_activation(
            z, psc, empty, lesion=None, z_threshold=options.z_threshold, voxel_volume_ml=voxel_ml,
            rng=np.random.default_rng(0))}
        metrics.update(m1_fwe(z, empty, lesion=None, fwhm_voxels=fwhm_voxels,
                              voxel_volume_ml=voxel_ml, alpha=options.fwe_alpha))
    metrics["bold_smoothness_fwhm_mm"] = float(np.prod(glm.smoothness_fwhm_mm) ** (1 / 3))
    return SessionGlm(glm, nib.Nifti1Image(regions, boldref.affine), metrics)

"""First-level GLM of the motor task (nilearn design, masker and AR models; bias-corrected AR noise)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline.errors import PipelineInputError
from pipeline.func.motion import MOTION_COLUMNS, friston24

logger = logging.getLogger(__name__)


@dataclass
class GlmResult:
    """Output of :func:`fit_first_level`.

    Attributes
    ----------
    design_matrix : pandas.DataFrame
        Regressors (columns) by volume (rows, index = frame times in s).
    z_maps, effect_maps : dict of str to nibabel.Nifti1Image
        Per contrast: z statistic, and effect size in percent signal change
        (the BOLD series is scaled to percent of each voxel's mean).
    smoothness_fwhm_mm : ndarray, shape (3,)
        Smoothness of the standardized (whitened) residuals, as the FWHM (mm)
        of an equivalent Gaussian kernel per axis (:func:`pipeline.func.fwe.smoothness_fwhm`).
    """

    design_matrix: pd.DataFrame
    z_maps: dict
    effect_maps: dict
    smoothness_fwhm_mm: np.ndarray | None = None


def confound_regressors(parameters: np.ndarray, fd_mm: np.ndarray, *, motion_model: str = "24",
                        spike_threshold_mm: float | None = None) -> pd.DataFrame:
    """Nuisance regressors: motion (6 or Friston-24) and optional spikes.

    Parameters
    ----------
    parameters : ndarray, shape (T, 6)
        Motion parameters (mm, degrees).
    fd_mm : ndarray, shape (T,)
        Framewise displacement (mm).
    motion_model : {"6", "24"}
        Six parameters, or parameters + derivatives + squares (Friston et al. 1996).
    spike_threshold_mm : float or None
        One indicator regressor per volume with FD above this (mm); None: no spikes.

    Returns
    -------
    pandas.DataFrame, shape (T, n)
    """
    if motion_model == "6":
        values, names = parameters, list(MOTION_COLUMNS)
    elif motion_model == "24":
        values = friston24(parameters)
        names = (list(MOTION_COLUMNS) + [f"{c}_derivative1" for c in MOTION_COLUMNS]
                 + [f"{c}_power2" for c in MOTION_COLUMNS]
                 + [f"{c}_derivative1_power2" for c in MOTION_COLUMNS])
    else:
        raise ValueError(f"motion_model must be '6' or '24', got {motion_model!r}")
    out = pd.DataFrame(values, columns=names)
    # centre and scale to unit SD: keeps the design well conditioned (no effect on the fit)
    out = (out - out.mean()) / out.std(ddof=0).replace(0, 1.0)
    if spike_threshold_mm is not None:
        for i in np.flatnonzero(np.asarray(fd_mm) > spike_threshold_mm):
            spike = np.zeros(len(out))
            spike[i] = 1.0
            out[f"motion_outlier_{i:03d}"] = spike
    return out


def check_events(events: pd.DataFrame, contrasts: dict, *, run_s: float, path) -> pd.DataFrame:
    """Events usable by the GLM: the trial types the contrasts name must be present.

    Raises
    ------
    PipelineInputError
        When a contrast names a trial type absent from the events, or no event
        falls within the run.
    """
    events = events[["onset", "duration", "trial_type"]].copy()
    events["trial_type"] = events["trial_type"].astype(str)
    present = set(events["trial_type"])
    for name, expression in contrasts.items():
        tokens = {t for t in _identifiers(expression)}
        missing = tokens - present
        if missing:
            raise PipelineInputError(
                path, f"contrast {name!r} ({expression}) needs trial_type(s) {sorted(missing)}, "
                f"events have {sorted(present)}")
    inside = events["onset"] < run_s
    if not inside.any():
        raise PipelineInputError(path, f"no event starts within the run ({run_s:g} s)")
    if not inside.all():
        logger.warning("%s: %d event(s) start after the run ends; ignored", path, (~inside).sum())
    return events[inside].reset_index(drop=True)


def _identifiers(expression: str) -> list[str]:
    import re

    return re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expression)


def fit_first_level(
    bold: nib.Nifti1Image,
    events: pd.DataFrame,
    confounds: pd.DataFrame,
    *,
    tr_s: float,
    mask: nib.Nifti1Image,
    contrasts: dict,
    slice_time_ref: float = 0.5,
    hrf_model: str = "spm",
    high_pass_hz: float = 1.0 / 128,
    smoothing_fwhm_mm: float | None = 6.0,
    noise_model: str = "ar1",
    autocorrelation_fwhm_mm: float | None = 15.0,
) -> GlmResult:
    """Fit the task GLM of one run and compute contrast z-maps.

    Parameters
    ----------
    bold : nibabel.Nifti1Image
        Motion-corrected 4D series (dummy scans removed), float.
    events : pandas.DataFrame
        ``onset``, ``duration`` (s from the first kept volume), ``trial_type``.
    confounds : pandas.DataFrame
        Nuisance regressors, one row per volume.
    tr_s : float
        Repetition time (s).
    mask : nibabel.Nifti1Image
        Brain mask on the BOLD grid.
    contrasts : dict of str to str
        Name -> nilearn contrast expression over trial types
        (``"move_affected_hand"`` is movement > rest).
    slice_time_ref : float
        Time of the sampled point within each TR (fraction of TR): 0.5 after
        slice-timing correction to the middle of the TR.
    hrf_model : str
        nilearn HRF model (``"spm"``, ``"spm + derivative"``, ``"glover"``...).
    high_pass_hz : float
        Cut-off of the cosine drift basis (Hz).
    smoothing_fwhm_mm : float or None
        Isotropic Gaussian smoothing (mm FWHM) before the fit.
    noise_model : str
        ``"ols"`` or ``"ar<p>"`` (``"ar1"``, ``"ar2"``...): AR(p) pre-whitening.
    autocorrelation_fwhm_mm : float or None
        Gaussian smoothing (mm FWHM, within the mask) of the autocorrelation
        maps before whitening; None: voxel-wise estimates.

    Returns
    -------
    GlmResult

    Notes
    -----
    Mass-univariate GLM built from nilearn parts: ``make_first_level_design_matrix``
    (HRF-convolved events, cosine drifts, confounds), ``NiftiMasker``
    smoothing, ``mean_scaling`` (each voxel in percent of its mean, so effect
    sizes are percent signal change per unit regressor; the SPM canonical
    block regressor is ~1 on a long block's plateau) and ``ARModel`` fits.
    The AR(p) noise follows fmristat (Worsley et al. 2002, NeuroImage
    15:1-15): the OLS residual autocorrelations are smoothed spatially (15 mm
    FWHM there) and corrected for the bias the design imposes on them, then
    turned into AR coefficients; voxels are grouped by coefficients rounded
    to 0.01 (as nilearn bins them). nilearn's own ``FirstLevelModel`` takes
    the raw residual autocorrelation, which with 24 motion and several drift
    regressors is biased towards 0 (lag-1 0.3 seen as ~0.05), so its AR(1)
    barely whitens: null z-maps of the phantom had SD ~1.25 and reached z 4-5
    in M1 (:func:`pipeline.func.autocorrelation.noise_autocorrelation`).
    """
    from nilearn.glm.contrasts import compute_contrast, expression_to_contrast_vector
    from nilearn.glm.first_level import make_first_level_design_matrix, mean_scaling
    from nilearn.glm.regression import OLSModel
    from nilearn.maskers import NiftiMasker

    from pipeline.func.autocorrelation import prewhitened_fit, smooth_in_mask
    from pipeline.func.fwe import smoothness_fwhm

    if noise_model != "ols" and not (noise_model.startswith("ar") and noise_model[2:].isdigit()
                                     and int(noise_model[2:]) >= 1):
        raise ValueError(f"noise_model must be 'ols' or 'ar<p>' (p >= 1), got {noise_model!r}")
    n_volumes = bold.shape[3]
    frame_times = tr_s * (np.arange(n_volumes) + slice_time_ref)
    confounds = confounds.reset_index(drop=True)
    design = make_first_level_design_matrix(
        frame_times, events, hrf_model=hrf_model, drift_model="cosine", high_pass=high_pass_hz,
        add_regs=confounds.to_numpy() if confounds.shape[1] else None,
        add_reg_names=list(confounds.columns) if confounds.shape[1] else None)
    masker = NiftiMasker(mask_img=mask, smoothing_fwhm=smoothing_fwhm_mm, standardize=None).fit()
    data, _ = mean_scaling(masker.transform(bold).astype(np.float64), 0)
    inside = np.asarray(masker.mask_img_.dataobj) > 0
    voxel_mm = np.asarray(masker.mask_img_.header.get_zooms()[:3], dtype=float)
    if noise_model == "ols":
        labels = np.zeros(data.shape[1], dtype=int)
        results = {0: OLSModel(design.to_numpy()).fit(data)}
    else:
        smooth = None
        if autocorrelation_fwhm_mm:
            def smooth(values):
                return smooth_in_mask(values, inside, fwhm_mm=autocorrelation_fwhm_mm,
                                      voxel_mm=voxel_mm)
        labels, results, ar = prewhitened_fit(data, design.to_numpy(), order=int(noise_model[2:]),
                                              smooth=smooth)
        logger.info("GLM noise %s: median AR coefficients %s", noise_model,
                    np.round(np.median(ar, axis=0), 3).tolist())
    del data
    residuals = np.empty((design.shape[0], labels.shape[0]))
    for name, result in results.items():
        residuals[:, labels == name] = result.whitened_residuals
    fwhm_mm = smoothness_fwhm(residuals, inside) * voxel_mm
    del residuals
    logger.info("residual smoothness FWHM %s mm", np.round(fwhm_mm, 2).tolist())
    z_maps, effect_maps = {}, {}
    for name, expression in contrasts.items():
        vector = expression_to_contrast_vector(expression, list(design.columns))
        contrast = compute_contrast(labels, results, vector, stat_type="t")
        z_maps[name] = masker.inverse_transform(contrast.z_score())
        effect_maps[name] = masker.inverse_transform(contrast.effect_size())
    logger.info("GLM: %d volumes x %d regressors, contrasts %s", *design.shape, list(contrasts))
    return GlmResult(design, z_maps, effect_maps, fwhm_mm)

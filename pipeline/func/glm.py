"""First-level GLM of the motor task (nilearn ``FirstLevelModel``)."""

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
    """

    design_matrix: pd.DataFrame
    z_maps: dict
    effect_maps: dict


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
    noise_model : {"ar1", "ols"}

    Returns
    -------
    GlmResult

    Notes
    -----
    nilearn ``FirstLevelModel`` (mass-univariate GLM; SPM-style AR(1)
    pre-whitening with voxels binned by their AR coefficient, Friston et al.
    2002). ``signal_scaling=0`` scales each voxel to percent of its mean, so
    effect sizes are percent signal change per unit regressor (the SPM
    canonical block regressor is ~1 on a long block's plateau).
    """
    from nilearn.glm.first_level import FirstLevelModel

    model = FirstLevelModel(
        t_r=tr_s, slice_time_ref=slice_time_ref, hrf_model=hrf_model, drift_model="cosine",
        high_pass=high_pass_hz, noise_model=noise_model, smoothing_fwhm=smoothing_fwhm_mm,
        mask_img=mask, signal_scaling=0, minimize_memory=True, n_jobs=1)
    model.fit(bold, events=events, confounds=confounds.reset_index(drop=True))
    design = model.design_matrices_[0]
    z_maps, effect_maps = {}, {}
    for name, expression in contrasts.items():
        z_maps[name] = model.compute_contrast(expression, output_type="z_score")
        effect_maps[name] = model.compute_contrast(expression, output_type="effect_size")
    logger.info("GLM: %d volumes x %d regressors, contrasts %s", *design.shape, list(contrasts))
    return GlmResult(design, z_maps, effect_maps)

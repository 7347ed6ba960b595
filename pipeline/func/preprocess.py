"""BOLD preprocessing: dummy scans, head motion, slice timing, confound time series."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from pipeline.func.motion import (
    MOTION_COLUMNS,
    MotionEstimate,
    framewise_displacement,
    realign,
    resample_volumes,
)
from pipeline.qc import iqm

logger = logging.getLogger(__name__)


@dataclass
class Preprocessed:
    """Output of :func:`preprocess_bold`.

    Attributes
    ----------
    bold : nibabel.Nifti1Image
        Motion- (and slice-timing-) corrected series without dummy scans, float32,
        on the reference volume's grid and head position.
    reference : nibabel.Nifti1Image
        Temporal mean of ``bold`` (the "boldref" registered to the T1w).
    mask : nibabel.Nifti1Image
        Head mask of the reference (uint8).
    motion : MotionEstimate
    confounds : pandas.DataFrame
        One row per kept volume: motion parameters (mm, degrees), framewise
        displacement (mm), DVARS (% of mean), ``outlier`` (FD above threshold).
    slice_time_ref : float
        Time within each TR (fraction of TR) the corrected series samples.
    tsnr : nibabel.Nifti1Image
        Temporal SNR map after correction (0 outside the mask).
    """

    bold: nib.Nifti1Image
    reference: nib.Nifti1Image
    mask: nib.Nifti1Image
    motion: MotionEstimate
    confounds: pd.DataFrame
    slice_time_ref: float
    tsnr: nib.Nifti1Image


def _fourier_shift_matrix(n: int, shift: float) -> np.ndarray:
    """(n, n) matrix W with (W @ x)[m] = x(m + shift), band-limited, mirror-padded."""
    padded = np.concatenate([np.eye(n), np.eye(n)[::-1]], axis=0)  # x, then x reversed
    padded = np.roll(padded, n // 2, axis=0)  # the series sits in the middle
    freqs = np.fft.fftfreq(2 * n)
    spectrum = np.fft.fft(padded, axis=0) * np.exp(2j * np.pi * freqs * shift)[:, None]
    shifted = np.real(np.fft.ifft(spectrum, axis=0))
    return shifted[n // 2: n // 2 + n]


def slice_timing_correct(data: np.ndarray, slice_times_s, *, tr_s: float, slice_axis: int = 2,
                         reference_s: float | None = None) -> np.ndarray:
    """Shift every slice's time series to a common time within the TR.

    Parameters
    ----------
    data : ndarray, shape (X, Y, Z, T)
    slice_times_s : sequence of float
        Acquisition time (s) of each slice from the start of the volume (BIDS ``SliceTiming``).
    tr_s : float
    slice_axis : int
        Voxel axis along which slices are stacked.
    reference_s : float or None
        Target time (s); default the middle of the TR.

    Returns
    -------
    ndarray, float32, same shape

    Notes
    -----
    Fourier phase shift (sinc interpolation) of each slice's time series, as
    in SPM's ``spm_slice_timing`` (Sladky et al. 2011): an all-pass filter, so
    the noise spectrum (and the GLM's AR(1) model) is left intact, unlike
    spline interpolation, which low-passes half-sample shifts. The series is
    mirror-padded to its double length against wrap-around.
    """
    times = np.asarray(slice_times_s, dtype=float)
    reference_s = tr_s / 2 if reference_s is None else reference_s
    n = data.shape[3]
    out = np.empty(data.shape, dtype=np.float32)
    for k, t in enumerate(times):
        index = [slice(None)] * 4
        index[slice_axis] = k
        series = data[tuple(index)]
        # out[m] = series[m + shift] (volumes); linear in the samples, so one (n, n)
        # matrix per slice: the shifted unit impulses
        shift = (reference_s - t) / tr_s
        weights = _fourier_shift_matrix(n, shift)
        flat = series.reshape(-1, n).astype(np.float64)
        out[tuple(index)] = (flat @ weights.T).reshape(series.shape)
    return out


def preprocess_bold(
    img: nib.Nifti1Image,
    *,
    tr_s: float,
    n_dummy: int = 0,
    slice_timing_s=None,
    slice_timing_correction: bool = True,
    fd_threshold_mm: float = 0.5,
    slice_axis: int = 2,
) -> Preprocessed:
    """Dummy-scan removal, rigid head-motion correction, slice-timing correction.

    Parameters
    ----------
    img : nibabel.Nifti1Image
        Raw 4D BOLD.
    tr_s : float
        Repetition time (s).
    n_dummy : int
        Leading volumes to drop (non-steady-state).
    slice_timing_s : sequence of float or None
        Slice acquisition times (s) along ``slice_axis``.
    slice_timing_correction : bool
        Interpolate to the middle of the TR when ``slice_timing_s`` is given.
    fd_threshold_mm : float
        Framewise displacement (mm) above which a volume is an outlier.
    slice_axis : int
        Voxel axis of the slices (:class:`pipeline.func.inputs.BoldRun`).

    Returns
    -------
    Preprocessed

    Notes
    -----
    As in fMRIPrep, motion is estimated on the uncorrected series
    (:func:`pipeline.func.motion.realign`, reference: the first kept volume),
    slice timing is then corrected and the motion transforms applied in one
    cubic-spline resampling. FD after Power et al. (2012), 50 mm radius;
    DVARS after Power et al. (2012), in % of the mean in-mask signal.
    """
    data = np.asarray(img.dataobj, dtype=np.float32)[..., n_dummy:]
    affine = img.affine
    motion = realign(data, affine, reference_index=0)
    if slice_timing_s is not None and slice_timing_correction:
        timed = slice_timing_correct(data, slice_timing_s, tr_s=tr_s, slice_axis=slice_axis)
        slice_time_ref = 0.5
    else:
        timed = data
        slice_time_ref = (float(np.mean(slice_timing_s)) / tr_s if slice_timing_s is not None
                          else 0.0)
    corrected = resample_volumes(timed, affine, motion.transforms, order=3)
    del timed
    mean = corrected.mean(axis=-1)
    head = iqm.head_mask(mean)
    fd = framewise_displacement(motion.parameters)
    inner = ndimage.binary_erosion(head, iterations=1)
    dvars = np.r_[0.0, iqm.dvars_percent(corrected, inner)]
    confounds = pd.DataFrame(motion.parameters, columns=list(MOTION_COLUMNS))
    confounds["framewise_displacement"] = fd
    confounds["dvars_percent"] = dvars
    confounds["outlier"] = (fd > fd_threshold_mm).astype(int)
    tsnr = np.zeros(mean.shape, dtype=np.float32)
    tsnr[inner] = iqm.temporal_snr(corrected, inner)

    header = img.header.copy()
    out = nib.Nifti1Image(corrected, affine, header)
    out.set_data_dtype(np.float32)
    out.header.set_zooms((*img.header.get_zooms()[:3], tr_s))
    logger.info("preprocessed %d volumes (%d dummy dropped), mean FD %.3f mm, %d outliers",
                corrected.shape[3], n_dummy, fd[1:].mean() if fd.size > 1 else 0.0,
                int(confounds["outlier"].sum()))
    return Preprocessed(out, nib.Nifti1Image(mean, affine), nib.Nifti1Image(head.astype(np.uint8), affine),
                        motion, confounds, slice_time_ref,
                        nib.Nifti1Image(tsnr, affine))

"""Acute / subacute lesion evidence from diffusion: DWI-bright and ADC-dark.

In the first days after an ischaemic stroke the infarct restricts water
diffusion (cytotoxic oedema): it is bright on the trace DWI (b about 1000
s/mm2) and dark on the ADC map. Clinical core-volume software (e.g. RAPID)
thresholds the ADC at 620e-6 mm2/s (Straka M et al. 2010, J Magn Reson
Imaging 32:1024-1037; Campbell BCV et al. 2012, Stroke 43:2648). A bright
trace DWI with a normal ADC is T2 shine-through or an artefact, not acute
infarct; an ADC-dark region that is not DWI-bright is noise or CSF partial
volume at a boundary. The core here requires both, voxel by voxel.

All functions are pure: arrays in, arrays out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pipeline.qc.iqm import largest_component, otsu_threshold
from pipeline.validate import B0_THRESHOLD

log = logging.getLogger(__name__)

ADC_THRESHOLD = 620e-6
"""mm2/s: ADC below this is restricted diffusion (clinical core threshold)."""


@dataclass
class DiffusionMaps:
    """Trace DWI, ADC and b=0 of one series (one grid).

    Attributes
    ----------
    b0, trace : ndarray
        Mean b=0 and trace-weighted image (geometric mean over the directions
        of the shell used), image units.
    adc : ndarray
        Apparent diffusion coefficient (mm2/s), 0 where undefined.
    bval : float
        The b-value (s/mm2) of the shell used.
    """

    b0: np.ndarray
    trace: np.ndarray
    adc: np.ndarray
    bval: float


def trace_and_adc(data: np.ndarray, bvals: np.ndarray, *,
                  target_b: float = 1000.0) -> DiffusionMaps:
    """Trace DWI and ADC from a 4D series.

    Parameters
    ----------
    data : ndarray (X, Y, Z, N)
    bvals : ndarray (N,)
        s/mm2.
    target_b : float
        The diffusion-weighted shell nearest to this is used (clinical trace
        images are b = 1000).

    Notes
    -----
    ADC = ln(S0 / S_trace) / b with S_trace the geometric mean over
    directions (the trace of the diffusion tensor / 3 for a mono-exponential
    decay); it is clipped to [0, 5e-3] mm2/s.
    """
    bvals = np.asarray(bvals, float)
    is_b0 = bvals <= B0_THRESHOLD
    if not is_b0.any() or is_b0.all():
        raise ValueError("a trace DWI needs b=0 and diffusion-weighted volumes")
    weighted = np.unique(np.round(bvals[~is_b0], -2))
    bval = float(weighted[np.argmin(np.abs(weighted - target_b))])
    shell = (~is_b0) & (np.abs(bvals - bval) <= 100)
    data = np.asarray(data, dtype=np.float64)
    b0 = data[..., is_b0].mean(axis=-1)
    positive = np.clip(data[..., shell], 1e-6, None)
    trace = np.exp(np.log(positive).mean(axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        adc = np.where((b0 > 0) & (trace > 0), np.log(b0 / trace) / bval, 0.0)
    adc = np.clip(np.nan_to_num(adc), 0.0, 5e-3)
    return DiffusionMaps(b0.astype(np.float32), trace.astype(np.float32),
                         adc.astype(np.float32), bval)


def diffusion_brain_mask(trace: np.ndarray, adc: np.ndarray) -> np.ndarray:
    """Brain voxels of a trace DWI + ADC pair (no b=0 or T1w needed): half of Otsu's
    threshold of the trace DWI, ADC defined, largest component, holes filled."""
    values = trace[trace > 0]
    if values.size < 100:
        return np.zeros(trace.shape, bool)
    mask = (trace > 0.5 * otsu_threshold(values)) & (adc > 0)
    return ndimage.binary_fill_holes(largest_component(mask))


def acute_core(trace: np.ndarray, adc: np.ndarray, brain: np.ndarray, *, voxel_ml: float,
               adc_threshold: float = ADC_THRESHOLD, dwi_z: float = 3.0,
               min_component_ml: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Acute infarct core: DWI-bright AND ADC below ``adc_threshold``.

    Parameters
    ----------
    trace, adc : ndarray
        Trace DWI (image units) and ADC (mm2/s) on one grid.
    brain : ndarray of bool
    voxel_ml : float
    adc_threshold : float
        mm2/s.
    dwi_z : float
        DWI-bright: robust z-score of the trace DWI above normal parenchyma
        (median and 1.4826 MAD of brain voxels with a parenchymal ADC,
        0.5e-3 to 1.2e-3 mm2/s).
    min_component_ml : float
        Smaller connected components (26-neighbourhood) are dropped.

    Returns
    -------
    core : ndarray of bool
    bright : ndarray of bool
        The DWI-bright voxels (the evidence the FLAIR lesion is checked against).
    """
    parenchyma = brain & (adc > 0.5e-3) & (adc < 1.2e-3)
    ref = trace[parenchyma] if parenchyma.sum() > 100 else trace[brain]
    if ref.size == 0:
        empty = np.zeros(trace.shape, bool)
        return empty, empty
    centre = float(np.median(ref))
    scale = 1.4826 * float(np.median(np.abs(ref - centre))) or float(ref.std()) or 1.0
    bright = brain & ((trace - centre) / scale > dwi_z)
    core = bright & (adc > 1e-4) & (adc < adc_threshold)
    labels, n = ndimage.label(core, structure=np.ones((3, 3, 3)))
    if n:
        sizes = ndimage.sum(core, labels, np.arange(1, n + 1)) * voxel_ml
        keep = np.flatnonzero(sizes >= min_component_ml) + 1
        core = np.isin(labels, keep)
    log.info("acute core: %.2f mL (DWI-bright %.2f mL, ADC < %.0f um2/s)", core.sum() * voxel_ml,
             bright.sum() * voxel_ml, adc_threshold * 1e6)
    return core, bright


def component_adc(core: np.ndarray, adc: np.ndarray, voxel_ml: float) -> list[dict]:
    """Volume (mL) and median ADC (mm2/s) of each connected component of ``core``."""
    labels, n = ndimage.label(core, structure=np.ones((3, 3, 3)))
    out = []
    for index in range(1, n + 1):
        part = labels == index
        out.append({"volume_ml": float(part.sum() * voxel_ml),
                    "median_adc_mm2_s": float(np.median(adc[part]))})
    return sorted(out, key=lambda c: -c["volume_ml"])


def adc_in_mm2_s(adc: np.ndarray, *, path=None) -> tuple[np.ndarray, float]:
    """An ADC map in mm2/s, whatever unit it was saved in.

    Scanners and tools save ADC in mm2/s, in 1e-3 mm2/s (um2/ms) or in 1e-6 mm2/s;
    the unit is read from the median of the positive values (brain tissue is
    0.6-1.0e-3 mm2/s, CSF 3e-3). Returns the map and the factor applied.
    """
    values = adc[adc > 0]
    if values.size == 0:
        return adc.astype(np.float32), 1.0
    median = float(np.median(values))
    factor = 1.0 if median < 0.05 else (1e-3 if median < 50 else 1e-6)
    if factor != 1.0:
        log.info("%s: ADC median %.4g read as %s mm2/s", path or "ADC", median,
                 "1e-3" if factor == 1e-3 else "1e-6")
    return (adc * factor).astype(np.float32), factor


@dataclass
class AcuteEvidence:
    """Diffusion evidence of one session on the T1w grid.

    Attributes
    ----------
    core, bright : ndarray of bool
        Acute core (DWI-bright and ADC-dark) and DWI-bright voxels (T1w grid).
    adc : ndarray
        ADC (mm2/s) on the T1w grid.
    metrics : dict
        ``lesion_adc_core_volume_ml``, ``lesion_dwi_bval``, ``dwi_t1w_registration_mi``.
    """

    core: np.ndarray
    bright: np.ndarray
    adc: np.ndarray
    metrics: dict


def acute_evidence(dwi, t1w, brain_mask, *, adc_threshold: float = ADC_THRESHOLD,
                   dwi_z: float = 3.0, min_component_ml: float = 0.1) -> AcuteEvidence:
    """Trace DWI and ADC of a session's DWI series brought to its T1w grid.

    Parameters
    ----------
    dwi : pipeline.dwi.gradients.DwiInput
        The raw DWI series (canonical grid).
    t1w, brain_mask : nibabel images
        The N4 T1w and its brain mask (one grid).

    Notes
    -----
    The mean b=0 is registered rigidly to the T1w (Mattes mutual information,
    :func:`pipeline.dwi.regions.register_dwi_to_t1w`); trace and ADC are then
    resampled linearly onto the T1w grid and :func:`acute_core` runs there.
    """
    import nibabel as nib

    from pipeline.antsio import resample_through
    from pipeline.dwi.regions import register_dwi_to_t1w
    from pipeline.orientation import check_same_grid

    check_same_grid(t1w, brain_mask=brain_mask)
    maps = trace_and_adc(np.asarray(dwi.image.dataobj), dwi.bvals)
    dwi_brain = diffusion_brain_mask(maps.trace, maps.adc)
    b0 = nib.Nifti1Image(maps.b0, dwi.image.affine)
    _, transform = register_dwi_to_t1w(b0, dwi_brain, t1w, brain_mask)
    on_t1w = {name: np.asarray(resample_through(nib.Nifti1Image(values, dwi.image.affine), t1w,
                                                transform).dataobj)
              for name, values in (("trace", maps.trace), ("adc", maps.adc))}
    brain = np.asarray(brain_mask.dataobj) > 0.5
    voxel_ml = float(abs(np.linalg.det(t1w.affine[:3, :3]))) / 1000.0
    core, bright = acute_core(on_t1w["trace"], on_t1w["adc"], brain, voxel_ml=voxel_ml,
                              adc_threshold=adc_threshold, dwi_z=dwi_z,
                              min_component_ml=min_component_ml)
    metrics = {"lesion_adc_core_volume_ml": float(core.sum() * voxel_ml),
               "lesion_dwi_bval": maps.bval}
    if maps.bval > 1500 or maps.bval < 500:
        log.warning("trace DWI from b=%g (clinical thresholds assume b about 1000)", maps.bval)
    return AcuteEvidence(core, bright, on_t1w["adc"], metrics)

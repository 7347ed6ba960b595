"""Normal-tissue intensity model of the automatic lesion segmentation.

Step 1 and 2 of :mod:`pipeline.lesion.segment`: the white-matter level of the
T1w and FLAIR (intensity normalisation) and the normal-tissue levels with the
upper limit of normal FLAIR, against which lesions are outliers
(Van Leemput et al. 2001, IEEE TMI 20:677).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

CLASSES = ("csf", "gm", "wm")


@dataclass
class TissueModel:
    """Normal-tissue intensity levels (T1w and FLAIR normalised to white matter = 1).

    Attributes
    ----------
    t1w : dict
        ``csf``, ``gm``, ``wm`` T1w levels (``wm`` = 1).
    flair_gm : float
        Median FLAIR of grey matter (the brightest normal tissue on FLAIR).
    flair_upper : float
        Upper limit of normal FLAIR: its ``normal_quantile`` quantile in normal
        tissue (purest grey matter plus noise).
    flair_sd : float
        Robust SD of FLAIR in pure white matter (noise and texture): the scale
        of the hyperintensity z-score.
    wm_t1w_raw, wm_flair_raw : float
        White-matter levels of the input images (normalisation constants).
    """

    t1w: dict
    flair_gm: float
    flair_upper: float
    flair_sd: float
    wm_t1w_raw: float
    wm_flair_raw: float

    def hyperintensity_z(self, flair_n: np.ndarray) -> np.ndarray:
        """FLAIR in standard deviations above the upper limit of normal tissue."""
        return (flair_n - self.flair_upper) / self.flair_sd


def _histogram_mode(values: np.ndarray, lo: float, hi: float) -> float:
    hist, edges = np.histogram(values, bins=120, range=(lo, hi))
    hist = ndimage.gaussian_filter1d(hist.astype(float), 2.0)
    return float(0.5 * (edges[1:] + edges[:-1])[np.argmax(hist)])


def white_matter_level(values: np.ndarray) -> float:
    """Upper histogram mode of T1w intensities in the brain (white matter).

    Parameters
    ----------
    values : ndarray (N,)
        T1w intensities of brain voxels.
    """
    lo, hi = np.percentile(values, [0.5, 99.5])
    return _histogram_mode(values[values >= np.median(values)], float(np.median(values)), hi)


def fit_tissue_model(t1: np.ndarray, flair: np.ndarray, *,
                     normal_quantile: float = 0.99) -> TissueModel:
    """Normal-tissue levels from brain voxels of a T1w and a FLAIR (raw units).

    Parameters
    ----------
    t1, flair : ndarray (N,)
        Intensities of the same (inner) brain voxels.
    normal_quantile : float
        Quantile of FLAIR in tissue (T1w from just below the grey-matter level
        to white matter) taken as the upper limit of normal.

    Notes
    -----
    White matter is the upper T1w mode and its FLAIR level the median FLAIR
    there; CSF is what is dark on FLAIR; grey matter is the T1w level where
    the median FLAIR peaks; the upper limit of normal FLAIR is a high quantile
    of tissue FLAIR and the z-score scale the robust SD of white matter. Give
    voxels of normal tissue: :func:`segment_lesion` passes the hemisphere with
    less FLAIR hyperintensity, so that even a large lesion does not bias the
    model. Lesions are then outliers of this model
    (Van Leemput K et al. 2001, Automated segmentation of multiple sclerosis
    lesions by model outlier detection, IEEE TMI 20:677-688); the
    hyperintensity is measured against the brightest normal tissue on FLAIR
    (grey matter), as in LST's lesion belief maps (Schmidt P et al. 2012,
    NeuroImage 59:3774-3783).
    """
    wm_t1 = white_matter_level(t1)
    t1n = t1 / wm_t1
    pure_wm = np.abs(t1n - 1.0) < 0.04
    wm_fl = float(np.median(flair[pure_wm])) if pure_wm.sum() > 50 else float(np.median(flair))
    fln = flair / max(wm_fl, 1e-6)
    dark = fln < 0.4
    csf_t1 = float(np.median(t1n[dark])) if dark.sum() > 50 else 0.2
    # Grey matter is the brightest normal tissue on FLAIR: the highest median
    # FLAIR over T1w bins between CSF and WM (partial volumes with WM or CSF
    # are darker).
    edges = np.arange(csf_t1 + 0.1, 0.96, 0.02)
    best = (-np.inf, 0.0, 0.02)
    for lo in edges:
        sel = fln[(t1n >= lo) & (t1n < lo + 0.02)]
        if sel.size >= 200:
            q50, q84 = np.percentile(sel, [50, 84])
            if q50 > best[0]:
                best = (float(q50), float(lo + 0.01), float(q84 - q50))
    flair_gm, gm_t1, _ = best if np.isfinite(best[0]) else (float(np.median(fln)), 0.7, 0.05)
    wm_f = fln[pure_wm] if pure_wm.sum() > 50 else fln
    wm_sd = 1.4826 * float(np.median(np.abs(wm_f - np.median(wm_f))))
    # upper limit of normal FLAIR: a high quantile among voxels at grey- to
    # white-matter T1w levels (T1w-hypointense lesion voxels are left out, so
    # a lesion reaching into this hemisphere does not raise the limit)
    tissue = (t1n > gm_t1 - 0.1) & (t1n < 0.95)
    upper = float(np.quantile(fln[tissue] if tissue.sum() > 50 else fln, normal_quantile))
    return TissueModel({"csf": csf_t1, "gm": gm_t1, "wm": 1.0}, flair_gm, upper,
                       float(max(wm_sd, 0.01)), float(wm_t1), wm_fl)

"""Per-modality image-quality metrics of the raw inputs (spine level).

Each function takes images/arrays and returns a flat dict of metrics whose
names are declared in :mod:`pipeline.features.dictionary`.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline.qc import iqm
from pipeline.validate import B0_THRESHOLD, shells


def flair_metrics(flair: nib.Nifti1Image) -> dict:
    """SNR of a FLAIR (head foreground over background noise)."""
    data = flair.get_fdata(dtype=np.float32)
    head = iqm.head_mask(data)
    inner = ndimage.binary_erosion(head, iterations=3)
    return {"flair_snr": iqm.snr(data, inner, head)}


def dwi_metrics(dwi: nib.Nifti1Image, bvals: np.ndarray, bvecs: np.ndarray) -> dict:
    """Acquisition summary and b=0 SNR of a DWI series.

    Parameters
    ----------
    bvals : ndarray (n,)
    bvecs : ndarray (n, 3)
    """
    data = dwi.get_fdata(dtype=np.float32)
    is_b0 = bvals <= B0_THRESHOLD
    b0 = data[..., is_b0].mean(axis=-1)
    head = iqm.head_mask(b0)
    inner = ndimage.binary_erosion(head, iterations=2)
    return {
        "dwi_n_volumes": int(data.shape[3]),
        "dwi_n_b0": int(is_b0.sum()),
        "dwi_n_directions": int((~is_b0).sum()),
        "dwi_shells": ",".join(str(b) for b in shells(bvals) if b > 0),
        "dwi_voxel_mm": float(np.mean(dwi.header.get_zooms()[:3])),
        "dwi_b0_snr": iqm.snr(b0, inner, head),
    }

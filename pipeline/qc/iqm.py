"""Image-quality metrics (IQMs) that need no segmentation.

Notes
-----
Magnitude MR images have Rician noise; in air (no signal) it is Rayleigh
distributed, whose standard deviation is ``sqrt(2 - pi/2) * sigma`` (about
0.655 sigma). The noise sigma is therefore estimated from the background's
standard deviation divided by 0.655 (Henkelman 1985; Kaufman et al. 1989),
and SNR is the mean foreground signal over that sigma, as in MRIQC's
``snr_dietrich``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

RAYLEIGH_STD_FACTOR = np.sqrt(2.0 - np.pi / 2.0)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1D sample (scikit-image's ``threshold_otsu``)."""
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(np.asarray(values, dtype=np.float64).ravel(), nbins=bins))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 6-connected component of a boolean mask (the mask itself if it has one)."""
    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    return labels == (1 + int(np.argmax(sizes)))


def head_mask(data: np.ndarray) -> np.ndarray:
    """Head (foreground) of a structural image: Otsu on a smoothed copy, holes filled."""
    smooth = ndimage.gaussian_filter(data.astype(np.float32), 1.0)
    mask = smooth > otsu_threshold(smooth[smooth > 0] if (smooth > 0).any() else smooth)
    mask = largest_component(ndimage.binary_closing(mask, iterations=2))
    return ndimage.binary_fill_holes(mask)


def background_sigma(data: np.ndarray, head: np.ndarray, *, margin_vox: int = 3) -> float:
    """Noise sigma from the air background (outside a dilated head mask)."""
    air = ~ndimage.binary_dilation(head, iterations=margin_vox)
    # keep clear of zero-filled regions (e.g. after resampling)
    values = data[air & (data > 0)]
    if values.size < 100:
        return float("nan")
    return float(values.std() / RAYLEIGH_STD_FACTOR)


def snr(data: np.ndarray, foreground: np.ndarray, head: np.ndarray | None = None) -> float:
    """Mean foreground signal over the background noise sigma (dimensionless)."""
    head = head_mask(data) if head is None else head
    sigma = background_sigma(data, head)
    if not np.isfinite(sigma) or sigma <= 0 or not foreground.any():
        return float("nan")
    return float(data[foreground].mean() / sigma)


def temporal_snr(data4d: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Voxel-wise tSNR (temporal mean over temporal SD) inside ``mask``."""
    ts = data4d[mask].astype(np.float64)
    sd = ts.std(axis=1)
    return np.where(sd > 0, ts.mean(axis=1) / np.maximum(sd, 1e-12), 0.0)


def dvars_percent(data4d: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """DVARS (Power et al. 2012): RMS over the mask of the volume-to-volume
    signal change, in percent of the mean mask signal; length n_volumes - 1."""
    ts = data4d[mask].astype(np.float64)
    diff = np.diff(ts, axis=1)
    return 100.0 * np.sqrt((diff**2).mean(axis=0)) / ts.mean()

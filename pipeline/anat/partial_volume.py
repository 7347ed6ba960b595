"""Grey/white partial-volume fractions at the tissue interface.

Atropos posteriors are classification probabilities, not tissue fractions: with
template priors and a grey-matter class wide enough to hold the grey/white
partial-volume voxels, the grey/white boundary of the posteriors sits about one
voxel inside white matter on real T1w (issue 21: +0.5 mm mean thickness against
FreeSurfer; on MNE's FreeSurfer "sample" subject the cerebral GM fraction is 0.59
against FreeSurfer's 0.47). The thickness reads the boundary where the white
matter fraction is one half.

Here the interface voxels get fractions from the two-class partial-volume
mixture model the phantom and FSL FAST use (Zhang et al., IEEE TMI 2001;
Tohka et al., NeuroImage 2004): a voxel between pure grey (mean mu_G) and pure
white matter (mu_W) has white-matter fraction f = (I - mu_G) / (mu_W - mu_G),
clipped to [0, 1]. The class means are local (normalised convolution over the
voxels each class holds away from every interface), so a residual bias field or
a regional change of grey/white contrast moves them with it. Only a band around
the Atropos grey/white interface is re-estimated: away from it the posteriors
stay (deep grey matter, whose intensity lies between the classes, is not split
by intensity). No library function estimates partial-volume fractions from a
given segmentation (FAST is not a Python dependency; Atropos has no
partial-volume classes in ANTsPy's interface), hence this module.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

MIN_CONTRAST = 0.05
"""Smallest (mu_W - mu_G) / mu_W for which fractions are estimated at a voxel."""
MAX_VOXEL_MM = 1.5
"""Coarser T1w grids are left to Atropos: at 2.5 mm (the tiny test trial) hardly any
cortical voxel is 1.5 voxels from every other class, the grey-matter mean came from
deep grey matter and partial-volume voxels (GM/WM ratio 0.76 where the phantom drew
0.56-0.68) and the step lowered phantom GM / WM Dice from 0.83 / 0.85 to 0.77 / 0.80."""
CORE_WINDOW = 0.3
"""Class means are taken over voxels within this share of the GM/WM contrast of
the mean (iterated): a half-white voxel (0.5) is never counted as pure."""


def local_class_mean(image: np.ndarray, pure: np.ndarray, sigma_vox: np.ndarray,
                     fallback: float) -> np.ndarray:
    """Mean of ``image`` over ``pure`` voxels near each voxel (normalised Gaussian
    convolution); ``fallback`` where the class has almost no pure voxels nearby."""
    weight = ndimage.gaussian_filter(pure.astype(np.float32), sigma_vox)
    total = ndimage.gaussian_filter(np.where(pure, image, 0).astype(np.float32), sigma_vox)
    ok = weight > 0.02
    return np.where(ok, total / np.where(ok, weight, 1.0), fallback).astype(np.float32)


def interface_fractions(image: np.ndarray, probs: np.ndarray, mask: np.ndarray,
                        zooms, *, band_mm: float = 2.0, sigma_mm: float = 10.0,
                        smooth_vox: float = 0.5) -> tuple[np.ndarray, dict]:
    """Replace the GM/WM posteriors near the grey/white interface by
    partial-volume fractions.

    Parameters
    ----------
    image : ndarray
        Bias-corrected T1w (WM brighter than GM).
    probs : ndarray
        (..., 3) CSF, GM, WM posteriors, 0 outside ``mask``.
    mask : ndarray of bool
        Voxels segmented (brain without lesion).
    zooms : sequence of float
        Voxel size (mm).
    band_mm : float
        Voxels labelled GM within this distance of a WM-labelled voxel, and WM
        within it of a GM-labelled voxel, are re-estimated.
    sigma_mm : float
        Gaussian width of the local class means.
    smooth_vox : float
        Gaussian width (voxels) of the intensity the fractions are read from
        (noise; the half-way crossing of a blurred edge does not move).

    Returns
    -------
    probs : ndarray
        ``probs`` itself where the grid is coarser than :data:`MAX_VOXEL_MM` or a
        class has under 100 pure voxels (``pv_band_ml`` 0); otherwise new (..., 3)
        probabilities: CSF unchanged, GM + WM unchanged per voxel,
        split by the white-matter fraction in the band.
    info : dict
        ``pv_band_ml``, ``pv_gm_to_wm_ml`` and ``pv_wm_to_gm_ml`` (label changes),
        ``pv_gm_mean`` and ``pv_wm_mean`` (median local means in the band).
    """
    zooms = np.asarray(zooms, float)
    voxel_ml = float(np.prod(zooms)) / 1000.0
    info = {"pv_band_ml": 0.0, "pv_gm_to_wm_ml": 0.0, "pv_wm_to_gm_ml": 0.0,
            "pv_gm_mean": float("nan"), "pv_wm_mean": float("nan")}
    if zooms.max() > MAX_VOXEL_MM:
        return probs, info
    labels = np.where(mask, 1 + np.argmax(probs, axis=-1), 0)
    gm, wm = labels == 2, labels == 3
    dist_to_wm = ndimage.distance_transform_edt(~wm, sampling=zooms)
    dist_to_gm = ndimage.distance_transform_edt(~gm, sampling=zooms)
    band = (gm & (dist_to_wm <= band_mm)) | (wm & (dist_to_gm <= band_mm))
    # pure voxels: each class away from every other label (interfaces hold partial volume)
    other = labels != 2
    pure_gm = gm & (ndimage.distance_transform_edt(~other, sampling=zooms) > 1.5 * zooms.max())
    pure_wm = wm & (dist_to_gm > 2.5 * zooms.max()) & \
        (ndimage.distance_transform_edt(labels != 1, sampling=zooms) > 2.5 * zooms.max())
    if pure_gm.sum() < 100 or pure_wm.sum() < 100 or not band.any():
        return probs, info
    band_ml = float(band.sum() * voxel_ml)
    sigma = sigma_mm / zooms
    smooth = ndimage.gaussian_filter(image.astype(np.float32), smooth_vox)
    mu_g = local_class_mean(smooth, pure_gm, sigma, float(np.median(smooth[pure_gm])))
    mu_w = local_class_mean(smooth, pure_wm, sigma, float(np.median(smooth[pure_wm])))
    for _ in range(3):
        # partial-volume voxels the labels left among the "pure" ones pull the means
        # together: keep the voxels within CORE_WINDOW x the contrast of their own mean
        # (a symmetric window leaves the mean of symmetric noise unbiased)
        half = CORE_WINDOW * (mu_w - mu_g)
        core_gm = pure_gm & (np.abs(smooth - mu_g) < half)
        core_wm = pure_wm & (np.abs(smooth - mu_w) < half)
        if core_gm.sum() < 100 or core_wm.sum() < 100:
            break
        mu_g = local_class_mean(smooth, core_gm, sigma, float(np.median(smooth[core_gm])))
        mu_w = local_class_mean(smooth, core_wm, sigma, float(np.median(smooth[core_wm])))
    contrast = mu_w - mu_g
    band &= contrast > MIN_CONTRAST * np.abs(mu_w)
    if not band.any():
        return probs, info
    frac = np.clip((smooth - mu_g) / np.where(band, contrast, 1.0), 0.0, 1.0)
    out = probs.copy()
    tissue = probs[..., 1] + probs[..., 2]
    out[..., 2] = np.where(band, tissue * frac, probs[..., 2])
    out[..., 1] = np.where(band, tissue - out[..., 2], probs[..., 1])
    new = np.where(mask, 1 + np.argmax(out, axis=-1), 0)
    info.update(pv_band_ml=band_ml, pv_gm_to_wm_ml=float(((labels == 2) & (new == 3)).sum() * voxel_ml),
                pv_wm_to_gm_ml=float(((labels == 3) & (new == 2)).sum() * voxel_ml),
                pv_gm_mean=float(np.median(mu_g[band])), pv_wm_mean=float(np.median(mu_w[band])))
    return out.astype(np.float32), info

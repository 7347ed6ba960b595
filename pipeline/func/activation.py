"""Primary-motor (M1) activation metrics and a lesion-aware laterality index."""

from __future__ import annotations

import numpy as np

HEMISPHERES = ("ipsilesional", "contralesional")


def laterality_index(ipsilesional: float, contralesional: float) -> float:
    """``LI = (I - C) / (I + C)``; +1 all ipsilesional, -1 all contralesional, nan if both 0."""
    total = ipsilesional + contralesional
    return float((ipsilesional - contralesional) / total) if total > 0 else float("nan")


def bootstrap_laterality_index(
    ipsilesional: np.ndarray,
    contralesional: np.ndarray,
    *,
    rng: np.random.Generator,
    n_thresholds: int = 20,
    n_bootstrap: int = 100,
    sample_fraction: float = 0.25,
    min_voxels: int = 5,
) -> float:
    """Threshold-free, bootstrapped, threshold-weighted LI (Wilke & Lidzba 2007).

    Parameters
    ----------
    ipsilesional, contralesional : ndarray, shape (n,)
        Voxel values (e.g. z or percent signal change) of each hemisphere's ROI.
    rng : numpy.random.Generator
        Source of the bootstrap resamples (seed it for reproducible output).
    n_thresholds : int
        Thresholds, equally spaced from 0 to the larger hemisphere's maximum
        (the top one excluded).
    n_bootstrap : int
        Resamples per hemisphere and threshold (all ``n_bootstrap**2`` pairs are used).
    sample_fraction : float
        Resample size as a fraction of a hemisphere's suprathreshold voxels
        (at least ``min_voxels``).
    min_voxels : int
        A threshold counts only while both hemispheres keep at least this many
        voxels... or one hemisphere has none left (then LI is +-1 there).

    Returns
    -------
    float
        Weighted LI in [-1, 1]; nan when no voxel is positive.

    Notes
    -----
    At each threshold ``t``, ``n_bootstrap`` samples (with replacement) of the
    suprathreshold values of each side are summed, the LI of every
    ipsilesional/contralesional pair is computed and the central 50 % of
    those LIs averaged (trimmed mean); the per-threshold means are combined
    with weights ``t`` (Wilke & Lidzba 2007, J Neurosci Methods 163:128),
    so higher, more specific thresholds count more while no single threshold
    decides.
    """
    ipsi = np.asarray(ipsilesional, dtype=float)
    contra = np.asarray(contralesional, dtype=float)
    top = max(ipsi.max(initial=0.0), contra.max(initial=0.0))
    if top <= 0:
        return float("nan")
    thresholds = np.linspace(0.0, top, n_thresholds + 1)[:-1]
    values, weights = [], []
    for t in thresholds:
        sides = []
        for v in (ipsi, contra):
            above = v[v > t]
            if above.size == 0:
                sides.append(np.zeros(n_bootstrap))
                continue
            k = max(min_voxels, int(round(sample_fraction * above.size)))
            sides.append(rng.choice(above, size=(n_bootstrap, k), replace=True).sum(axis=1))
        i_sum, c_sum = sides
        if not (i_sum.any() or c_sum.any()):
            continue
        pairs = (i_sum[:, None] - c_sum[None, :]) / (i_sum[:, None] + c_sum[None, :])
        pairs = np.sort(pairs.ravel())
        cut = pairs.size // 4
        values.append(pairs[cut: pairs.size - cut].mean())
        weights.append(t)
    if not values:
        return float("nan")
    weights = np.asarray(weights)
    if weights.sum() == 0:
        return float(np.mean(values))
    return float(np.average(values, weights=weights))


def m1_activation(
    z: np.ndarray,
    effect_psc: np.ndarray,
    m1: dict,
    *,
    lesion: np.ndarray | None,
    z_threshold: float,
    voxel_volume_ml: float,
    rng: np.random.Generator,
) -> dict:
    """Activation metrics of each hemisphere's M1, lesion voxels excluded.

    Parameters
    ----------
    z : ndarray, shape (X, Y, Z)
        z-map of the movement > rest contrast.
    effect_psc : ndarray, shape (X, Y, Z)
        Its effect size (percent signal change).
    m1 : dict
        ``{"ipsilesional": bool array, "contralesional": bool array}`` on the same grid.
    lesion : ndarray of bool or None
        Lesion voxels (excluded from both ROIs).
    z_threshold : float
        Height threshold of the suprathreshold volume and of the fixed-threshold LI.
    voxel_volume_ml : float
        Volume of one voxel (mL).
    rng : numpy.random.Generator
        For the bootstrap LI.

    Returns
    -------
    dict
        ``bold_m1_peak_z_<hemi>``, ``bold_m1_mean_z_<hemi>``,
        ``bold_m1_active_ml_<hemi>`` (volume with z above threshold),
        ``bold_m1_psc_<hemi>`` (mean percent signal change of the
        suprathreshold voxels; 0 if none), ``bold_m1_roi_ml_<hemi>`` (ROI volume
        after lesion exclusion), ``bold_m1_lesion_excluded_ml`` and the
        laterality indices ``bold_laterality_index_threshold`` (summed
        suprathreshold percent signal change), ``bold_laterality_index_bootstrap``
        (threshold-free, on z) and ``bold_laterality_index_roi`` (positive
        percent signal change summed over the whole ROI).

    Notes
    -----
    ``LI = (I - C) / (I + C)`` with I the ipsilesional hemisphere.
    """
    keep = ~lesion if lesion is not None else np.ones(z.shape, dtype=bool)
    out: dict = {}
    sums, pos_sums, values = {}, {}, {}
    excluded = 0
    for hemi in HEMISPHERES:
        roi = np.asarray(m1[hemi], dtype=bool)
        excluded += int((roi & ~keep).sum())
        roi = roi & keep
        zs, ps = z[roi], effect_psc[roi]
        above = zs > z_threshold
        out[f"bold_m1_roi_ml_{hemi}"] = float(roi.sum() * voxel_volume_ml)
        out[f"bold_m1_peak_z_{hemi}"] = float(zs.max()) if zs.size else float("nan")
        out[f"bold_m1_mean_z_{hemi}"] = float(zs.mean()) if zs.size else float("nan")
        out[f"bold_m1_active_ml_{hemi}"] = float(above.sum() * voxel_volume_ml)
        out[f"bold_m1_psc_{hemi}"] = float(ps[above].mean()) if above.any() else 0.0
        sums[hemi] = float(np.clip(ps[above], 0, None).sum())
        pos_sums[hemi] = float(np.clip(ps, 0, None).sum())
        values[hemi] = zs
    out["bold_m1_lesion_excluded_ml"] = float(excluded * voxel_volume_ml)
    out["bold_laterality_index_threshold"] = laterality_index(sums["ipsilesional"],
                                                              sums["contralesional"])
    out["bold_laterality_index_bootstrap"] = bootstrap_laterality_index(
        values["ipsilesional"], values["contralesional"], rng=rng)
    out["bold_laterality_index_roi"] = laterality_index(pos_sums["ipsilesional"],
                                                        pos_sums["contralesional"])
    return out


def m1_fwe(z: np.ndarray, m1: dict, *, lesion: np.ndarray | None, fwhm_voxels,
           voxel_volume_ml: float, alpha: float = 0.05) -> dict:
    """Suprathreshold M1 volume at a small-volume family-wise-error threshold.

    Parameters
    ----------
    z : ndarray, shape (X, Y, Z)
        z-map of the primary contrast.
    m1 : dict
        ``{"ipsilesional": bool array, "contralesional": bool array}``.
    lesion : ndarray of bool or None
        Excluded from the search region.
    fwhm_voxels : sequence of 3 float
        Smoothness of the z-map's noise (voxels, per axis), from the GLM residuals.
    voxel_volume_ml : float
    alpha : float
        Family-wise error rate over the search region (both hemispheres' M1).

    Returns
    -------
    dict
        ``bold_m1_fwe_z_threshold`` and ``bold_m1_active_fwe_ml_<hemi>``.

    Notes
    -----
    A single-voxel threshold such as z > 3.1 (p = 0.001) is exceeded somewhere
    in bilateral M1 (about 40 mL) by most pure-noise maps at usual smoothness;
    the small-volume correction (Worsley et al. 1996, SPM's SVC) bounds that
    probability by ``alpha``.
    """
    from pipeline.func.fwe import fwe_threshold, resel_counts

    keep = ~lesion if lesion is not None else np.ones(z.shape, dtype=bool)
    rois = {hemi: np.asarray(m1[hemi], dtype=bool) & keep for hemi in HEMISPHERES}
    region = rois["ipsilesional"] | rois["contralesional"]
    if not region.any():
        return {"bold_m1_fwe_z_threshold": float("nan"),
                **{f"bold_m1_active_fwe_ml_{h}": float("nan") for h in HEMISPHERES}}
    threshold = fwe_threshold(resel_counts(region, fwhm_voxels), alpha)
    out = {"bold_m1_fwe_z_threshold": threshold}
    for hemi, roi in rois.items():
        out[f"bold_m1_active_fwe_ml_{hemi}"] = float((z[roi] > threshold).sum() * voxel_volume_ml)
    return out

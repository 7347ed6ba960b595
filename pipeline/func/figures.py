"""QC reportlets of the fMRI stream (PNG): motion, carpet, tSNR, design, z-map on the T1w."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, path) -> None:
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def motion_carpet_figure(confounds: pd.DataFrame, bold: nib.Nifti1Image, mask: nib.Nifti1Image,
                         path, *, tr_s: float, fd_threshold_mm: float, max_rows: int = 1500,
                         title: str = "") -> None:
    """Motion traces, FD, DVARS and a carpet plot (Power 2017) stacked on one time axis.

    Parameters
    ----------
    confounds : pandas.DataFrame
        From :func:`pipeline.func.preprocess.preprocess_bold`.
    bold : nibabel.Nifti1Image
        Corrected 4D series.
    mask : nibabel.Nifti1Image
        Voxels shown in the carpet (z-scored time series, rows subsampled).
    """
    t = np.arange(len(confounds)) * tr_s
    fig, axes = plt.subplots(5, 1, figsize=(9, 9), sharex=True,
                             gridspec_kw={"height_ratios": [1, 1, 1, 1, 3]})
    for col, color in zip(("trans_x", "trans_y", "trans_z"), ("C0", "C1", "C2"), strict=True):
        axes[0].plot(t, confounds[col], color=color, label=col)
    axes[0].set_ylabel("mm")
    axes[0].legend(fontsize=7, ncol=3, loc="upper left")
    for col, color in zip(("rot_x", "rot_y", "rot_z"), ("C0", "C1", "C2"), strict=True):
        axes[1].plot(t, confounds[col], color=color, label=col)
    axes[1].set_ylabel("degrees")
    axes[1].legend(fontsize=7, ncol=3, loc="upper left")
    fd = confounds["framewise_displacement"].to_numpy()
    axes[2].plot(t, fd, color="k")
    axes[2].axhline(fd_threshold_mm, color="r", ls="--", lw=0.8)
    outliers = np.flatnonzero(fd > fd_threshold_mm)
    axes[2].plot(t[outliers], fd[outliers], "r.", ms=6)
    axes[2].set_ylabel("FD (mm)")
    axes[3].plot(t, confounds["dvars_percent"], color="C4")
    axes[3].set_ylabel("DVARS (%)")
    data = np.asarray(bold.dataobj, dtype=np.float32)[np.asarray(mask.dataobj) > 0]
    if data.shape[0] > max_rows:
        data = data[np.linspace(0, data.shape[0] - 1, max_rows).astype(int)]
    sd = data.std(axis=1, keepdims=True)
    carpet = (data - data.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
    axes[4].imshow(carpet, aspect="auto", cmap="gray", vmin=-2, vmax=2, interpolation="nearest",
                   extent=(t[0], t[-1] + tr_s, carpet.shape[0], 0))
    axes[4].set_ylabel("voxels")
    axes[4].set_xlabel("time (s)")
    axes[0].set_title(title or "Head motion and carpet plot", fontsize=10)
    _save(fig, path)


def design_figure(design: pd.DataFrame, path, *, title: str = "") -> None:
    """Design matrix (columns scaled to their maximum absolute value)."""
    values = design.to_numpy(dtype=float)
    scale = np.abs(values).max(axis=0)
    fig, ax = plt.subplots(figsize=(max(4, 0.18 * values.shape[1] + 2), 5))
    ax.imshow(values / np.where(scale > 0, scale, 1), aspect="auto", cmap="gray",
              interpolation="nearest")
    ax.set_xticks(range(values.shape[1]))
    ax.set_xticklabels(design.columns, rotation=90, fontsize=6)
    ax.set_ylabel("volume")
    ax.set_title(title or "Design matrix", fontsize=10)
    _save(fig, path)


def _slices(shape_z, n):
    return np.linspace(0.15 * shape_z, 0.85 * shape_z, n).astype(int)


def overlay_figure(background: nib.Nifti1Image, overlay: nib.Nifti1Image, path, *,
                   threshold: float, contours: dict | None = None, n_slices: int = 8,
                   cmap: str = "hot", label: str = "z", title: str = "") -> None:
    """Axial slices of ``overlay`` (above ``threshold``) over ``background`` (same grid), RAS."""
    bg = np.asarray(nib.as_closest_canonical(background).dataobj, dtype=np.float32)
    ov = np.asarray(nib.as_closest_canonical(overlay).dataobj, dtype=np.float32)
    masks = {k: np.asarray(nib.as_closest_canonical(v).dataobj) > 0
             for k, v in (contours or {}).items()}
    if ov.max() > threshold:  # centre the slices on where the activation is
        zs = np.flatnonzero((ov > threshold).any(axis=(0, 1)))
        picks = np.linspace(max(zs.min() - 2, 0), min(zs.max() + 2, ov.shape[2] - 1),
                            n_slices).astype(int)
    else:
        picks = _slices(bg.shape[2], n_slices)
    vmax = max(float(np.percentile(bg[bg > 0], 99)) if (bg > 0).any() else 1.0, 1e-6)
    top = max(float(ov.max()), threshold + 1)
    fig, axes = plt.subplots(1, n_slices, figsize=(2 * n_slices, 2.6))
    for ax, k in zip(np.atleast_1d(axes), picks, strict=True):
        ax.imshow(bg[:, :, k].T, origin="lower", cmap="gray", vmin=0, vmax=vmax)
        shown = np.ma.masked_less_equal(ov[:, :, k], threshold)
        im = ax.imshow(shown.T, origin="lower", cmap=cmap, vmin=threshold, vmax=top, alpha=0.9)
        for (_name, m), color in zip(masks.items(), ("#0a84ff", "#34c759", "#ffcc00"), strict=False):
            if m[:, :, k].any():
                ax.contour(m[:, :, k].T.astype(float), levels=[0.5], colors=[color], linewidths=0.7)
        ax.set_title(f"z={k}", fontsize=7)
        ax.axis("off")
    fig.colorbar(im, ax=np.atleast_1d(axes).tolist(), fraction=0.02, label=label)
    fig.suptitle(f"{title} [neurological: subject's left on the left]", fontsize=9)
    _save(fig, path)

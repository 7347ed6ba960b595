"""Lesion reportlets: outlines on FLAIR/T1w slices through the lesion, CST overlap."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.qc.figures import canonical, display_range, save  # noqa: E402

COLORS = {"lesion": "#ff3b30", "manual": "#ffcc00", "automatic": "#ffcc00",
          "cst ipsilesional": "#0a84ff", "cst contralesional": "#34c759", "ADC core": "#00e5ff"}


def _positions(mask: np.ndarray, fallback: np.ndarray, axis: int, n: int) -> np.ndarray:
    """Slice indices along ``axis`` spread over ``mask`` (else over ``fallback``)."""
    where = mask if mask.any() else fallback
    other = tuple(a for a in range(3) if a != axis)
    occupied = np.flatnonzero(where.any(axis=other))
    if occupied.size == 0:
        return np.linspace(0, mask.shape[axis] - 1, n + 2)[1:-1].astype(int)
    if occupied.size <= n:
        return np.resize(occupied, n)
    return occupied[np.linspace(0, occupied.size - 1, n + 2)[1:-1].round().astype(int)]


def _panel(ax, data, masks, axis, pos, lo, hi):
    sl = [slice(None)] * 3
    sl[axis] = pos
    ax.imshow(np.rot90(data[tuple(sl)]), cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    for label, mask in masks.items():
        plane = np.rot90(mask[tuple(sl)].astype(float))
        if plane.any():
            ax.contour(plane, levels=[0.5], colors=[COLORS.get(label, "#ff3b30")],
                       linewidths=0.9)
    ax.set_axis_off()


def lesion_mosaic(rows: dict, contours: dict, path, *, n_slices: int = 7, title: str = "",
                  focus: str | None = None) -> None:
    """Rows of axial (and coronal) slices through the lesion with outlines, as PNG.

    Parameters
    ----------
    rows : dict
        Row label -> 3D image (same grid), e.g. ``{"FLAIR": img, "T1w": img}``;
        each is shown in axial slices, the first also in coronal slices.
    contours : dict
        Label -> boolean mask image on that grid (keys of :data:`COLORS`).
    focus : str or None
        Contour whose extent chooses the slices (default: the first one).
    """
    backgrounds = {k: canonical(v) for k, v in rows.items()}
    masks = {k: canonical(v) > 0.5 for k, v in contours.items()}
    first = next(iter(backgrounds.values()))
    brain = first > np.percentile(first[first > 0], 30) if (first > 0).any() else first >= 0
    target = masks[focus] if focus else (next(iter(masks.values())) if masks else brain)
    layout = [(label, 2) for label in backgrounds] + [(next(iter(backgrounds)), 1)]
    fig, axes = plt.subplots(len(layout), n_slices, figsize=(1.9 * n_slices, 2.0 * len(layout)),
                             facecolor="black", squeeze=False)
    for r, (label, axis) in enumerate(layout):
        data = backgrounds[label]
        lo, hi = display_range(data)
        for c, pos in enumerate(_positions(target, brain, axis, n_slices)):
            _panel(axes[r, c], data, masks, axis, int(pos), lo, hi)
        axes[r, 0].text(0.02, 0.95, f"{label} {'axial' if axis == 2 else 'coronal'}",
                        color="white", fontsize=8, transform=axes[r, 0].transAxes, va="top")
    handles = [plt.Line2D([], [], color=COLORS.get(k, "#ff3b30"), label=k) for k in masks]
    save(fig, path, title=title, handles=handles, top=0.93, bottom=0.06)

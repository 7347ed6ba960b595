"""Reportlet figures: slice mosaics with contour overlays (PNG)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

CONTOUR_COLORS = ("#ff3b30", "#34c759", "#0a84ff", "#ffcc00")


def canonical(img: nib.Nifti1Image) -> np.ndarray:
    """Voxel data in RAS+ orientation (float32)."""
    return np.asarray(nib.as_closest_canonical(img).dataobj, dtype=np.float32)


def display_range(data: np.ndarray) -> tuple[float, float]:
    """Grey-scale window: 1st to 99.5th percentile of the non-zero voxels."""
    if not (data > 0).any():
        return 0.0, 1.0
    lo, hi = np.percentile(data[data > 0], [1, 99.5])
    return float(lo), float(hi)


def orthogonal_slices(axes, start, stop, n_slices: int):
    """Yield ``(ax, index)`` for rows of axial, coronal and sagittal slices evenly
    spaced inside the box ``start``..``stop`` (voxel indices, RAS data)."""
    for row, axis in enumerate((2, 1, 0)):
        positions = np.linspace(start[axis], stop[axis], n_slices + 2)[1:-1].astype(int)
        for col, pos in enumerate(positions):
            index = [slice(None)] * 3
            index[axis] = pos
            axes[row, col].set_axis_off()
            yield axes[row, col], tuple(index)


def save(fig, path, *, title: str, handles=(), top: float, bottom: float) -> None:
    """Legend, title with the orientation note, tight layout; PNG at 72 dpi."""
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
                   labelcolor="white")
    fig.suptitle(f"{title}  (R = subject's right on the right)", color="white", fontsize=10)
    fig.subplots_adjust(left=0, right=1, top=top, bottom=bottom, wspace=0.02, hspace=0.02)
    fig.savefig(path, dpi=72, facecolor="black")
    plt.close(fig)


def mosaic(background: nib.Nifti1Image, path, *, contours: dict | None = None,
           n_slices: int = 7, title: str = "") -> None:
    """Axial, coronal and sagittal rows of slices with contours, saved as PNG.

    Parameters
    ----------
    background : nibabel image
        3D anatomical image (any orientation; shown in RAS, left on the left
        of each panel is the subject's right -- radiological convention is
        NOT used: left is left, and the figure says so).
    contours : dict
        Label -> 3D mask image on the same grid as ``background``.
    """
    data = canonical(background)
    masks = {k: canonical(v) > 0.5 for k, v in (contours or {}).items()}
    lo, hi = display_range(data)
    fig, axes = plt.subplots(3, n_slices, figsize=(2.0 * n_slices, 6.4), facecolor="black")
    extent = np.argwhere(data > lo)
    for ax, index in orthogonal_slices(axes, extent.min(axis=0), extent.max(axis=0), n_slices):
        ax.imshow(np.rot90(data[index]), cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        for (_label, mask), color in zip(masks.items(), CONTOUR_COLORS, strict=False):
            plane = np.rot90(mask[index].astype(float))
            if plane.any():
                ax.contour(plane, levels=[0.5], colors=[color], linewidths=0.8)
    handles = [plt.Line2D([], [], color=c, label=label)
               for label, c in zip(masks, CONTOUR_COLORS, strict=False)]
    save(fig, path, title=title, handles=handles, top=0.94, bottom=0.05)

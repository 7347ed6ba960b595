"""Anatomy reportlets that need a colour overlay (tissue labels, thickness map);
contour figures use :func:`pipeline.qc.figures.mosaic`."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from pipeline.qc.figures import canonical, display_range, orthogonal_slices, save  # noqa: E402

TISSUE_COLORS = {1: "#0a84ff", 2: "#34c759", 3: "#ffcc00", 4: "#ff3b30"}


def overlay_mosaic(background: nib.Nifti1Image, overlay: nib.Nifti1Image, path, *,
                   labels: dict | None = None, vmin: float = 0.0, vmax: float = 5.0,
                   colorbar_label: str = "", title: str = "", n_slices: int = 7) -> None:
    """Axial, coronal and sagittal slices with a colour overlay, saved as PNG.

    Parameters
    ----------
    overlay : nibabel image
        Same grid as ``background``; 0 is transparent.
    labels : dict or None
        ``{value: (name, colour)}`` for a label image (legend); None draws a
        continuous map (``vmin``..``vmax``, with a colour bar).
    """
    bg = canonical(background)
    ov = canonical(overlay)
    lo, hi = display_range(bg)
    fig, axes = plt.subplots(3, n_slices, figsize=(2.0 * n_slices, 6.6), facecolor="black")
    extent = np.argwhere(ov > 0) if (ov > 0).any() else np.argwhere(bg > lo)
    if labels:
        values = sorted(labels)
        cmap = ListedColormap([labels[v][1] for v in values])
        norm = dict(vmin=min(values) - 0.5, vmax=max(values) + 0.5)
    else:
        cmap, norm = plt.get_cmap("inferno"), dict(vmin=vmin, vmax=vmax)
    image = None
    for ax, index in orthogonal_slices(axes, extent.min(axis=0), extent.max(axis=0), n_slices):
        ax.imshow(np.rot90(bg[index]), cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        plane = np.rot90(ov[index])
        image = ax.imshow(np.ma.masked_where(plane <= 0, plane), cmap=cmap, alpha=0.6,
                          interpolation="nearest", **norm)
    handles = []
    if labels:
        handles = [plt.Line2D([], [], color=c, lw=6, label=n) for n, c in labels.values()]
    elif image is not None:
        bar = fig.colorbar(image, cax=fig.add_axes([0.3, 0.035, 0.4, 0.018]),
                           orientation="horizontal")
        bar.set_label(colorbar_label, color="white")
        bar.ax.tick_params(colors="white")
    save(fig, path, title=title, handles=handles, top=0.94, bottom=0.12)

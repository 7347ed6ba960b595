"""DWI reportlets: colour-FA, motion / outlier traces, distortion correction and
brain mask, map mosaics."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.dwi.gradients import voxel_to_world  # noqa: E402


def _slices(mask: np.ndarray, axis: int, n: int) -> np.ndarray:
    idx = np.argwhere(mask)
    if not len(idx):
        return np.linspace(0, mask.shape[axis] - 1, n + 2)[1:-1].astype(int)
    lo, hi = idx[:, axis].min(), idx[:, axis].max()
    return np.linspace(lo, hi, n + 2)[1:-1].astype(int)


def colour_fa(fa: np.ndarray, v1_voxel: np.ndarray, affine: np.ndarray, path, *,
              n_slices: int = 6, title: str = "") -> None:
    """Colour-coded principal direction (red L-R, green A-P, blue S-I) weighted by FA.

    The image is reoriented to RAS first so rows are axial, coronal and
    sagittal slices and colours follow world axes.
    """
    img = nib.as_closest_canonical(nib.Nifti1Image(fa.astype(np.float32), affine))
    ornt = nib.orientations.io_orientation(affine)
    world = voxel_to_world(v1_voxel, affine)
    rgb = np.abs(world) * np.clip(fa, 0, 1)[..., None]
    rgb = np.stack([nib.orientations.apply_orientation(rgb[..., c], ornt) for c in range(3)], -1)
    fa_c = np.asarray(img.dataobj)
    fig, axes = plt.subplots(3, n_slices, figsize=(2.0 * n_slices, 6.4), facecolor="black")
    for row, axis in enumerate((2, 1, 0)):
        for col, pos in enumerate(_slices(fa_c > 0.05, axis, n_slices)):
            sl = [slice(None)] * 3
            sl[axis] = pos
            ax = axes[row, col]
            ax.imshow(np.clip(np.rot90(rgb[tuple(sl)]) * 1.6, 0, 1), interpolation="nearest")
            ax.set_axis_off()
    fig.suptitle(f"{title}  colour FA: red L-R, green A-P, blue S-I  (R on the right)",
                 color="white", fontsize=10)
    fig.subplots_adjust(left=0, right=1, top=0.94, bottom=0.0, wspace=0.02, hspace=0.02)
    fig.savefig(path, dpi=72, facecolor="black")
    plt.close(fig)


def motion_plot(parameters: np.ndarray, displacement: np.ndarray, bvals: np.ndarray,
                outlier_slices: np.ndarray, path, *, title: str = "") -> None:
    """Per-volume translations, rotations, displacement and outlier-slice counts."""
    n = len(bvals)
    x = np.arange(n)
    fig, axes = plt.subplots(4, 1, figsize=(8, 7), sharex=True)
    for k, label in enumerate("xyz"):
        axes[0].plot(x, parameters[:, k], label=f"t{label}")
        axes[1].plot(x, parameters[:, 3 + k], label=f"r{label}")
    axes[0].set_ylabel("translation (mm)")
    axes[1].set_ylabel("rotation (deg)")
    axes[2].plot(x, displacement, color="k")
    axes[2].set_ylabel("displacement (mm)")
    axes[3].bar(x, outlier_slices.sum(axis=1), color="#ff3b30")
    axes[3].set_ylabel("outlier slices")
    axes[3].set_xlabel("volume")
    for ax in axes:
        for i in np.flatnonzero(np.asarray(bvals) <= 50):
            ax.axvline(i, color="0.8", lw=0.8, zorder=0)
    axes[0].legend(ncol=3, fontsize=8)
    axes[1].legend(ncol=3, fontsize=8)
    fig.suptitle(f"{title} (grey lines: b=0 volumes)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


def _pair_rgb(red: np.ndarray, cyan: np.ndarray, vmax: float) -> np.ndarray:
    r = np.clip(red / vmax, 0, 1)
    c = np.clip(cyan / vmax, 0, 1)
    return np.stack([r, c, c], axis=-1)


def distortion(result, pe_axis: int, path, *, n_slices: int = 6, title: str = "") -> None:
    """Susceptibility correction and brain mask at a glance.

    With a reverse phase-encoding b=0: the two b=0 images overlaid (main red,
    reverse cyan: grey where they agree, colour fringes where the distortion
    pulls them apart) as acquired and after unwarping, and the field (mm).
    Without one: the corrected b=0, saying it was not corrected. The last row
    is the corrected b=0 with the brain-mask outline.
    """
    sdc = result.sdc
    b0 = result.b0
    mask = result.mask
    ornt = nib.orientations.io_orientation(result.affine)

    def ras(volume):
        return nib.orientations.apply_orientation(np.asarray(volume, np.float32), ornt)

    mask_c = ras(mask.astype(np.float32)) > 0.5
    positions = _slices(mask_c, 2, n_slices)
    vmax = float(np.percentile(b0[mask], 99)) if mask.any() else float(b0.max() or 1.0)
    rows = []
    if sdc is not None:
        from pipeline.dwi.register import apply_transform

        zooms = np.sqrt((result.affine[:3, :3] ** 2).sum(axis=0))
        main_raw = sdc.main_b0
        reverse_raw = apply_transform(sdc.reverse_b0, sdc.reverse, zooms=zooms, pe_axis=pe_axis)
        # the two acquisitions' intensity scales differ: the reverse on the main's median
        scale = float(np.median(sdc.main_b0[mask])) / max(float(np.median(sdc.reverse_b0[mask])),
                                                          1e-6)
        reverse_raw = reverse_raw * scale
        rows.append((f"as acquired (red: main b=0, cyan: reverse b=0), r = "
                     f"{sdc.similarity_before:.3f}",
                     _pair_rgb(ras(main_raw), ras(reverse_raw), vmax)))
        rows.append((f"after distortion correction, r = {sdc.similarity_after:.3f}",
                     _pair_rgb(ras(sdc.main_unwarped), ras(sdc.reverse_unwarped * scale), vmax)))
        rows.append(("field: displacement along the phase-encoding axis (mm)",
                     ras(sdc.field_mm)))
    rows.append(("corrected b=0, brain mask (yellow)", ras(b0)))
    fig, axes = plt.subplots(len(rows), n_slices, figsize=(2.0 * n_slices, 2.3 * len(rows) + 0.5),
                             facecolor="black", squeeze=False)
    field_limit = (max(float(np.percentile(np.abs(sdc.field_mm[mask]), 99)), 0.5)
                   if sdc is not None and mask.any() else 1.0)
    for row, (label, image) in enumerate(rows):
        for col, pos in enumerate(positions):
            ax = axes[row, col]
            ax.set_axis_off()
            if image.ndim == 4:
                ax.imshow(np.clip(np.rot90(image[:, :, pos]) * 1.2, 0, 1),
                          interpolation="nearest")
            elif "field" in label:
                im = ax.imshow(np.rot90(image[:, :, pos]), cmap="RdBu_r",
                               vmin=-field_limit, vmax=field_limit, interpolation="nearest")
                ax.contour(np.rot90(mask_c[:, :, pos].astype(float)), levels=[0.5],
                           colors=["0.3"], linewidths=0.6)
            else:
                ax.imshow(np.rot90(image[:, :, pos]), cmap="gray", vmin=0, vmax=vmax,
                          interpolation="nearest")
                ax.contour(np.rot90(mask_c[:, :, pos].astype(float)), levels=[0.5],
                           colors=["#ffd60a"], linewidths=0.8)
        axes[row, 0].set_title(label, color="white", fontsize=9, loc="left")
    if sdc is not None:
        row = [r for r, (label, _) in enumerate(rows) if "field" in label][0]
        bar = fig.colorbar(im, ax=list(axes[row]), fraction=0.015, pad=0.01)
        bar.ax.tick_params(colors="white")
    note = ("" if sdc is not None else
            "  -  no reverse phase-encoding b=0: susceptibility distortion NOT corrected")
    fig.suptitle(f"{title}: distortion correction and brain mask (R on the right){note}",
                 color="white", fontsize=10)
    fig.savefig(path, dpi=72, facecolor="black")
    plt.close(fig)


def map_mosaic(values: np.ndarray, affine: np.ndarray, path, *, vmax: float, cmap: str = "magma",
               label: str = "", n_slices: int = 6, title: str = "") -> None:
    """Axial slices of a scalar map with a colour bar."""
    img = nib.as_closest_canonical(nib.Nifti1Image(values.astype(np.float32), affine))
    data = np.asarray(img.dataobj)
    fig, axes = plt.subplots(1, n_slices, figsize=(2.0 * n_slices, 2.6), facecolor="black")
    for ax, pos in zip(axes, _slices(data > 0, 2, n_slices), strict=True):
        im = ax.imshow(np.rot90(data[:, :, pos]), cmap=cmap, vmin=0, vmax=vmax,
                       interpolation="nearest")
        ax.set_axis_off()
    bar = fig.colorbar(im, ax=list(axes), fraction=0.015, pad=0.01)
    bar.set_label(label, color="white")
    bar.ax.tick_params(colors="white")
    fig.suptitle(title, color="white", fontsize=10)
    fig.savefig(path, dpi=72, facecolor="black")
    plt.close(fig)

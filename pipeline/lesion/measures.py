"""Lesion features: volume, side, template centroid, corticospinal-tract lesion load."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from pipeline.errors import PipelineInputError
from pipeline.lesion.space import apply_affine, template_x

SIDES = ("left", "right", "bilateral", "none")


def voxel_volume_ml(img: nib.Nifti1Image) -> float:
    """Volume of one voxel (mL) from the image affine."""
    return float(abs(np.linalg.det(img.affine[:3, :3]))) / 1000.0


def check_manual_mask(mask: nib.Nifti1Image, reference: nib.Nifti1Image, *, path,
                      tolerance_mm: float = 1e-3) -> np.ndarray:
    """A manual lesion mask as a boolean array on the reference (T1w) grid.

    Parameters
    ----------
    mask : nibabel image
        ``*_label-lesion_roi`` image (0/1, or a probability/label map > 0).
    reference : nibabel image
        The session's T1w: the mask must be drawn on its grid.
    path : str
        File name used in the error message.
    tolerance_mm : float
        Largest difference allowed between the two affines (mm).

    Raises
    ------
    PipelineInputError
        If the mask is not 3D, has another shape, or another affine (space).
    """
    if len(mask.shape) != 3 and not (len(mask.shape) == 4 and mask.shape[3] == 1):
        raise PipelineInputError(path, f"manual lesion mask is {len(mask.shape)}D {mask.shape}; "
                                       "expected a 3D mask on the T1w grid")
    if tuple(mask.shape[:3]) != tuple(reference.shape[:3]):
        raise PipelineInputError(
            path, f"manual lesion mask shape {tuple(mask.shape[:3])} differs from the T1w "
                  f"shape {tuple(reference.shape[:3])}; draw (or resample) it on the T1w grid")
    diff = float(np.max(np.abs(mask.affine - reference.affine)))
    if diff > tolerance_mm:
        raise PipelineInputError(
            path, f"manual lesion mask is not in the T1w space (affines differ by up to "
                  f"{diff:.3g} mm); draw (or resample) it on the T1w grid")
    data = np.asarray(mask.dataobj, dtype=np.float32).reshape(reference.shape[:3])
    if not np.isfinite(data).all():
        raise PipelineInputError(path, "manual lesion mask contains NaN or infinite values")
    return data > 0


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (NaN when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum() + b.sum())
    return float("nan") if total == 0 else float(2.0 * (a & b).sum() / total)


def side_from_volumes(left_ml: float, right_ml: float, *, bilateral_fraction: float = 0.2,
                      min_volume_ml: float = 0.0) -> str:
    """Lesion side from the volume in each hemisphere.

    Parameters
    ----------
    left_ml, right_ml : float
        Lesion volume (mL) in the left and right hemisphere.
    bilateral_fraction : float
        "bilateral" when the smaller hemisphere holds at least this fraction of
        the lesion volume.
    min_volume_ml : float
        "none" when the total volume is not above this (mL).
    """
    total = left_ml + right_ml
    if total <= min_volume_ml or total <= 0:
        return "none"
    if min(left_ml, right_ml) / total >= bilateral_fraction:
        return "bilateral"
    return "left" if left_ml > right_ml else "right"


def component_hemisphere_volumes(lesion: np.ndarray, x: np.ndarray,
                                 voxel_ml: float) -> tuple[float, float]:
    """Lesion volume (mL) per hemisphere, each connected component given whole to
    the hemisphere holding most of it.

    Arterial territories do not cross the midline, so a single connected lesion
    straddling the template's mid-sagittal plane is unilateral (the plane is
    only as good as the registration); a bilateral stroke is separate lesions.
    """
    from scipy import ndimage

    labels, n = ndimage.label(lesion, structure=np.ones((3, 3, 3)))
    if n == 0:
        return 0.0, 0.0
    index = np.arange(1, n + 1)
    sizes = np.asarray(ndimage.sum(lesion, labels, index))
    left = np.asarray(ndimage.sum(lesion & (x < 0), labels, index))
    on_left = left > sizes / 2
    return float(sizes[on_left].sum() * voxel_ml), float(sizes[~on_left].sum() * voxel_ml)


def volume_features(lesion: np.ndarray, img: nib.Nifti1Image, t1w_to_mni: np.ndarray, *,
                    bilateral_fraction: float = 0.2) -> dict:
    """Native-space volume, hemisphere volumes, session side.

    Parameters
    ----------
    lesion : ndarray of bool
        Lesion mask on the grid of ``img``.
    t1w_to_mni : ndarray (4, 4)
        RAS map of T1w points to template points (hemisphere = sign of template x).
    bilateral_fraction : float
        See :func:`side_from_volumes`.

    Returns
    -------
    dict
        ``lesion_volume_ml`` (voxel count x voxel volume), ``lesion_volume_left_ml``,
        ``lesion_volume_right_ml`` (voxels on each side of the template midline),
        ``lesion_fraction_left``, ``lesion_side_session`` (from
        :func:`component_hemisphere_volumes` and :func:`side_from_volumes`).
    """
    vml = voxel_volume_ml(img)
    x = np.broadcast_to(template_x(img, t1w_to_mni), lesion.shape)
    left = float((lesion & (x < 0)).sum() * vml)
    right = float((lesion & (x >= 0)).sum() * vml)
    total = float(lesion.sum() * vml)
    comp_left, comp_right = component_hemisphere_volumes(lesion, x, vml)
    return {
        "lesion_volume_ml": total,
        "lesion_volume_left_ml": left,
        "lesion_volume_right_ml": right,
        "lesion_fraction_left": left / total if total > 0 else float("nan"),
        "lesion_side_session": side_from_volumes(comp_left, comp_right,
                                                 bilateral_fraction=bilateral_fraction),
    }


def centroid(lesion: np.ndarray, img: nib.Nifti1Image, world_map) -> np.ndarray:
    """Mean template coordinate (mm) of the lesion voxels.

    ``world_map`` is a 4x4 RAS matrix (T1w -> template points) or a callable
    mapping (N, 3) T1w world points to template points (e.g. a nonlinear warp).
    """
    if not lesion.any():
        return np.full(3, np.nan)
    xyz = apply_affine(img.affine, np.argwhere(lesion).astype(float))
    out = world_map(xyz) if callable(world_map) else apply_affine(world_map, xyz)
    return out.mean(axis=0)


def cst_lesion_load(lesion: np.ndarray, cst: np.ndarray, img: nib.Nifti1Image,
                    slab_index: np.ndarray) -> dict:
    """Overlap of the lesion with one corticospinal tract.

    Parameters
    ----------
    lesion, cst : ndarray of bool
        Masks on the grid of ``img`` (native T1w space).
    slab_index : ndarray of int
        Axial slab of every voxel (e.g. floor of the template z coordinate, mm):
        the slices of the weighted load.

    Returns
    -------
    dict
        ``overlap_ml``, ``fraction`` (of the CST volume) and ``weighted_ml``.

    Notes
    -----
    The weighted load follows Zhu LL, Lindenberg R, Alexander MP, Schlaug G
    (2010), Lesion load of the corticospinal tract predicts motor impairment in
    chronic stroke, Stroke 41:910-915: the lesion-CST overlap of each axial
    slice is multiplied by the ratio of the tract's largest cross-section to its
    cross-section in that slice, then summed, so that damage where the tract is
    narrow (internal capsule) counts more than in the corona radiata.
    """
    vml = voxel_volume_ml(img)
    cst_total = int(cst.sum())
    if cst_total == 0:
        return {"overlap_ml": float("nan"), "fraction": float("nan"), "weighted_ml": float("nan")}
    overlap = lesion & cst
    slabs = slab_index[cst]
    offset = slabs.min()
    area = np.bincount(slabs - offset)
    hit = np.bincount(slab_index[overlap] - offset, minlength=area.size) if overlap.any() \
        else np.zeros_like(area)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(area > 0, area.max() / area, 0.0)
    return {
        "overlap_ml": float(overlap.sum() * vml),
        "fraction": float(overlap.sum() / cst_total),
        "weighted_ml": float((hit * weight).sum() * vml),
    }

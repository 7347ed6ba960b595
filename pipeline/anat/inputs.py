"""Checked loading of the anatomy stream's inputs (T1w, lesion mask, side).

Every T1w is reoriented to the closest RAS orientation first (a pure
permutation/flip of the voxel axes, no interpolation; an oblique header keeps
its rotation), so an LPI or oblique acquisition gives the same result as RAS;
all T1w-space derivatives are written on that RAS grid.
"""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np

from pipeline import validate
from pipeline.errors import PipelineInputError
from pipeline.io import read_json

log = logging.getLogger(__name__)


def load_t1w(path) -> nib.Nifti1Image:
    """A 3D, finite T1w (4D, NaN/inf or broken files raise PipelineInputError), RAS."""
    img = validate.load_data(path, ndim=(3,), what="T1w")
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    if not np.any(data > 0):
        raise PipelineInputError(path, "T1w has no positive voxel")
    return nib.as_closest_canonical(nib.Nifti1Image(data, img.affine))


def load_on_grid(path, reference: nib.Nifti1Image, *, what: str) -> nib.Nifti1Image:
    """A 3D mask on the grid of ``reference``.

    A mask on another grid (other shape, orientation or voxel size) is
    resampled (nearest neighbour) through world coordinates; a mask that does
    not overlap the reference, or is not 3D, raises PipelineInputError.
    """
    from nilearn.image import resample_to_img

    img = validate.load_data(path, ndim=(3,), what=what)
    data = (np.asarray(img.dataobj, dtype=np.float32).reshape(img.shape[:3]) > 0.5)
    img = nib.Nifti1Image(data.astype(np.uint8), img.affine)
    if img.shape == reference.shape and np.allclose(img.affine, reference.affine, atol=1e-3):
        return img
    log.warning("%s: %s on another grid %s; resampled to the T1w grid %s", path, what,
                img.shape, reference.shape)
    out = resample_to_img(img, reference, interpolation="nearest", force_resample=True,
                          copy_header=True)
    out = nib.Nifti1Image((out.get_fdata() > 0.5).astype(np.uint8), reference.affine)
    if data.any() and not np.asarray(out.dataobj).any():
        raise PipelineInputError(path, f"{what} (shape {img.shape}) does not overlap the T1w "
                                       f"(shape {reference.shape}) in world coordinates")
    return out


def optional_mask(path, reference, *, what: str = "lesion mask"):
    """:func:`load_on_grid`, or None for no path; an empty mask is None."""
    if not path:
        return None
    img = load_on_grid(path, reference, what=what)
    return img if np.asarray(img.dataobj).any() else None


def lesion_side(path) -> str | None:
    """``lesion_side`` of the lesion stream's per-subject JSON (None if no path)."""
    if not path:
        return None
    value = read_json(path).get("lesion_side")
    if value not in ("left", "right", "bilateral", "none"):
        raise PipelineInputError(path, f"lesion_side must be left/right/bilateral/none, got {value!r}")
    return value

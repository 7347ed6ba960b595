"""Checked loading of the anatomy stream's inputs (T1w, lesion masks).

Every image enters through the orientation contract
(:func:`pipeline.orientation.read_image`): the T1w is brought to the closest
RAS orientation (a pure permutation/flip of the voxel axes, no interpolation;
an oblique header keeps its rotation), so an LPI or oblique acquisition gives
the same result as RAS, and every T1w-space derivative is written on that grid.
"""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np

from pipeline.errors import PipelineInputError
from pipeline.orientation import check_same_grid, read_image, working_grid

log = logging.getLogger(__name__)


def load_t1w(path, max_voxel_mm: float | None = None) -> nib.Nifti1Image:
    """A 3D, finite T1w on its canonical grid (4D, NaN/inf or broken files raise
    PipelineInputError, as does an image with no positive voxel); on its working grid
    (:func:`pipeline.orientation.working_grid`) when finer than ``max_voxel_mm``."""
    img = read_image(path, what="T1w", ndim=(3,))
    if not np.any(np.asarray(img.dataobj) > 0):
        raise PipelineInputError(path, "T1w has no positive voxel")
    return working_grid(img, max_voxel_mm)


def manual_lesion(path, reference: nib.Nifti1Image, *, threshold: float, labels=None,
                  drawn_on: nib.Nifti1Image | None = None):
    """A raw manual lesion mask (:func:`pipeline.lesion.manual.read_manual_mask`) as a
    uint8 image on ``reference``'s grid, or None (no path, or an empty mask).
    ``drawn_on``: the raw T1w when ``reference`` is its working grid."""
    if not path:
        return None
    from pipeline.lesion.manual import read_manual_mask

    read = read_manual_mask(path, reference, threshold=threshold, labels=labels,
                            drawn_on=drawn_on)
    if read.is_empty:
        return None
    return nib.Nifti1Image(read.mask.astype(np.uint8), reference.affine)


def lesion_on_grid(path, reference: nib.Nifti1Image):
    """The lesion stream's mask (a derivative on the T1w grid) as a uint8 image, or
    None (no path, or no lesion). A mask on another grid is a programming error."""
    if not path:
        return None
    img = read_image(path, what="lesion mask")
    check_same_grid(reference, lesion_mask=img)
    data = np.asarray(img.dataobj) > 0.5
    return nib.Nifti1Image(data.astype(np.uint8), reference.affine) if data.any() else None

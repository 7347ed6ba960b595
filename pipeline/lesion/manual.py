"""Manual lesion masks as users make them: any storage, binary, probabilistic or labelled.

A mask drawn on the T1w (``*_label-lesion_roi.nii.gz``, or a reviewed mask
from the QC viewer) enters through the orientation contract
(:func:`pipeline.orientation.read_image`), so it may be stored in any
orientation and with any affine describing the T1w's grid. Its values decide
what it is:

* **binary**: one non-zero value (1, 255, 1.0, any integer or float type);
* **probabilistic**: values in [0, 1] with some strictly between 0 and 1,
  thresholded at ``threshold`` (``lesion.manual_threshold``, default 0.5:
  a voxel is lesion when its value is >= the threshold);
* **labels**: several distinct positive integers. A named error unless
  ``labels`` (``lesion.manual_labels``) names the lesion label(s), whose union
  is the lesion;
* **empty**: no positive voxel (volume 0; the side comes from
  ``participants.tsv`` or is ``none``).

Negative values, or non-integer values above 1, are a named error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nibabel as nib
import numpy as np

from pipeline.errors import PipelineInputError
from pipeline.orientation import (
    GRID_TOLERANCE_VOXELS,
    describe_grid,
    grid_distance_voxels,
    on_grid_of,
    read_image,
)

log = logging.getLogger(__name__)

KINDS = ("binary", "probabilistic", "labels", "empty")


@dataclass
class ManualMask:
    """A manual mask on the reference grid.

    Attributes
    ----------
    mask : ndarray of bool
        Lesion voxels on the reference (T1w) grid.
    kind : str
        One of :data:`KINDS`.
    rule : str
        How the file's values became the mask (recorded in sidecars and the QC page).
    """

    mask: np.ndarray
    kind: str
    rule: str

    @property
    def is_empty(self) -> bool:
        return not bool(self.mask.any())


def classify(values: np.ndarray, *, path, threshold: float = 0.5,
             labels=None) -> tuple[np.ndarray, str, str]:
    """Turn a mask file's values into a boolean lesion mask.

    Parameters
    ----------
    values : ndarray
        Voxel values (any dtype; finite).
    path : str
        File named in errors.
    threshold : float
        Probability threshold (0 < threshold <= 1) for probabilistic maps.
    labels : sequence of int or None
        Lesion label values of a multi-label mask.

    Returns
    -------
    mask, kind, rule
    """
    values = np.asarray(values, dtype=np.float64)
    if not 0.0 < threshold <= 1.0:
        raise PipelineInputError(path, f"manual_threshold must be in (0, 1], got {threshold}")
    if np.any(values < 0):
        raise PipelineInputError(path, f"manual lesion mask has negative values (min "
                                       f"{values.min():g}); expected a binary, probability or "
                                       "label mask")
    positive = np.unique(values[values > 0])
    if positive.size == 0:
        return np.zeros(values.shape, bool), "empty", "no positive voxel: empty mask"
    integer = bool(np.all(np.abs(positive - np.round(positive)) < 1e-6))
    if labels:
        wanted = [float(v) for v in labels]
        found = [v for v in wanted if np.any(np.isclose(positive, v))]
        mask = np.isin(np.round(values), np.round(wanted)) & (values > 0)
        return mask, "labels", (f"labels {sorted(int(v) for v in wanted)} (configured "
                                f"lesion.manual_labels; found {sorted(int(v) for v in found)})")
    if positive.size == 1:
        return values > 0, "binary", f"binary (non-zero value {positive[0]:g})"
    if positive.max() <= 1.0 and np.any((positive > 0) & (positive < 1)):
        return values >= threshold, "probabilistic", (
            f"probabilistic map thresholded at >= {threshold:g} (lesion.manual_threshold)")
    if integer:
        shown = ", ".join(f"{v:g}" for v in positive[:8]) + (" ..." if positive.size > 8 else "")
        raise PipelineInputError(
            path, f"manual lesion mask has {positive.size} labels ({shown}); name the lesion "
                  "label(s) in the config (lesion.manual_labels) or save a binary mask")
    raise PipelineInputError(
        path, f"manual lesion mask values are neither binary, probabilities in [0, 1] nor "
              f"integer labels (range {positive.min():g}..{positive.max():g})")


def read_manual_mask(path, reference: nib.Nifti1Image, *, threshold: float = 0.5,
                     labels=None, what: str = "manual lesion mask",
                     reference_name: str = "the T1w",
                     drawn_on: nib.Nifti1Image | None = None) -> ManualMask:
    """Read a manual mask drawn on ``reference``'s grid (any storage orientation).

    ``drawn_on``: the raw image the mask was drawn on, when ``reference`` is a working
    grid resampled from it (a T1w finer than ``anat.max_voxel_mm``). The mask must then
    be on ``drawn_on``'s grid; its lesion (after the threshold / label rule) is carried
    to ``reference`` by linear interpolation of the binary mask, kept at >= 0.5, which
    preserves its volume to within the partial voxels of its edge (the rule says so).

    Raises
    ------
    PipelineInputError
        Unreadable file, NaN values, another grid (both grids in the message),
        unnamed multi-label mask, values that are not a mask.
    """
    img = read_image(path, what=what, ndim=(3,))
    # on the reference's grid already (the usual case), else on the raw image it was
    # drawn on (the reference is then its working grid)
    carry = (drawn_on is not None
             and grid_distance_voxels(img, reference) > GRID_TOLERANCE_VOXELS)
    img = on_grid_of(img, drawn_on if carry else reference, path=path, what=what,
                     reference_name=reference_name)
    mask, kind, rule = classify(np.asarray(img.dataobj), path=path, threshold=threshold,
                                labels=labels)
    if carry:
        import warnings

        from nilearn.image import resample_to_img

        drawn = int(mask.sum())
        with warnings.catch_warnings():  # linear then >= 0.5 is the point: keeps the volume
            warnings.filterwarnings("ignore", message="Resampling binary images")
            moved = resample_to_img(nib.Nifti1Image(mask.astype(np.float32), drawn_on.affine),
                                    reference, interpolation="linear", force_resample=True,
                                    copy_header=True)
        mask = np.asarray(moved.dataobj) >= 0.5
        rule += (f"; drawn on the {describe_grid(drawn_on)} grid ({drawn} voxels), carried to "
                 f"the {describe_grid(reference)} working grid (linear, >= 0.5)")
    log.info("%s: %s, %d voxels", path, rule, int(mask.sum()))
    return ManualMask(mask, kind, rule)

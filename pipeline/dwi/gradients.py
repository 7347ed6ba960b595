"""Gradient tables: reading BIDS (FSL-convention) files, frames and rotation.

Three frames appear in this stream:

* **FSL / BIDS file frame** -- what a ``.bvec`` holds: the image's voxel axes,
  with x negated when the affine has a positive determinant (FSL treats such
  an image as if stored radiologically).
* **voxel frame** -- the voxel axes i, j, k of the image array. dipy's
  ``gradient_table`` and tensor eigenvectors live here.
* **world frame** -- scanner RAS+ (mm) of the affine. Head-motion rotations
  found by registration live here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from pipeline import validate
from pipeline.errors import PipelineInputError
from pipeline.orientation import (
    Storage,
    opposite_phase_encoding,
    read_image_storage,
    resolve_affine,
)

logger = logging.getLogger(__name__)

MIN_DIRECTIONS = 6
"""A diffusion tensor has six unknowns besides S0."""


@dataclass
class DwiInput:
    """A checked DWI series with its gradients in the voxel frame.

    Attributes
    ----------
    image : nibabel.Nifti1Image
        4D float32 series on its canonical grid (:mod:`pipeline.orientation`).
    bvals : ndarray, shape (n,)
        b-values (s/mm^2).
    bvecs : ndarray, shape (n, 3)
        Unit gradient directions in the voxel frame of ``image`` (zeros for b=0).
    storage : Storage or None
        How the file was stored (axis codes of sidecar fields map through it).
    pe_axis : int
        Phase-encoding axis of ``image`` (canonical grid), from the sidecar's
        ``PhaseEncodingDirection`` mapped through ``storage``; 1 (``j``) when absent.
    pe_source : str
        Where ``pe_axis`` comes from (for the log and the metrics).
    reverse_b0 : ndarray (X, Y, Z) or None
        A b=0 of the opposite phase-encoding polarity on the grid of ``image``
        (:func:`load_reverse_b0`), for the susceptibility correction.
    readout_ratio : float
        Total readout time of the reverse b=0 over the series' (1 when unknown).
    """

    image: nib.Nifti1Image
    bvals: np.ndarray
    bvecs: np.ndarray
    storage: Storage | None = None
    pe_axis: int = 1
    pe_source: str = "default: j (anterior-posterior, the usual axial EPI)"
    reverse_b0: np.ndarray | None = None
    readout_ratio: float = 1.0

    @property
    def is_b0(self) -> np.ndarray:
        return self.bvals <= validate.B0_THRESHOLD


def axis_directions(affine: np.ndarray) -> np.ndarray:
    """Unit world (RAS) direction of each voxel axis, as the columns of a 3x3 matrix."""
    linear = np.asarray(affine, dtype=float)[:3, :3]
    return linear / np.linalg.norm(linear, axis=0, keepdims=True)


def fsl_to_voxel(bvecs_fsl: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """FSL/BIDS-file b-vectors (n, 3) -> voxel frame (x un-negated if det(affine) > 0).

    Notes
    -----
    FSL stores b-vectors in the voxel axes of an image seen in radiological
    order: for a neurologically stored image (positive determinant) the first
    voxel axis is flipped. MRtrix3 (``-fslgrad``) applies the same rule.
    """
    out = np.array(bvecs_fsl, dtype=float)
    if np.linalg.det(np.asarray(affine)[:3, :3]) > 0:
        out[:, 0] = -out[:, 0]
    return out


def voxel_to_fsl(bvecs_voxel: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Inverse of :func:`fsl_to_voxel` (the same sign flip)."""
    return fsl_to_voxel(bvecs_voxel, affine)


def voxel_to_world(vectors: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Directions (..., 3) in the voxel frame -> world RAS frame (unit length kept)."""
    return np.asarray(vectors, dtype=float) @ axis_directions(affine).T


def world_to_voxel(vectors: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Directions (..., 3) in the world RAS frame -> voxel frame."""
    return np.asarray(vectors, dtype=float) @ np.linalg.inv(axis_directions(affine)).T


def rotation_of(linear: np.ndarray) -> np.ndarray:
    """Closest rotation to a 3x3 linear map (polar decomposition, det +1)."""
    u, _, vt = np.linalg.svd(np.asarray(linear, dtype=float))
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        u[:, -1] = -u[:, -1]
        rotation = u @ vt
    return rotation


def rotate_bvecs(bvecs_voxel: np.ndarray, rotations_world: np.ndarray,
                 affine: np.ndarray, bvals: np.ndarray | None = None) -> np.ndarray:
    """Express each volume's gradient in the reference head frame.

    Parameters
    ----------
    bvecs_voxel : ndarray, shape (n, 3)
        Gradient directions in the voxel frame (scanner-fixed).
    rotations_world : ndarray, shape (n, 3, 3)
        Rotation R_i (world RAS) of the head in volume i relative to the
        reference: a head point at x (reference) sits at R_i x + t_i.
    affine : ndarray, shape (4, 4)
    bvals : ndarray, shape (n,), optional
        b-values; volumes at or below ``validate.B0_THRESHOLD`` (and zero
        vectors) are left as they are. Default: every non-zero vector is
        diffusion-weighted.

    Returns
    -------
    ndarray, shape (n, 3)
        R_i^T g_i in the voxel frame; zero vectors stay zero.

    Notes
    -----
    Leemans & Jones (2009), MRM 61:1336, "The B-matrix must be rotated when
    correcting for subject motion in DTI data". The rotation itself is dipy's
    ``reorient_bvecs`` (polar decomposition, inverse rotation applied); this
    function only carries the world-frame rotations into the voxel frame the
    gradient table lives in (R_voxel = A^-1 R_world A, A the axis directions).
    """
    from dipy.core.gradients import gradient_table, reorient_bvecs

    g = np.asarray(bvecs_voxel, dtype=float)
    weighted = np.linalg.norm(g, axis=1) > 0
    if bvals is not None:
        weighted &= np.asarray(bvals, dtype=float) > validate.B0_THRESHOLD
    out = np.where(weighted[:, None], g, 0.0)
    if not weighted.any():
        return out
    axes = axis_directions(affine)
    to_voxel = np.linalg.inv(axes) @ np.asarray(rotations_world, dtype=float)[weighted] @ axes
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    unit = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
    # the table's b-values only tell dipy which rows are weighted (decided above)
    gtab = gradient_table(np.where(weighted, 1000.0, 0.0), bvecs=unit, b0_threshold=0.0)
    out[weighted] = reorient_bvecs(gtab, np.moveaxis(to_voxel, 0, -1)).bvecs[weighted] \
        * norms[weighted]
    return out


def load_dwi(dwi_path, bval_path, bvec_path) -> DwiInput:
    """Read and check a DWI series and its BIDS ``.bval`` / ``.bvec``.

    Raises :class:`PipelineInputError` (naming the file) for a 3D image,
    NaN voxels, bval/bvec counts that differ from the number of volumes,
    non-unit b-vectors, no b=0 volume, or fewer than six diffusion-weighted
    volumes.
    """
    img, storage = read_image_storage(dwi_path, ndim=(4,), what="DWI")
    bvals, bvecs_fsl = validate.read_gradients(bval_path, bvec_path, img.shape[3],
                                               dwi_path=dwi_path)
    n_dw = int((bvals > validate.B0_THRESHOLD).sum())
    if n_dw < MIN_DIRECTIONS:
        raise PipelineInputError(
            bval_path, f"has {n_dw} diffusion-weighted volumes; a tensor fit needs at least "
            f"{MIN_DIRECTIONS}")
    # the file's b-vectors live in the STORED voxel frame (FSL convention of the stored
    # affine); the image is now on its canonical grid: carry them by the same permutation
    stored_affine = resolve_affine(nib.load(str(dwi_path)))[0]
    bvecs = storage.vectors(fsl_to_voxel(bvecs_fsl, stored_affine))
    norms = np.linalg.norm(bvecs, axis=1, keepdims=True)
    bvecs = np.where(norms > 0, bvecs / np.where(norms > 0, norms, 1.0), 0.0)
    bvecs[bvals <= validate.B0_THRESHOLD] = 0.0
    logger.info("%s: %d volumes, %d b=0, shells %s", dwi_path, img.shape[3],
                int((bvals <= validate.B0_THRESHOLD).sum()), validate.shells(bvals))
    pe_axis, pe_source = phase_encoding_axis(dwi_path, storage)
    return DwiInput(img, bvals, bvecs, storage, pe_axis, pe_source)


def _sidecar(path) -> tuple[Path, dict]:
    import json

    sidecar = Path(str(path).removesuffix(".gz").removesuffix(".nii") + ".json")
    if not sidecar.exists():
        return sidecar, {}
    try:
        return sidecar, json.loads(sidecar.read_text())
    except (OSError, ValueError) as err:
        raise PipelineInputError(sidecar, f"unreadable JSON sidecar ({err})") from err


def phase_encoding_code(path, storage: Storage) -> str | None:
    """``PhaseEncodingDirection`` of the sidecar beside ``path``, as an axis code of the
    canonical grid (the stored-frame code mapped through ``storage``), or None."""
    sidecar, meta = _sidecar(path)
    code = meta.get("PhaseEncodingDirection")
    if not code:
        return None
    try:
        return storage.axis(code)
    except ValueError as err:
        raise PipelineInputError(sidecar, f"PhaseEncodingDirection: {err}") from err


def phase_encoding_axis(dwi_path, storage: Storage) -> tuple[int, str]:
    """Phase-encoding axis of the canonical grid from the JSON sidecar beside the DWI
    (``PhaseEncodingDirection``, a stored-frame axis code mapped through ``storage``);
    axis 1 (``j``) when the sidecar or the field is absent, stated in the log."""
    canonical = phase_encoding_code(dwi_path, storage)
    if canonical is None:
        logger.warning("%s: no PhaseEncodingDirection in the sidecar; eddy currents are "
                       "modelled along j (anterior-posterior, the usual axial EPI)", dwi_path)
        return 1, "default: j (anterior-posterior, the usual axial EPI)"
    code = _sidecar(dwi_path)[1]["PhaseEncodingDirection"]
    return "ijk".index(canonical[0]), f"sidecar PhaseEncodingDirection {code} (stored) = " \
                                      f"{canonical} (canonical)"


def load_reverse_b0(dwi: DwiInput, dwi_path, reverse_path) -> DwiInput:
    """``dwi`` with the b=0 of a reverse phase-encoding series (``fmap/*_epi``, or the
    other DWI series of a pair) on its grid, through the same orientation reader.

    A 4D reverse image gives the mean of its b=0 volumes (from a ``.bval`` beside it) or
    of every volume (an ``_epi`` fieldmap is all b=0). Both sidecars must state
    ``PhaseEncodingDirection``, on the same canonical axis and of opposite polarity
    (compared after each file's own storage is undone); otherwise a
    :class:`PipelineInputError` names the reverse file. Another grid is resampled
    (cubic spline) onto the DWI's; the readout-time ratio comes from both sidecars'
    ``TotalReadoutTime`` (1 when either is missing).
    """
    import dataclasses

    from nibabel.processing import resample_from_to

    img, storage = read_image_storage(reverse_path, ndim=(3, 4),
                                      what="reverse phase-encoding b=0")
    main, reverse = phase_encoding_code(dwi_path, dwi.storage), phase_encoding_code(
        reverse_path, storage)
    if not main or not reverse:
        raise PipelineInputError(reverse_path, "susceptibility correction needs "
                                 "PhaseEncodingDirection in the sidecars of the DWI and of "
                                 "this reverse b=0")
    if not opposite_phase_encoding(main, reverse):
        raise PipelineInputError(reverse_path, f"phase encoding {reverse} (canonical grid) is "
                                 f"not the reverse of the DWI's {main}")
    if img.ndim == 4:
        bval = Path(str(reverse_path).removesuffix(".gz").removesuffix(".nii") + ".bval")
        keep = np.ones(img.shape[3], bool)
        if bval.exists():
            keep = np.loadtxt(bval, ndmin=1) <= validate.B0_THRESHOLD
            if keep.size != img.shape[3] or not keep.any():
                raise PipelineInputError(bval, "has no b=0 or not one value per volume")
        data = img.get_fdata(dtype=np.float32)[..., keep].mean(axis=-1)
        img = nib.Nifti1Image(data, img.affine)
    shape, affine = dwi.image.shape[:3], dwi.image.affine
    if img.shape[:3] != shape or not np.allclose(img.affine, affine, atol=1e-3):
        logger.info("%s: resampled onto the DWI grid", reverse_path)
        img = resample_from_to(img, (shape, affine), order=3)
    times = [_sidecar(p)[1].get("TotalReadoutTime") for p in (dwi_path, reverse_path)]
    ratio = float(times[1]) / float(times[0]) if all(times) else 1.0
    logger.info("%s: reverse phase-encoding b=0 (%s against the DWI's %s), readout ratio %.3f",
                reverse_path, reverse, main, ratio)
    return dataclasses.replace(dwi, reverse_b0=np.asarray(img.get_fdata(dtype=np.float32)),
                               readout_ratio=ratio)

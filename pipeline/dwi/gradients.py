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
from pipeline.orientation import Storage, read_image_storage, resolve_affine

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
    """

    image: nib.Nifti1Image
    bvals: np.ndarray
    bvecs: np.ndarray
    storage: Storage | None = None
    pe_axis: int = 1
    pe_source: str = "default: j (anterior-posterior, the usual axial EPI)"

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


def phase_encoding_axis(dwi_path, storage: Storage) -> tuple[int, str]:
    """Phase-encoding axis of the canonical grid from the JSON sidecar beside the DWI
    (``PhaseEncodingDirection``, a stored-frame axis code mapped through ``storage``);
    axis 1 (``j``) when the sidecar or the field is absent, stated in the log."""
    import json

    sidecar = Path(str(dwi_path).removesuffix(".gz").removesuffix(".nii") + ".json")
    code = None
    if sidecar.exists():
        try:
            code = json.loads(sidecar.read_text()).get("PhaseEncodingDirection")
        except (OSError, ValueError) as err:
            raise PipelineInputError(sidecar, f"unreadable JSON sidecar ({err})") from err
    if not code:
        logger.warning("%s: no PhaseEncodingDirection in the sidecar; eddy currents are "
                       "modelled along j (anterior-posterior, the usual axial EPI)", dwi_path)
        return 1, "default: j (anterior-posterior, the usual axial EPI)"
    try:
        canonical = storage.axis(code)
    except ValueError as err:
        raise PipelineInputError(sidecar, f"PhaseEncodingDirection: {err}") from err
    return "ijk".index(canonical[0]), f"sidecar PhaseEncodingDirection {code} (stored) = " \
                                      f"{canonical} (canonical)"

"""Geometry shared by the lesion stream: template mirror, hemispheres.

The anatomy stream's affine (``from-MNI152NLin6Asym_to-T1w_mode-image_desc-affine_xfm.mat``)
is the transform ANTs uses to resample the template into the T1w grid: it maps
T1w *points* to template points. The lesion stream reads it as a 4x4 matrix in
RAS world coordinates (:func:`pipeline.antsio.read_ants_affine`) and uses it to
(i) mirror the subject across the template's mid-sagittal plane (x = 0 in
MNI152NLin6Asym) and (ii) say which hemisphere (template x < 0 is left) a
voxel lies in. None of this depends on the lesion-masked SyN, so the lesion
mask can feed that registration.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage


def apply_affine(matrix: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Apply a 4x4 affine to points of shape (N, 3)."""
    return xyz @ matrix[:3, :3].T + matrix[:3, 3]


def voxel_coords_in(img: nib.Nifti1Image, world_map: np.ndarray, mask=None) -> np.ndarray:
    """World coordinates (N, 3) after ``world_map`` of the voxels of ``mask`` (all if None)."""
    ijk = np.argwhere(mask) if mask is not None else np.argwhere(np.ones(img.shape[:3], bool))
    return apply_affine(world_map @ img.affine, ijk.astype(float))


def template_x(img: nib.Nifti1Image, t1w_to_mni: np.ndarray) -> np.ndarray:
    """Template x coordinate (mm, negative = left) of every voxel of ``img``'s grid."""
    shape = img.shape[:3]
    m = t1w_to_mni @ img.affine
    i, j, k = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij",
                          sparse=True)
    return (m[0, 0] * i + m[0, 1] * j + m[0, 2] * k + m[0, 3]).astype(np.float32)


def mirror(data: np.ndarray, affine: np.ndarray, t1w_to_mni: np.ndarray, *,
           order: int = 1) -> np.ndarray:
    """Image mirrored across the template's mid-sagittal plane, on the same grid.

    ``out(x) = data(T^-1 F T x)`` with ``T`` the T1w -> template map and ``F``
    the flip x -> -x; voxels whose mirror falls outside the grid are 0.
    """
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    world = np.linalg.inv(t1w_to_mni) @ flip @ t1w_to_mni
    vox = np.linalg.inv(affine) @ world @ affine
    return ndimage.affine_transform(data, vox[:3, :3], offset=vox[:3, 3], order=order,
                                    mode="constant", cval=0.0, output=np.float32)

"""BOLD -> T1w registration: the returned matrix and resampling directions (pipeline.func.registration)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from pipeline.func.registration import labels_to_bold, register_bold_to_t1w
from pipeline.simulate.space import rigid_matrix


def _head(shape, voxel_mm, seed=0):
    rng = np.random.default_rng(seed)
    affine = np.diag([voxel_mm] * 3 + [1.0])
    affine[:3, 3] = -voxel_mm * (np.array(shape) - 1) / 2
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = ijk * voxel_mm + affine[:3, 3]
    return affine, xyz, rng


def test_registration_recovers_a_known_pose(tmp_path):
    """T1w(x) = pattern(x); BOLD(y) = pattern(P y): t1w_from_bold must be P."""
    pose = rigid_matrix((2.0, -3.0, 1.5), (3.0, -2.0, 4.0))
    noise = ndimage.gaussian_filter(np.random.default_rng(0).normal(size=(40, 48, 40)), 3)
    noise_affine = np.diag([4.0, 4.0, 4.0, 1.0])
    noise_affine[:3, 3] = -4.0 * (np.array(noise.shape) - 1) / 2

    def pattern(xyz):
        ijk = (xyz - noise_affine[:3, 3]) / 4.0
        inside = np.linalg.norm(xyz / np.array([60.0, 75.0, 60.0]), axis=1) < 1
        return (100 + 400 * ndimage.map_coordinates(noise, ijk.T, order=1)) * inside

    t1_aff, t1_xyz, _ = _head((64, 80, 64), 2.5)
    t1 = nib.Nifti1Image(pattern(t1_xyz).reshape(64, 80, 64).astype(np.float32), t1_aff)
    bold_aff, bold_xyz, _ = _head((44, 52, 40), 3.5)
    moved = bold_xyz @ pose[:3, :3].T + pose[:3, 3]
    bold = nib.Nifti1Image(pattern(moved).reshape(44, 52, 40).astype(np.float32), bold_aff)
    brain = nib.Nifti1Image((t1.get_fdata() > 0).astype(np.uint8), t1_aff)
    reg = register_bold_to_t1w(bold, t1, brain, out_transform=tmp_path / "x.mat",
                               registration_voxel_mm=2.5)
    # compare the maps at points of the head
    probe = bold_xyz[::97]
    est = probe @ reg.t1w_from_bold[:3, :3].T + reg.t1w_from_bold[:3, 3]
    true = probe @ pose[:3, :3].T + pose[:3, 3]
    assert np.sqrt(((est - true) ** 2).sum(axis=1)).mean() < 1.0  # mm, well below a voxel
    # labels drawn in T1w space land where the pose says on the BOLD grid
    labels = np.zeros(t1.shape, np.uint8)
    labels[20:30, 30:45, 35:45] = 3
    on_bold = labels_to_bold(nib.Nifti1Image(labels, t1_aff), bold, tmp_path / "x.mat",
                             label_values=(3,))[3]
    centre_t1 = t1_aff[:3, :3] @ np.array([24.5, 37.0, 39.5]) + t1_aff[:3, 3]
    centre_bold = np.linalg.solve(pose, np.r_[centre_t1, 1])[:3]
    got = bold_aff[:3, :3] @ np.array(ndimage.center_of_mass(on_bold)) + bold_aff[:3, 3]
    assert np.linalg.norm(got - centre_bold) < 2.0

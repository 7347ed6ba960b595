"""A session with a manual lesion mask and no FLAIR: lesion volume, side and status come
from the mask; the FLAIR-only metrics are absent (NA) with the stream still ok. Also on
a 0.5 mm T1w, where every T1w-space step runs on the anat.max_voxel_mm working grid."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from pipeline.lesion.run import segment_session


def _session(tmp_path, voxel_mm, n):
    ants = pytest.importorskip("ants")
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = -voxel_mm * (n - 1) / 2
    xyz = np.indices((n, n, n)).reshape(3, -1).T * voxel_mm + affine[:3, 3]
    radius = np.linalg.norm(xyz, axis=1).reshape(n, n, n)
    brain = radius < 0.4 * n * voxel_mm
    t1 = np.where(brain, 100.0, 5.0).astype(np.float32)
    # a lesion in the left hemisphere (x < 0 in RAS), a 6 mm ball
    lesion = (np.linalg.norm(xyz - [-12.0, 4.0, 2.0], axis=1) <= 6.0).reshape(n, n, n)
    t1[lesion] = 60.0
    files = {k: tmp_path / f"{k}.nii.gz" for k in ("raw", "mask", "manual")}
    nib.save(nib.Nifti1Image(t1, affine), files["raw"])
    nib.save(nib.Nifti1Image(lesion.astype(np.uint8), affine), files["manual"])
    return files, brain, lesion, affine, ants


@pytest.mark.parametrize(("voxel_mm", "n", "max_voxel_mm"), [(2.0, 40, 1.0), (0.5, 120, 1.0)])
def test_manual_mask_without_flair_gives_the_lesion_features(tmp_path, voxel_mm, n, max_voxel_mm):
    from pipeline.anat.inputs import load_t1w
    from pipeline.io import save_image

    files, brain, lesion, affine, ants = _session(tmp_path, voxel_mm, n)
    # the anatomy stream's T1w and brain mask: on the working grid
    work = load_t1w(files["raw"], max_voxel_mm)
    t1w = tmp_path / "t1w_preproc.nii.gz"
    save_image(work, t1w, sources=[files["raw"]], description="test", dtype="float32")
    from nilearn.image import resample_to_img
    brain_work = resample_to_img(nib.Nifti1Image(brain.astype(np.float32), affine), work,
                                 interpolation="nearest", force_resample=True, copy_header=True)
    save_image(nib.Nifti1Image((brain_work.get_fdata() > 0.5).astype(np.uint8), work.affine),
               files["mask"], sources=[files["raw"]], description="test", dtype="uint8")
    xfm = tmp_path / "xfm.mat"
    ants.write_transform(ants.create_ants_transform(transform_type="AffineTransform",
                                                    dimension=3), str(xfm))
    out = {k: tmp_path / f"out_{k}" for k in ("mask.nii.gz", "metrics.json", "figure.png")}
    metrics = segment_session(t1w=str(t1w), t1w_raw=str(files["raw"]), brain_mask=str(files["mask"]),
                              xfm=str(xfm), manual=str(files["manual"]),
                              out_mask=out["mask.nii.gz"], out_metrics=out["metrics.json"],
                              out_figure=out["figure.png"], max_voxel_mm=max_voxel_mm)
    truth_ml = lesion.sum() * voxel_mm**3 / 1000
    assert metrics["lesion_source"] == "manual"
    if voxel_mm >= max_voxel_mm:  # on its own grid: the voxel count, exactly
        assert metrics["lesion_volume_ml"] == pytest.approx(truth_ml, rel=1e-6)
    else:  # carried to the working grid: the edge voxels' partial volume
        assert metrics["lesion_volume_ml"] == pytest.approx(truth_ml, rel=0.06)
    assert metrics["lesion_side_session"] == "left"
    assert metrics.get("lesion_status") in (None, "ok")
    assert not any(k.startswith(("flair_", "lesion_hyperintense")) and v is not None
                   for k, v in metrics.items())
    written = json.loads(out["metrics.json"].read_text())
    assert written["lesion_volume_ml"] == metrics["lesion_volume_ml"]
    mask = nib.load(out["mask.nii.gz"])
    assert np.allclose(mask.affine, work.affine) and mask.shape == work.shape

"""Real anatomy, known truth: planted motion and eddy currents in a real DWI series
(part ``dwi-planted`` of ``benchmarks/real_data.py``).

A real series has no truth for FA after correction, and MRtrix3 on the raw data is
not one when the series carries eddy-current distortions of its own (the real AP
series does: its phase-encoding shifts reach 3 mm and flip sign on PA). So the truth
is made from the real series, without the pipeline:

1. dipy's WLS tensor fitted to the raw series inside a dipy ``median_otsu`` mask
   predicts a clean series with the real anatomy, contrast and b-values (outside the
   mask: the real b=0, diffusion-weighted volumes empty); its FA is the truth.
2. Each diffusion-weighted volume is moved by a known map written here (scipy
   ``map_coordinates``, not the pipeline's resampler): ``still``, none; ``eddy``, a
   rigid motion (0.5 mm, 0.5 degree SD) followed by an eddy-current displacement along
   phase encoding, linear in position, with offset, scale and shears linear in the
   gradient (offset -2.5 mm per unit g_z, as measured on the real AP series),
   Jacobian-modulated.
3. Rician noise at the real series' noise level (median in the brain of dipy's MP-PCA
   noise map of the raw series).

The stream (``pipeline.dwi.stream.preprocess``, schema defaults) runs on the result
stored as the original was; FA against the truth (r in the brain, white-matter median
where truth FA >= 0.2, mean absolute error) with correction and without, and the
recovered maps against the planted ones (mean displacement error over the brain).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from real_data_common import log, timed
from scipy import ndimage

# eddy-current terms per unit gradient (rows g_x, g_y, g_z): offset (mm), then the
# coefficients of the displacement along phase encoding per mm along x, y, z
EDDY_K = np.array([[0.5, 0.004, 0.0, 0.002],
                   [0.5, 0.002, 0.008, 0.0],
                   [-2.5, 0.0, 0.002, 0.006]])
MOTION_SD = (0.5, 0.5)  # mm, degrees


def _rotation(degrees: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", degrees, degrees=True).as_matrix()


def planted_maps(bvals, bvecs_world, pe_world: np.ndarray, centre: np.ndarray,
                 scenario: str, seed: int = 0) -> np.ndarray:
    """World maps (truth point -> distorted point), one per volume."""
    rng = np.random.default_rng(seed)
    maps = np.tile(np.eye(4), (len(bvals), 1, 1))
    if scenario == "still":
        return maps
    for i in np.flatnonzero(np.asarray(bvals) > 50):
        rigid = np.eye(4)
        rigid[:3, :3] = _rotation(rng.normal(0.0, MOTION_SD[1], 3))
        rigid[:3, 3] = rng.normal(0.0, MOTION_SD[0], 3) + centre - rigid[:3, :3] @ centre
        terms = bvecs_world[i] @ EDDY_K  # offset, d/dx, d/dy, d/dz
        eddy = np.eye(4)
        eddy[:3, :3] += np.outer(pe_world, terms[1:])
        eddy[:3, 3] = pe_world * terms[0] - np.outer(pe_world, terms[1:]) @ centre
        maps[i] = eddy @ rigid
    return maps


def _apply(volume: np.ndarray, world_map: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """distorted(x) = truth(map^-1 x) / det(map), on the volume's own grid."""
    voxel = np.linalg.inv(affine) @ np.linalg.inv(world_map) @ affine
    grid = np.indices(volume.shape).reshape(3, -1).astype(float)
    source = voxel[:3, :3] @ grid + voxel[:3, 3:4]
    out = ndimage.map_coordinates(volume, source, order=3, mode="constant", cval=0.0)
    return np.maximum(out.reshape(volume.shape), 0.0) / abs(np.linalg.det(world_map[:3, :3]))


def make_planted(path: Path, out: Path, scenario: str) -> tuple[Path, dict]:
    """The planted series of ``path`` (stored as it is) and its truth."""
    from dipy.core.gradients import gradient_table
    from dipy.denoise.localpca import mppca
    from dipy.reconst.dti import TensorModel
    from dipy.segment.mask import median_otsu

    img = nib.load(str(path))
    stem = str(path).replace(".nii.gz", "")
    bvals, bvecs = np.loadtxt(stem + ".bval"), np.loadtxt(stem + ".bvec").T
    data = img.get_fdata(dtype=np.float32)
    b0 = data[..., bvals <= 50].mean(axis=-1)
    _, mask = median_otsu(b0, median_radius=2, numpass=1)
    gtab = gradient_table(bvals, bvecs=bvecs)
    fit = TensorModel(gtab, fit_method="WLS").fit(data, mask=mask)
    clean = np.asarray(fit.predict(gtab, S0=b0), np.float32)
    clean[~mask] = 0.0
    clean[..., bvals <= 50] = data[..., bvals <= 50]
    _, sigma_map = mppca(data, mask=ndimage.binary_dilation(mask, iterations=2),
                         patch_radius=2, return_sigma=True)
    sigma = float(np.nanmedian(sigma_map[mask]))  # NaN where a patch is flat
    # FSL b-vectors are in the voxel frame (x flipped when the storage is not
    # left-handed); world direction = rotation of the affine applied to them
    rotation = img.affine[:3, :3] / np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    fsl = bvecs.copy()
    if np.linalg.det(img.affine[:3, :3]) > 0:
        fsl[:, 0] *= -1.0
    world = fsl @ rotation.T
    sidecar = Path(stem + ".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    pe_axis = "ijk".index(meta.get("PhaseEncodingDirection", "j")[0])
    pe_world = rotation[:, pe_axis]
    centre = nib.affines.apply_affine(img.affine, np.argwhere(mask).mean(axis=0))
    maps = planted_maps(bvals, world, pe_world, centre, scenario)
    rng = np.random.default_rng(1)
    moved = np.stack([_apply(clean[..., i], maps[i], img.affine)
                      for i in range(len(bvals))], axis=-1)
    noisy = np.hypot(moved + rng.normal(0, sigma, moved.shape),
                     rng.normal(0, sigma, moved.shape)).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"planted_{scenario}_{path.name}"
    nib.save(nib.Nifti1Image(noisy, img.affine, img.header), str(target))
    new_stem = str(target).replace(".nii.gz", "")
    for ext in (".bval", ".bvec", ".json"):
        if Path(stem + ext).exists():
            shutil.copy(stem + ext, new_stem + ext)
    truth = {"fa": np.asarray(fit.fa, np.float32), "mask": mask, "maps": maps,
             "affine": img.affine, "sigma": sigma}
    return target, truth


def part_dwi_planted(data: Path, work: Path, threads: int) -> list[dict]:
    from real_data_dwi import crop_of, dwi_of

    from pipeline.dwi.stream import PreprocOptions, preprocess

    rows = []
    path = data / "dwi" / "dwiprep_DWI_dir80_AP.nii.gz"
    for scenario in ("still", "eddy"):
        src, truth = make_planted(path, work / "planted", scenario)
        dwi = dwi_of(src)
        for correction in ("eddy", "none"):
            res, cost = timed(preprocess, dwi, PreprocOptions.from_schema(
                threads=threads, motion_correction=correction))
            ref = np.asarray(crop_of(nib.Nifti1Image(truth["fa"], truth["affine"]),
                                     res.affine, res.mask.shape).dataobj)
            inside = np.asarray(crop_of(nib.Nifti1Image(truth["mask"].astype(np.uint8),
                                                        truth["affine"]),
                                        res.affine, res.mask.shape).dataobj) > 0
            common = inside & res.mask
            wm = common & (ref >= 0.2)
            ours = res.tensor.fa
            points = nib.affines.apply_affine(res.affine, np.argwhere(common))
            # the stream's maps: reference point -> volume point, as the planted ones;
            # "relative": after the displacement common to the diffusion-weighted volumes
            # (the shell's offset from b=0, which only the anchor can see)
            dw = np.flatnonzero(np.asarray(dwi.bvals) > 50)
            moved = np.stack([points @ (a - b)[:3, :3].T + (a - b)[:3, 3]
                              for a, b in zip(res.matrices[dw], truth["maps"][dw], strict=True)])
            error = np.linalg.norm(moved, axis=2).mean(axis=1)
            relative = np.linalg.norm(moved - moved.mean(axis=0), axis=2).mean(axis=1)
            median, median_ref = float(np.median(ours[wm])), float(np.median(ref[wm]))
            # one row per scenario and correction (as stored: no storage variants here)
            row = {"part": "dwi-planted", "scan": f"AP, {scenario} planted",
                   "storage": "stored", "correction": correction,
                   "fa_r_vs_truth": round(float(np.corrcoef(ours[common], ref[common])[0, 1]), 4),
                   "wm_median_fa_diff_percent": round(100 * (median / median_ref - 1), 2),
                   "fa_mae_vs_truth": round(float(np.abs(ours - ref)[common].mean()), 4),
                   "map_error_mean_mm": round(float(np.mean(error)), 3),
                   "map_error_max_mm": round(float(np.max(error)), 3),
                   "map_error_relative_mean_mm": round(float(np.mean(relative)), 3),
                   "noise_sigma": round(truth["sigma"], 2), **cost}
            log.info("dwi-planted %s", row)
            rows.append(row)
        corrected, raw = rows[-2], rows[-1]
        corrected["pass"] = bool(abs(corrected["wm_median_fa_diff_percent"]) <= 5.0
                                 and corrected["fa_mae_vs_truth"] <= raw["fa_mae_vs_truth"] + 0.002
                                 and corrected["map_error_relative_mean_mm"] <= 0.5)
    return rows


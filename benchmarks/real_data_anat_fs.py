"""Anatomy against FreeSurfer on a real brain (part ``anat-fs`` of ``benchmarks/real_data.py``).

MNE-Python's FreeSurfer subject ``sample`` (mne-tools/mne-testing-data on GitHub,
``subjects/sample/mri``): ``brain.mgz`` (1 mm conformed, FreeSurfer-normalised,
skull-stripped, stored LIA) through the anatomy stream, against FreeSurfer's
``aseg.mgz`` (3 mm in the testing data, so a volume reference, not a boundary):
cerebral cortex and cerebral white-matter volumes and the grey-matter fraction of the
cerebrum. The stream runs with the grey/white partial-volume step and, on the same
registration, without it (Atropos posteriors), so one command shows what the step does.
The ``lh/rh.ribbon.mgz`` of the testing data do not overlay ``brain.mgz`` (checked in
voxel and in scanner space) and are not used. The testing data state no licence; they
are read from the checkout, never copied into this repository.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
from real_data_anat import _anat_run
from real_data_common import timed

log = logging.getLogger("real_data")
# FreeSurfer aseg labels
CEREBRAL_CORTEX = (3, 42)
CEREBRAL_WM = (2, 41, 77)  # + WM hypointensities
NOT_CEREBRAL = (4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 26, 28, 30, 31, 43, 44, 46,
                47, 49, 50, 51, 52, 53, 54, 58, 60, 62, 63, 72, 85)


def sample_mri(root: Path) -> Path | None:
    """The folder holding ``brain.mgz`` and ``aseg.mgz``: ``root`` itself or, in an
    mne-testing-data checkout, ``subjects/sample/mri``."""
    for folder in (root, root / "subjects" / "sample" / "mri"):
        if (folder / "brain.mgz").exists() and (folder / "aseg.mgz").exists():
            return folder
    return None


def against_aseg(dseg_path, probseg_path, aseg: nib.Nifti1Image) -> dict:
    """Cerebral GM/WM volumes of a segmentation against FreeSurfer's aseg (resampled
    nearest to the segmentation grid; the cerebrum is the aseg's cortex and white matter
    dilated by 3 mm, without subcortical, cerebellar and ventricular labels)."""
    from nilearn.image import resample_to_img
    from scipy import ndimage

    dseg = nib.load(str(dseg_path))
    prob = nib.load(str(probseg_path)).get_fdata(dtype=np.float32)
    labels = np.asarray(aseg.dataobj).astype(np.int16)
    aseg_ml = float(np.prod(aseg.header.get_zooms()[:3])) / 1000.0
    on_grid = np.asarray(resample_to_img(nib.Nifti1Image(labels, aseg.affine), dseg,
                                         interpolation="nearest", force_resample=True,
                                         copy_header=True).dataobj)
    cerebrum = ndimage.binary_dilation(np.isin(on_grid, CEREBRAL_CORTEX + CEREBRAL_WM),
                                       iterations=3) & ~np.isin(on_grid, NOT_CEREBRAL)
    voxel_ml = float(np.prod(dseg.header.get_zooms()[:3])) / 1000.0
    lab = np.asarray(dseg.dataobj)
    fs_gm = float(np.isin(labels, CEREBRAL_CORTEX).sum() * aseg_ml)
    fs_wm = float(np.isin(labels, CEREBRAL_WM).sum() * aseg_ml)
    gm = float(((lab == 2) & cerebrum).sum() * voxel_ml)
    wm = float(((lab == 3) & cerebrum).sum() * voxel_ml)
    gm_p, wm_p = (float(prob[..., k][cerebrum].sum() * voxel_ml) for k in (1, 2))
    return {"fs_cortex_ml": fs_gm, "fs_cerebral_wm_ml": fs_wm,
            "fs_gm_fraction": fs_gm / (fs_gm + fs_wm),
            "cerebral_gm_ml": gm, "cerebral_wm_ml": wm,
            "gm_fraction_labels": gm / (gm + wm), "gm_fraction_fractions": gm_p / (gm_p + wm_p)}


def _without_partial_volume(first: Path, work: Path, threads: int) -> dict:
    """anat-segment and anat-thickness again on ``first``'s registration, Atropos only."""
    from pipeline.cli import main as resstore
    from pipeline.io import read_json

    work.mkdir(parents=True, exist_ok=True)
    for args in (
        ["anat-segment", "--t1w-preproc", first / "preproc.nii.gz", "--mni-to-t1w",
         first / "mni_to_t1w.h5", "--lesion-mask", first / "lesion.nii.gz",
         "--partial-volume-band-mm", "0", "--out-mask", work / "brain.nii.gz",
         "--out-dseg", work / "dseg.nii.gz", "--out-probseg", work / "probseg.nii.gz",
         "--out-metrics", work / "m2.json", "--out-figure", work / "g2.png"],
        ["anat-thickness", "--t1w-preproc", first / "preproc.nii.gz", "--dseg",
         work / "dseg.nii.gz", "--probseg", work / "probseg.nii.gz", "--atlas",
         first / "atlas.nii.gz", "--dk", first / "dk.nii.gz", "--lesion-side",
         first / "side.json", "--out-thickness", work / "thick.nii.gz", "--out-table",
         work / "thick.tsv", "--out-metrics", work / "m3.json", "--out-figure", work / "g3.png"]):
        if resstore([str(a) for a in args] + ["--threads", str(threads)]):
            raise RuntimeError(f"resstore {args[0]} failed")
    return {**read_json(work / "m2.json"), **read_json(work / "m3.json")}


def part_anat_fs(root: Path | None, work: Path, threads: int) -> list[dict]:
    folder = sample_mri(root) if root else None
    if folder is None:
        log.info("anat-fs: no MNE 'sample' subject (--mne-testing-data); skipped")
        return []
    brain = nib.load(str(folder / "brain.mgz"))
    src = work / "mne_sample_brain.nii.gz"
    work.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(brain.dataobj), brain.affine), str(src))
    storage = "stored " + "".join(nib.aff2axcodes(brain.affine))
    aseg = nib.load(str(folder / "aseg.mgz"))
    first = work / "anat_fs_pv"
    rows = []
    metrics, cost = timed(_anat_run, src, first, threads)
    variants = [("partial volume", first, metrics, cost)]
    metrics, cost = timed(_without_partial_volume, first, work / "anat_fs_atropos", threads)
    variants.append(("Atropos only", work / "anat_fs_atropos", metrics, cost))
    for name, folder_, m, cost_ in variants:
        row = {"part": "anat-fs", "scan": "mne-sample", "storage": storage, "correction": name,
               **against_aseg(folder_ / "dseg.nii.gz", folder_ / "probseg.nii.gz", aseg),
               "thickness_mean_mm": m.get("thickness_mean_mm"),
               "thickness_m1_mm": float(np.nanmean([m.get("thickness_m1_left_mm", np.nan),
                                                    m.get("thickness_m1_right_mm", np.nan)])),
               **cost_}
        row["gm_fraction_minus_fs"] = row["gm_fraction_labels"] - row["fs_gm_fraction"]
        rows.append(row)
    return rows

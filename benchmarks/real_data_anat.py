"""Anatomy part of the real-data scorecard (``benchmarks/real_data.py``).

Real T1w heads through the anatomy stream, against published adult ranges (no
per-scan truth exists).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from real_data_common import storages_of, timed, variant

from pipeline.orientation import read_image

COLIN = Path("/usr/share/mricron/templates/ch2better.nii.gz")
# published adult ranges (healthy adults, FreeSurfer-like definitions) for the anatomy part
RANGES = {"thickness_mean_mm": (2.3, 2.8), "gm_fraction_of_brain": (0.40, 0.60),
          "thickness_m1_mm": (2.2, 2.9), "brain_volume_ml": (950.0, 1500.0)}


def _anat_run(t1w: Path, work: Path, threads: int) -> dict:
    """anat-preproc -> anat-register -> anat-segment -> anat-thickness (no lesion)."""
    from pipeline.cli import main as resstore
    from pipeline.io import read_json, write_json

    work.mkdir(parents=True, exist_ok=True)
    f = {k: str(work / v) for k, v in dict(
        preproc="preproc.nii.gz", mask="mask.nii.gz", xfm="affine.mat", m0="m0.json",
        g0="g0.png", lesion="lesion.nii.gz", side="side.json", mni="mni_to_t1w.h5",
        t1mni="t1w_to_mni.h5", atlas="atlas.nii.gz", dk="dk.nii.gz", m1="m1.json", g1="g1.png",
        brain="brain.nii.gz", dseg="dseg.nii.gz", prob="probseg.nii.gz", m2="m2.json",
        g2="g2.png", thick="thick.nii.gz", table="thick.tsv", m3="m3.json", g3="g3.png").items()}

    def run(*args):
        code = resstore([*args, "--threads", str(threads)])
        if code:
            raise RuntimeError(f"resstore {args[0]} failed ({code})")

    run("anat-preproc", "--t1w", str(t1w), "--out-preproc", f["preproc"], "--out-mask", f["mask"],
        "--out-xfm", f["xfm"], "--out-metrics", f["m0"], "--out-figure", f["g0"])
    preproc = read_image(f["preproc"], what="T1w")
    nib.save(nib.Nifti1Image(np.zeros(preproc.shape, np.uint8), preproc.affine), f["lesion"])
    write_json(f["side"], {"lesion_side": "none", "source": "no lesion (healthy real T1w)"})
    run("anat-register", "--t1w-preproc", f["preproc"], "--brain-mask", f["mask"],
        "--lesion-mask", f["lesion"], "--out-mni-to-t1w", f["mni"], "--out-t1w-to-mni", f["t1mni"],
        "--out-atlas", f["atlas"], "--out-dk", f["dk"], "--out-metrics", f["m1"],
        "--out-figure", f["g1"])
    run("anat-segment", "--t1w-preproc", f["preproc"], "--mni-to-t1w", f["mni"],
        "--lesion-mask", f["lesion"], "--out-mask", f["brain"], "--out-dseg", f["dseg"],
        "--out-probseg", f["prob"], "--out-metrics", f["m2"], "--out-figure", f["g2"])
    run("anat-thickness", "--t1w-preproc", f["preproc"], "--dseg", f["dseg"], "--probseg", f["prob"],
        "--atlas", f["atlas"], "--dk", f["dk"], "--lesion-side", f["side"],
        "--out-thickness", f["thick"], "--out-table", f["table"], "--out-metrics", f["m3"],
        "--out-figure", f["g3"])
    metrics = {}
    for key in ("m0", "m1", "m2", "m3"):
        metrics.update(read_json(f[key]))
    return metrics


def part_anat(data: Path, work: Path, threads: int, colin: Path) -> list[dict]:
    scans = {"chris_t1": data / "anat" / "chris_t1.nii.gz"}
    if colin.exists():
        scans["colin27"] = colin
    rows = []
    for name, path in scans.items():
        for label, spec in storages_of(path).items():
            src = variant(path, spec, work, label)
            metrics, cost = timed(_anat_run, src, work / f"anat_{name}_{label.split()[0]}", threads)
            gm, wm = metrics.get("gm_volume_ml"), metrics.get("wm_volume_ml")
            row = {"part": "anat", "scan": name, "storage": label,
                   "brain_volume_ml": metrics.get("brain_volume_ml"),
                   "gm_volume_ml": gm, "wm_volume_ml": wm, "csf_volume_ml": metrics.get("csf_volume_ml"),
                   "gm_fraction_of_brain": gm / (gm + wm) if gm and wm else None,
                   "thickness_mean_mm": metrics.get("thickness_mean_mm"),
                   "thickness_m1_mm": np.nanmean([metrics.get("thickness_m1_left_mm", np.nan),
                                                  metrics.get("thickness_m1_right_mm", np.nan)]),
                   "mni_registration_brain_dice": metrics.get("mni_registration_brain_dice"),
                   **cost}
            row["outside_published_range"] = [k for k, (lo, hi) in RANGES.items()
                                              if row.get(k) is not None and not lo <= row[k] <= hi]
            row["pass"] = not row["outside_published_range"]
            rows.append(row)
    return rows

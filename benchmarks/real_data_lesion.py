"""Lesion parts of the real-data scorecard (``benchmarks/real_data.py``).

* ``soop``: real manual lesion masks (SOOP): volume and side through the
  manual-mask reader against ``soop_masks.tsv`` (exact truth);
* ``isles``: the acute ISLES'22 DWI/ADC: the acute core and the median ADC of
  each component;
* ``flair``: a real FLAIR (lesion status unknown): the automatic lesion is
  plausible or flagged.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from real_data_common import storages_of, variant

from pipeline.orientation import read_image

# --- SOOP manual masks ---------------------------------------------------------------

def part_soop(data: Path, work: Path) -> list[dict]:
    """The SOOP manual masks' voxel count and side against ``soop_masks.tsv``."""
    from pipeline.lesion.manual import read_manual_mask
    from pipeline.lesion.measures import volume_features

    truth = pd.read_csv(data / "lesion" / "soop_masks.tsv", sep="\t")
    rows = []
    for item in truth.itertuples():
        path = data / "lesion" / f"bwsr{item.participant_id}_lesion.nii.gz"
        # no T1w exists: the mask's own grid (as stored, canonical) is the reference, and the
        # masks are in a standard space, so template x is world x (identity map)
        reference = read_image(path, what="reference grid")
        for label, spec in storages_of(path).items():
            mask = read_manual_mask(variant(path, spec, work, label), reference)
            metrics = volume_features(mask.mask, reference, np.eye(4))
            rows.append({"part": "soop", "scan": item.participant_id, "storage": label,
                         "voxels": int(mask.mask.sum()), "truth_voxels": int(item.voxels),
                         "lesion_volume_ml": metrics["lesion_volume_ml"],
                         "truth_volume_ml": float(item.volume_ml),
                         "side": metrics["lesion_side_session"], "truth_side": item.side,
                         "pass": bool(int(mask.mask.sum()) == item.voxels
                                      and metrics["lesion_side_session"] == item.side)})
    return rows


# --- lesions: acute DWI/ADC (ISLES'22) and a real FLAIR ---------------------------------

def part_isles(data: Path, work: Path) -> list[dict]:
    """The acute core (DWI-bright and ADC below 620e-6 mm2/s) of the ISLES'22 case."""
    from pipeline.lesion.acute import (
        ADC_THRESHOLD,
        acute_core,
        adc_in_mm2_s,
        component_adc,
        diffusion_brain_mask,
    )

    rows = []
    dwi_path = data / "lesion" / "isles22_case0001_dwi.nii.gz"
    adc_path = data / "lesion" / "isles22_case0001_adc.nii.gz"
    for label, spec in storages_of(dwi_path).items():
        dwi = read_image(variant(dwi_path, spec, work, label), what="trace DWI")
        adc, _ = adc_in_mm2_s(np.asarray(read_image(variant(adc_path, spec, work, label),
                                                    what="ADC").dataobj))
        trace = np.asarray(dwi.dataobj)
        voxel_ml = float(abs(np.linalg.det(dwi.affine[:3, :3]))) / 1000
        brain = diffusion_brain_mask(trace, adc)
        core, bright = acute_core(trace, adc, brain, voxel_ml=voxel_ml)
        parts = component_adc(core, adc, voxel_ml)
        left = float(sum(core[tuple(ijk)] for ijk in np.argwhere(core)
                         if nib.affines.apply_affine(dwi.affine, ijk)[0] < 0) * voxel_ml)
        large = [c for c in parts if c["volume_ml"] > 1.0]
        rows.append({"part": "isles", "scan": "isles22_case0001", "storage": label,
                     "core_volume_ml": round(float(core.sum() * voxel_ml), 3),
                     "core_left_ml": round(left, 3),
                     "dwi_bright_volume_ml": round(float(bright.sum() * voxel_ml), 2),
                     "n_components": len(parts),
                     "largest_component_ml": round(parts[0]["volume_ml"], 3) if parts else 0.0,
                     "max_component_median_adc_um2_ms": round(
                         max((c["median_adc_mm2_s"] for c in parts), default=0.0) * 1e3, 3),
                     "pass": all(c["median_adc_mm2_s"] < ADC_THRESHOLD for c in large)})
    return rows


def part_flair(data: Path, work: Path, threads: int) -> list[dict]:
    """The automatic FLAIR lesion of a real FLAIR (lesion status unknown).

    No T1w exists for this FLAIR, so the FLAIR also stands in for the T1w: an
    input the method was not built for. The criterion is that the result is
    plausible or flagged (``needs_review``), never a large lesion passed on.
    """
    from pipeline.cli import main as resstore
    from pipeline.io import read_json

    path = data / "flair" / "niivue_FLAIR.nii.gz"
    rows = []
    for label, spec in storages_of(path).items():
        src = variant(path, spec, work, label)
        out = work / f"flair_{label.split()[0]}"
        out.mkdir(parents=True, exist_ok=True)
        f = {k: str(out / v) for k, v in dict(preproc="preproc.nii.gz", mask="mask.nii.gz",
                                             xfm="affine.mat", m0="m0.json", g0="g0.png",
                                             lesion="lesion.nii.gz", m1="lesion.json",
                                             g1="lesion.png").items()}
        codes = [resstore(["anat-preproc", "--t1w", str(src), "--out-preproc", f["preproc"],
                           "--out-mask", f["mask"], "--out-xfm", f["xfm"], "--out-metrics", f["m0"],
                           "--out-figure", f["g0"], "--threads", str(threads)]),
                 resstore(["lesion-segment", "--t1w", f["preproc"], "--t1w-raw", str(src),
                           "--brain-mask", f["mask"], "--xfm", f["xfm"], "--flair", str(src),
                           "--is-baseline", "--out-mask", f["lesion"], "--out-metrics", f["m1"],
                           "--out-figure", f["g1"], "--threads", str(threads)])]
        if any(codes):
            rows.append({"part": "flair", "scan": "niivue_FLAIR", "storage": label,
                         "error": f"exit codes {codes}", "pass": False})
            continue
        metrics = read_json(f["m1"])
        volume = metrics.get("lesion_volume_ml") or 0.0
        flagged = str(metrics.get("lesion_status", "ok")).startswith("needs_review")
        rows.append({"part": "flair", "scan": "niivue_FLAIR", "storage": label,
                     "lesion_volume_ml": round(volume, 2),
                     "side": metrics.get("lesion_side_session"),
                     "plausibility": metrics.get("lesion_plausibility"),
                     "status": metrics.get("lesion_status", "ok"),
                     "pass": bool(flagged or (metrics.get("lesion_plausibility") == "plausible"
                                              and volume <= 150.0))})
    return rows

"""Susceptibility-correction part of the real-data scorecard (``benchmarks/real_data.py``,
part ``dwi-sdc``).

The real Siemens pair (AP ``j-``, PA ``j``, one b=0 each) is the case the correction is
for: each series is processed with the other's b=0 as its reverse phase-encoding b=0,
and without. No truth exists for the field; two truth-free figures:

* the b=0 pair's correlation in the brain as acquired (after their rigid alignment)
  and after both are unwarped by the estimated field (``pipeline.dwi.sdc``);
* the agreement of the two series' corrected outputs: susceptibility distortion flips
  with the phase-encoding direction, so AP and PA are displaced in opposite directions;
  once both are unwarped their b=0 images and FA maps should agree better.

FA against MRtrix3 on the raw (distorted) series is not reported here: unwarping moves
the FA away from a distorted reference by design.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from real_data_common import timed
from real_data_dwi import crop_of, dwi_of


def _series(data: Path, name: str) -> Path:
    return data / "dwi" / f"dwiprep_DWI_dir80_{name}.nii.gz"


def _agreement(a, b, key: str) -> tuple[float, float]:
    """Correlation and mean absolute difference of output ``key`` of two runs, on the
    first run's grid, inside both brain masks."""
    (va, mask_a, aff_a), (vb, mask_b, aff_b) = ((getattr(r, key) if key == "b0" else r.tensor.fa,
                                                 r.mask, r.affine) for r in (a, b))
    vb = np.asarray(crop_of(nib.Nifti1Image(vb, aff_b), aff_a, va.shape).dataobj)
    mask_b = np.asarray(crop_of(nib.Nifti1Image(mask_b.astype(np.uint8), aff_b), aff_a,
                                va.shape).dataobj) > 0
    common = mask_a & mask_b
    if key == "b0":  # intensity scales of two acquisitions differ: compare normalised
        va, vb = va / np.median(va[common]), vb / np.median(vb[common])
    return (float(np.corrcoef(va[common], vb[common])[0, 1]),
            float(np.abs(va - vb)[common].mean()))


def part_dwi_sdc(data: Path, work: Path, threads: int) -> list[dict]:
    from pipeline.dwi.gradients import load_reverse_b0
    from pipeline.dwi.stream import PreprocOptions, preprocess

    rows, runs = [], {}
    for name, other in (("AP", "PA"), ("PA", "AP")):
        path = _series(data, name)
        for sdc in (True, False):
            dwi = dwi_of(path)
            if sdc:
                dwi = load_reverse_b0(dwi, path, _series(data, other))
            res, cost = timed(preprocess, dwi, PreprocOptions.from_schema(threads=threads))
            runs[name, sdc] = res
            m = res.metrics
            row = {"part": "dwi-sdc", "scan": name, "storage": "stored",
                   "correction": "eddy + SDC" if sdc else "eddy", **cost}
            if sdc:
                row.update({"sdc_field_p99_mm": round(m["dwi_sdc_field_p99_mm"], 2),
                            "b0_pair_r_acquired": round(m["dwi_sdc_pair_r_before"], 4),
                            "b0_pair_r_unwarped": round(m["dwi_sdc_pair_r_after"], 4),
                            "pass": bool(m["dwi_sdc_pair_r_after"] > m["dwi_sdc_pair_r_before"])})
            rows.append(row)
    for sdc in (False, True):
        b0_r, b0_mae = _agreement(runs["AP", sdc], runs["PA", sdc], "b0")
        fa_r, fa_mae = _agreement(runs["AP", sdc], runs["PA", sdc], "fa")
        rows.append({"part": "dwi-sdc", "scan": "AP vs PA", "storage": "stored",
                     "correction": "eddy + SDC" if sdc else "eddy",
                     "b0_r_ap_pa": round(b0_r, 4), "b0_mae_ap_pa": round(b0_mae, 4),
                     "fa_r_ap_pa": round(fa_r, 4), "fa_mae_ap_pa": round(fa_mae, 4)})
    rows[-1]["pass"] = bool(rows[-1]["b0_r_ap_pa"] > rows[-2]["b0_r_ap_pa"])
    return rows

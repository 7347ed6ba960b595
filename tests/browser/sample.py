"""A small synthetic QC-report input set (features, inventory, reportlets) with a planted outlier.

Used by the report unit tests, the browser tests and benchmarks/report_pages.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

SESSIONS = ("baseline", "m06")
OUTLIER = ("sub-003", "baseline", "t1w_snr")  # planted: T1w SNR far below the group
INJECTION = "<script>window.__pwned=1</script>"


def _volume(shape=(40, 48, 36), seed=0):
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(float)
    centre = (np.array(shape) - 1) / 2
    radius = np.array(shape) * 0.38
    r = np.sqrt((((grid.T - centre) / radius) ** 2).sum(axis=-1)).T
    head = (r < 1).astype(float)
    brain = r < 0.8
    data = 100 * head + 40 * brain + rng.normal(0, 6, shape)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    return nib.Nifti1Image(data.astype(np.float32), affine), nib.Nifti1Image(
        brain.astype(np.uint8), affine)


def write_sample(root, *, n_subjects: int = 6, inject: bool = False) -> dict:
    """Write features.tsv, sessions.tsv, a reportlet figure + metrics JSON per session.

    Parameters
    ----------
    inject : bool
        Put ``INJECTION`` into a metrics JSON string value (sub-001 baseline).

    Returns
    -------
    dict
        ``features``, ``inventory`` paths and ``reportlets``: (participant,
        session) -> list of reportlet dicts (as the Snakemake rule passes them).
    """
    from pipeline.qc.figures import mosaic

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    bg, mask = _volume()
    figure = root / "brainmask.png"
    mosaic(bg, figure, contours={"brain mask": mask}, title="sample T1w: brain mask")
    rng = np.random.default_rng(1)
    rows, inventory, reportlets = [], [], {}
    for i in range(1, n_subjects + 1):
        pid = f"sub-{i:03d}"
        for ses in SESSIONS:
            has_bold = not (i == 2 and ses == "m06")
            row = {"participant_id": pid, "session": ses,
                   "brain_mask_volume_ml": 1150 + 60 * rng.standard_normal(),
                   "t1w_snr": 20 + rng.standard_normal(),
                   "t1w_bias_range": 1.3 + 0.05 * rng.standard_normal(),
                   "flair_snr": 15 + rng.standard_normal(),
                   "dwi_b0_snr": 12 + rng.standard_normal(), "dwi_n_volumes": 13,
                   "dwi_shells": "1000",
                   "bold_tsnr_median": (40 + 2 * rng.standard_normal()) if has_bold else np.nan,
                   "bold_dvars_mean_percent": (0.8 + 0.05 * rng.standard_normal())
                   if has_bold else np.nan,
                   "anat_status": "ok", "flair_status": "ok", "dwi_status": "ok",
                   "bold_status": "ok" if has_bold else "no bold in this session"}
            if (pid, ses) == OUTLIER[:2]:
                row[OUTLIER[2]] = 5.0
            rows.append(row)
            mods = ["T1w", "FLAIR", "dwi"] + (["bold"] if has_bold else [])
            inventory.append({"participant_id": pid, "session": ses, "status": "ok",
                              "modalities": ",".join(mods),
                              "problems": "" if has_bold else
                              f"/bids/{pid}/ses-{ses}/func: no BOLD run"})
            metrics = root / f"{pid}_ses-{ses}_desc-brainmask_metrics.json"
            values = {"brain_mask_volume_ml": row["brain_mask_volume_ml"],
                      "t1w_snr": row["t1w_snr"], "t1w_bias_range": row["t1w_bias_range"]}
            if inject and (pid, ses) == ("sub-001", "baseline"):
                values["note"] = INJECTION
            metrics.write_text(json.dumps(values))
            reportlets[(pid, ses)] = [{
                "modality": "T1w", "step": "brainmask", "title": "Brain mask",
                "figure": str(figure), "metrics": str(metrics),
                "caption": "Template brain mask (red) on the bias-corrected T1w.",
                "methods": "N4 bias-field correction; affine registration of the MNI152 template.",
            }]
    features = root / "features.tsv"
    pd.DataFrame(rows).to_csv(features, sep="\t", index=False, na_rep="n/a")
    inv = root / "sessions.tsv"
    pd.DataFrame(inventory).to_csv(inv, sep="\t", index=False, na_rep="n/a")
    return {"features": features, "inventory": inv, "reportlets": reportlets, "root": root}


def build_reports(sample: dict, out, *, ratings=None, threshold: float = 3.5) -> Path:
    """Run the report commands (as the Snakemake rules do) on a sample; returns reports/."""
    from pipeline.cli import main

    out = Path(out)
    common = ["--features", str(sample["features"]), "--inventory", str(sample["inventory"]),
              "--outlier-robust-z", str(threshold), "--study", str(sample["root"])]
    if ratings:
        common += ["--ratings", str(ratings)]
    pages = []
    for (pid, ses), items in sample["reportlets"].items():
        page = out / f"{pid}_ses-{ses}.html"
        assert main(["report-session", "--participant", pid, "--session", ses,
                     "--reportlets", json.dumps(items), "--out", str(page), *common]) == 0
        pages.append(str(page))
    assert main(["report-index", "--pages", *pages, "--out", str(out / "index.html"), *common]) == 0
    return out

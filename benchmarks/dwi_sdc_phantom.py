"""Susceptibility correction on the phantom: the b=0-to-T1w registration and the CST FA,
with and without the reverse phase-encoding b=0.

    python benchmarks/dwi_sdc_phantom.py --out /tmp/sdc_phantom [--peak-mm 4] [--seed 3]

Simulates one subject (T1w 1.5 mm, DWI 2 mm x 33 volumes with a planted susceptibility
field of ``--peak-mm`` and a reverse b=0; ``pipeline.simulate.susceptibility``), runs
the DWI stream on each session with and without the correction, registers the b=0 to
the T1w as ``dwi-regions`` does and measures, against the phantom's truth (T1w brain
mask, atlas and tissue labels in T1w space, the CST FA of the noiseless single-tensor
fit):

* registration: Dice of the DWI brain mask with the T1w brain mask brought to DWI space,
  and the mutual information of the registered b=0 with the T1w (ANTs, more negative is
  better);
* CST FA ipsi- and contralesional (the feature-table values) against the truth.

Writes ``dwi_sdc_phantom.json`` and prints a Markdown table. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _session(bids: Path, truth: Path, sub: str, ses: str) -> dict:
    stem = f"{sub}_ses-{ses}"
    raw, known = bids / sub / f"ses-{ses}", truth / sub / f"ses-{ses}"
    return {"dwi": raw / "dwi" / f"{stem}_dwi.nii.gz",
            "reverse": raw / "fmap" / f"{stem}_dir-PA_epi.nii.gz",
            "t1w": raw / "anat" / f"{stem}_T1w.nii.gz",
            "brain": known / "anat" / f"{stem}_desc-brain_mask.nii.gz",
            "atlas": known / "anat" / f"{stem}_desc-atlas_dseg.nii.gz",
            "tissue": known / "anat" / f"{stem}_dseg.nii.gz",
            "lesion": known / "anat" / f"{stem}_desc-lesion_mask.nii.gz",
            "truth": pd.read_csv(known / f"{stem}_truth.tsv", sep="\t").iloc[0]}


def measure(files: dict, sdc: bool, threads: int) -> dict:
    import ants

    from pipeline.antsio import to_ants
    from pipeline.dwi import regions
    from pipeline.dwi.gradients import load_dwi, load_reverse_b0
    from pipeline.dwi.stream import PreprocOptions, preprocess
    from pipeline.orientation import read_image
    from pipeline.side import LesionSide

    path = files["dwi"]
    dwi = load_dwi(path, str(path).replace(".nii.gz", ".bval"), str(path).replace(".nii.gz", ".bvec"))
    if sdc:
        dwi = load_reverse_b0(dwi, path, files["reverse"])
    start, cpu = time.perf_counter(), time.process_time()
    res = preprocess(dwi, PreprocOptions.from_schema(threads=threads))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    t1w, brain = read_image(files["t1w"], what="T1w"), read_image(files["brain"], what="mask")
    b0 = nib.Nifti1Image(res.b0.astype(np.float32), res.affine)
    matrix, transform = regions.register_dwi_to_t1w(b0, res.mask, t1w, brain)
    t1_brain = regions.to_dwi_fraction(np.asarray(brain.dataobj) > 0, brain.affine, matrix,
                                       res.mask.shape, res.affine) > 0.5
    dice = 2 * (t1_brain & res.mask).sum() / (t1_brain.sum() + res.mask.sum())
    fixed = to_ants(nib.Nifti1Image(np.asarray(t1w.dataobj, np.float32)
                                    * (np.asarray(brain.dataobj) > 0), t1w.affine))
    warped = ants.apply_transforms(fixed=fixed, moving=to_ants(b0), transformlist=[transform])
    mi = float(ants.image_mutual_information(fixed, warped))
    truth = files["truth"]
    side = LesionSide.from_side(str(truth["lesion_side"]), source="phantom truth")
    lesion = read_image(files["lesion"], what="lesion")
    masks = regions.region_masks(dwi_mask=res.mask, dwi_affine=res.affine,
                                 atlas=read_image(files["atlas"], what="atlas"),
                                 tissue=read_image(files["tissue"], what="tissue"),
                                 lesion=lesion if np.asarray(lesion.dataobj).any() else None,
                                 matrix=matrix, lesion_side=side)
    voxel_ml = float(np.prod(np.sqrt((res.affine[:3, :3] ** 2).sum(axis=0)))) / 1000.0
    metrics = regions.regional_metrics(res.tensor.fa, res.tensor.md, masks, voxel_ml,
                                       statistic="mean")
    row = {"sdc": sdc, "t1w_brain_dice": round(float(dice), 4), "t1w_mutual_information": round(mi, 4),
           "field_p99_mm": round(res.metrics["dwi_sdc_field_p99_mm"], 2) if sdc else None,
           "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
    for role in ("ipsilesional", "contralesional"):
        found, known = metrics[f"fa_cst_{role}"], truth[f"dwi_fa_cst_{role}_apparent"]
        row[f"cst_fa_{role}_error"] = round(float(found - known), 4)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--peak-mm", type=float, default=4.0, help="planted field peak (mm)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    from pipeline.simulate import TrialSpec, simulate_trial

    args.out.mkdir(parents=True, exist_ok=True)
    trial = args.out / "trial"
    if not (trial / "bids").exists():
        simulate_trial(trial, TrialSpec(n_subjects=1, seed=args.seed, anat_voxel_mm=1.5,
                                        dwi_voxel_mm=2.0, n_dwi_directions=30,
                                        modalities=("T1w", "dwi"),
                                        dwi_susceptibility_mm=args.peak_mm))
    rows = []
    for ses in ("baseline", "m06"):
        files = _session(trial / "bids", trial / "truth", "sub-001", ses)
        for sdc in (False, True):
            rows.append({"session": ses, **measure(files, sdc, args.threads)})
    table = pd.DataFrame(rows)
    (args.out / "dwi_sdc_phantom.json").write_text(json.dumps(
        {"date": time.strftime("%Y-%m-%d"), "peak_mm": args.peak_mm, "seed": args.seed,
         "rows": rows}, indent=2, default=float))
    print(table.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

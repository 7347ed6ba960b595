"""Anatomy stream on a baseline + 6-month phantom pair: the planted M1 thinning,
atlas regions, brain mask and tissue classes against the truth.

    python benchmarks/anat_thinning.py --out /tmp/anat_pair --voxel-mm 1 --thinning-mm 0.3

One subject (seeded): its own warp of the template, a lesion (default 40 mL,
left; ``--lesion-ml`` and ``--lesion-side`` for large strokes; subacute at
baseline, chronic at 6 months), a new head pose per visit, and
``--thinning-mm`` of ipsilesional M1 cortex moved to CSF at 6 months (the
trial writer's :func:`pipeline.simulate.anatomy.thin_cortex`). Both sessions
run the four ``resstore anat-*`` commands as Snakemake runs them (the
follow-up through its baseline), with the phantom's lesion mask. Reported:
measured ipsi/contralesional M1 thickness change and the change of their
difference (``thickness_m1_asymmetry_mm``) vs the planted one (issue 3: within
0.1 mm), atlas-region Dice per visit (>= 0.8), brain-mask
Dice (>= 0.95), GM/WM Dice (>= 0.85), stage times and peak memory. Writes
``anat_thinning.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anat_stream import run_stream  # noqa: E402


def simulate_pair(out: Path, *, voxel_mm: float, thinning_mm: float, seed: int,
                  lesion_ml: float = 40.0, lesion_side: str = "left",
                  tissue_contrast: str = "varied") -> dict:
    import nibabel as nib

    from pipeline.simulate import anatomy
    from pipeline.simulate.contrast import TEMPLATE_CONTRAST, draw_contrast
    from pipeline.simulate.layers import template_layers
    from pipeline.simulate.space import SessionMap, random_subject_warp, rigid_matrix

    rng = np.random.default_rng(seed)
    layers = template_layers()
    warp = random_subject_warp(rng)
    plan = anatomy.plan_lesion(rng, layers, side=lesion_side, volume_ml=lesion_ml)
    # the subject's T1w contrast (as the trial writer draws it), from its own stream
    contrast = (draw_contrast(np.random.default_rng([seed, 77])) if tissue_contrast == "varied"
                else TEMPLATE_CONTRAST)
    sessions = {}
    for name, stage, thin in (("baseline", "subacute", 0.0), ("m06", "chronic", thinning_mm)):
        smap = SessionMap(warp, rigid_matrix(rng.normal(0, 3, 3), rng.normal(0, 3, 3)))
        ses = anatomy.simulate_structural(rng=rng, layers=layers, session_map=smap,
                                          lesion_plan=plan, lesion_stage=stage,
                                          thinning_mm=thin, thinning_side=lesion_side,
                                          voxel_mm=voxel_mm, contrast=contrast)
        d = out / "input" / name
        d.mkdir(parents=True, exist_ok=True)
        for key, img in (("T1w", ses.t1w), ("lesion", ses.lesion), ("dseg", ses.dseg),
                         ("brain", ses.brain_mask)):
            nib.save(img, d / f"{key}.nii.gz")
        nib.save(ses.atlas_dseg, d / "atlas.nii.gz")
        sessions[name] = d
    return sessions


def evaluate(inputs: dict, outputs: dict, *, thinning_mm: float) -> dict:
    import nibabel as nib

    from pipeline.lesion.measures import dice, voxel_volume_ml
    from pipeline.templates import ATLAS_REGION_LABELS

    def load(path):
        return np.asarray(nib.load(path).dataobj)

    result = {}
    for name in ("baseline", "m06"):
        i, o = inputs[name], outputs[name]
        dseg, truth = load(o / "dseg.nii.gz"), load(i / "dseg.nii.gz")
        atlas, truth_atlas = load(o / "atlas.nii.gz"), load(i / "atlas.nii.gz")
        lesion = nib.load(i / "lesion.nii.gz")
        inside = np.asarray(lesion.dataobj) > 0
        result[name] = {
            "lesion_ml": round(float(inside.sum()) * voxel_volume_ml(lesion), 1),
            "lesion_ml_in_truth_region": {
                region: round(float((inside & (truth_atlas == label)).sum())
                              * voxel_volume_ml(lesion), 2)
                for label, region in ATLAS_REGION_LABELS.items()},
            "brain_dice": dice(load(o / "brain.nii.gz"), load(i / "brain.nii.gz")),
            "gm_dice": dice(dseg == 2, truth == 2), "wm_dice": dice(dseg == 3, truth == 3),
            "atlas_dice": {region: dice(atlas == label, truth_atlas == label)
                           for label, region in ATLAS_REGION_LABELS.items()},
            "thickness": json.loads((o / "thickness.json").read_text()),
        }
    base, follow = result["baseline"]["thickness"], result["m06"]["thickness"]
    ipsi = base["thickness_m1_ipsilesional_mm"] - follow["thickness_m1_ipsilesional_mm"]
    contra = base["thickness_m1_contralesional_mm"] - follow["thickness_m1_contralesional_mm"]
    asym = base["thickness_m1_asymmetry_mm"] - follow["thickness_m1_asymmetry_mm"]
    result["thinning"] = {"planted_ipsilesional_mm": thinning_mm,
                          "measured_ipsilesional_mm": round(ipsi, 4),
                          "measured_contralesional_mm": round(contra, 4),
                          "ipsilesional_within_0.1_mm": bool(abs(ipsi - thinning_mm) <= 0.1
                                                             and abs(contra) <= 0.1),
                          # fall of thickness_m1_asymmetry_mm (ipsi - contra) between visits
                          "measured_asymmetry_mm": round(asym, 4),
                          "asymmetry_within_0.1_mm": bool(abs(asym - thinning_mm) <= 0.1)}
    return result


def main(argv=None) -> None:
    import yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--voxel-mm", type=float, default=1.0)
    parser.add_argument("--thinning-mm", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--lesion-ml", type=float, default=40.0,
                        help="planned lesion volume (mL); the realised one is in the report")
    parser.add_argument("--lesion-side", choices=("left", "right"), default="left")
    parser.add_argument("--tissue-contrast", choices=("varied", "uniform"), default="varied",
                        help="the subject's T1w contrast (pipeline.simulate.contrast)")
    args = parser.parse_args(argv)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "config.yaml")
                         .read_text())["anat"]
    out = Path(args.out)
    inputs = simulate_pair(out, voxel_mm=args.voxel_mm, thinning_mm=args.thinning_mm,
                           seed=args.seed, lesion_ml=args.lesion_ml,
                           lesion_side=args.lesion_side, tissue_contrast=args.tissue_contrast)
    outputs, stages = {}, {}
    for name in ("baseline", "m06"):
        outputs[name] = out / name
        outputs[name].mkdir(parents=True, exist_ok=True)
        stages[name] = run_stream(inputs[name] / "T1w.nii.gz", inputs[name] / "lesion.nii.gz",
                                  outputs[name], threads=args.threads, cfg=cfg,
                                  baseline=outputs["baseline"] if name == "m06" else None)
    report = {"voxel_mm": args.voxel_mm, "threads": args.threads, "seed": args.seed,
              "lesion_side": args.lesion_side, "lesion_ml_planned": args.lesion_ml,
              "config": cfg, "stages": stages,
              **evaluate(inputs, outputs, thinning_mm=args.thinning_mm)}
    (out / "anat_thinning.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("thinning", "baseline", "m06")}, indent=1))


if __name__ == "__main__":
    main()

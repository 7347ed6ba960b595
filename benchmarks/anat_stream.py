"""Time the whole anatomy stream on one phantom session, and validate the
configured thickness method against DiReCT with ANTs' default settings.

    python benchmarks/anat_stream.py --out /tmp/anat_bench              # 1 mm session
    python benchmarks/anat_stream.py --out /tmp/anat_bench --skip-stream --compare-default \
        --compare-crop-mm 50

Each stage runs as its ``resstore`` command (as Snakemake runs it), so wall
time and peak resident memory (``ru_maxrss`` of the child) are those of a
rule. Goal: whole stream <= 5 min wall on 2 threads, peak <= 4 GB.

``--compare-default`` runs, on the same segmentation, DiReCT with ANTs'
defaults (45 iterations, gradient step 0.025, smoothing 1.5, on the T1w grid)
and the configured method of configs/config.yaml (``thickness_method``: the
Laplace thickness with ``thickness_grid_mm`` and ``thickness_sulcal_jump_mm``,
or DiReCT with ``thickness_voxel_mm``, ``thickness_iterations``);
``--compare-crop-mm`` runs both on a cube around the motor cortex when the
whole-brain 1 mm default is too slow.
Reported: the speed ratio and the mean absolute thickness difference over
cortical voxels where both are non-zero. Writes ``anat_stream.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _run(cmd: list[str]) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall_s": round(wall, 1), "peak_mb_at_least": round(max(peak_kb, before) / 1024, 0),
            "peak_mb": round(peak_kb / 1024, 0)}


def simulate_session(out: Path, voxel_mm: float, seed: int) -> dict:
    """One lesioned 1 mm (or ``voxel_mm``) T1w with its truth, like the trial writer's."""
    import nibabel as nib

    from pipeline.simulate import anatomy
    from pipeline.simulate.layers import template_layers
    from pipeline.simulate.space import SessionMap, random_subject_warp, rigid_matrix

    rng = np.random.default_rng(seed)
    layers = template_layers()
    warp = random_subject_warp(rng)
    plan = anatomy.plan_lesion(rng, layers, side="left", volume_ml=40.0)
    smap = SessionMap(warp, rigid_matrix(rng.normal(0, 3, 3), rng.normal(0, 3, 3)))
    ses = anatomy.simulate_structural(rng=rng, layers=layers, session_map=smap, lesion_plan=plan,
                                      lesion_stage="subacute", voxel_mm=voxel_mm)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"t1w": out / "T1w.nii.gz", "lesion": out / "lesion.nii.gz"}
    nib.save(ses.t1w, paths["t1w"])
    nib.save(ses.lesion, paths["lesion"])
    return paths


def run_stream(t1w: Path, lesion: Path, out: Path, *, threads: int, cfg: dict,
               baseline: Path | None = None) -> dict:
    """The four anatomy commands on one session (a follow-up session when
    ``baseline`` is the output directory of its baseline's run)."""
    rs = [sys.executable, "-m", "pipeline"]
    follow = [] if baseline is None else [
        "--baseline-preproc", str(baseline / "preproc.nii.gz"),
        "--baseline-mask", str(baseline / "mask.nii.gz"),
        "--baseline-mni-to-t1w", str(baseline / "mni2t1w.h5"),
        "--baseline-t1w-to-mni", str(baseline / "t1w2mni.h5")]
    o = {k: str(out / k) for k in (
        "preproc.nii.gz", "mask.nii.gz", "affine.mat", "bm.json", "bm.png", "mni2t1w.h5",
        "t1w2mni.h5", "atlas.nii.gz", "dk.nii.gz", "reg.json", "reg.png", "brain.nii.gz",
        "dseg.nii.gz", "probseg.nii.gz", "seg.json", "seg.png", "thickness.nii.gz",
        "thickness.tsv", "thickness.json", "thickness.png")}
    th = ["--threads", str(threads)]
    stages = {
        "preproc": rs + ["anat-preproc", "--t1w", str(t1w), "--out-preproc", o["preproc.nii.gz"],
                         "--out-mask", o["mask.nii.gz"], "--out-xfm", o["affine.mat"],
                         "--out-metrics", o["bm.json"], "--out-figure", o["bm.png"],
                         "--registration-voxel-mm", str(cfg["registration_voxel_mm"])] + th,
        "register": rs + ["anat-register", "--t1w-preproc", o["preproc.nii.gz"], "--brain-mask",
                          o["mask.nii.gz"], "--lesion-mask", str(lesion), "--out-mni-to-t1w",
                          o["mni2t1w.h5"], "--out-t1w-to-mni", o["t1w2mni.h5"], "--out-atlas",
                          o["atlas.nii.gz"], "--out-dk", o["dk.nii.gz"], "--out-metrics",
                          o["reg.json"], "--out-figure", o["reg.png"],
                          "--registration-voxel-mm", str(cfg["registration_voxel_mm"]),
                          "--syn-iterations", *[str(i) for i in cfg["syn_iterations"]],
                          "--lesion-fill", cfg["lesion_fill"]]
                    + follow + th,
        "segment": rs + ["anat-segment", "--t1w-preproc", o["preproc.nii.gz"], "--mni-to-t1w",
                         o["mni2t1w.h5"], "--lesion-mask", str(lesion), "--out-mask",
                         o["brain.nii.gz"], "--out-dseg", o["dseg.nii.gz"], "--out-probseg",
                         o["probseg.nii.gz"], "--out-metrics", o["seg.json"], "--out-figure",
                         o["seg.png"]] + th,
        "thickness": rs + ["anat-thickness", "--t1w-preproc", o["preproc.nii.gz"], "--dseg",
                           o["dseg.nii.gz"], "--probseg", o["probseg.nii.gz"], "--atlas",
                           o["atlas.nii.gz"], "--dk", o["dk.nii.gz"], "--out-thickness",
                           o["thickness.nii.gz"], "--out-table", o["thickness.tsv"],
                           "--out-metrics", o["thickness.json"], "--out-figure",
                           o["thickness.png"], "--method", cfg["thickness_method"],
                           "--grid-mm", str(cfg["thickness_grid_mm"]),
                           "--sulcal-jump-mm", str(cfg["thickness_sulcal_jump_mm"]),
                           "--voxel-mm", str(cfg["thickness_voxel_mm"]),
                           "--iterations", str(cfg["thickness_iterations"])] + th,
    }
    result = {}
    for name, cmd in stages.items():
        result[name] = _run(cmd)
        print(f"{name:10s} {result[name]['wall_s']:8.1f} s  peak {result[name]['peak_mb']:6.0f} MB",
              flush=True)
    return result


def compare_default(out: Path, *, crop_mm: float | None, cfg: dict, threads: int) -> dict:
    """DiReCT with ANTs defaults on the T1w grid vs the configured method, same input.

    With ``crop_mm``, both run on a cube of that size (mm) around the motor
    cortex (atlas M1 labels) at the T1w resolution, since the default on a
    whole 1 mm brain takes tens of minutes; the comparison skips 5 mm at the
    cube's faces.
    """
    import nibabel as nib

    from pipeline.antsio import set_threads

    set_threads(threads)
    from pipeline.anat.thickness import KK_DEFAULT, cortical_thickness

    dseg, probseg = nib.load(out / "dseg.nii.gz"), nib.load(out / "probseg.nii.gz")
    voxel = float(np.mean(np.abs(dseg.header.get_zooms()[:3])))
    inner = np.ones(dseg.shape, bool)
    if crop_mm:
        atlas = np.asarray(nib.load(out / "atlas.nii.gz").dataobj)
        center = np.argwhere(np.isin(atlas, (3, 4))).mean(axis=0).astype(int)
        half = int(crop_mm / voxel / 2)
        box = tuple(slice(max(c - half, 0), c + half) for c in center)
        shift = np.eye(4)
        shift[:3, 3] = [b.start for b in box]
        affine = dseg.affine @ shift
        dseg = nib.Nifti1Image(np.asarray(dseg.dataobj)[box], affine)
        probseg = nib.Nifti1Image(probseg.get_fdata(dtype=np.float32)[box], affine)
        edge = int(round(5 / voxel))
        inner = np.zeros(dseg.shape, bool)
        inner[edge:-edge, edge:-edge, edge:-edge] = True
    start = time.perf_counter()
    default = cortical_thickness(dseg, probseg, method="direct", voxel_mm=None, crop_margin_mm=0,
                                 **KK_DEFAULT).get_fdata()
    t_default = time.perf_counter() - start
    start = time.perf_counter()
    if cfg["thickness_method"] == "laplace":
        configured = {"method": "laplace", "grid_mm": cfg["thickness_grid_mm"],
                      "sulcal_jump_mm": cfg["thickness_sulcal_jump_mm"]}
    else:
        configured = {"method": "direct", "voxel_mm": cfg["thickness_voxel_mm"],
                      "iterations": cfg["thickness_iterations"], "crop_margin_mm": 0}
    fast = cortical_thickness(dseg, probseg, **configured).get_fdata()
    t_fast = time.perf_counter() - start
    both = (default > 0) & (fast > 0) & inner
    row = {"input_voxel_mm": voxel, "crop_mm": crop_mm, "shape": list(dseg.shape),
           "default": dict(KK_DEFAULT, voxel_mm=voxel),
           "fast": configured,
           "default_s": round(t_default, 1), "fast_s": round(t_fast, 1),
           "speed_ratio": round(t_default / t_fast, 2),
           "default_mean_mm": float(default[both].mean()), "fast_mean_mm": float(fast[both].mean()),
           "mean_abs_diff_mm": float(np.abs(default[both] - fast[both]).mean()),
           "mean_diff_mm": float((fast[both] - default[both]).mean()),
           "voxels_compared": int(both.sum())}
    print(json.dumps(row, indent=1))
    return row


def main(argv=None) -> None:
    import yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--t1w", help="use this T1w instead of simulating one")
    parser.add_argument("--lesion", help="its lesion mask (with --t1w)")
    parser.add_argument("--voxel-mm", type=float, default=1.0, help="simulated voxel size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--skip-stream", action="store_true",
                        help="reuse the outputs of an earlier run in --out")
    parser.add_argument("--compare-default", action="store_true")
    parser.add_argument("--compare-crop-mm", type=float, default=None,
                        help="run the comparison on a cube (mm) around M1 (default: whole brain)")
    args = parser.parse_args(argv)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "config.yaml")
                         .read_text())["anat"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"threads": args.threads, "config": cfg}
    if not args.skip_stream:
        if args.t1w:
            paths = {"t1w": Path(args.t1w), "lesion": Path(args.lesion)}
        else:
            paths = simulate_session(out / "input", args.voxel_mm, args.seed)
        stages = run_stream(paths["t1w"], paths["lesion"], out, threads=args.threads, cfg=cfg)
        total = sum(s["wall_s"] for s in stages.values())
        peak = max(s["peak_mb"] for s in stages.values())
        report.update(stages=stages, total_wall_s=round(total, 1), peak_mb=peak,
                      goal_met=bool(total <= 300 and peak <= 4096))
        print(f"{'total':10s} {total:8.1f} s  peak {peak:6.0f} MB  (goal 300 s, 4096 MB)")
    if args.compare_default:
        report["direct_default_vs_fast"] = compare_default(
            out, crop_mm=args.compare_crop_mm, cfg=cfg, threads=args.threads)
    (out / "anat_stream.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""DWI stream vs MRtrix3 (dwi2tensor / tensor2metric) on one phantom session.

    python benchmarks/dwi_vs_mrtrix.py --out /tmp/dwi_bench [--voxel-mm 2 --threads 2]
    python benchmarks/dwi_vs_mrtrix.py --out /tmp/b --dwi X_dwi.nii.gz   # .bval/.bvec beside it

Simulates a phantom DWI series (or takes one), runs ``resstore dwi-preproc``
(denoise, Gibbs, motion/eddy correction, WLS tensor) as a subprocess, and runs
MRtrix3 on (a) the same raw series and (b) our preprocessed series with our
rotated .bvec. Prints a table and writes ``dwi_vs_mrtrix.json``: FA
correlation inside the brain, FA error against the phantom truth, wall and CPU
seconds and peak memory of every step. Needs MRtrix3 on PATH
(Debian: ``apt-get install mrtrix3``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np


def _run(cmd, env=None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "peak_rss_mb_so_far": round(after.ru_maxrss / 1024, 1)}


def _simulate(out: Path, voxel_mm: float, seed: int, n_directions: int):
    from pipeline.simulate.dwi import bvecs_fsl_convention, simulate_dwi
    from pipeline.simulate.layers import template_layers
    from pipeline.simulate.space import SessionMap, random_subject_warp, rigid_matrix

    rng = np.random.default_rng(seed)
    session = SessionMap(random_subject_warp(rng), rigid_matrix((1.0, -2.0, 0.5), (2.0, -1.0, 3.0)))
    res = simulate_dwi(rng=rng, layers=template_layers(), session_map=session, lesion=None,
                       lesion_stage=None, lesion_side="left", voxel_mm=voxel_mm,
                       n_directions=n_directions, cst_fa_change=-0.06)
    stem = out / "sub-bench_dwi"
    data = np.clip(np.round(res.image.get_fdata()), 0, 32767).astype(np.int16)
    nib.save(nib.Nifti1Image(data, res.image.affine, res.image.header), f"{stem}.nii.gz")
    np.savetxt(f"{stem}.bval", res.bvals[None], fmt="%g")
    np.savetxt(f"{stem}.bvec", bvecs_fsl_convention(res.bvecs, res.image.affine), fmt="%.6f")
    nib.save(res.truth_maps["fa"], out / "truth_fa.nii.gz")
    return Path(f"{stem}.nii.gz")


def _mrtrix_fa(dwi, bval, bvec, work: Path, tag: str, threads: int) -> tuple[Path, dict]:
    opts = ["-quiet", "-force", "-nthreads", str(threads)]
    mif, mask = work / f"{tag}.mif", work / f"{tag}_mask.mif"
    tensor, fa = work / f"{tag}_tensor.mif", work / f"{tag}_fa.nii.gz"
    times = {"mrconvert": _run(["mrconvert", str(dwi), str(mif), "-fslgrad", str(bvec), str(bval),
                                *opts]),
             "dwi2mask": _run(["dwi2mask", str(mif), str(mask), *opts]),
             "dwi2tensor": _run(["dwi2tensor", str(mif), str(tensor), "-mask", str(mask), *opts]),
             "tensor2metric": _run(["tensor2metric", str(tensor), "-fa", str(fa), *opts])}
    return fa, times


def _on_grid(img, ref):
    """Resample (nearest voxel centre, identical orientation) ``img`` onto ``ref``'s grid."""
    vox = np.round(np.linalg.solve(img.affine, ref.affine)).astype(int)
    offset = vox[:3, 3]
    data = np.asarray(img.dataobj, dtype=np.float32)
    sl = tuple(slice(o, o + s) for o, s in zip(offset, ref.shape[:3], strict=True))
    return data[sl]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--dwi", help="existing DWI (.bval/.bvec beside it); default: simulate")
    parser.add_argument("--voxel-mm", type=float, default=2.0)
    parser.add_argument("--directions", type=int, default=30)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preproc-args", default="", help="extra dwi-preproc options")
    args = parser.parse_args(argv)
    if shutil.which("dwi2tensor") is None:
        sys.exit("MRtrix3 is not on PATH (apt-get install mrtrix3)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dwi = Path(args.dwi) if args.dwi else _simulate(out, args.voxel_mm, args.seed, args.directions)
    stem = str(dwi).removesuffix(".nii.gz")
    bval, bvec = Path(stem + ".bval"), Path(stem + ".bvec")

    ours = out / "ours"
    names = ("b0", "mask", "fa", "md", "ad", "rd", "v1", "residual")
    cmd = [shutil.which("resstore") or "resstore", "dwi-preproc", "--dwi", str(dwi),
           "--bval", str(bval), "--bvec", str(bvec), "--threads", str(args.threads),
           "--out-preproc", str(ours / "preproc.nii.gz"),
           *[a for n in names for a in (f"--out-{n}", str(ours / f"{n}.nii.gz"))],
           "--out-motion", str(ours / "motion.tsv"), "--out-metrics", str(ours / "metrics.json"),
           "--out-figure-colour-fa", str(ours / "colourfa.png"),
           "--out-figure-motion", str(ours / "motion.png"),
           "--out-figure-residual", str(ours / "residual.png"), "--log", str(ours / "log.txt"),
           *args.preproc_args.split()]
    env = dict(os.environ)
    ours_time = _run(cmd, env=env)
    ours_time["peak_rss_mb"] = ours_time.pop("peak_rss_mb_so_far")
    raw_fa, raw_times = _mrtrix_fa(dwi, bval, bvec, out, "mrtrix_raw", args.threads)
    pre_fa, pre_times = _mrtrix_fa(ours / "preproc.nii.gz", ours / "preproc.bval",
                                   ours / "preproc.bvec", out, "mrtrix_preproc", args.threads)

    fa_img = nib.load(ours / "fa.nii.gz")
    fa = fa_img.get_fdata()
    mask = np.asarray(nib.load(ours / "mask.nii.gz").dataobj) > 0
    result = {"dwi": str(dwi), "shape": list(nib.load(dwi).shape), "threads": args.threads,
              "ours": ours_time, "mrtrix_raw": raw_times, "mrtrix_on_our_preproc": pre_times}
    for tag, path in (("mrtrix_on_our_preproc", pre_fa), ("mrtrix_raw", raw_fa)):
        other = _on_grid(nib.load(path), fa_img)
        result[f"fa_correlation_ours_vs_{tag}"] = float(np.corrcoef(fa[mask], other[mask])[0, 1])
    truth = out / "truth_fa.nii.gz"
    if truth.exists():
        t = _on_grid(nib.load(truth), fa_img)
        wm = mask & (t > 0.3)
        result["fa_mean_abs_error_ours"] = float(np.abs(fa[wm] - t[wm]).mean())
        result["fa_mean_abs_error_mrtrix_raw"] = float(
            np.abs(_on_grid(nib.load(raw_fa), fa_img)[wm] - t[wm]).mean())
    metrics = json.loads((ours / "metrics.json").read_text())
    result["ours_metrics"] = metrics
    (out / "dwi_vs_mrtrix.json").write_text(json.dumps(result, indent=2))
    mr = lambda t: sum(v["wall_s"] for v in t.values())  # noqa: E731
    print(f"{'':34s}{'wall s':>9s}{'cpu s':>9s}")
    print(f"{'resstore dwi-preproc (full)':34s}{ours_time['wall_s']:9.1f}{ours_time['cpu_s']:9.1f}"
          f"   peak {ours_time['peak_rss_mb']:.0f} MB")
    print(f"{'MRtrix3 mask+tensor+FA (raw)':34s}{mr(raw_times):9.1f}"
          f"{sum(v['cpu_s'] for v in raw_times.values()):9.1f}")
    for key, value in result.items():
        if key.startswith("fa_"):
            print(f"{key:52s}{value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

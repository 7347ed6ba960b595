"""DWI stream vs MRtrix3 (dwi2tensor / tensor2metric) on one phantom session.

    python benchmarks/dwi_vs_mrtrix.py --out /tmp/dwi_bench [--voxel-mm 2 --threads 1]
    python benchmarks/dwi_vs_mrtrix.py --out /tmp/b --dwi X_dwi.nii.gz   # .bval/.bvec beside it

Simulates a phantom DWI series (or takes one), runs ``resstore dwi-preproc``
(denoise, Gibbs, motion/eddy correction, WLS tensor) as a subprocess, and runs
MRtrix3 on

* **our preprocessed series** with our rotated .bvec and **our brain mask**,
  both with MRtrix's default fit (WLS + 2 iterated reweightings) and with
  ``-ols -iter 1`` (OLS, then one WLS weighted by the OLS prediction, which is
  dipy's "WLS"). The same data, gradients and voxels go into both fits, so the
  FA correlation measures only the tensor fit and FA computation;
* **the raw series** (MRtrix alone, no preprocessing; fitted in our mask put
  back on the raw grid, dwi2mask is timed only): the correlation then also
  holds everything our preprocessing changes.

Correlations are over our brain mask. With a simulated phantom, FA is also
compared with the truth (the single tensor fitting the noiseless signal): mean
absolute error in white matter (truth FA > 0.3) and the mean FA in the truth
CST masks against the truth map's mean there (the apparent CST truth) and
against the planted tissue FA. Prints a table and writes
``dwi_vs_mrtrix.json`` with wall / CPU seconds and peak memory of every step.
Needs MRtrix3 on PATH (Debian: ``apt-get install mrtrix3``).
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
    from pipeline.simulate.dwi import simulate_dwi
    from pipeline.simulate.layers import template_layers
    from pipeline.simulate.space import SessionMap, random_subject_warp, rigid_matrix
    from pipeline.simulate.tensor import bvecs_fsl_convention

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
    for name in ("fa", "cst_ipsilesional", "cst_contralesional"):
        nib.save(res.truth_maps[name], out / f"truth_{name}.nii.gz")
    (out / "truth.json").write_text(json.dumps(res.truth, indent=2))
    return Path(f"{stem}.nii.gz")


def _mrtrix_fa(dwi, bval, bvec, mask, work: Path, tag: str, threads: int, *,
               fit_options=(), own_mask: bool = False) -> tuple[Path, dict]:
    """FA by MRtrix3 in ``mask`` (a NIfTI on the DWI grid); optionally time dwi2mask too."""
    opts = ["-quiet", "-force", "-nthreads", str(threads)]
    mif, tensor, fa = work / f"{tag}.mif", work / f"{tag}_tensor.mif", work / f"{tag}_fa.nii.gz"
    times = {"mrconvert": _run(["mrconvert", str(dwi), str(mif), "-fslgrad", str(bvec), str(bval),
                                *opts])}
    if own_mask:
        times["dwi2mask"] = _run(["dwi2mask", str(mif), str(work / f"{tag}_mask.mif"), *opts])
    times["dwi2tensor"] = _run(["dwi2tensor", str(mif), str(tensor), "-mask", str(mask),
                                *fit_options, *opts])
    times["tensor2metric"] = _run(["tensor2metric", str(tensor), "-fa", str(fa), *opts])
    return fa, times


def _on_grid(img, ref):
    """Crop ``img`` onto ``ref``'s grid (same orientation and voxel size, ``ref`` inside)."""
    vox = np.round(np.linalg.solve(img.affine, ref.affine)).astype(int)
    offset = vox[:3, 3]
    data = np.asarray(img.dataobj, dtype=np.float32)
    sl = tuple(slice(o, o + s) for o, s in zip(offset, ref.shape[:3], strict=True))
    return data[sl]


def _pad_to(img, ref_img) -> nib.Nifti1Image:
    """Put ``img`` (a crop of ``ref_img``'s grid) back on the full grid, zeros around."""
    vox = np.round(np.linalg.solve(ref_img.affine, img.affine)).astype(int)[:3, 3]
    out = np.zeros(ref_img.shape[:3], dtype=np.uint8)
    out[tuple(slice(o, o + s) for o, s in zip(vox, img.shape[:3], strict=True))] = \
        np.asarray(img.dataobj) > 0
    return nib.Nifti1Image(out, ref_img.affine)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--dwi", help="existing DWI (.bval/.bvec beside it); default: simulate")
    parser.add_argument("--voxel-mm", type=float, default=2.0)
    parser.add_argument("--directions", type=int, default=30)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1)
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
    ours_time = _run(cmd, env=dict(os.environ))
    ours_time["peak_rss_mb"] = ours_time.pop("peak_rss_mb_so_far")
    mask_path = ours / "mask.nii.gz"
    raw_mask_path = out / "ours_mask_on_raw_grid.nii.gz"
    nib.save(_pad_to(nib.load(mask_path), nib.load(dwi)), raw_mask_path)
    pre = (ours / "preproc.nii.gz", ours / "preproc.bval", ours / "preproc.bvec")
    runs = {
        "mrtrix_on_our_preproc": _mrtrix_fa(*pre, mask_path, out, "mrtrix_preproc", args.threads),
        "mrtrix_on_our_preproc_ols_iter1": _mrtrix_fa(
            *pre, mask_path, out, "mrtrix_preproc_ols1", args.threads,
            fit_options=("-ols", "-iter", "1")),
        "mrtrix_raw": _mrtrix_fa(dwi, bval, bvec, raw_mask_path, out, "mrtrix_raw", args.threads,
                                 own_mask=True),
    }

    fa_img = nib.load(ours / "fa.nii.gz")
    fa = fa_img.get_fdata()
    mask = np.asarray(nib.load(mask_path).dataobj) > 0
    result = {"dwi": str(dwi), "shape": list(nib.load(dwi).shape), "threads": args.threads,
              "preproc_args": args.preproc_args, "ours": ours_time,
              **{tag: times for tag, (_, times) in runs.items()}}
    fas = {"ours": fa, **{tag: _on_grid(nib.load(path), fa_img) for tag, (path, _) in runs.items()}}
    for tag, other in fas.items():
        if tag != "ours":
            finite = mask & np.isfinite(other)  # MRtrix leaves NaN where a fit fails
            difference = np.abs(fa[finite] - other[finite])
            result[f"fa_correlation_ours_vs_{tag}"] = float(
                np.corrcoef(fa[finite], other[finite])[0, 1])
            result[f"fa_p99_abs_difference_ours_vs_{tag}"] = float(np.percentile(difference, 99))
            result[f"fa_voxels_differing_by_0.05_ours_vs_{tag}"] = int((difference > 0.05).sum())
            result[f"fa_nonfinite_voxels_{tag}"] = int((mask & ~finite).sum())
    truth_fa = out / "truth_fa.nii.gz"
    if truth_fa.exists():
        t = _on_grid(nib.load(truth_fa), fa_img)
        wm = mask & (t > 0.3)
        truth = json.loads((out / "truth.json").read_text())
        for tag, values in fas.items():
            values = np.nan_to_num(values)
            result[f"fa_mean_abs_error_wm_{tag}"] = float(np.abs(values[wm] - t[wm]).mean())
            for side in ("ipsilesional", "contralesional"):
                cst = _on_grid(nib.load(out / f"truth_cst_{side}.nii.gz"), fa_img) > 0
                result[f"fa_cst_{side}_error_{tag}"] = float(values[cst].mean() - t[cst].mean())
                result[f"fa_cst_{side}_error_vs_tissue_{tag}"] = float(
                    values[cst].mean() - truth[f"fa_cst_{side}"])
    result["ours_metrics"] = json.loads((ours / "metrics.json").read_text())
    (out / "dwi_vs_mrtrix.json").write_text(json.dumps(result, indent=2))
    total = lambda t, key: sum(v[key] for v in t.values())  # noqa: E731
    print(f"{'':40s}{'wall s':>9s}{'cpu s':>9s}")
    print(f"{'resstore dwi-preproc (full)':40s}{ours_time['wall_s']:9.1f}{ours_time['cpu_s']:9.1f}"
          f"   peak {ours_time['peak_rss_mb']:.0f} MB")
    for tag in runs:
        print(f"{'MRtrix3 ' + tag.removeprefix('mrtrix_'):40s}{total(result[tag], 'wall_s'):9.1f}"
              f"{total(result[tag], 'cpu_s'):9.1f}")
    for key, value in result.items():
        if key.startswith("fa_"):
            print(f"{key:72s}{value:+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

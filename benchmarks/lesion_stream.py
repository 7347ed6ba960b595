"""Wall time and peak memory of the lesion stream per session (target: <= 2 min at 1 mm, 2 cores).

Simulates one phantom session (T1w + FLAIR, subacute lesion), runs the
anatomy stream's first step it reuses (N4 + affine template mask; not
counted), then times the lesion stream's three commands as the workflow runs
them (``resstore lesion-segment``, ``lesion-side``, ``lesion-load``; the CST
comes through the affine when no atlas dseg is given) and prints a table.

    python benchmarks/lesion_stream.py --voxel-mm 1 --threads 2 --out /tmp/lesion_bench
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


# each step runs under its own small wrapper process, so that its peak RSS is its own
# (RUSAGE_CHILDREN of this process would keep the largest of every step so far)
_WRAPPER = ("import resource, subprocess, sys; "
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stderr.write(p.stderr[-3000:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")


def _run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        sys.exit(f"{' '.join(cmd[:2])} failed ({done.returncode}):\n{done.stderr}")
    return seconds, float(done.stdout.split()[-1]) / 1024.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--voxel-mm", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--volume-ml", type=float, default=40.0)
    parser.add_argument("--budget-s", type=float, default=120.0)
    args = parser.parse_args(argv)

    from pipeline.antsio import set_threads

    set_threads(args.threads)
    from benchmarks.lesion_phantoms import simulate_sessions

    out = Path(args.out)
    session = simulate_sessions(out / "phantom", volumes_ml=[args.volume_ml], n_lesion_free=0,
                                voxel_mm=args.voxel_mm)[0]
    resstore = shutil.which("resstore") or str(Path(sys.executable).parent / "resstore")
    d = out / "derivatives"
    d.mkdir(parents=True, exist_ok=True)
    # the anatomy stream's SyN and atlas (not timed: the budget excludes anatomy); CST load
    # only uses the lesion-masked SyN (issue 19)
    anat = {k: str(d / f"anat_{k}") for k in ("mni_to_t1w.h5", "t1w_to_mni.h5", "atlas.nii.gz",
                                                "dk.nii.gz", "metrics.json", "figure.png")}
    if not Path(anat["atlas.nii.gz"]).exists():
        _run([resstore, "anat-register", "--t1w-preproc", session["preproc"], "--brain-mask",
              session["brain_mask"], "--out-mni-to-t1w", anat["mni_to_t1w.h5"],
              "--out-t1w-to-mni", anat["t1w_to_mni.h5"], "--out-atlas", anat["atlas.nii.gz"],
              "--out-dk", anat["dk.nii.gz"], "--out-metrics", anat["metrics.json"],
              "--out-figure", anat["figure.png"], "--threads", str(args.threads)])
    steps = {
        "lesion-segment": [
            resstore, "lesion-segment", "--t1w", session["preproc"], "--t1w-raw", session["t1w"],
            "--brain-mask",
            session["brain_mask"], "--xfm", session["xfm"], "--flair", session["flair"],
            "--out-mask", str(d / "lesion_mask.nii.gz"), "--out-metrics",
            str(d / "lesion_metrics.json"), "--out-figure", str(d / "lesion.png"),
            "--threads", str(args.threads)],
        "lesion-side": [
            resstore, "lesion-side", "--subject", "00", "--metrics", str(d / "lesion_metrics.json"),
            "--session", "baseline", "--out", str(d / "side.json")],
        "lesion-load": [
            resstore, "lesion-load", "--lesion-mask", str(d / "lesion_mask.nii.gz"), "--t1w",
            session["preproc"], "--atlas", anat["atlas.nii.gz"], "--xfm-syn",
            anat["mni_to_t1w.h5"], "--side", str(d / "side.json"),
            "--metrics", str(d / "lesion_metrics.json"), "--is-baseline", "--out-metrics",
            str(d / "load_metrics.json"), "--out-figure", str(d / "cst.png"),
            "--threads", str(args.threads)],
    }
    rows = []
    for name, cmd in steps.items():
        seconds, peak_mb = _run(cmd)
        rows.append({"step": name, "seconds": round(seconds, 1), "peak_rss_mb": round(peak_mb)})
    total = sum(r["seconds"] for r in rows)
    metrics = json.loads((d / "lesion_metrics.json").read_text())
    result = {"voxel_mm": args.voxel_mm, "threads": args.threads, "steps": rows,
              "total_seconds": round(total, 1), "budget_seconds": args.budget_s,
              "within_budget": total <= args.budget_s,
              "lesion_volume_ml": metrics["lesion_volume_ml"],
              "truth_volume_ml": session["truth"]["lesion_volume_ml"]}
    print(f"{'step':16s} {'seconds':>8s} {'peak MB':>8s}")
    for r in rows:
        print(f"{r['step']:16s} {r['seconds']:8.1f} {r['peak_rss_mb']:8d}")
    print(f"{'total':16s} {total:8.1f}   (budget {args.budget_s:.0f} s: "
          f"{'OK' if result['within_budget'] else 'OVER'})")
    (out / "lesion_stream.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

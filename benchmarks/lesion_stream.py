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
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _run(cmd: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024.0


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
            session["preproc"], "--xfm", session["xfm"], "--side", str(d / "side.json"),
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

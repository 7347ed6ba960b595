"""Wall time of the pipeline on a phantom trial at 1, 2 and 4 parallel jobs, and
the projected time for a full trial on a cluster partition, from the measured
per-rule times (Snakemake ``benchmark:`` files) of the first run (the runs with
more jobs only give wall times). Per-rule and per-stream seconds per session
are reported too (e.g. the whole DWI stream: dwi_qc + dwi_preproc + dwi_regions).

    python benchmarks/workflow_scaling.py --bids demo/bids --configfile configs/demo.yaml \
        --jobs 1 2 4 --sessions 160 --partition-cores 64 --out /tmp/workflow_scaling.json

Each run writes to a fresh output folder, so every job is executed. The
projection assumes every session costs what the measured sessions cost on
average and that the cluster runs sessions side by side: wall = max(critical
path of one session, total core-seconds / partition cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]


def run(bids: Path, jobs: int, workdir: Path, threads: int, base: dict) -> float:
    out = workdir / "out"
    cfg = workdir / "config.yaml"
    config = {**base, "bids_dir": str(bids), "output_dir": str(out)}
    config["resources"] = {**base.get("resources", {}), "threads_per_job": threads}
    cfg.write_text(yaml.safe_dump(config))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                    "--directory", str(workdir), "--configfile", str(cfg),
                    "--cores", str(jobs * threads), "--jobs", str(jobs), "--quiet", "all"],
                   check=True, env=env, cwd=workdir)
    return time.perf_counter() - start


def rule_times(out: Path) -> pd.DataFrame:
    rows = []
    for path in (out / "benchmarks").glob("*/*.tsv"):
        bench = pd.read_csv(path, sep="\t")
        rows.append({"rule": path.parent.name, "session": path.stem, "s": float(bench["s"].iloc[0]),
                     "max_rss_mb": float(bench["max_rss"].iloc[0]) if "max_rss" in bench else None})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bids", required=True, type=Path)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=1, help="threads per job")
    parser.add_argument("--sessions", type=int, default=160, help="sessions of the full trial")
    parser.add_argument("--partition-cores", type=int, default=64)
    parser.add_argument("--configfile", type=Path,
                        help="study config to start from (e.g. configs/demo.yaml); bids_dir, "
                             "output_dir and threads_per_job are set by this benchmark")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    base = yaml.safe_load(args.configfile.read_text()) if args.configfile else {}

    results, per_rule = [], None
    for jobs in args.jobs:
        workdir = Path(tempfile.mkdtemp(prefix=f"scaling-{jobs}-"))
        wall = run(args.bids.resolve(), jobs, workdir, args.threads, base)
        results.append({"jobs": jobs, "wall_s": round(wall, 1)})
        print(f"{jobs} parallel job(s): {wall:7.1f} s wall", flush=True)
        if per_rule is None:
            per_rule = rule_times(workdir / "out")
        shutil.rmtree(workdir, ignore_errors=True)

    sessions = per_rule["session"].nunique()
    per_session = per_rule.groupby("rule")["s"].mean()
    core_s_per_session = float(per_session.sum()) * args.threads
    critical_path_s = float(per_session.sum())  # upper bound: rules of a session in sequence
    total_core_s = core_s_per_session * args.sessions
    projected = max(critical_path_s, total_core_s / args.partition_cores)
    summary = {
        "measured_sessions": int(sessions),
        "threads_per_job": args.threads,
        "cores": os.cpu_count(),
        "runs": results,
        "mean_seconds_per_rule_and_session": per_session.round(2).to_dict(),
        # a stream's rules of one session in sequence (anat_*, dwi_*, func_*, lesion_*, ...)
        "mean_seconds_per_stream_and_session": per_session.groupby(
            lambda rule: rule.split("_")[0]).sum().round(1).to_dict(),
        "peak_rss_mb_per_rule": per_rule.groupby("rule")["max_rss_mb"].max().round(0).to_dict(),
        "projection": {"sessions": args.sessions, "partition_cores": args.partition_cores,
                       "core_seconds_per_session": round(core_s_per_session, 1),
                       "projected_wall_minutes": round(projected / 60, 1)},
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

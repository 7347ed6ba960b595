"""One clinical-resolution session end to end through Snakemake: per-rule wall, CPU and
peak memory, and the critical path.

    python benchmarks/session.py --out /tmp/session_bench [--cores 2] [--threads 2]

Simulates one subject's baseline session at clinical resolution (T1w and FLAIR 1 mm,
DWI 2 mm x 33 volumes, BOLD 3 mm x 150 volumes; stored as the phantom draws it), runs
the whole workflow on it with ``--cores`` and ``resources.threads_per_job = --threads``,
and reads each rule's Snakemake benchmark file. The critical path is the longest chain
of the rule graph (``snakemake --rulegraph``) weighted by the rules' wall times: the
session's wall time on unlimited cores. Writes ``session.json`` and ``session.md``.
Run it alone on an idle machine; on a shared machine report the CPU times.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]


def _snakemake(workdir: Path, config: Path, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(config), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir,
                          env={**__import__("os").environ,
                               "PATH": f"{Path(sys.executable).parent}:{__import__('os').environ['PATH']}"})


def rule_graph(workdir: Path, config: Path) -> dict[str, set[str]]:
    """{rule: rules it depends on} from ``snakemake --rulegraph`` (dot)."""
    dot = _snakemake(workdir, config, "--rulegraph").stdout
    names = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, re.M))
    deps: dict[str, set[str]] = {name: set() for name in names.values()}
    for src, dst in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M):
        deps[names[dst]].add(names[src])
    return deps


def critical_path(deps: dict[str, set[str]], wall: dict[str, float]) -> tuple[float, list[str]]:
    """Longest dependency chain weighted by wall time."""
    memo: dict[str, tuple[float, list[str]]] = {}

    def longest(rule: str) -> tuple[float, list[str]]:
        if rule not in memo:
            best = max((longest(d) for d in deps.get(rule, ())), default=(0.0, []))
            memo[rule] = (best[0] + wall.get(rule, 0.0), [*best[1], rule])
        return memo[rule]

    return max((longest(r) for r in deps), default=(0.0, []))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work and output folder")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores")
    parser.add_argument("--threads", type=int, default=2, help="resources.threads_per_job")
    parser.add_argument("--seed", type=int, default=3, help="phantom seed")
    parser.add_argument("--docs", type=Path,
                        help="also write the result page here (docs/validation/session.md)")
    args = parser.parse_args(argv)
    from pipeline.simulate import TrialSpec, simulate_trial

    args.out.mkdir(parents=True, exist_ok=True)
    trial = args.out / "trial"
    if not (trial / "bids" / "dataset_description.json").exists():
        simulate_trial(trial, TrialSpec(n_subjects=1, seed=args.seed, anat_voxel_mm=1.0,
                                        dwi_voxel_mm=2.0, n_dwi_directions=30, n_dwi_b0=3,
                                        bold_voxel_mm=3.0, n_bold_volumes=150,
                                        sessions=("baseline",)))
    out = args.out / "derivatives"
    config = args.out / "config.yaml"
    config.write_text(yaml.safe_dump({"bids_dir": str(trial / "bids"), "output_dir": str(out),
                                      "sessions": ["baseline"],
                                      "resources": {"threads_per_job": args.threads}}))
    start = time.perf_counter()
    proc = _snakemake(args.out, config, "--cores", str(args.cores))
    total_wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(proc.stderr[-4000:])
    rows = []
    for path in sorted(out.glob("benchmarks/*/*.tsv")) + sorted(out.glob("benchmarks/*.tsv")):
        bench = pd.read_csv(path, sep="\t").iloc[0]
        rows.append({"rule": path.parent.name if path.parent.name != "benchmarks" else path.stem,
                     "wall_s": float(bench["s"]), "cpu_s": float(bench["cpu_time"]),
                     "peak_rss_mb": float(bench["max_rss"])})
    table = pd.DataFrame(rows).groupby("rule", as_index=False).max().sort_values("wall_s",
                                                                                 ascending=False)
    length, path = critical_path(rule_graph(args.out, config),
                                 dict(zip(table.rule, table.wall_s, strict=True)))
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.node(), "cores": args.cores,
              "threads_per_job": args.threads, "total_wall_s": round(total_wall, 1),
              "total_cpu_s": round(float(table.cpu_s.sum()), 1),
              "peak_rss_mb": round(float(table.peak_rss_mb.max()), 1),
              "critical_path_s": round(length, 1), "critical_path": path,
              "rules": table.round(1).to_dict("records")}
    (args.out / "session.json").write_text(json.dumps(result, indent=2))
    text = "\n".join([
        "# One clinical-resolution session (`benchmarks/session.py`)", "",
        f"{result['date']}, {args.cores} cores, {args.threads} threads per job: wall "
        f"{total_wall:.0f} s, CPU {result['total_cpu_s']:.0f} s, peak {result['peak_rss_mb']:.0f} "
        f"MB per job; critical path {length:.0f} s: {' -> '.join(path)}", "",
        table.to_markdown(index=False, floatfmt=".1f"), ""])
    (args.out / "session.md").write_text(text)
    if args.docs:
        args.docs.parent.mkdir(parents=True, exist_ok=True)
        args.docs.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall time and peak memory of the fMRI stream's three commands on one phantom session.

Simulates a one-subject trial (3 mm, 150 volumes by default) unless ``--trial``
points at an existing one, writes the cross-stream inputs (T1w, brain mask,
atlas, lesion, lesion side) from its truth, then runs ``resstore func-preproc``,
``func-coreg`` and ``func-glm`` as the workflow does, each under
``/usr/bin/time -v``. Targets: at most 180 s per session in total and at most
4 GB peak memory on 2 cores.

    python benchmarks/func_stream.py --out /tmp/func_bench --threads 2 --json /tmp/func_stream.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd):
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", proc.stderr).group(1)
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return seconds, rss_kb / 1024**2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="work folder")
    parser.add_argument("--trial", help="existing simulate_trial folder (default: simulate one)")
    parser.add_argument("--voxel-mm", type=float, default=3.0)
    parser.add_argument("--volumes", type=int, default=150)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from pipeline.paths import bids_path
    from tests.workflow.func_fixtures import write_cross_stream_inputs

    out = Path(args.out)
    trial = Path(args.trial) if args.trial else out / "trial"
    if not args.trial and not (trial / "bids").exists():
        from pipeline.simulate import TrialSpec, simulate_trial

        simulate_trial(trial, TrialSpec(n_subjects=1, seed=3, anat_voxel_mm=2.0,
                                        bold_voxel_mm=args.voxel_mm, n_bold_volumes=args.volumes,
                                        modalities=("T1w", "bold"), sessions=("baseline",)))
    sub, ses = "001", "baseline"
    deriv = out / "derivatives"
    cross = write_cross_stream_inputs(trial, deriv, sub, ses)

    def path(datatype, suffix, ext, **ent):
        return bids_path(deriv, datatype=datatype, subject=sub, session=ses, suffix=suffix,
                         extension=ext, task="motor", **ent)

    raw = trial / "bids" / f"sub-{sub}" / f"ses-{ses}" / "func" / f"sub-{sub}_ses-{ses}_task-motor"
    p = {k: path(*v[:3], **v[3]) for k, v in {
        "bold": ("func", "bold", ".nii.gz", {"space": "bold", "desc": "preproc"}),
        "ref": ("func", "boldref", ".nii.gz", {"space": "bold"}),
        "mask": ("func", "mask", ".nii.gz", {"space": "bold", "desc": "head"}),
        "conf": ("func", "timeseries", ".tsv", {"desc": "confounds"}),
        "pm": ("func", "metrics", ".json", {"desc": "preproc"}),
        "xfm": ("func", "xfm", ".mat", {"from_": "bold", "to": "T1w", "mode": "image"}),
        "cm": ("func", "metrics", ".json", {"desc": "coreg"}),
        "z": ("func", "zmap", ".nii.gz", {"space": "bold", "desc": "affectedhand"}),
        "zt": ("func", "zmap", ".nii.gz", {"space": "T1w", "desc": "affectedhand"}),
        "design": ("func", "design", ".tsv", {}),
        "m1": ("func", "dseg", ".nii.gz", {"space": "bold", "desc": "m1"}),
        "am": ("func", "metrics", ".json", {"desc": "activation"}),
    }.items()}
    fig = deriv / "figures"
    exe = [sys.executable, "-m", "pipeline"]
    steps = {
        "func-preproc": [*exe, "func-preproc", "--bold", f"{raw}_bold.nii.gz",
                         "--events", f"{raw}_events.tsv", "--out-bold", p["bold"],
                         "--out-boldref", p["ref"], "--out-mask", p["mask"],
                         "--out-confounds", p["conf"], "--out-metrics", p["pm"],
                         "--out-figure-motion", str(fig / "motion.png"),
                         "--out-figure-tsnr", str(fig / "tsnr.png"), "--threads", str(args.threads)],
        "func-coreg": [*exe, "func-coreg", "--boldref", p["ref"], "--t1w", cross["t1w"],
                       "--brain-mask", cross["brain_mask"], "--out-xfm", p["xfm"],
                       "--out-metrics", p["cm"], "--out-figure", str(fig / "coreg.png"),
                       "--threads", str(args.threads)],
        "func-glm": [*exe, "func-glm", "--bold", p["bold"],
                     "--bold-sidecar", p["bold"].replace(".nii.gz", ".json"), "--bold-mask", p["mask"],
                     "--boldref", p["ref"], "--confounds", p["conf"], "--events", f"{raw}_events.tsv",
                     "--xfm", p["xfm"], "--t1w", cross["t1w"], "--brain-mask", cross["brain_mask"],
                     "--atlas", cross["atlas"], "--lesion", cross["lesion"],
                     "--lesion-side", cross["lesion_side"],
                     "--contrast", "affectedhand=move_affected_hand",
                     "--out-zmap", f"affectedhand={p['z']}", "--primary-contrast", "affectedhand",
                     "--out-zmap-t1w", p["zt"], "--out-design", p["design"], "--out-m1", p["m1"],
                     "--out-metrics", p["am"], "--out-figure-design", str(fig / "design.png"),
                     "--out-figure-zmap", str(fig / "zmap.png"), "--threads", str(args.threads)],
    }
    rows = {}
    for name, cmd in steps.items():
        seconds, gb = timed(cmd)
        rows[name] = {"seconds": round(seconds, 1), "peak_gb": round(gb, 2)}
        print(f"{name:14s} {seconds:7.1f} s  {gb:5.2f} GB", flush=True)
    total = sum(r["seconds"] for r in rows.values())
    peak = max(r["peak_gb"] for r in rows.values())
    print(f"{'total':14s} {total:7.1f} s  {peak:5.2f} GB peak  (targets: 180 s, 4 GB)")
    if args.json:
        Path(args.json).write_text(json.dumps({"steps": rows, "total_seconds": total,
                                               "peak_gb": peak, "args": vars(args)}, indent=1))


if __name__ == "__main__":
    main()

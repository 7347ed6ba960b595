"""Peak memory and run time of the T1w-space rules at several T1w voxel sizes, against
the ``mem_mb`` / ``runtime`` the workflow declares (``workflow/resources.yaml``).

    python benchmarks/resources.py --out /tmp/resources [--voxel-mm 0.5 1 2]
        [--t1w /usr/share/mricron/templates/ch2.nii.gz] [--write workflow/resources.yaml]

The input is a real head: Colin27 (Debian ``mricron-data``, 1 mm with skull) resampled
to each voxel size (a 0.5 mm version is an upsampled 1 mm scan: right for memory, which
follows the voxel count, not for accuracy). Each size is one BIDS session with only a
T1w, run through Snakemake (anatomy, the empty lesion stream, features, QC); each rule's
Snakemake benchmark file gives its peak RSS and wall time. A 0.5 mm T1w runs on the
``anat.max_voxel_mm`` working grid. The issue's criteria: the anatomy stream's peak <=
4 GB per job at 0.5 mm; declared ``mem_mb`` >= measured peak at every size.

``--write`` refits ``a + b x Mvoxels`` for these rules from the measured points (least
squares, then raised until it covers every point, plus 25 %) and rewrites the file.
Run it alone on an idle machine; on a shared machine the memory figures still hold.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import yaml
from session import _snakemake  # benchmarks/session.py

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pipeline import resources  # noqa: E402

COLIN = Path("/usr/share/mricron/templates/ch2.nii.gz")
MARGIN = 1.25


def write_session(t1w: Path, voxel_mm: float, bids: Path) -> Path:
    from nilearn.image import resample_img

    img = nib.load(str(t1w))
    img = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)
    if not np.allclose(img.header.get_zooms()[:3], voxel_mm):
        img = resample_img(img, target_affine=np.diag([voxel_mm] * 3), interpolation="linear",
                           force_resample=True, copy_header=True)
    anat = bids / "sub-01" / "ses-baseline" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    path = anat / "sub-01_ses-baseline_T1w.nii.gz"
    nib.save(nib.Nifti1Image(np.clip(np.asarray(img.dataobj), 0, None).astype(np.float32),
                             img.affine), path)
    (bids / "dataset_description.json").write_text(json.dumps(
        {"Name": f"Colin27 at {voxel_mm} mm", "BIDSVersion": "1.9.0"}))
    (bids / "participants.tsv").write_text("participant_id\tlesion_side\nsub-01\tn/a\n")
    return path


def run_size(t1w: Path, voxel_mm: float, out: Path, cores: int, threads: int) -> pd.DataFrame:
    work = out / f"{voxel_mm:g}mm"
    bids = work / "bids"
    raw = write_session(t1w, voxel_mm, bids)
    deriv = work / "derivatives"
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump({
        "bids_dir": str(bids), "output_dir": str(deriv), "sessions": ["baseline"],
        "baseline_session": "baseline", "resources": {"threads_per_job": threads}}))
    start = time.perf_counter()
    proc = _snakemake(work, config, "--cores", str(cores))
    if proc.returncode != 0:
        sys.exit(f"{voxel_mm} mm: snakemake failed\n{proc.stderr[-4000:]}")
    wall = time.perf_counter() - start
    model = resources.load_model()
    from pipeline.config import schema_default

    cap = schema_default("anat", "max_voxel_mm")
    rows = []
    for path in sorted(deriv.glob("benchmarks/*/*.tsv")):  # benchmarks/<rule>/<session>.tsv
        rule = path.parent.name
        if rule not in model or model[rule]["image"] != "t1w":
            continue
        bench = pd.read_csv(path, sep="\t").iloc[0]
        size_in = resources.mvoxels(raw)
        size = resources.mvoxels(raw, cap)
        mem, runtime = resources.declared(model[rule], size)
        rows.append({"voxel_mm": voxel_mm, "rule": rule, "mvoxels_input": round(size_in, 2),
                     "mvoxels_working": round(size, 2), "peak_rss_mb": float(bench["max_rss"]),
                     "declared_mem_mb": mem, "wall_s": float(bench["s"]),
                     "cpu_s": float(bench["cpu_time"]), "declared_runtime_min": runtime})
    print(f"{voxel_mm} mm: {wall:.0f} s", flush=True)
    return pd.DataFrame(rows)


def refit(table: pd.DataFrame, column: str, x: str = "mvoxels_working") -> tuple[float, float]:
    """a, b of a + b x Mvoxels covering every point, with the margin."""
    b, a = np.polyfit(table[x], table[column], 1) if table[x].nunique() > 1 else (0.0, 0.0)
    b = max(b, 0.0)
    a = max(a, float((table[column] - b * table[x]).max()))
    return round(a * MARGIN), round(b * MARGIN, 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work and output folder")
    parser.add_argument("--t1w", type=Path, default=COLIN,
                        help="a real T1w (default: Colin27 from Debian mricron-data)")
    parser.add_argument("--voxel-mm", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                        help="T1w voxel sizes to measure")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores")
    parser.add_argument("--threads", type=int, default=1, help="resources.threads_per_job")
    parser.add_argument("--write", type=Path,
                        help="rewrite this resources file's T1w-space rules from the fit")
    args = parser.parse_args(argv)
    if not args.t1w.exists():
        print(f"{args.t1w}: not found (Debian: apt-get install mricron-data); skipped")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    table = pd.concat([run_size(args.t1w, v, args.out, args.cores, args.threads)
                       for v in args.voxel_mm], ignore_index=True)
    table["covered"] = table.declared_mem_mb >= table.peak_rss_mb
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.node(),
              "t1w": args.t1w.name, "threads_per_job": args.threads,
              "peak_rss_mb_at_finest": float(table[table.voxel_mm == min(args.voxel_mm)]
                                             .peak_rss_mb.max()),
              "every_peak_covered": bool(table.covered.all()),
              "rows": table.round(2).to_dict("records")}
    (args.out / "resources.json").write_text(json.dumps(result, indent=2))
    print(table.to_markdown(index=False, floatfmt=".2f"))
    print(f"finest input: peak {result['peak_rss_mb_at_finest']:.0f} MB per job (goal <= 4096); "
          f"declared mem_mb covers every peak: {result['every_peak_covered']}")
    if args.write:
        data = yaml.safe_load(args.write.read_text())
        for rule, group in table.groupby("rule"):
            mem_a, mem_b = refit(group, "peak_rss_mb")
            time_a, time_b = refit(group.assign(minutes=group.wall_s / 60.0), "minutes")
            data["rules"][rule].update(mem_a=mem_a, mem_b=mem_b, time_a=max(time_a, 1),
                                       time_b=time_b)
        data["measured"] = (f"{result['date']}: benchmarks/resources.py, {args.t1w.name} at "
                            f"{', '.join(f'{v:g}' for v in args.voxel_mm)} mm (T1w-space rules); "
                            "the other rules: tiny trial and 1 mm figures")
        header = "".join(line for line in args.write.read_text().splitlines(keepends=True)
                         if line.startswith("#"))
        args.write.write_text(header + yaml.safe_dump(data, sort_keys=False, width=100))
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Oblique storage against the streams' own run-to-run noise (issue 19, criterion 3).

One phantom session (the tiny trial's sub-001 baseline: 2.5 mm T1w/FLAIR, 4 mm DWI
and BOLD, manual lesion mask) goes through the whole pipeline four times, as four
subjects of one Snakemake run:

* ``ras``     -- the session stored RAS;
* ``obl``     -- the same voxels stored oblique (12 degrees: the head tilted in the
  scanner; every template registration starts 12 degrees from the template's pose);
* ``rescan1`` ... ``rescanN`` (``--rescans``, default 5) -- the same subject scanned
  again (``TrialSpec.rescan``: same anatomy, lesion and planted effects; new head pose,
  noise, bias fields and motion), stored RAS.

For every numeric feature it reports the oblique difference from RAS and the rescan
differences from RAS, in units of the 1 %/floor tolerance of the storage test
(``tests/workflow/test_storage_invariance.py``; settings shared through
``pipeline.simulate.invariance``). The run-to-run noise of a difference is the root
mean square of the N rescan differences; a feature is flagged "beyond noise" when its
oblique difference exceeds both the tolerance and twice that RMS (about two standard
deviations of the difference between two acquisitions). Two rescans, as the first
version ran, make a poor noise estimate (its RMS has about 1 degree of freedom per
rescan). JSON and a Markdown table go to --out; --docs also writes the table page.

    python benchmarks/storage_noise.py --out /tmp/storage_noise \
        --docs docs/validation/storage_noise.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SESSION = ("001", "baseline")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="work folder (must not exist)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--rescans", type=int, default=5, help="rescans of the session (>= 2)")
    parser.add_argument("--docs", help="also write the Markdown page here")
    args = parser.parse_args(argv)

    import numpy as np
    import pandas as pd
    import yaml

    from pipeline.features import dictionary
    from pipeline.simulate import TrialSpec, simulate_trial
    from pipeline.simulate.invariance import (
        EXACT,
        INVARIANCE_STORAGES,
        REGISTRATION_DEPENDENT,
        TINY_TRIAL,
        noise_floor,
    )
    from pipeline.simulate.storage import StorageSpec, one_session_dataset

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)
    t0 = time.perf_counter()
    roots = {}
    if args.rescans < 2:
        parser.error("--rescans must be at least 2")
    rescans = range(1, args.rescans + 1)
    for k in (0, *rescans):
        simulate_trial(out / f"trial{k}", TrialSpec(**TINY_TRIAL, rescan=k))
        roots[k] = out / f"trial{k}" / "bids"
    sources = {"ras": (roots[0], StorageSpec("RAS")), "obl": (roots[0], INVARIANCE_STORAGES["obl"]),
               **{f"rescan{k}": (roots[k], StorageSpec("RAS")) for k in rescans}}
    one_session_dataset(sources, *SESSION, out / "bids")
    config = {"bids_dir": str(out / "bids"), "output_dir": str(out / "derivatives"),
              "sessions": [SESSION[1]], "baseline_session": SESSION[1], **EXACT}
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                    "--directory", str(out / "run"), "--configfile", str(out / "config.yaml"),
                    "--cores", str(args.cores)], check=True, env=env, cwd=out)
    seconds = time.perf_counter() - t0
    table = pd.read_csv(out / "derivatives" / "features.tsv", sep="\t", na_values=["n/a"],
                        keep_default_na=False).set_index("participant_id")

    rows = []
    for column in table.columns:
        meta = dictionary.FEATURES.get(column)
        if (meta is None or meta["Stream"] not in ("anat", "lesion", "flair", "dwi", "bold")
                or not pd.api.types.is_numeric_dtype(table[column])):
            continue
        ras, obl = float(table.loc["sub-ras", column]), float(table.loc["sub-obl", column])
        values = np.array([float(table.loc[f"sub-rescan{k}", column]) for k in rescans])
        if np.isnan(ras) and np.isnan(obl):
            continue
        tol = max(0.01 * abs(ras), noise_floor(column))
        d_obl = abs(obl - ras) / tol
        d_res = np.abs(values[~np.isnan(values)] - ras) / tol
        rms = float(np.sqrt(np.mean(d_res ** 2))) if d_res.size else np.nan
        rows.append({"feature": column, "stream": meta["Stream"], "ras": ras, "oblique": obl,
                     "rescans": values.tolist(), "rescan_sd": float(np.nanstd(values, ddof=1)),
                     "tolerance": tol, "oblique_in_tolerances": d_obl,
                     "rescan_rms_in_tolerances": rms,
                     "rescan_max_in_tolerances": float(d_res.max()) if d_res.size else np.nan,
                     "registration_dependent": column.startswith(REGISTRATION_DEPENDENT),
                     "beyond_noise": bool(d_obl > 1 and not d_obl <= 2 * rms)})
    result = pd.DataFrame(rows)
    outside = result[result.oblique_in_tolerances > 1]
    beyond = result[result.beyond_noise]
    summary = {"features": len(result), "outside_tolerance": len(outside),
               "rescans": args.rescans,
               "outside_tolerance_within_2x_rescan_rms": int(len(outside) - len(beyond)),
               "beyond_noise": beyond.feature.tolist(), "wall_s": round(seconds, 1)}
    print(json.dumps(summary, indent=2))
    (out / "storage_noise.json").write_text(json.dumps({"summary": summary, "features": rows},
                                                       indent=1, default=float))
    page = _page(outside, summary)
    (out / "storage_noise.md").write_text(page)
    if args.docs:
        Path(args.docs).write_text(page)
    return 0


def _page(outside, summary) -> str:
    import numpy as np

    lines = [
        "# Oblique storage against run-to-run noise",
        "",
        "Produced by `benchmarks/storage_noise.py` (do not edit by hand). One phantom session "
        f"(tiny trial sub-001 baseline, 2.5 mm T1w) stored RAS and oblique 12 degrees, beside "
        f"{summary['rescans']} rescans of it (same anatomy; new pose, noise, bias, motion). "
        "Differences from RAS in units of the storage test's tolerance (1 % or the unit "
        "floor); the run-to-run noise of a difference is the RMS of the rescans' differences "
        "from RAS, and a feature is beyond noise when its oblique difference exceeds twice it.",
        "",
        f"{summary['features']} features; {summary['outside_tolerance']} move beyond the "
        f"tolerance with oblique storage; "
        f"{summary['outside_tolerance_within_2x_rescan_rms']} of those stay within twice the "
        "rescan RMS difference; beyond it: "
        + (", ".join(f"`{f}`" for f in summary["beyond_noise"]) or "none") + ".",
        "",
        "| feature | RAS | oblique | rescans (mean, SD) | oblique / tol | rescan RMS / tol "
        "| rescan max / tol |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in outside.itertuples():
        flag = " **beyond noise**" if r.beyond_noise else ""
        lines.append(f"| `{r.feature}` | {r.ras:.4g} | {r.oblique:.4g} | "
                     f"{np.nanmean(r.rescans):.4g}, {r.rescan_sd:.2g} | "
                     f"{r.oblique_in_tolerances:.2f}{flag} | {r.rescan_rms_in_tolerances:.2f} | "
                     f"{r.rescan_max_in_tolerances:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

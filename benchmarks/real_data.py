"""Real-data scorecard: every stream each real scan allows, in several storages.

    python benchmarks/real_data.py --data ../shared/realdata --out /tmp/realdata
    python benchmarks/real_data.py --data ../shared/realdata --out /tmp/rd --parts soop dwi

The folder is described by its ``MANIFEST.md`` (sources, licences, what truth
exists); nothing of it is copied into the repository. Without the folder the
script says so and exits 0 (a fresh clone has no real data).

Parts (``--parts``; default all):

* ``soop``: real manual lesion masks (SOOP, stored LAS): volume and side
  through the manual-mask reader against ``soop_masks.tsv`` (exact truth);
* ``dwi``: the real Siemens AP/PA pair (b=2500): the whole DWI stream
  (``pipeline.dwi.stream.preprocess``) against MRtrix3 ``dwi2tensor`` on the
  raw data: FA correlation inside a common brain mask, white-matter median FA
  (reference FA >= 0.2, and both maps' mean >= 0.2), volumes dropped, run time;
  the FA of AP against PA, corrected and not (eddy currents flip with the phase
  encoding: a correction brings them closer);
* ``dwi-planted``: real anatomy with known truth: the AP series' own tensor predicts a
  clean series, motion and eddy currents are planted (``still``: none), Rician noise at
  the real level; FA against the truth and the recovered maps against the planted
  ones, corrected and uncorrected (``real_data_dwi_planted.py``);
* ``dwi-sdc``: the same pair, each series with the other's b=0 as its reverse
  phase-encoding b=0 (susceptibility correction) and without: the b=0 pair's
  correlation as acquired and unwarped, and AP against PA (b=0 and FA) with and without
  the correction (no truth for the field exists; ``real_data_dwi_sdc.py``);
* ``isles``: the acute ISLES'22 DWI/ADC: the acute core (DWI-bright, ADC below
  620e-6 mm2/s) and the median ADC of each component;
* ``flair``: a real FLAIR (lesion status unknown; no T1w, so the FLAIR stands in
  for it): the automatic lesion is plausible or flagged, never above 150 mL unflagged;
* ``anat``: real T1w heads (chris_t1; Colin27 from Debian ``mricron-data``
  when installed): brain-mask volume, tissue volumes, GM fraction, mean and M1
  thickness, against published adult ranges (no per-scan truth exists);
* ``anat-fs``: MNE's FreeSurfer subject ``sample`` (``--mne-testing-data``, a checkout
  of mne-tools/mne-testing-data): cerebral cortex and white-matter volumes against
  FreeSurfer's aseg, with and without the grey/white partial-volume step
  (``real_data_anat_fs.py``); skipped without the checkout;

Every part runs each scan as stored, re-stored RAS and with its x axis
flipped (same anatomy); duplicates (a RAS file is its own RAS re-storage) run
once. A metric that changes with storage beyond 1 % (or its absolute floor)
is flagged. Writes ``scorecard.json`` and ``scorecard.md``; run it alone on
an idle machine (the anatomy part takes about 5 minutes per run at 1 mm).

The parts live beside this script: ``real_data_lesion.py`` (soop, isles,
flair), ``real_data_dwi.py``, ``real_data_anat.py``; the storage variants and
timing are in ``real_data_common.py``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import pandas as pd
from real_data_anat import COLIN, part_anat
from real_data_anat_fs import part_anat_fs
from real_data_dwi import part_dwi
from real_data_dwi_planted import part_dwi_planted
from real_data_dwi_sdc import part_dwi_sdc
from real_data_lesion import part_flair, part_isles, part_soop

log = logging.getLogger("real_data")
PARTS = ["soop", "isles", "flair", "dwi", "dwi-planted", "dwi-sdc", "anat", "anat-fs"]


# --- storage flags, output -------------------------------------------------------------

FLOORS = {"mm": 0.05, "ml": 0.5, "fa": 0.005, "fraction": 0.01}


def storage_flags(rows: list[dict]) -> list[str]:
    """Metrics that change with storage beyond 1 % or their floor, per scan (and per
    correction, where a part compares corrected and uncorrected runs)."""
    flags = []
    frame = pd.DataFrame([r for r in rows if " vs " not in r["storage"]])
    if "correction" not in frame:
        frame["correction"] = ""
    frame["correction"] = frame["correction"].fillna("")
    for (part, scan, _), group in frame.groupby(["part", "scan", "correction"]):
        for column in group.columns:
            if column in ("part", "scan", "storage", "correction", "pass", "wall_s", "cpu_s") or \
                    not pd.api.types.is_numeric_dtype(group[column]):
                continue
            values = group[column].dropna().astype(float)
            if len(values) < 2:
                continue
            floor = next((v for k, v in FLOORS.items() if k in column.lower()), 0.0)
            spread = float(values.max() - values.min())
            if spread > max(0.01 * float(values.abs().max()), floor):
                flags.append(f"{part} {scan}: {column} changes with storage "
                             f"({values.min():.4g} .. {values.max():.4g})")
    return flags


def markdown(rows: list[dict], flags: list[str]) -> str:
    lines = ["# Real-data scorecard", "",
             f"{time.strftime('%Y-%m-%d')}, {platform.node()}: `benchmarks/real_data.py`.", ""]
    for part, group in pd.DataFrame(rows).groupby("part", sort=False):
        group = group.dropna(axis=1, how="all").drop(columns="part")
        lines += [f"## {part}", "", group.to_markdown(index=False, floatfmt=".4g"), ""]
    lines += ["## Storage flags", ""] + ([f"- {f}" for f in flags] or ["none"]) + [""]
    return "\n".join(lines)


def _sections(page: str) -> dict[str, str]:
    """``## name`` -> its text (the header before the first section under "")."""
    out, name = {"": []}, ""
    for line in page.splitlines():
        if line.startswith("## "):
            name = line[3:].strip()
            out[name] = []
        out[name].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def merge_page(old: str, new: str, parts: list[str]) -> str:
    """The scorecard page ``old`` with the sections of ``parts`` (and their storage flags)
    taken from ``new``: a run of some parts updates the page without dropping the rest;
    the header says which parts were run when."""
    before, after = _sections(old), _sections(new)
    merged = {k: v for k, v in before.items() if k not in ("", "Storage flags")}
    for name in parts:
        if name in after:
            merged[name] = after[name]
    flags = [line for line in before.get("Storage flags", "").splitlines()[1:]
             if line.startswith("- ") and line[2:].split(" ")[0] not in parts]
    flags += [line for line in after.get("Storage flags", "").splitlines()[1:]
              if line.startswith("- ")]
    # one dated line per set of parts: a rerun replaces its line, it does not add one
    stamp = f"Parts {', '.join(parts)}: "
    kept = [block for block in before[""].rstrip().split("\n\n") if not block.startswith(stamp)]
    header = "\n\n".join(kept) + f"\n\n{stamp}{time.strftime('%Y-%m-%d')}.\n"
    body = [merged[k].rstrip() + "\n" for k in merged]
    return "\n".join([header, *body, "## Storage flags\n\n" + ("\n".join(flags) or "none") + "\n"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the real-data folder (MANIFEST.md)")
    parser.add_argument("--out", type=Path, required=True, help="work and output folder")
    parser.add_argument("--parts", nargs="+",
                        default=PARTS, choices=PARTS)
    parser.add_argument("--threads", type=int, default=2, help="ITK threads per step")
    parser.add_argument("--colin", type=Path, default=COLIN, help="Colin27 T1 (mricron-data)")
    parser.add_argument("--mne-testing-data", type=Path,
                        help="anat-fs: a checkout of github.com/mne-tools/mne-testing-data (or a "
                             "folder with its subjects/sample/mri brain.mgz and aseg.mgz)")
    parser.add_argument("--docs", type=Path,
                        help="also write the scorecard page here (docs/validation/real_data.md)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not (args.data / "MANIFEST.md").exists():
        print(f"{args.data}: no real-data folder (MANIFEST.md); nothing to score")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    parts = {"soop": lambda: part_soop(args.data, args.out),
             "dwi": lambda: part_dwi(args.data, args.out, args.threads),
             "dwi-planted": lambda: part_dwi_planted(args.data, args.out, args.threads),
             "dwi-sdc": lambda: part_dwi_sdc(args.data, args.out, args.threads),
             "anat": lambda: part_anat(args.data, args.out, args.threads, args.colin),
             "anat-fs": lambda: part_anat_fs(args.mne_testing_data, args.out, args.threads),
             "isles": lambda: part_isles(args.data, args.out),
             "flair": lambda: part_flair(args.data, args.out, args.threads)}
    for name in args.parts:
        log.info("part %s", name)
        rows += parts[name]()
    flags = storage_flags(rows)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.node(),
              "data": str(args.data), "rows": rows, "storage_flags": flags}
    (args.out / "scorecard.json").write_text(json.dumps(result, indent=2, default=float))
    (args.out / "scorecard.md").write_text(markdown(rows, flags))
    if args.docs:
        args.docs.parent.mkdir(parents=True, exist_ok=True)
        page = markdown(rows, flags)
        if args.docs.exists() and set(args.parts) != set(parts):
            page = merge_page(args.docs.read_text(), page, args.parts)
        args.docs.write_text(page)
    print(markdown(rows, flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())

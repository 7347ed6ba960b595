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
  (reference FA >= 0.2), volumes dropped, run time;
* ``isles``: the acute ISLES'22 DWI/ADC: the acute core (DWI-bright, ADC below
  620e-6 mm2/s) and the median ADC of each component;
* ``flair``: a real FLAIR (lesion status unknown; no T1w, so the FLAIR stands in
  for it): the automatic lesion is plausible or flagged, never above 150 mL unflagged;
* ``anat``: real T1w heads (chris_t1; Colin27 from Debian ``mricron-data``
  when installed): brain-mask volume, tissue volumes, GM fraction, mean and M1
  thickness, against published adult ranges (no per-scan truth exists);

Every part runs each scan as stored, re-stored RAS and with its x axis
flipped (same anatomy); duplicates (a RAS file is its own RAS re-storage) run
once. A metric that changes with storage beyond 1 % (or its absolute floor)
is flagged. Writes ``scorecard.json`` and ``scorecard.md``; run it alone on
an idle machine (the anatomy part takes about 5 minutes per run at 1 mm).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline.orientation import read_image
from pipeline.simulate.storage import StorageSpec, restore_bvecs, restore_image

log = logging.getLogger("real_data")
COLIN = Path("/usr/share/mricron/templates/ch2better.nii.gz")
# published adult ranges (healthy adults, FreeSurfer-like definitions) for the anatomy part
RANGES = {"thickness_mean_mm": (2.3, 2.8), "gm_fraction_of_brain": (0.40, 0.60),
          "thickness_m1_mm": (2.2, 2.9), "brain_volume_ml": (950.0, 1500.0)}


def _flip_x(codes: str) -> str:
    return {"L": "R", "R": "L"}[codes[0]] + codes[1:]


def storages_of(path) -> dict[str, StorageSpec | None]:
    """{label: spec} of the runs of one file: as stored (None: the file itself), re-stored
    RAS and x-flipped; a storage reached twice (a LAS file flipped in x is RAS) runs once."""
    codes = "".join(nib.aff2axcodes(nib.load(str(path)).affine))
    names: dict[str, list[str]] = {codes: [f"stored {codes}"]}
    for label, name in (("re-stored RAS", "RAS"), ("x-flipped", _flip_x(codes))):
        names.setdefault(name, []).append(label)
    out: dict = {}
    for name, labels in names.items():
        label = " = ".join(labels) + ("" if labels[0].startswith("stored") else f" ({name})")
        if name == codes:
            out[label] = None
            continue
        try:
            out[label] = StorageSpec(name)
        except ValueError:
            log.warning("%s: storage %s not supported by the re-storing helper; skipped", path, name)
    return out


def variant(path, spec, work: Path, label: str) -> Path:
    """The file as ``spec`` stores it (the file itself for None), .bvec beside it."""
    if spec is None:
        return Path(path)
    tag = label.split()[0].replace("-", "") + "".join(c for c in label if c.isupper())
    dst = work / f"{tag}_{Path(path).name}"
    restore_image(path, dst, spec)
    bvec = Path(str(path).replace(".nii.gz", ".bvec"))
    if bvec.exists():
        restore_bvecs(bvec, path, str(dst).replace(".nii.gz", ".bvec"), spec)
        shutil.copyfile(str(path).replace(".nii.gz", ".bval"), str(dst).replace(".nii.gz", ".bval"))
        for side in (".json",):
            src = Path(str(path).replace(".nii.gz", side))
            if src.exists():
                shutil.copyfile(src, str(dst).replace(".nii.gz", side))
    return dst


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def _timed(func, *args, **kwargs):
    start, cpu = time.perf_counter(), _cpu()
    out = func(*args, **kwargs)
    return out, {"wall_s": round(time.perf_counter() - start, 1), "cpu_s": round(_cpu() - cpu, 1)}


# --- SOOP manual masks ---------------------------------------------------------------

def part_soop(data: Path, work: Path) -> list[dict]:
    from pipeline.lesion.manual import read_manual_mask
    from pipeline.lesion.measures import volume_features

    truth = pd.read_csv(data / "lesion" / "soop_masks.tsv", sep="\t")
    rows = []
    for item in truth.itertuples():
        path = data / "lesion" / f"bwsr{item.participant_id}_lesion.nii.gz"
        # no T1w exists: the mask's own grid (as stored, canonical) is the reference, and the
        # masks are in a standard space, so template x is world x (identity map)
        reference = read_image(path, what="reference grid")
        for label, spec in storages_of(path).items():
            mask = read_manual_mask(variant(path, spec, work, label), reference)
            metrics = volume_features(mask.mask, reference, np.eye(4))
            rows.append({"part": "soop", "scan": item.participant_id, "storage": label,
                         "voxels": int(mask.mask.sum()), "truth_voxels": int(item.voxels),
                         "lesion_volume_ml": metrics["lesion_volume_ml"],
                         "truth_volume_ml": float(item.volume_ml),
                         "side": metrics["lesion_side_session"], "truth_side": item.side,
                         "pass": bool(int(mask.mask.sum()) == item.voxels
                                      and metrics["lesion_side_session"] == item.side)})
    return rows


# --- DWI against MRtrix3 ---------------------------------------------------------------

def crop_of(img: nib.Nifti1Image, affine: np.ndarray, shape) -> nib.Nifti1Image:
    """``img`` resampled (nearest) on the grid (``affine``, ``shape``): the DWI stream
    crops its grid, the reference is on the full one."""
    from nilearn.image import resample_img

    return resample_img(img, target_affine=affine, target_shape=tuple(shape[:3]),
                        interpolation="nearest", force_resample=True, copy_header=True)

def _mrtrix(dwi: Path, work: Path) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    """MRtrix3 FA and brain mask of the raw series (canonical grid)."""
    if not shutil.which("dwi2tensor"):
        raise SystemExit("MRtrix3 is not on PATH (Debian: apt-get install mrtrix3)")
    stem = str(dwi).replace(".nii.gz", "")
    grad = ["-fslgrad", stem + ".bvec", stem + ".bval"]
    mask, tensor, fa = work / "mrtrix_mask.nii.gz", work / "mrtrix_dt.nii.gz", work / "mrtrix_fa.nii.gz"
    for cmd in (["dwi2mask", str(dwi), str(mask), *grad],
                ["dwi2tensor", str(dwi), str(tensor), *grad, "-mask", str(mask)],
                ["tensor2metric", str(tensor), "-fa", str(fa)]):
        subprocess.run([*cmd, "-force", "-quiet", "-nthreads", "1"], check=True)
    # tensor2metric leaves NaN where the fit is degenerate (a voxel or two at the mask
    # edge): those voxels are 0 here, as they would be outside the mask
    raw = nib.load(str(fa))
    values = np.asarray(raw.dataobj, dtype=np.float32)
    if not np.isfinite(values).all():
        log.info("MRtrix FA: %d non-finite voxels set to 0", int((~np.isfinite(values)).sum()))
        nib.save(nib.Nifti1Image(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0),
                                 raw.affine, raw.header), str(fa))
    return read_image(fa, what="MRtrix FA"), read_image(mask, what="MRtrix mask")


def part_dwi(data: Path, work: Path, threads: int) -> list[dict]:
    from pipeline.dwi.gradients import load_dwi
    from pipeline.dwi.stream import PreprocOptions, preprocess

    rows = []
    for name in ("AP", "PA"):
        path = data / "dwi" / f"dwiprep_DWI_dir80_{name}.nii.gz"
        (work / f"mrtrix_{name}").mkdir(parents=True, exist_ok=True)
        ref_fa, ref_mask = _mrtrix(path, work / f"mrtrix_{name}")
        fa_runs = {}
        for label, spec in storages_of(path).items():
            src = variant(path, spec, work, label)
            dwi = load_dwi(src, str(src).replace(".nii.gz", ".bval"), str(src).replace(".nii.gz", ".bvec"))
            res, cost = _timed(preprocess, dwi, PreprocOptions.from_schema(threads=threads))
            fa = crop_of(ref_fa, res.affine, res.tensor.fa.shape)
            ref = np.asarray(fa.dataobj)
            ref_brain = np.asarray(crop_of(ref_mask, res.affine, res.mask.shape).dataobj) > 0
            ours = res.tensor.fa
            common = res.mask & ref_brain
            wm = common & (ref >= 0.2)
            r = float(np.corrcoef(ours[common], ref[common])[0, 1])
            fa_runs[label] = (ours, res.affine)
            median, median_ref = float(np.median(ours[wm])), float(np.median(ref[wm]))
            rows.append({"part": "dwi", "scan": name, "storage": label,
                         "fa_r_vs_mrtrix": round(r, 4), "wm_median_fa": round(median, 4),
                         "wm_median_fa_mrtrix": round(median_ref, 4),
                         "wm_median_fa_diff_percent": round(100 * (median / median_ref - 1), 2),
                         # volumes left out of the final tensor fit (outliers, refit)
                         "volumes_dropped": int(res.metrics["dwi_outlier_volumes"]
                                                if res.metrics["dwi_tensor_refit_without_outliers"]
                                                else 0),
                         "mask_dice_vs_mrtrix": round(float(2 * common.sum() / (
                             res.mask.sum() + ref_brain.sum())), 3),
                         **cost,
                         "pass": bool(r >= 0.95 and abs(median / median_ref - 1) <= 0.05)})
        (first, first_affine), *others = fa_runs.values()
        for label, (fa, affine) in list(fa_runs.items())[1:]:
            same = crop_of(nib.Nifti1Image(fa, affine), first_affine, first.shape)
            r = float(np.corrcoef(first.ravel(), np.asarray(same.dataobj).ravel())[0, 1])
            rows.append({"part": "dwi", "scan": name, "storage": f"{label} vs stored",
                         "fa_r_between_storages": round(r, 6), "pass": bool(r >= 0.999)})
    return rows


# --- anatomy on real T1w heads ---------------------------------------------------------

def _anat_run(t1w: Path, work: Path, threads: int) -> dict:
    """anat-preproc -> anat-register -> anat-segment -> anat-thickness (no lesion)."""
    from pipeline.cli import main as resstore
    from pipeline.io import read_json, write_json

    work.mkdir(parents=True, exist_ok=True)
    f = {k: str(work / v) for k, v in dict(
        preproc="preproc.nii.gz", mask="mask.nii.gz", xfm="affine.mat", m0="m0.json",
        g0="g0.png", lesion="lesion.nii.gz", side="side.json", mni="mni_to_t1w.h5",
        t1mni="t1w_to_mni.h5", atlas="atlas.nii.gz", dk="dk.nii.gz", m1="m1.json", g1="g1.png",
        brain="brain.nii.gz", dseg="dseg.nii.gz", prob="probseg.nii.gz", m2="m2.json",
        g2="g2.png", thick="thick.nii.gz", table="thick.tsv", m3="m3.json", g3="g3.png").items()}

    def run(*args):
        code = resstore([*args, "--threads", str(threads)])
        if code:
            raise RuntimeError(f"resstore {args[0]} failed ({code})")

    run("anat-preproc", "--t1w", str(t1w), "--out-preproc", f["preproc"], "--out-mask", f["mask"],
        "--out-xfm", f["xfm"], "--out-metrics", f["m0"], "--out-figure", f["g0"])
    preproc = read_image(f["preproc"], what="T1w")
    nib.save(nib.Nifti1Image(np.zeros(preproc.shape, np.uint8), preproc.affine), f["lesion"])
    write_json(f["side"], {"lesion_side": "none", "source": "no lesion (healthy real T1w)"})
    run("anat-register", "--t1w-preproc", f["preproc"], "--brain-mask", f["mask"],
        "--lesion-mask", f["lesion"], "--out-mni-to-t1w", f["mni"], "--out-t1w-to-mni", f["t1mni"],
        "--out-atlas", f["atlas"], "--out-dk", f["dk"], "--out-metrics", f["m1"],
        "--out-figure", f["g1"])
    run("anat-segment", "--t1w-preproc", f["preproc"], "--mni-to-t1w", f["mni"],
        "--lesion-mask", f["lesion"], "--out-mask", f["brain"], "--out-dseg", f["dseg"],
        "--out-probseg", f["prob"], "--out-metrics", f["m2"], "--out-figure", f["g2"])
    run("anat-thickness", "--t1w-preproc", f["preproc"], "--dseg", f["dseg"], "--probseg", f["prob"],
        "--atlas", f["atlas"], "--dk", f["dk"], "--lesion-side", f["side"],
        "--out-thickness", f["thick"], "--out-table", f["table"], "--out-metrics", f["m3"],
        "--out-figure", f["g3"])
    metrics = {}
    for key in ("m0", "m1", "m2", "m3"):
        metrics.update(read_json(f[key]))
    return metrics


def part_anat(data: Path, work: Path, threads: int, colin: Path) -> list[dict]:
    scans = {"chris_t1": data / "anat" / "chris_t1.nii.gz"}
    if colin.exists():
        scans["colin27"] = colin
    rows = []
    for name, path in scans.items():
        for label, spec in storages_of(path).items():
            src = variant(path, spec, work, label)
            metrics, cost = _timed(_anat_run, src, work / f"anat_{name}_{label.split()[0]}", threads)
            gm, wm = metrics.get("gm_volume_ml"), metrics.get("wm_volume_ml")
            row = {"part": "anat", "scan": name, "storage": label,
                   "brain_volume_ml": metrics.get("brain_volume_ml"),
                   "gm_volume_ml": gm, "wm_volume_ml": wm, "csf_volume_ml": metrics.get("csf_volume_ml"),
                   "gm_fraction_of_brain": gm / (gm + wm) if gm and wm else None,
                   "thickness_mean_mm": metrics.get("thickness_mean_mm"),
                   "thickness_m1_mm": np.nanmean([metrics.get("thickness_m1_left_mm", np.nan),
                                                  metrics.get("thickness_m1_right_mm", np.nan)]),
                   "mni_registration_brain_dice": metrics.get("mni_registration_brain_dice"),
                   **cost}
            row["outside_published_range"] = [k for k, (lo, hi) in RANGES.items()
                                              if row.get(k) is not None and not lo <= row[k] <= hi]
            row["pass"] = not row["outside_published_range"]
            rows.append(row)
    return rows


# --- lesions: acute DWI/ADC (ISLES'22) and a real FLAIR ---------------------------------

def part_isles(data: Path, work: Path) -> list[dict]:
    """The acute core (DWI-bright and ADC below 620e-6 mm2/s) of the ISLES'22 case."""
    from pipeline.lesion.acute import (
        ADC_THRESHOLD,
        acute_core,
        adc_in_mm2_s,
        component_adc,
        diffusion_brain_mask,
    )

    rows = []
    dwi_path = data / "lesion" / "isles22_case0001_dwi.nii.gz"
    adc_path = data / "lesion" / "isles22_case0001_adc.nii.gz"
    for label, spec in storages_of(dwi_path).items():
        dwi = read_image(variant(dwi_path, spec, work, label), what="trace DWI")
        adc, _ = adc_in_mm2_s(np.asarray(read_image(variant(adc_path, spec, work, label),
                                                    what="ADC").dataobj))
        trace = np.asarray(dwi.dataobj)
        voxel_ml = float(abs(np.linalg.det(dwi.affine[:3, :3]))) / 1000
        brain = diffusion_brain_mask(trace, adc)
        core, bright = acute_core(trace, adc, brain, voxel_ml=voxel_ml)
        parts = component_adc(core, adc, voxel_ml)
        left = float(sum(core[tuple(ijk)] for ijk in np.argwhere(core)
                         if nib.affines.apply_affine(dwi.affine, ijk)[0] < 0) * voxel_ml)
        large = [c for c in parts if c["volume_ml"] > 1.0]
        rows.append({"part": "isles", "scan": "isles22_case0001", "storage": label,
                     "core_volume_ml": round(float(core.sum() * voxel_ml), 3),
                     "core_left_ml": round(left, 3),
                     "dwi_bright_volume_ml": round(float(bright.sum() * voxel_ml), 2),
                     "n_components": len(parts),
                     "largest_component_ml": round(parts[0]["volume_ml"], 3) if parts else 0.0,
                     "max_component_median_adc_um2_ms": round(
                         max((c["median_adc_mm2_s"] for c in parts), default=0.0) * 1e3, 3),
                     "pass": all(c["median_adc_mm2_s"] < ADC_THRESHOLD for c in large)})
    return rows


def part_flair(data: Path, work: Path, threads: int) -> list[dict]:
    """The automatic FLAIR lesion of a real FLAIR (lesion status unknown).

    No T1w exists for this FLAIR, so the FLAIR also stands in for the T1w: an
    input the method was not built for. The criterion is that the result is
    plausible or flagged (``needs_review``), never a large lesion passed on.
    """
    from pipeline.cli import main as resstore
    from pipeline.io import read_json

    path = data / "flair" / "niivue_FLAIR.nii.gz"
    rows = []
    for label, spec in storages_of(path).items():
        src = variant(path, spec, work, label)
        out = work / f"flair_{label.split()[0]}"
        out.mkdir(parents=True, exist_ok=True)
        f = {k: str(out / v) for k, v in dict(preproc="preproc.nii.gz", mask="mask.nii.gz",
                                             xfm="affine.mat", m0="m0.json", g0="g0.png",
                                             lesion="lesion.nii.gz", m1="lesion.json",
                                             g1="lesion.png").items()}
        codes = [resstore(["anat-preproc", "--t1w", str(src), "--out-preproc", f["preproc"],
                           "--out-mask", f["mask"], "--out-xfm", f["xfm"], "--out-metrics", f["m0"],
                           "--out-figure", f["g0"], "--threads", str(threads)]),
                 resstore(["lesion-segment", "--t1w", f["preproc"], "--t1w-raw", str(src),
                           "--brain-mask", f["mask"], "--xfm", f["xfm"], "--flair", str(src),
                           "--is-baseline", "--out-mask", f["lesion"], "--out-metrics", f["m1"],
                           "--out-figure", f["g1"], "--threads", str(threads)])]
        if any(codes):
            rows.append({"part": "flair", "scan": "niivue_FLAIR", "storage": label,
                         "error": f"exit codes {codes}", "pass": False})
            continue
        metrics = read_json(f["m1"])
        volume = metrics.get("lesion_volume_ml") or 0.0
        flagged = str(metrics.get("lesion_status", "ok")).startswith("needs_review")
        rows.append({"part": "flair", "scan": "niivue_FLAIR", "storage": label,
                     "lesion_volume_ml": round(volume, 2),
                     "side": metrics.get("lesion_side_session"),
                     "plausibility": metrics.get("lesion_plausibility"),
                     "status": metrics.get("lesion_status", "ok"),
                     "pass": bool(flagged or (metrics.get("lesion_plausibility") == "plausible"
                                              and volume <= 150.0))})
    return rows


# --- storage flags, output -------------------------------------------------------------

FLOORS = {"mm": 0.05, "ml": 0.5, "fa": 0.005, "fraction": 0.01}


def storage_flags(rows: list[dict]) -> list[str]:
    """Metrics that change with storage beyond 1 % or their floor, per scan."""
    flags = []
    frame = pd.DataFrame([r for r in rows if " vs " not in r["storage"]])
    for (part, scan), group in frame.groupby(["part", "scan"]):
        for column in group.columns:
            if column in ("part", "scan", "storage", "pass", "wall_s", "cpu_s") or \
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the real-data folder (MANIFEST.md)")
    parser.add_argument("--out", type=Path, required=True, help="work and output folder")
    parser.add_argument("--parts", nargs="+", default=["soop", "isles", "flair", "dwi", "anat"],
                        choices=["soop", "isles", "flair", "dwi", "anat"])
    parser.add_argument("--threads", type=int, default=2, help="ITK threads per step")
    parser.add_argument("--colin", type=Path, default=COLIN, help="Colin27 T1 (mricron-data)")
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
             "anat": lambda: part_anat(args.data, args.out, args.threads, args.colin),
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
        args.docs.write_text(markdown(rows, flags))
    print(markdown(rows, flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers of the real-data scorecard (``benchmarks/real_data.py``) shared by its parts.

A scan's storage variants (as stored, re-stored RAS, x-flipped: the same
anatomy) and the wall and CPU time of a step.
"""

from __future__ import annotations

import logging
import resource
import shutil
import time
from pathlib import Path

import nibabel as nib

from pipeline.simulate.storage import StorageSpec, restore_bvecs, restore_image

log = logging.getLogger("real_data")


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
    """CPU seconds (user + system) of this process and its finished children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def timed(func, *args, **kwargs):
    """``func(*args, **kwargs)`` and ``{"wall_s", "cpu_s"}`` of the call (children included)."""
    start, cpu = time.perf_counter(), _cpu()
    out = func(*args, **kwargs)
    return out, {"wall_s": round(time.perf_counter() - start, 1), "cpu_s": round(_cpu() - cpu, 1)}

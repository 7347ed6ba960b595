"""Resources of the heavy rules from the input's size (``workflow/resources.yaml``).

Each rule's ``mem_mb`` and ``runtime`` are ``a + b x Mvoxels`` of the session's input
image (all volumes), times the SLURM attempt. A T1w finer than ``anat.max_voxel_mm`` is
counted on its working grid (:func:`pipeline.orientation.working_grid`), where every
T1w-space rule runs. The coefficients are measured by ``benchmarks/resources.py``.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import yaml

MODEL_FILE = Path(__file__).resolve().parents[1] / "workflow" / "resources.yaml"


def load_model(path=MODEL_FILE) -> dict:
    """``{rule: {image, mem_a, mem_b, time_a, time_b}}``."""
    with open(path) as handle:
        return yaml.safe_load(handle)["rules"]


def mvoxels(path, max_voxel_mm: float | None = None) -> float:
    """Million voxels (all volumes) of an image from its header; with ``max_voxel_mm``,
    of the working grid a finer image is resampled to (0 for no path)."""
    if not path:
        return 0.0
    header = nib.load(str(path)).header
    count = float(np.prod(header.get_data_shape()))
    zooms = np.asarray(header.get_zooms()[:3], dtype=float)
    if max_voxel_mm and zooms.min() < max_voxel_mm - 1e-3:
        count *= float(np.prod(zooms)) / max_voxel_mm**3
    return count / 1e6


def declared(entry: dict, size_mvoxels: float, attempt: int = 1) -> tuple[int, int]:
    """(mem_mb, runtime minutes) a rule asks for at this input size and attempt."""
    mem = int((entry["mem_a"] + entry["mem_b"] * size_mvoxels) * attempt)
    runtime = int((entry["time_a"] + entry["time_b"] * size_mvoxels) * attempt) + 1
    return mem, runtime

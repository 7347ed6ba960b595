"""Input checks of a BOLD run: 4D image, TR, events, dummy scans and slice timing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline import validate
from pipeline.errors import PipelineInputError
from pipeline.orientation import Storage, read_image_storage


@dataclass
class BoldRun:
    """A checked BOLD run.

    Attributes
    ----------
    image : nibabel.Nifti1Image
        4D float32 series on its canonical grid (dummy scans still included).
    events : pandas.DataFrame
        ``onset``, ``duration`` (s, from the first volume after the dummy scans), ``trial_type``.
    tr_s : float
        Repetition time (s) from the JSON sidecar (agrees with the header).
    n_dummy : int
        Leading non-steady-state volumes kept in the file.
    slice_timing_s : ndarray or None
        Acquisition time (s) of each slice along ``slice_axis``, if given.
    metadata : dict
        The sidecar (BIDS inheritance applied).
    slice_axis : int
        Voxel axis of the canonical image along which slices were acquired.
    storage : Storage or None
        How the file was stored (:mod:`pipeline.orientation`).
    """

    image: nib.Nifti1Image
    events: pd.DataFrame
    tr_s: float
    n_dummy: int
    slice_timing_s: np.ndarray | None
    metadata: dict
    slice_axis: int = 2
    storage: Storage | None = None


def _entities(name: str) -> tuple[dict, str]:
    stem = name.split(".")[0]
    parts = stem.split("_")
    entities = dict(p.split("-", 1) for p in parts[:-1] if "-" in p)
    return entities, parts[-1]


def bold_metadata(bold_path) -> dict:
    """The BOLD file's JSON metadata with BIDS inheritance.

    Sidecars named with a subset of the file's entities and the ``bold``
    suffix, from the dataset root (the first parent holding
    ``dataset_description.json``) down to the file's folder; deeper files
    override shallower ones.
    """
    bold_path = Path(bold_path)
    entities, suffix = _entities(bold_path.name)
    folders = [bold_path.parent, *bold_path.parent.parents]
    chain = []
    for folder in folders:
        chain.append(folder)
        if (folder / "dataset_description.json").exists():
            break
    metadata: dict = {}
    for folder in reversed(chain):
        for candidate in sorted(folder.glob(f"*_{suffix}.json")):
            cand_entities, _ = _entities(candidate.name)
            if all(entities.get(k) == v for k, v in cand_entities.items()):
                try:
                    metadata.update(json.loads(candidate.read_text()))
                except json.JSONDecodeError as exc:
                    raise PipelineInputError(candidate, f"is not valid JSON ({exc})") from exc
    return metadata


def load_bold_run(bold_path, events_path, *, metadata: dict | None = None,
                  dummy_scans: int | None = None) -> BoldRun:
    """Full checks of a BOLD run and its events; each failure is a named error.

    Parameters
    ----------
    bold_path, events_path : path-like
    metadata : dict, optional
        Sidecar metadata (default: :func:`bold_metadata` of ``bold_path``).
    dummy_scans : int or None
        Leading volumes to discard; None takes the sidecar's ``DummyScans``
        (volumes kept in the file before steady state; 0 if absent).

    Raises
    ------
    PipelineInputError
        3D image, missing/incomplete events, no RepetitionTime, TR disagreeing
        with the header (:func:`pipeline.validate.check_bold`); NaN voxels;
        SliceTiming of the wrong length or outside [0, TR); too many dummy scans.
    """
    metadata = bold_metadata(bold_path) if metadata is None else metadata
    tr_s = validate.check_bold(bold_path, events_path, metadata)
    image, storage = read_image_storage(bold_path, ndim=(4,), what="BOLD")
    events = validate.read_events(events_path)
    n_volumes = image.shape[3]
    n_dummy = int(metadata.get("DummyScans", 0) if dummy_scans is None else dummy_scans)
    if not 0 <= n_dummy <= n_volumes - 10:
        raise PipelineInputError(
            bold_path, f"{n_dummy} dummy scans leave fewer than 10 of {n_volumes} volumes")
    slice_timing = metadata.get("SliceTiming")
    slice_axis = 2
    if slice_timing is not None:
        direction = str(metadata.get("SliceEncodingDirection", "k"))
        try:
            # BIDS: SliceTiming is listed along the stored slice axis, in the order of
            # SliceEncodingDirection ("k-": the last stored slice first)
            stored = list(slice_timing)[::-1] if direction.endswith("-") else list(slice_timing)
            axis_code, timing = storage.slice_timing(stored, direction[0])
        except (ValueError, IndexError) as exc:
            raise PipelineInputError(
                bold_path, f"SliceEncodingDirection {direction!r} is not a BIDS axis (i, j, k, "
                "optionally with -)") from exc
        slice_axis = "ijk".index(axis_code)
        slice_timing = np.asarray(timing, dtype=float)
        if slice_timing.size != image.shape[slice_axis]:
            raise PipelineInputError(
                bold_path, f"SliceTiming has {slice_timing.size} entries but the image has "
                f"{image.shape[slice_axis]} slices along {direction}")
        if slice_timing.min() < 0 or slice_timing.max() >= tr_s:
            raise PipelineInputError(bold_path, f"SliceTiming values must lie in [0, TR={tr_s:g} s)")
    return BoldRun(image, events, tr_s, n_dummy, slice_timing, metadata, slice_axis, storage)

"""Loading and saving, in one place: every derivative gets a JSON sidecar.

Writes are atomic (temporary file, then rename) so an interrupted job never
leaves a half-written file that looks complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np

from pipeline import PIPELINE_NAME, __version__


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj)}")


@contextmanager
def private_tempdir(prefix: str = "resstore-"):
    """Point :mod:`tempfile`'s default directory at a private one, removed on exit.

    ANTsPy names the files of every registration (transforms) and Atropos run
    (priors, posteriors) with ``tempfile.mktemp()`` and never deletes them: DWI
    motion correction left one ``tmp*0GenericAffine.mat`` per volume in the
    system temporary directory, and a development machine had 10 000 of them.
    Every ``resstore`` command runs inside this context; the private directory
    lives under ``$TMPDIR`` (the node-local scratch on a SLURM cluster).
    Yields the private directory's path.
    """
    saved = tempfile.tempdir
    with tempfile.TemporaryDirectory(prefix=prefix) as private:
        tempfile.tempdir = private
        try:
            yield Path(private)
        finally:
            tempfile.tempdir = saved


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path, data) -> None:
    """Write ``data`` as indented JSON, NaN written as null."""
    text = json.dumps(_nan_to_none(data), indent=2, sort_keys=True, default=_json_default)
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text + "\n"))


def _nan_to_none(obj):
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, float | np.floating) and not np.isfinite(obj):
        return None
    return obj


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())


def sidecar_path(path) -> Path:
    """``x.nii.gz`` -> ``x.json`` (BIDS sidecar of a derivative)."""
    name = Path(path).name
    for ext in (".nii.gz", ".nii", ".tsv", ".png", ".svg", ".mat", ".h5"):
        if name.endswith(ext):
            return Path(path).with_name(name[: -len(ext)] + ".json")
    return Path(str(path) + ".json")


@lru_cache(maxsize=256)
def _dataset_root(folder: str) -> tuple[str, str] | None:
    """(root, DatasetType) of the BIDS dataset holding ``folder``, else None."""
    for candidate in (Path(folder), *Path(folder).parents):
        description = candidate / "dataset_description.json"
        if description.is_file():
            try:
                kind = json.loads(description.read_text()).get("DatasetType", "raw")
            except (OSError, ValueError):
                kind = "raw"
            return str(candidate), kind
    return None


def bids_uri(path) -> str:
    """A source as a BIDS URI relative to its dataset, never a path of this machine.

    ``bids:raw:sub-01/...`` for a file of the raw dataset (``DatasetLinks.raw`` in
    the derivatives' ``dataset_description.json`` says where it is), ``bids::...``
    for a file of these derivatives, the file name alone for anything else.
    """
    path = Path(path).absolute()
    found = _dataset_root(str(path.parent))
    if found is None:
        return path.name
    root, kind = found
    relative = path.relative_to(root).as_posix()
    return f"bids::{relative}" if kind == "derivative" else f"bids:raw:{relative}"


def provenance(*, sources=(), parameters=None, description: str = "") -> dict:
    """BIDS-derivatives sidecar fields: what made the file and from what (BIDS URIs)."""
    return {
        "Description": description,
        "Sources": [bids_uri(s) for s in sources if str(s)],
        "Parameters": parameters or {},
        "GeneratedBy": {"Name": PIPELINE_NAME, "Version": __version__},
    }


def save_image(img: nib.Nifti1Image, path, *, sources=(), parameters=None,
               description: str = "", dtype=None) -> None:
    """Save a NIfTI image atomically with its JSON sidecar.

    The orientation contract (:mod:`pipeline.orientation`): every derivative is
    on a canonical (closest RAS+) grid; anything else is a programming error.
    """
    from pipeline.orientation import CANONICAL, ORIENTATION_RULE, is_canonical

    if not is_canonical(img.affine):
        raise ValueError(f"{path}: refusing to write a derivative that is not on a canonical "
                         f"(closest {''.join(CANONICAL)}) grid: {nib.aff2axcodes(img.affine)}")
    path = Path(path)
    if dtype is not None:
        img = nib.Nifti1Image(np.asarray(img.dataobj).astype(dtype), img.affine)
    img.header.set_xyzt_units("mm", "sec")

    def write(tmp):
        nib.save(img, tmp + (".nii.gz" if str(path).endswith(".gz") else ".nii"))
        os.replace(tmp + (".nii.gz" if str(path).endswith(".gz") else ".nii"), tmp)

    _atomic_write(path, write)
    sidecar = provenance(sources=sources, parameters=parameters, description=description)
    sidecar["Grid"] = ("canonical grid of the source image (closest RAS+; "
                       f"orientation contract: {ORIENTATION_RULE})")
    write_json(sidecar_path(path), sidecar)

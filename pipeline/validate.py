"""Checks of raw input files. Each failure is a :class:`PipelineInputError`
naming the file and the problem.

Two levels: the *cheap* checks (headers, text files, gzip trailer) run when
the workflow discovers the dataset, so a broken modality is skipped with a
reason in ``sessions.tsv`` while the session's other modalities run; the
*full* checks (reading the voxel data) run inside each stream.
"""

from __future__ import annotations

import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from pipeline.errors import PipelineInputError

B0_THRESHOLD = 50.0  # s/mm^2: b-values at or below count as b=0
BVEC_TOLERANCE = 0.05  # |norm - 1| tolerated for a diffusion-weighted b-vector


def _gzip_size_ok(path: Path, expected: int) -> bool:
    """Compare the gzip trailer (ISIZE, size mod 2**32) with the expected size."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() < 18:
            return False
        fh.seek(-4, 2)
        (isize,) = struct.unpack("<I", fh.read(4))
    return isize == expected % 2**32


def load_header(path, *, ndim=(3,), what: str = "image") -> nib.Nifti1Image:
    """Open a NIfTI header and check it is complete, without reading voxels.

    Parameters
    ----------
    ndim : tuple of int
        Allowed numbers of dimensions (a 4D image with one volume counts as 3D).
    what : str
        Name of the modality, for messages.
    """
    path = Path(path)
    try:
        img = nib.load(path)
    except Exception as exc:  # nibabel raises many types for a broken file
        raise PipelineInputError(path, f"cannot be read as NIfTI ({exc})") from exc
    shape = img.shape
    effective = len(shape) if not (len(shape) == 4 and shape[3] == 1) else 3
    if effective not in ndim:
        raise PipelineInputError(
            path, f"{what} must be {' or '.join(f'{d}D' for d in ndim)}, got shape {shape}")
    if any(s < 2 for s in shape[:3]):
        raise PipelineInputError(path, f"{what} has a degenerate shape {shape}")
    if not np.all(np.isfinite(img.affine)) or abs(np.linalg.det(img.affine[:3, :3])) < 1e-6:
        raise PipelineInputError(path, "has an invalid (singular or non-finite) affine")
    if str(path).endswith(".gz"):
        header = img.header
        offset = getattr(img.dataobj, "offset", None)
        offset = int(offset) if offset is not None else max(352, int(header["vox_offset"]))
        expected = offset + int(
            np.prod(shape) * header.get_data_dtype().itemsize)
        if not _gzip_size_ok(path, expected):
            raise PipelineInputError(
                path, "is truncated or corrupt (gzip size does not match the NIfTI header)")
    return img


def load_data(path, *, ndim=(3,), what: str = "image") -> nib.Nifti1Image:
    """Full check: header, then every voxel read; NaN/inf are an error."""
    img = load_header(path, ndim=ndim, what=what)
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:
        raise PipelineInputError(path, f"voxel data cannot be read ({exc})") from exc
    if data.ndim == 4 and data.shape[3] == 1 and 3 in ndim and 4 not in ndim:
        data = data[..., 0]
    bad = ~np.isfinite(data)
    if bad.any():
        raise PipelineInputError(path, f"contains {int(bad.sum())} NaN or infinite voxels")
    return nib.Nifti1Image(data, img.affine, img.header)


def read_gradients(bval_path, bvec_path, n_volumes: int, dwi_path=None):
    """Read and check FSL-style bval/bvec files against a DWI's volume count.

    Returns
    -------
    bvals : ndarray (n,)
    bvecs : ndarray (n, 3)
    """
    bval_path, bvec_path = Path(bval_path), Path(bvec_path)
    for p in (bval_path, bvec_path):
        if not p.exists():
            raise PipelineInputError(p, "is missing (needed beside the DWI)")
    try:
        bvals = np.loadtxt(bval_path, ndmin=1).ravel().astype(float)
    except ValueError as exc:
        raise PipelineInputError(bval_path, f"is not a list of numbers ({exc})") from exc
    try:
        bvecs = np.loadtxt(bvec_path, ndmin=2).astype(float)
    except ValueError as exc:
        raise PipelineInputError(bvec_path, f"is not a 3-row matrix of numbers ({exc})") from exc
    if bvecs.shape[0] != 3 and bvecs.shape[1] == 3:
        bvecs = bvecs.T
    if bvecs.shape[0] != 3:
        raise PipelineInputError(bvec_path, f"must have 3 rows, has shape {bvecs.shape}")
    if len(bvals) != n_volumes:
        raise PipelineInputError(
            bval_path, f"has {len(bvals)} b-values but {dwi_path or 'the DWI'} has {n_volumes} volumes")
    if bvecs.shape[1] != n_volumes:
        raise PipelineInputError(
            bvec_path, f"has {bvecs.shape[1]} b-vectors but {dwi_path or 'the DWI'} has "
            f"{n_volumes} volumes")
    if np.any(bvals < 0):
        raise PipelineInputError(bval_path, "has negative b-values")
    is_b0 = bvals <= B0_THRESHOLD
    if not is_b0.any():
        raise PipelineInputError(bval_path, f"has no b=0 volume (b <= {B0_THRESHOLD:g} s/mm^2)")
    norms = np.linalg.norm(bvecs, axis=0)
    bad = ~is_b0 & (np.abs(norms - 1) > BVEC_TOLERANCE)
    if bad.any():
        idx = np.flatnonzero(bad)
        raise PipelineInputError(
            bvec_path, f"b-vectors of volumes {idx[:5].tolist()} are not unit length "
            f"(norms {np.round(norms[idx[:5]], 3).tolist()})")
    return bvals, bvecs.T


def shell_of(bvals, *, tolerance: float = 100.0) -> np.ndarray:
    """Each volume's shell: its b-value rounded to ``tolerance`` (s/mm2), 0 for b=0
    volumes (b <= ``B0_THRESHOLD``); a b=1505 of a nominal 1500 shell is 1500."""
    bvals = np.asarray(bvals, dtype=float)
    return np.where(bvals <= B0_THRESHOLD, 0.0, np.round(bvals / tolerance) * tolerance)


def shells(bvals, *, tolerance: float = 100.0) -> list[int]:
    """Distinct b-values (rounded to ``tolerance``, :func:`shell_of`), b=0 included."""
    return sorted(int(b) for b in np.unique(shell_of(bvals, tolerance=tolerance)))


def check_dwi(dwi_path, bval_path, bvec_path):
    """Cheap DWI check: 4D header and consistent gradients."""
    img = load_header(dwi_path, ndim=(4,), what="DWI")
    return read_gradients(bval_path, bvec_path, img.shape[3], dwi_path=dwi_path)


def read_events(events_path) -> pd.DataFrame:
    """Read a BIDS events.tsv with onset, duration and trial_type."""
    events_path = Path(events_path)
    if not events_path.exists():
        raise PipelineInputError(events_path, "is missing (the task GLM needs it)")
    events = pd.read_csv(events_path, sep="\t", na_values="n/a")
    missing = {"onset", "duration", "trial_type"} - set(events.columns)
    if missing:
        raise PipelineInputError(events_path, f"lacks column(s) {sorted(missing)}")
    if events.empty:
        raise PipelineInputError(events_path, "has no events")
    if events[["onset", "duration"]].isna().any().any():
        raise PipelineInputError(events_path, "has missing onset or duration values")
    return events


def check_bold(bold_path, events_path, metadata: dict, *, tolerance_s: float = 1e-3) -> float:
    """Cheap BOLD check: 4D header, events, TR in the sidecar agreeing with the header.

    Parameters
    ----------
    metadata : dict
        The BOLD file's JSON metadata (BIDS inheritance applied).

    Returns
    -------
    float
        Repetition time (s).
    """
    img = load_header(bold_path, ndim=(4,), what="BOLD")
    read_events(events_path)
    if "RepetitionTime" not in metadata:
        raise PipelineInputError(bold_path, "has no RepetitionTime in its JSON sidecar")
    tr = float(metadata["RepetitionTime"])
    zooms = img.header.get_zooms()
    units = img.header.get_xyzt_units()[1]
    header_tr = float(zooms[3]) / (1000.0 if units == "msec" else 1.0)
    if header_tr > 0 and abs(header_tr - tr) > tolerance_s:
        raise PipelineInputError(
            bold_path, f"TR in the header ({header_tr:g} s) disagrees with RepetitionTime "
            f"in the JSON sidecar ({tr:g} s)")
    return tr

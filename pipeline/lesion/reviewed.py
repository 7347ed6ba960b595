"""Reviewed lesion masks: a QC reviewer's edit of a session's lesion mask, with provenance.

The review page of a session (``reports/sub-X_ses-Y_review.html``, built by
:mod:`pipeline.report.review`) shows the session's current lesion mask on the
FLAIR and the T1w; the reviewer accepts it, paints or erases voxels, and saves
two files, which the data manager places in the folder named by
``lesion.reviewed_dir`` (BIDS-derivatives layout)::

    <reviewed_dir>/sub-X/ses-Y/anat/sub-X_ses-Y_space-T1w_desc-reviewed_mask.nii.gz
    <reviewed_dir>/sub-X/ses-Y/anat/sub-X_ses-Y_space-T1w_desc-reviewed_mask.json

The mask is uint8 0/1 on the canonical T1w grid (any storage of that grid is
accepted, as for manual masks). The sidecar is required:

========================  =====================================================
``Rater``                 the reviewer's name (required, not blank)
``Timestamp``             when the mask was saved (ISO 8601)
``StartedFrom``           the mask the reviewer started from: ``File`` (name),
                          ``SHA256`` (of that file), ``VoxelSHA256`` (of its
                          voxels, see :func:`voxel_sha256`), ``Source``
                          (``automatic``, ``manual``, ``reviewed``, ``none``)
``VoxelsPainted``         voxels added to the starting mask
``VoxelsErased``          voxels removed from it
``VoxelSHA256``           of the saved mask's voxels (ties the sidecar to the mask)
``Software``              pipeline and NiiVue versions of the page
========================  =====================================================

Checks (a named :class:`~pipeline.errors.PipelineInputError` each): no sidecar,
unreadable sidecar, no rater, a timestamp that is not ISO 8601, no
``StartedFrom`` hash, a ``StartedFrom`` file of another session, a mask on
another grid (both grids named), values that are not a binary mask, and a
``VoxelSHA256`` that does not match the mask (the mask was changed after the
page saved it, or the sidecar belongs to another mask).

A ``StartedFrom.VoxelSHA256`` that matches none of the versions the pipeline
can rebuild now (the automatic segmentation, the manual mask) is a **warning**,
not an error: the reviewed mask is complete in itself and approved by its
rater, so it is used; ``lesion_reviewed_from`` then says ``unverified`` and the
log says why (the automatic segmentation changed since the page was built, or
the reviewer edited an earlier reviewed mask, which the pipeline no longer has).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import nibabel as nib
import numpy as np

from pipeline.errors import PipelineInputError
from pipeline.io import sidecar_path
from pipeline.lesion.manual import classify
from pipeline.orientation import on_grid_of, read_image
from pipeline.paths import bids_name

log = logging.getLogger(__name__)

ENTITIES = {"space": "T1w", "desc": "reviewed"}
SUFFIX = "mask"
STARTED_FROM_SOURCES = ("automatic", "manual", "reviewed", "none")


def reviewed_name(subject: str, session: str, extension: str = ".nii.gz") -> str:
    """``sub-X_ses-Y_space-T1w_desc-reviewed_mask.nii.gz`` (labels without sub-/ses-)."""
    return bids_name(subject=subject, session=session, suffix=SUFFIX, extension=extension,
                     **ENTITIES)


def reviewed_path(reviewed_dir, subject: str, session: str) -> Path:
    """Where the reviewed mask of a session lives in ``lesion.reviewed_dir``."""
    return (Path(reviewed_dir) / f"sub-{subject}" / f"ses-{session}" / "anat"
            / reviewed_name(subject, session))


def voxel_sha256(mask) -> str:
    """SHA-256 of a mask's voxels: uint8 0/1, x fastest (NIfTI order), on the canonical grid.

    The review page computes the same digest of the mask it saves, so the pipeline
    recognises a mask by its content whatever file (compression, header) holds it.
    """
    data = (np.asarray(mask) > 0).astype(np.uint8)
    return hashlib.sha256(data.ravel(order="F").tobytes()).hexdigest()


@dataclass
class ReviewedMask:
    """A validated reviewed mask on the T1w grid.

    Attributes
    ----------
    mask : ndarray of bool
        Lesion voxels on the T1w grid.
    rater, timestamp : str
        From the sidecar.
    started_from : dict
        The sidecar's ``StartedFrom``.
    started_from_version : str
        ``automatic`` or ``manual`` when ``StartedFrom.VoxelSHA256`` matches that
        version as the pipeline rebuilds it now, ``none`` when the review started from
        an empty mask, else ``unverified``.
    voxels_painted, voxels_erased : int
        From the sidecar.
    warnings : list of str
        Provenance warnings (also logged).
    """

    mask: np.ndarray
    rater: str
    timestamp: str
    started_from: dict
    started_from_version: str
    voxels_painted: int
    voxels_erased: int
    warnings: list[str] = field(default_factory=list)

    def metrics(self) -> dict:
        """The feature-row columns of a reviewed mask (``lesion_reviewed_*``)."""
        return {"lesion_reviewed_by": self.rater, "lesion_reviewed_at": self.timestamp,
                "lesion_reviewed_from": self.started_from_version}

    def provenance(self) -> dict:
        """What the lesion mask's sidecar records of the review."""
        return {"rater": self.rater, "timestamp": self.timestamp,
                "started_from": self.started_from,
                "started_from_version": self.started_from_version,
                "voxels_painted": self.voxels_painted, "voxels_erased": self.voxels_erased,
                "warnings": self.warnings}


NOT_REVIEWED = {"lesion_reviewed_by": None, "lesion_reviewed_at": None,
                "lesion_reviewed_from": None}


def _entities(name: str) -> tuple[str | None, str | None]:
    sub = re.search(r"(?:^|_)sub-([a-zA-Z0-9]+)", name)
    ses = re.search(r"(?:^|_)ses-([a-zA-Z0-9]+)", name)
    return (sub.group(1) if sub else None, ses.group(1) if ses else None)


def read_sidecar(path) -> dict:
    """The reviewed mask's sidecar, checked; a named error for each problem."""
    side = sidecar_path(path)
    if not side.exists():
        raise PipelineInputError(path, f"reviewed lesion mask without its sidecar {side.name}: "
                                       "save both files from the review page and place them "
                                       "together (docs/qc.md)")
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise PipelineInputError(side, f"reviewed mask sidecar is not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise PipelineInputError(side, "reviewed mask sidecar must be a JSON object")
    rater = data.get("Rater")
    if not isinstance(rater, str) or not rater.strip():
        raise PipelineInputError(side, "reviewed mask sidecar has no Rater: who reviewed the "
                                       "mask is required")
    stamp = data.get("Timestamp")
    try:
        datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError as exc:
        raise PipelineInputError(side, f"reviewed mask sidecar Timestamp {stamp!r} is not "
                                       "ISO 8601 (e.g. 2025-05-01T10:00:00Z)") from exc
    started = data.get("StartedFrom")
    if (not isinstance(started, dict) or not started.get("File")
            or not re.fullmatch(r"[0-9a-f]{64}", str(started.get("VoxelSHA256", "")))):
        raise PipelineInputError(side, "reviewed mask sidecar has no StartedFrom with the File "
                                       "and VoxelSHA256 of the mask the review started from")
    for key in ("VoxelsPainted", "VoxelsErased"):
        if not isinstance(data.get(key), int) or isinstance(data.get(key), bool) or data[key] < 0:
            raise PipelineInputError(side, f"reviewed mask sidecar {key} must be a count >= 0, "
                                           f"got {data.get(key)!r}")
    mine, theirs = _entities(Path(path).name), _entities(Path(started["File"]).name)
    if theirs != mine:
        raise PipelineInputError(side, f"reviewed mask of sub-{mine[0]} ses-{mine[1]} started "
                                       f"from {started['File']} (another session): this sidecar "
                                       "belongs to another session's review")
    return data


def read_reviewed_mask(path, reference: nib.Nifti1Image, *, versions: dict | None = None,
                       reference_name: str = "the T1w") -> ReviewedMask:
    """Read and check a reviewed mask and its sidecar.

    Parameters
    ----------
    path : path
        ``sub-X_ses-Y_space-T1w_desc-reviewed_mask.nii.gz``; its sidecar beside it.
    reference : Nifti1Image
        The session's T1w (canonical grid): the mask must be on its grid.
    versions : dict, optional
        Name (``automatic``, ``manual``) -> boolean mask on the T1w grid (or None): the
        versions the pipeline rebuilds now, against which ``StartedFrom`` is verified.

    Raises
    ------
    PipelineInputError
        See the module docstring.
    """
    sidecar = read_sidecar(path)
    img = read_image(path, what="reviewed lesion mask", ndim=(3,))
    img = on_grid_of(img, reference, path=path, what="reviewed lesion mask",
                     reference_name=reference_name)
    mask, kind, rule = classify(np.asarray(img.dataobj), path=path)
    if kind not in ("binary", "empty"):
        raise PipelineInputError(path, f"reviewed lesion mask must be binary (0/1); found {rule}")
    digest = voxel_sha256(mask)
    if sidecar.get("VoxelSHA256") and sidecar["VoxelSHA256"] != digest:
        raise PipelineInputError(
            path, "reviewed lesion mask does not match its sidecar (VoxelSHA256 differs): the "
                  "mask was changed after the review page saved it, or the sidecar belongs to "
                  "another mask; save both files again from the review page")
    started = sidecar["StartedFrom"]
    version, warnings = "unverified", []
    # the empty mask (a session without FLAIR or manual mask) is always a known version
    versions = {**(versions or {}), "none": np.zeros(reference.shape[:3], bool)}
    for name, candidate in versions.items():
        if candidate is not None and voxel_sha256(candidate) == started["VoxelSHA256"]:
            version = name
            break
    else:
        known = {name: np.asarray(c) > 0 for name, c in versions.items()
                 if c is not None and name != "none"}
        why = ("it started from an earlier reviewed mask, which the pipeline does not keep"
               if started.get("Source") == "reviewed" else
               "the mask it started from is not the one the pipeline builds now (the automatic "
               "segmentation is bit-identical run to run only with resources.threads_per_job: 1; "
               "or the manual mask or the configuration changed since the page was built)")
        against = "; ".join(
            f"against the {name} mask rebuilt now: +{int((mask & ~c).sum())} / "
            f"-{int((c & ~mask).sum())} voxels" for name, c in known.items())
        warnings.append(f"reviewed mask started from {started['File']} (source "
                        f"{started.get('Source', 'unknown')}, {started.get('Voxels', '?')} voxels), "
                        f"which matches none of the versions rebuilt now "
                        f"({', '.join(known) or 'none'}): {why}. The sidecar says "
                        f"+{sidecar['VoxelsPainted']} / -{sidecar['VoxelsErased']} voxels"
                        + (f"; {against}" if against else "")
                        + ". The reviewed mask is used as saved")
    for text in warnings:
        log.warning("%s: %s", path, text)
    log.info("%s: reviewed by %s at %s, %d voxels (+%d painted, -%d erased), started from %s "
             "(%s)", path, sidecar["Rater"], sidecar["Timestamp"], int(mask.sum()),
             sidecar["VoxelsPainted"], sidecar["VoxelsErased"], started["File"], version)
    return ReviewedMask(mask=mask, rater=sidecar["Rater"].strip(), timestamp=sidecar["Timestamp"],
                        started_from=started, started_from_version=version,
                        voxels_painted=sidecar["VoxelsPainted"],
                        voxels_erased=sidecar["VoxelsErased"], warnings=warnings)

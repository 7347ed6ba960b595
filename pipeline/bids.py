"""Discover subjects x sessions x modalities in a BIDS dataset (read only).

The result is the *inventory*: one row per subject x session saying which
files were found, which modalities will run and why anything was skipped.
The workflow builds its jobs from it and writes it as ``sessions.tsv``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline import validate
from pipeline.errors import PipelineInputError
from pipeline.orientation import opposite_phase_encoding

log = logging.getLogger(__name__)

MODALITIES = ("T1w", "FLAIR", "dwi", "bold")
FILE_COLUMNS = ("t1w", "flair", "lesion_roi", "lesion_reviewed", "dwi", "bval", "bvec",
                "dwi_reverse", "bold", "events")
INVENTORY_COLUMNS = ("participant_id", "session", "status", "modalities", *FILE_COLUMNS,
                     "bold_tr_s", "problems")


@dataclass(frozen=True)
class SessionFiles:
    """Raw files of one session (absolute paths or None)."""

    subject: str
    session: str
    t1w: str | None = None
    flair: str | None = None
    lesion_roi: str | None = None
    lesion_reviewed: str | None = None
    dwi: str | None = None
    bval: str | None = None
    bvec: str | None = None
    dwi_reverse: str | None = None
    bold: str | None = None
    events: str | None = None


def _one(files, what, problems, session_dir):
    if not files:
        return None
    if len(files) > 1:
        names = ", ".join(Path(f).name for f in files)
        problems.append(f"{session_dir}: {len(files)} {what} files ({names}); using the first "
                        "(select one with acq-/run- entities)")
    return files[0]


def _layout(bids_dir):
    from bids import BIDSLayout

    bids_dir = Path(bids_dir)
    if not (bids_dir / "dataset_description.json").exists():
        raise PipelineInputError(bids_dir, "is not a BIDS dataset (no dataset_description.json)")
    # validate=True: files whose names are not BIDS are not indexed (reported below).
    return BIDSLayout(bids_dir, validate=True, derivatives=False)


def discover(bids_dir, *, sessions, task: str = "motor", participant_label=(), exclude=(),
             lesion_roi_dir=None, reviewed_dir=None) -> pd.DataFrame:
    """Build the inventory of a BIDS dataset.

    Parameters
    ----------
    bids_dir : path
        BIDS raw dataset; nothing is written into it.
    sessions : sequence of str
        Session labels to look for (in visit order).
    task : str
        Task label of the motor fMRI run.
    participant_label : sequence of str
        Restrict to these subjects (labels without ``sub-``); empty = all.
    exclude : sequence of str
        ``sub-X_ses-Y`` sessions to skip.
    lesion_roi_dir : path or None
        Extra folder searched for ``*_label-lesion_roi.nii.gz`` manual masks.
    reviewed_dir : path or None
        Folder of reviewed lesion masks saved from the QC review pages
        (``sub-X/ses-Y/anat/sub-X_ses-Y_space-T1w_desc-reviewed_mask.nii.gz``, column
        ``lesion_reviewed``; :mod:`pipeline.lesion.reviewed`).

    Returns
    -------
    DataFrame
        Columns :data:`INVENTORY_COLUMNS`. ``status`` is ``ok`` or ``skipped``;
        ``modalities`` lists those that will run (comma separated);
        ``problems`` names each file that was ignored or rejected, and why.
    """
    layout = _layout(bids_dir)
    bids_dir = Path(bids_dir).resolve()
    subjects = sorted(layout.get_subjects())
    if participant_label:
        missing = sorted(set(participant_label) - set(subjects))
        if missing:
            raise PipelineInputError(bids_dir, f"participant_label not found: {missing}")
        subjects = [s for s in subjects if s in set(participant_label)]
    indexed = {Path(f).resolve() for f in layout.get_files()}
    rows = []
    for sub in subjects:
        for ses in sessions:
            session_dir = bids_dir / f"sub-{sub}" / f"ses-{ses}"
            if not session_dir.is_dir():
                continue
            rows.append(_session_row(layout, indexed, session_dir, sub, ses, task, exclude,
                                     lesion_roi_dir, reviewed_dir))
    return pd.DataFrame(rows, columns=list(INVENTORY_COLUMNS))


def _session_row(layout, indexed, session_dir, sub, ses, task, exclude, lesion_roi_dir,
                 reviewed_dir=None) -> dict:
    problems: list[str] = []
    for path in sorted(session_dir.rglob("*")):
        if (path.is_file() and path.resolve() not in indexed and not path.name.startswith(".")
                and not path.name.endswith("_label-lesion_roi.nii.gz")):
            problems.append(f"{path}: not a valid BIDS file name; ignored")

    def get(**query):
        return sorted(layout.get(subject=sub, session=ses, return_type="file",
                                 extension=[".nii", ".nii.gz"], **query))

    files = {
        "t1w": _one(get(datatype="anat", suffix="T1w"), "T1w", problems, session_dir),
        "flair": _one(get(datatype="anat", suffix="FLAIR"), "FLAIR", problems, session_dir),
        "bold": _one(get(datatype="func", suffix="bold", task=task), f"task-{task} bold",
                     problems, session_dir),
    }
    files["dwi"], files["dwi_reverse"] = _dwi_and_reverse(layout, get, sub, session_dir, problems)
    files["lesion_roi"] = _find_lesion_roi(session_dir, sub, ses, lesion_roi_dir)
    files["lesion_reviewed"] = _find_reviewed_mask(sub, ses, reviewed_dir)
    modalities = []
    status = "ok"
    key = f"sub-{sub}_ses-{ses}"
    if key in exclude:
        status = "skipped"
        problems.insert(0, f"{key}: excluded by config")
    elif files["t1w"] is None:
        status = "skipped"
        problems.insert(0, f"{session_dir}: no T1w image; session skipped (every stream needs it)")
    else:
        try:
            validate.load_header(files["t1w"], ndim=(3,), what="T1w")
            modalities.append("T1w")
        except PipelineInputError as exc:
            status = "skipped"
            problems.insert(0, f"{exc}; session skipped (every stream needs the T1w)")
    if status == "ok":
        _check_optional(files, layout, modalities, problems)
    row = {"participant_id": f"sub-{sub}", "session": ses, "status": status,
           "modalities": ",".join(modalities), "problems": " | ".join(problems)}
    row.update({col: files.get(col) for col in (*FILE_COLUMNS, "bold_tr_s")})
    return row


def _check_optional(files, layout, modalities, problems):
    if files["flair"]:
        try:
            validate.load_header(files["flair"], ndim=(3,), what="FLAIR")
            modalities.append("FLAIR")
        except PipelineInputError as exc:
            problems.append(f"{exc}; FLAIR skipped")
    if files["lesion_roi"]:
        try:
            validate.load_header(files["lesion_roi"], ndim=(3,), what="lesion mask")
        except PipelineInputError as exc:
            problems.append(f"{exc}; manual lesion mask ignored")
            files["lesion_roi"] = None
    if files["dwi"]:
        stem = files["dwi"].rsplit(".nii", 1)[0]
        # pybids applies BIDS inheritance (a dataset-level dwi.bval serves every run);
        # the run's own name is reported when none is found
        files["bval"] = _nearest(layout, files["dwi"], suffix="dwi", extension=".bval") \
            or stem + ".bval"
        files["bvec"] = _nearest(layout, files["dwi"], suffix="dwi", extension=".bvec") \
            or stem + ".bvec"
        try:
            validate.check_dwi(files["dwi"], files["bval"], files["bvec"])
            modalities.append("dwi")
        except PipelineInputError as exc:
            problems.append(f"{exc}; DWI skipped")
        if files["dwi_reverse"]:
            try:
                validate.load_header(files["dwi_reverse"], ndim=(3, 4),
                                     what="reverse phase-encoding b=0")
            except PipelineInputError as exc:
                problems.append(f"{exc}; DWI not corrected for susceptibility")
                files["dwi_reverse"] = None
    if files["bold"]:
        events = _nearest(layout, files["bold"], suffix="events", extension=".tsv") \
            or files["bold"].rsplit("_bold.nii", 1)[0] + "_events.tsv"
        files["events"] = events
        try:
            files["bold_tr_s"] = validate.check_bold(files["bold"], events,
                                                     layout.get_metadata(files["bold"]))
            modalities.append("bold")
        except PipelineInputError as exc:
            problems.append(f"{exc}; BOLD skipped")


def _dwi_and_reverse(layout, get, sub, session_dir, problems):
    """The session's DWI series and its reverse phase-encoding series (or None).

    Two ``dwi/*_dwi`` series of opposite ``PhaseEncodingDirection`` (e.g. ``dir-AP`` and
    ``dir-PA``, both stored alike) are a pair: the one with more volumes is processed
    (the first in name order on a tie), the other gives the reverse b=0. Otherwise an
    ``fmap/*_epi`` whose ``IntendedFor`` names the DWI (relative to the subject folder,
    or as a ``bids::`` URI) and whose phase encoding is opposite. The stored codes are
    compared here; ``resstore dwi-preproc`` checks them again on the canonical grid.
    """
    dwis = get(datatype="dwi", suffix="dwi")

    def code(path):
        return str(layout.get_metadata(path).get("PhaseEncodingDirection", "")).strip()

    if len(dwis) == 2 and opposite_phase_encoding(code(dwis[0]), code(dwis[1])):
        try:
            volumes = [validate.load_header(f, ndim=(4,), what="DWI").shape[3] for f in dwis]
        except PipelineInputError as exc:
            problems.append(f"{exc}; not used as a phase-encoding pair")
        else:
            main = 0 if volumes[0] >= volumes[1] else 1
            return dwis[main], dwis[1 - main]
    dwi = _one(dwis, "dwi", problems, session_dir)
    if dwi is None:
        return None, None
    relative = Path(dwi).resolve().relative_to(session_dir.parent.resolve()).as_posix()
    for epi in get(datatype="fmap", suffix="epi"):
        intended = layout.get_metadata(epi).get("IntendedFor", [])
        intended = [intended] if isinstance(intended, str) else list(intended)
        if any(str(t).removeprefix("bids::").removeprefix(f"sub-{sub}/") == relative
               for t in intended) and opposite_phase_encoding(code(dwi), code(epi)):
            return dwi, epi
    return dwi, None


def _nearest(layout, path, *, suffix, extension):
    """The file of ``suffix``/``extension`` that applies to ``path`` under BIDS inheritance.

    ``BIDSLayout.get_nearest`` walks from the file's folder up to the dataset root
    and keeps only candidates whose entities all match the file's (``strict``), so
    a dataset-level ``task-motor_events.tsv`` or ``dwi.bval`` is found, a
    ``run-2`` file never serves ``run-1``, and the closest level wins.
    """
    # all_=True, nearest first: with all_=False pybids gave up when the nearest folder
    # held only a non-matching candidate (a dir-PA_dwi.bval beside a dir-AP run) and
    # never reached the dataset-level file
    found = layout.get_nearest(path, suffix=suffix, extension=extension, strict=True,
                               ignore_strict_entities=["extension", "suffix"], all_=True)
    return str(found[0]) if found else None


def _find_lesion_roi(session_dir: Path, sub, ses, lesion_roi_dir):
    """Manual lesion mask: in the BIDS session's anat/, else in ``lesion_roi_dir``."""
    name = f"sub-{sub}_ses-{ses}_label-lesion_roi.nii.gz"
    candidates = [session_dir / "anat" / name]
    if lesion_roi_dir:
        candidates.append(Path(lesion_roi_dir) / f"sub-{sub}" / f"ses-{ses}" / "anat" / name)
    for path in candidates:
        if path.exists():
            return str(path)
    return None


def _find_reviewed_mask(sub, ses, reviewed_dir):
    """Reviewed lesion mask of a session in ``reviewed_dir`` (its sidecar is checked when read)."""
    if not reviewed_dir:
        return None
    from pipeline.lesion.reviewed import reviewed_path

    path = reviewed_path(reviewed_dir, sub, ses)
    return str(path.resolve()) if path.exists() else None


def runnable(inventory: pd.DataFrame, modality: str) -> list[tuple[str, str]]:
    """(subject label, session label) pairs whose ``modality`` will run."""
    out = []
    for row in inventory.itertuples():
        if row.status == "ok" and modality in row.modalities.split(","):
            out.append((row.participant_id.removeprefix("sub-"), row.session))
    return out


INDEX_LOG = "index.log"


def fingerprint(bids_dir) -> str:
    """SHA-256 of every file's relative path, size and modification time (a cheap
    stand-in for the dataset's content: any added, removed or rewritten file changes it)."""
    import hashlib
    import os

    digest = hashlib.sha256()
    root = Path(bids_dir).resolve()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            try:
                stat = path.stat()
            except OSError:
                continue
            digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cached_inventory(bids_dir, cache_dir, **options) -> pd.DataFrame:
    """:func:`discover`, computed once per dataset state and configuration.

    The workflow parses its Snakefile in every job (every SLURM job re-reads it), and
    indexing a BIDS dataset with pybids (validation included) and reading every
    header takes seconds to minutes. The inventory is therefore stored in
    ``cache_dir`` under a key made of the options and :func:`fingerprint` (of the
    dataset and of the ``lesion_roi_dir`` / ``reviewed_dir`` mask folders); a parse
    that finds it reads it back. Each real indexing appends a line to
    ``cache_dir/index.log`` (a test counts them).
    """
    import hashlib
    import json
    import os
    import socket
    import time

    cache_dir = Path(cache_dir)
    # folders of masks outside the BIDS dataset (manual, reviewed) are part of its state
    extra = {k: fingerprint(options[k]) for k in ("lesion_roi_dir", "reviewed_dir")
             if options.get(k) and Path(options[k]).is_dir()}
    key = hashlib.sha256(json.dumps(
        {"bids": str(Path(bids_dir).resolve()), "fingerprint": fingerprint(bids_dir),
         "mask_folders": extra, "columns": INVENTORY_COLUMNS,
         **{k: (list(v) if isinstance(v, tuple | list) else v) for k, v in sorted(options.items())}},
        sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = cache_dir / f"inventory-{key}.tsv"
    if path.exists():
        return _read_inventory(path)
    table = discover(bids_dir, **options)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    table.to_csv(tmp, sep="\t", index=False)
    os.replace(tmp, path)
    with open(cache_dir / INDEX_LOG, "a") as handle:
        handle.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {socket.gethostname()} "
                     f"pid {os.getpid()} indexed {Path(bids_dir).resolve()} -> {path.name}\n")
    return _read_inventory(path)  # the same table whether it was computed or read


def _read_inventory(path) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    table = table.reindex(columns=list(INVENTORY_COLUMNS))
    for column in FILE_COLUMNS:
        table[column] = table[column].replace({"": None})
    table["bold_tr_s"] = pd.to_numeric(table["bold_tr_s"].replace({"": None}), errors="coerce")
    return table

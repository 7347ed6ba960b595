"""Status records: a stream that fails on one session leaves a record, not a hole.

When a stream command meets a named input error (:class:`~pipeline.errors.PipelineInputError`)
and runs with ``--on-error record`` (every rule of the workflow does), it writes a
*status record* in place of each of its outputs and exits 0, so the session's feature
row, QC page and the statistics are still built. The record is a small text file:

    RESSTORE-STATUS-RECORD
    {"status": "failed", "error": "...", "rule": "dwi_preproc", "log": "logs/..."}

A command whose input is a status record does not run: it writes records for its own
outputs saying which upstream step failed ("failed upstream"). Unexpected errors (a
bug) still fail the job, as they should. ``features.tsv`` gets ``<stream>_status =
failed: <error> (rule, log)`` with that stream's columns NA, the QC page shows a
"failed" section, and the stats exclude the stream's features for that session.

A record is not an image: tools other than this pipeline must not read derivatives
of a failed step (the sidecar of each record says so as well).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"RESSTORE-STATUS-RECORD\n"


def read_record(path) -> dict | None:
    """The record's content when ``path`` is a status record, else None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(MAGIC))
            if head != MAGIC:
                return None
            return json.loads(handle.read().decode() or "{}")
    except (OSError, ValueError):
        return None


def is_record(path) -> bool:
    return read_record(path) is not None


def describe(record: dict) -> str:
    """One line for ``<stream>_status`` and the QC page."""
    where = ", ".join(f"{k.replace('_', ' ')} {record[k]}" for k in ("upstream_rule", "rule", "log")
                      if record.get(k))
    return f"{record.get('status', 'failed')}: {record.get('error', '')}" + (
        f" ({where})" if where else "")


def write_records(outputs, record: dict) -> None:
    """Write ``record`` to every output path (atomically), with a JSON sidecar note."""
    from pipeline.io import _atomic_write, sidecar_path

    blob = MAGIC + json.dumps(record, sort_keys=True).encode() + b"\n"
    for out in outputs:
        path = Path(out)
        _atomic_write(path, lambda tmp, blob=blob: Path(tmp).write_bytes(blob))
        if not str(path).endswith(".json"):
            note = sidecar_path(path)
            text = json.dumps({"Description": "status record, not data: " + describe(record)},
                              indent=2)
            _atomic_write(note, lambda tmp, text=text: Path(tmp).write_text(text + "\n"))
    log.warning("status records written for %d output(s): %s", len(list(outputs)),
                describe(record))


def rule_of_log(log_path) -> str | None:
    """The rule name of a workflow log path (``<output_dir>/logs/<rule>/...``)."""
    if not log_path:
        return None
    parts = Path(log_path).parts
    return parts[parts.index("logs") + 1] if "logs" in parts[:-1] else None


def relative_log(log_path) -> str | None:
    """The log path relative to the output folder (``logs/<rule>/<file>``), else as given."""
    if not log_path:
        return None
    parts = Path(log_path).parts
    return os.path.join(*parts[parts.index("logs"):]) if "logs" in parts[:-1] else str(log_path)

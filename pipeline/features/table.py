"""Assemble session rows and the group feature table.

A row never contains the treatment arm: nothing upstream of the stats step
reads the allocation key.
"""

from __future__ import annotations

import pandas as pd

from pipeline import __version__, status
from pipeline.features import dictionary
from pipeline.io import read_json


def session_row(participant_id: str, session: str, metric_files: dict, *,
                inventory_row: dict | None = None, config_hash: str = "") -> dict:
    """One feature row from the metrics JSON of each stream.

    Parameters
    ----------
    metric_files : dict
        stream name -> path (or list of paths) of its metrics JSON; streams
        not run are absent.
    inventory_row : dict
        The session's ``sessions.tsv`` row; explains why a stream did not run.
    """
    row = {"participant_id": participant_id, "session": session,
           "pipeline_version": __version__, "config_hash": config_hash}
    problems = str((inventory_row or {}).get("problems") or "").split(" | ")
    skipped = (inventory_row or {}).get("status") == "skipped"
    for stream in dictionary.STREAMS:
        path = metric_files.get(stream)
        if path is None:
            modality = dictionary.STREAM_MODALITY[stream]
            if skipped:
                reason = f"session skipped: {problems[0]}"
            else:
                reason = next((p for p in problems
                               if f"{modality.lower()} skipped" in p.lower()), "")
            row[f"{stream}_status"] = reason or f"no {modality} in this session"
            continue
        metrics, failures, statements = {}, [], []
        for one in ([path] if isinstance(path, str | bytes) or hasattr(path, "__fspath__")
                    else path):
            record = status.read_record(one)
            if record is not None:  # this step failed: its columns stay NA
                failures.append(status.describe(record))
                continue
            values = read_json(one)
            statements.append(values.pop(f"{stream}_status", None))
            metrics.update(values)
        unknown = set(metrics) - set(dictionary.FEATURES)
        if unknown:
            raise KeyError(f"{path}: undeclared feature(s) {sorted(unknown)}; declare them in "
                           "pipeline/features/dictionary.py")
        # a stream may state its own status (e.g. the lesion stream without a FLAIR or a
        # manual mask, or an automatic mask that needs review)
        stated = "; ".join(dict.fromkeys(x for x in statements if x)) or None
        if stated and "needs_review" in stated:
            stated = "needs_review: " + "; ".join(
                part.removeprefix("needs_review: ") for part in stated.split("; "))
        if failures:
            # the steps that did not fail keep their (valid) columns; the status says the
            # stream failed, and the stats leave all of its features out for this session
            row.update({k: v for k, v in metrics.items()})
            row[f"{stream}_status"] = "; ".join(dict.fromkeys(failures))
            continue
        row.update(metrics)
        row[f"{stream}_status"] = stated or "ok"
    return row


def feature_table(rows: list[dict]) -> pd.DataFrame:
    """Group table: one row per subject x session, every declared column in dictionary
    order (a fixed schema: a feature no session produced is an empty column, so the
    statisticians' code does not depend on which sessions had which modality)."""
    table = pd.DataFrame(rows)
    if table.duplicated(["participant_id", "session"]).any():
        dup = table.loc[table.duplicated(["participant_id", "session"], keep=False),
                        ["participant_id", "session"]]
        raise ValueError(f"duplicate subject x session rows: {dup.values.tolist()}")
    undeclared = sorted(set(table.columns) - set(dictionary.columns()))
    if undeclared:
        raise KeyError(f"undeclared feature column(s) {undeclared}")
    table = table.reindex(columns=dictionary.columns())
    return table.sort_values(["participant_id", "session"]).reset_index(drop=True)


def data_dictionary(table: pd.DataFrame) -> dict:
    """features.json content for the columns of ``table``."""
    return {c: dictionary.FEATURES[c] for c in table.columns}

"""Contexts of the per-session QC page and of the group dashboard.

Inputs are the group ``features.tsv`` (values compared with the group),
``sessions.tsv`` (what ran, what was skipped and why), the reportlets of
the session (figure + metrics JSON + caption + methods, declared by each
stream with ``register_reportlet``) and, optionally, ``qc/ratings.tsv``.
The allocation key is never an input: pages are blinded by construction.
"""

from __future__ import annotations

import hashlib
import math
from urllib.parse import quote

import numpy as np
import pandas as pd

from pipeline import status
from pipeline.features import dictionary
from pipeline.io import read_json
from pipeline.report import group
from pipeline.report.ratings import MODALITIES, excluded_streams, rating_column
from pipeline.report.render import png_data_uri
from pipeline.report.review import review_page_name

MODALITY_LABELS = {"T1w": "T1-weighted anatomy (T1w)", "lesion": "Lesion mask",
                   "FLAIR": "FLAIR image quality",
                   "dwi": "Diffusion (DWI)", "bold": "Motor-task fMRI (BOLD)"}


def read_table(path) -> pd.DataFrame:
    """A pipeline TSV with ``n/a`` as missing and every other value kept as text or number."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["n/a", ""])


def page_name(participant_id: str, session: str) -> str:
    """File name of a session page, ``sub-X_ses-V.html``."""
    return f"{participant_id}_ses-{session}.html"


def storage_prefix(study: str) -> str:
    """localStorage key prefix of one study (pages of one output folder share it)."""
    return "resstore-qc:" + hashlib.sha256(study.encode()).hexdigest()[:10] + ":"


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _metric_row(column, value, summary, index, threshold) -> dict:
    entry = dictionary.FEATURES.get(column, {})
    row = {"name": column, "description": entry.get("Description", ""),
           "units": entry.get("Units", ""), "better": entry.get("Better", "n/a"),
           "value": value, "median": None, "z": None, "outlier": False, "n": None}
    if column in summary and index is not None:
        s = summary[column]
        z = float(s["z"][index])
        row.update(median=s["median"], n=s["n"], z=None if math.isnan(z) else z,
                   outlier=bool(s["outlier"][index]))
    return row


def _session_index(features: pd.DataFrame, participant_id: str, session: str):
    hits = np.flatnonzero((features["participant_id"].astype(str) == participant_id)
                          & (features["session"].astype(str) == session))
    return int(hits[0]) if len(hits) else None


def _recorded(ratings: pd.DataFrame | None, participant_id: str, session: str) -> dict:
    if ratings is None:
        return {}
    rows = ratings[(ratings.participant_id == participant_id) & (ratings.session == session)]
    return {r["modality"]: r for r in rows.to_dict("records")}


def session_context(participant_id: str, session: str, *, reportlets: list[dict],
                    features: pd.DataFrame, inventory: pd.DataFrame,
                    ratings: pd.DataFrame | None, threshold: float, study: str,
                    min_sessions: int = group.MIN_SESSIONS_TO_FLAG) -> dict:
    """Everything the session template shows.

    Parameters
    ----------
    reportlets : list of dict
        modality, step, title, figure (PNG path), metrics (JSON path or None),
        caption, methods.
    features : DataFrame
        The group feature table (values, group medians and robust z).
    inventory : DataFrame
        ``sessions.tsv``.
    ratings : DataFrame or None
        :func:`pipeline.report.ratings.read_ratings` output.
    threshold : float
        |robust z| above which a value is flagged.
    min_sessions : int
        Nothing is flagged in a group of fewer sessions.
    study : str
        Identifies the study (output folder) in browser storage keys.
    """
    index = _session_index(features, participant_id, session)
    columns = group.metric_columns(features)
    summary = group.group_summary(features, columns, threshold=threshold, min_sessions=min_sessions)
    inv = inventory[(inventory.participant_id.astype(str) == participant_id)
                    & (inventory.session.astype(str) == session)]
    inv_row = inv.iloc[0].to_dict() if len(inv) else {}
    ran = [m for m in _text(inv_row.get("modalities")).split(",") if m]
    modalities = [m for m in MODALITIES
                  if m in ran or any(r["modality"] == m for r in reportlets)]
    recorded = _recorded(ratings, participant_id, session)
    failed = [m for m, r in recorded.items() if r["rating"] == "fail"]

    sections = []
    for modality in modalities:
        shown: set[str] = set()
        seen_files: set[str] = set()
        items = []
        for r in (r for r in reportlets if r["modality"] == modality):
            # several steps may share one metrics JSON: its table goes with the first
            values = {}
            record = status.read_record(r["figure"]) or (
                status.read_record(r["metrics"]) if r.get("metrics") else None)
            if record is not None:  # this step failed for this session: say so, no figure
                items.append({"title": r["title"], "step": r["step"], "caption": "",
                              "methods": r.get("methods", ""), "image": None, "metrics": [],
                              "failed": status.describe(record)})
                continue
            if r.get("metrics") and str(r["metrics"]) not in seen_files:
                seen_files.add(str(r["metrics"]))
                values = {k: _scalar(v) for k, v in read_json(r["metrics"]).items()}
            shown.update(values)
            items.append({
                "title": r["title"], "step": r["step"], "caption": r.get("caption", ""),
                "methods": r.get("methods", ""), "image": png_data_uri(r["figure"]),
                "metrics": [_metric_row(k, v, summary, index, threshold)
                            for k, v in values.items()],
                "failed": None,
            })
        rest = [c for c in features.columns
                if group.modality_of(c) == modality and c not in shown
                and not c.endswith("_status")]
        metrics = [_metric_row(c, _value(features, c, index), summary, index, threshold)
                   for c in rest]
        stream_status = {stream: _text(_value(features, f"{stream}_status", index))
                         for stream, item in dictionary.STREAM_MODALITY.items()
                         if item == modality and f"{stream}_status" in features.columns}
        sections.append({
            "modality": modality, "label": MODALITY_LABELS.get(modality, modality),
            "not_ok": {k: v for k, v in stream_status.items() if v and v != "ok"},
            "n_failed": sum(1 for it in items if it["failed"]),
            "metrics": metrics, "reportlets": items, "recorded": recorded.get(modality),
            "excluded": excluded_streams([modality]) if modality in failed else [],
            # the lesion review page (qc.smk report_review): view, edit and save the mask
            "review_href": (quote(review_page_name(participant_id, session))
                            if modality == "lesion" else None),
            "n_outliers": sum(m["outlier"] for m in metrics)
            + sum(m["outlier"] for it in items for m in it["metrics"]),
        })
    order = list(zip(features["participant_id"].astype(str), features["session"].astype(str),
                     strict=True))
    here = order.index((participant_id, session)) if (participant_id, session) in order else None
    neighbour = {}
    if here is not None:
        if here > 0:
            neighbour["previous"] = _href(*order[here - 1])
        if here + 1 < len(order):
            neighbour["next"] = _href(*order[here + 1])
    return {
        "participant_id": participant_id, "session": session,
        "status": _text(inv_row.get("status")) or "unknown",
        "problems": [p for p in _text(inv_row.get("problems")).split(" | ") if p],
        "sections": sections, "threshold": threshold, "min_sessions": min_sessions,
        "n_sessions": len(features), "neighbour": neighbour,
        "excluded_streams": excluded_streams(failed),
        "page_data": {"page": "session", "storage_prefix": storage_prefix(study),
                      "participant_id": participant_id, "session": session,
                      "modalities": modalities},
    }


def _scalar(value):
    """A metrics-JSON value as shown in a table cell (lists and objects summarised)."""
    if isinstance(value, list):
        return f"{len(value)} values"
    if isinstance(value, dict):
        return f"{len(value)} entries"
    return value


def _value(features: pd.DataFrame, column: str, index):
    if index is None:
        return None
    value = features[column].iloc[index]
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _href(participant_id: str, session: str) -> str:
    return quote(page_name(participant_id, session))


def dashboard_context(*, features: pd.DataFrame, inventory: pd.DataFrame,
                      ratings: pd.DataFrame | None, threshold: float, study: str,
                      min_sessions: int = group.MIN_SESSIONS_TO_FLAG) -> dict:
    """Everything the dashboard template shows (sessions x metrics, outliers, links)."""
    columns = group.metric_columns(features)
    summary = group.group_summary(features, columns, threshold=threshold, min_sessions=min_sessions)
    mods = {c: group.modality_of(c) for c in columns}
    header = [{"name": c, "modality": mods[c],
               "units": dictionary.FEATURES[c]["Units"],
               "description": dictionary.FEATURES[c]["Description"],
               "median": summary[c]["median"]} for c in columns]
    inv = {(str(r["participant_id"]), str(r["session"])): r for r in inventory.to_dict("records")}
    rows, sessions = [], []
    for i, rec in enumerate(features.to_dict("records")):
        pid, ses = str(rec["participant_id"]), str(rec["session"])
        inv_row = inv.get((pid, ses), {})
        ran = [m for m in _text(inv_row.get("modalities")).split(",") if m]
        cells = []
        for c in columns:
            value = rec[c]
            z = float(summary[c]["z"][i])
            cells.append({"modality": mods[c], "value": value,
                          "sort": "" if value is None or value != value else repr(float(value)),
                          "z": None if math.isnan(z) else z,
                          "outlier": bool(summary[c]["outlier"][i])})
        recorded = _recorded(ratings, pid, ses)
        rows.append({
            "participant_id": pid, "session": ses, "href": _href(pid, ses),
            "status": _text(inv_row.get("status")) or "unknown", "modalities": ran,
            "recorded": {m: recorded[m]["rating"] for m in recorded},
            "excluded": _text(rec.get("qc_excluded_streams"))
            or ",".join(excluded_streams([m for m, r in recorded.items()
                                          if r["rating"] == "fail"])),
            "cells": cells, "n_outliers": sum(c["outlier"] for c in cells),
        })
        sessions.append({"participant_id": pid, "session": ses, "modalities": ran})
    used = [m for m in MODALITIES if any(h["modality"] == m for h in header)
            or any(m in r["modalities"] for r in rows)]
    return {
        "header": header, "rows": rows, "threshold": threshold, "modalities": used,
        "min_sessions": min_sessions,
        "modality_labels": MODALITY_LABELS, "rating_column": rating_column,
        "n_outlier_sessions": sum(r["n_outliers"] > 0 for r in rows),
        "ratings_given": ratings is not None,
        "page_data": {"page": "dashboard", "storage_prefix": storage_prefix(study),
                      "sessions": sessions},
    }


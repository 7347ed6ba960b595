"""Reviewer ratings (``qc/ratings.tsv``) and their columns in ``features.tsv``.

The TSV is what the QC pages export: one row per participant x session x
modality rating, columns :data:`RATING_COLUMNS`. When a modality is rated
``fail``, the features of the streams of that modality
(:data:`pipeline.features.dictionary.STREAM_MODALITY`) are excluded from the
models: they stay in the table and are flagged here; the statistics step
reads the same ratings file to drop them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from pipeline.errors import PipelineInputError
from pipeline.features.dictionary import RATED_ITEMS, STREAM_MODALITY

log = logging.getLogger(__name__)

RATING_COLUMNS = ("participant_id", "session", "modality", "rating", "rater", "comment",
                  "timestamp")
MODALITIES = RATED_ITEMS
RATINGS = ("pass", "fail", "uncertain")
# worst first: the session's qc_status is the worst rating over its modalities
_SEVERITY = {"fail": 0, "uncertain": 1, "pass": 2}


def rating_column(modality: str) -> str:
    """Feature-table column of one modality's rating (``t1w_rating``, ``dwi_rating``...)."""
    return f"{modality.lower()}_rating"


def read_ratings(path) -> pd.DataFrame:
    """Read and check a ratings TSV; keep the latest rating per session x modality.

    Parameters
    ----------
    path : str or os.PathLike
        TSV with the columns :data:`RATING_COLUMNS` (extra columns are ignored).

    Returns
    -------
    DataFrame
        One row per (participant_id, session, modality), the latest by
        ``timestamp`` (ISO 8601) when a modality was rated more than once.

    Raises
    ------
    PipelineInputError
        Missing columns, unknown modality or rating, a participant without
        ``sub-`` or a session with ``ses-``, or an unreadable timestamp; the
        message names the file and the row.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineInputError(path, "ratings file not found (config qc.ratings)")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in RATING_COLUMNS if c not in table.columns]
    if missing:
        raise PipelineInputError(path, f"missing column(s) {', '.join(missing)}; expected "
                                       f"{chr(9).join(RATING_COLUMNS)}")
    table = table[list(RATING_COLUMNS)].copy()
    for column in RATING_COLUMNS:
        table[column] = table[column].str.strip()
    for i, row in enumerate(table.itertuples(index=False), start=2):
        where = f"line {i}"
        if not row.participant_id.startswith("sub-") or len(row.participant_id) < 5:
            raise PipelineInputError(path, f"{where}: participant_id {row.participant_id!r} "
                                           "must look like sub-<label>")
        if not row.session or row.session.startswith("ses-"):
            raise PipelineInputError(path, f"{where}: session {row.session!r} must be the "
                                           "label without ses-")
        if row.modality not in MODALITIES:
            raise PipelineInputError(path, f"{where}: modality {row.modality!r} is not one of "
                                           f"{'|'.join(MODALITIES)}")
        if row.rating not in RATINGS:
            raise PipelineInputError(path, f"{where}: rating {row.rating!r} is not one of "
                                           f"{'|'.join(RATINGS)}")
    stamps = pd.to_datetime(table["timestamp"], utc=True, errors="coerce", format="ISO8601")
    bad = stamps.isna() & (table["timestamp"] != "")
    if bad.any():
        first = int(bad.to_numpy().nonzero()[0][0])
        raise PipelineInputError(path, f"line {first + 2}: timestamp "
                                       f"{table['timestamp'].iloc[first]!r} is not ISO 8601")
    table["_order"] = stamps.fillna(pd.Timestamp.min.tz_localize("UTC"))
    table["_row"] = range(len(table))
    latest = (table.sort_values(["_order", "_row"])
              .drop_duplicates(["participant_id", "session", "modality"], keep="last")
              .drop(columns=["_order", "_row"])
              .sort_values(["participant_id", "session", "modality"]))
    return latest.reset_index(drop=True)


def excluded_streams(failed_modalities) -> list[str]:
    """Streams whose features a ``fail`` on these modalities excludes."""
    failed = set(failed_modalities)
    return [stream for stream, modality in STREAM_MODALITY.items() if modality in failed]


def merge_ratings(features: pd.DataFrame, ratings: pd.DataFrame | None) -> pd.DataFrame:
    """Add the QC columns to the feature table.

    Adds ``<modality>_rating`` (pass / fail / uncertain, NA when not rated)
    for every modality, ``qc_status`` (the worst rating of the session, or
    ``unrated``) and ``qc_excluded_streams`` (comma-separated streams whose
    features are excluded from the models because their modality failed;
    empty when none). Feature values are kept.

    Parameters
    ----------
    features : DataFrame
        ``features.tsv`` (``participant_id``, ``session``, features...).
    ratings : DataFrame or None
        Output of :func:`read_ratings`; None when no ratings were given.
    """
    table = features.drop(columns=[c for c in qc_columns() if c in features.columns]).copy()
    keys = list(zip(table["participant_id"], table["session"], strict=True))
    by_key: dict[tuple, dict[str, str]] = {}
    if ratings is not None:
        known = set(keys)
        for row in ratings.itertuples(index=False):
            key = (row.participant_id, row.session)
            if key not in known:
                log.warning("rating of %s ses-%s %s: no such session in the feature table",
                            row.participant_id, row.session, row.modality)
                continue
            by_key.setdefault(key, {})[row.modality] = row.rating
    for modality in MODALITIES:
        table[rating_column(modality)] = [by_key.get(k, {}).get(modality) for k in keys]
    status, excluded = [], []
    for key in keys:
        given = by_key.get(key, {})
        status.append(min(given.values(), key=_SEVERITY.get) if given else "unrated")
        failed = [m for m, r in given.items() if r == "fail"]
        excluded.append(",".join(excluded_streams(failed)))
    table["qc_status"] = status
    table["qc_excluded_streams"] = excluded
    # a lesion mask flagged by the plausibility gates enters the models once a reviewer
    # rates it pass (the flag stays in lesion_plausibility)
    if "lesion_status" in table.columns:
        table["lesion_status"] = table["lesion_status"].astype(object)
        flagged = table["lesion_status"].astype(str).str.startswith("needs_review")
        accepted = flagged & (table[rating_column("lesion")] == "pass")
        table.loc[accepted, "lesion_status"] = "ok"
        if accepted.any():
            log.info("lesion masks accepted by a reviewer: %d", int(accepted.sum()))
    return table


def qc_columns() -> list[str]:
    """The columns :func:`merge_ratings` adds, in order."""
    return [rating_column(m) for m in MODALITIES] + ["qc_status", "qc_excluded_streams"]

"""Inputs of the trial statistics: checks, QC exclusions, allocation and analysis sets.

Pure functions on DataFrames (the CLI reads the files). Every problem is
either a :class:`~pipeline.errors.PipelineInputError` naming the file and
what is wrong (unknown arm, duplicate subject x session rows, a missing
column) or an *exclusion*: a row of ``exclusions.tsv`` saying what was left
out of the models and why (QC failures, streams whose status is not ``ok``,
subjects only in the key or only in the data, missing covariates, outcomes
without data). The endpoints' values are read by :mod:`pipeline.stats.sources`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.errors import PipelineInputError
from pipeline.features.dictionary import RATED_ITEMS as MODALITIES
from pipeline.features.dictionary import STREAM_MODALITY

log = logging.getLogger(__name__)
RATING_COLUMNS = ("participant_id", "session", "modality", "rating", "rater", "comment", "timestamp")
TRUE_VALUES = ("yes", "true", "1", "y", "1.0")
EXCLUSION_COLUMNS = ["scope", "participant_id", "session", "outcome", "analysis_set", "reason"]


@dataclass
class Outcome:
    """One analysed variable of an endpoint, with its values in the endpoint type's standard form.

    ``data`` columns: continuous, binary, ordinal -- participant_id, session,
    value; count -- participant_id, session, count, exposure; time_to_event --
    participant_id, session, time, event. (``session`` is the visit, or the
    event window's label.)
    """

    name: str
    endpoint: object
    data: pd.DataFrame
    units: str = ""
    better: str = "n/a"
    label: str = ""
    description: str = ""

    @property
    def type(self) -> str:
        return self.endpoint.type


@dataclass
class AnalysisData:
    """Everything the models need, with the exclusions made on the way.

    ``subjects``: one row per randomised subject with data: arm, covariates,
    strata, and one boolean column ``set_<name>`` per analysis set.
    """

    subjects: pd.DataFrame
    outcomes: list
    exclusions: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def exclusion(scope, reason, *, participant_id="", session="", outcome="", analysis_set="") -> dict:
    """One row of exclusions.tsv (scope: subject, features, outcome, model, analysis set)."""
    return {
        "scope": scope,
        "participant_id": participant_id,
        "session": session,
        "outcome": outcome,
        "analysis_set": analysis_set,
        "reason": reason,
    }


def clean_session(series: pd.Series) -> pd.Series:
    """Session labels without the BIDS ``ses-`` prefix."""
    return series.astype(str).str.removeprefix("ses-")


def check_unique(table: pd.DataFrame, keys, *, path) -> None:
    """Raise if ``keys`` do not identify rows uniquely."""
    dup = table[table.duplicated(list(keys), keep=False)]
    if len(dup):
        shown = ", ".join(
            " ".join(map(str, r)) for r in dup[list(keys)].drop_duplicates().head(5).itertuples(index=False)
        )
        raise PipelineInputError(path, f"duplicate {' x '.join(keys)} rows: {shown}")


def require_columns(table: pd.DataFrame, columns, *, path) -> None:
    """Raise, naming ``path``, if ``table`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise PipelineInputError(path, f"missing column(s) {missing}; has {list(table.columns)}")


def check_allocation(
    allocation: pd.DataFrame, participants: pd.DataFrame, spec, *, path="allocation key", with_data=()
) -> tuple[pd.Series, list]:
    """Validate the allocation key; return participant_id -> arm and the listed mismatches.

    Duplicate subjects and arm labels other than the spec's two are errors.
    Subjects only in the key, or with data but not in the key, are listed
    (exclusions), not errors -- unless the key and the data share no subject
    at all (the wrong key).
    """
    require_columns(allocation, ("participant_id", "arm"), path=path)
    allocation = allocation.assign(
        participant_id=allocation["participant_id"].astype(str), arm=allocation["arm"].astype(str).str.strip()
    )
    check_unique(allocation, ("participant_id",), path=path)
    arms = (spec.treated_arm, spec.control_arm)
    unknown = allocation[~allocation["arm"].isin(arms)]
    if len(unknown):
        shown = ", ".join(f"{r.participant_id}={r.arm!r}" for r in unknown.head(5).itertuples())
        raise PipelineInputError(
            path, f"unknown arm label(s) {shown}; expected one of {list(arms)} (trial spec arms)"
        )
    key = allocation.set_index("participant_id")["arm"]
    known = set(participants["participant_id"].astype(str))
    with_data = set(with_data)
    if with_data and not with_data & set(key.index):
        raise PipelineInputError(
            path,
            f"no subject of the data is in the allocation key (data: "
            f"{', '.join(sorted(with_data)[:5])}...): wrong key?",
        )
    excl = [
        exclusion(
            "subject",
            "in the allocation key but not in participants.tsv: no covariates, not analysed",
            participant_id=s,
        )
        for s in sorted(set(key.index) - known)
    ]
    excl += [
        exclusion("subject", "has data but is not in the allocation key: not analysed", participant_id=s)
        for s in sorted((known | with_data) - set(key.index))
    ]
    excl += [
        exclusion(
            "subject",
            "in the allocation key and participants.tsv but without any outcome data",
            participant_id=s,
        )
        for s in sorted((set(key.index) & known) - with_data)
    ]
    return key, excl


def failed_ratings(ratings: pd.DataFrame, *, path="qc ratings") -> pd.DataFrame:
    """The latest rating per subject x session x modality, keeping only ``fail``."""
    require_columns(ratings, ("participant_id", "session", "modality", "rating"), path=path)
    ratings = ratings.copy()
    for col in RATING_COLUMNS:
        if col not in ratings.columns:
            ratings[col] = ""
    ratings["session"] = clean_session(ratings["session"])
    bad = ratings[~ratings["modality"].isin(MODALITIES)]
    if len(bad):
        raise PipelineInputError(
            path, f"unknown modality {sorted(set(bad['modality']))}; one of {MODALITIES}"
        )
    bad = ratings[~ratings["rating"].isin(("pass", "fail", "uncertain"))]
    if len(bad):
        raise PipelineInputError(path, f"unknown rating {sorted(set(bad['rating']))}; pass|fail|uncertain")
    ratings["_time"] = pd.to_datetime(ratings["timestamp"], errors="coerce", utc=True, format="ISO8601")
    latest = (
        ratings.sort_values("_time", na_position="first", kind="stable")
        .groupby(["participant_id", "session", "modality"], as_index=False)
        .tail(1)
    )
    return latest[latest["rating"] == "fail"].drop(columns="_time").reset_index(drop=True)


def _stream_columns(dictionary, features, streams) -> list:
    return [
        c
        for c, d in dictionary.items()
        if d.get("Stream") in streams and c in features.columns and not c.endswith("_status")
    ]


def apply_qc(features: pd.DataFrame, dictionary: dict, fails: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Set the features of failed modalities to NaN; one exclusion per failed rating."""
    features = features.copy()
    excl = []
    for r in fails.itertuples(index=False):
        streams = [s for s, m in STREAM_MODALITY.items() if m == r.modality]
        columns = _stream_columns(dictionary, features, streams)
        rows = (features["participant_id"] == r.participant_id) & (features["session"] == r.session)
        if not rows.any():
            continue
        features.loc[rows, columns] = np.nan
        who = f" by {r.rater}" if str(r.rater).strip() not in ("", "nan") else ""
        why = f": {r.comment}" if str(r.comment).strip() not in ("", "nan") else ""
        excl.append(
            exclusion(
                "features",
                f"QC rating 'fail' of {r.modality}{who}{why}; removed "
                f"{len(columns)} feature(s) of stream(s) {', '.join(streams)}",
                participant_id=r.participant_id,
                session=r.session,
            )
        )
    return features, excl


def apply_stream_status(
    features: pd.DataFrame, dictionary: dict, *, visits, done=()
) -> tuple[pd.DataFrame, list]:
    """Features of a stream whose ``<stream>_status`` is not ``ok``, or that a QC reviewer listed in
    ``qc_excluded_streams``, are set to NaN -- one exclusion per session x stream, with the reason.

    ``done``: (participant_id, session, stream) already excluded by the ratings file.
    """
    features = features.copy()
    excl, done = [], set(done)
    in_visits = features["session"].isin(visits)
    listed = features.get("qc_excluded_streams", pd.Series("", index=features.index)).fillna("").astype(str)
    for stream in STREAM_MODALITY:
        columns = _stream_columns(dictionary, features, [stream])
        if not columns:
            continue
        status = features.get(f"{stream}_status")
        by_status = (
            (status.notna() & (status.astype(str).str.strip() != "ok"))
            if status is not None
            else pd.Series(False, index=features.index)
        )
        by_review = listed.str.split(r"[,;\s]+").apply(lambda s, st=stream: st in s)
        for idx in features.index[(by_status | by_review) & in_visits]:
            pid, ses = features.at[idx, "participant_id"], features.at[idx, "session"]
            had = int(features.loc[idx, columns].notna().sum())
            features.loc[idx, columns] = np.nan
            if (pid, ses, stream) in done:
                continue
            reason = (
                f"{stream}_status '{status[idx]}'"
                if by_status[idx]
                else f"QC reviewer excluded stream {stream} (qc_excluded_streams)"
            )
            excl.append(
                exclusion(
                    "features",
                    f"{reason}: {len(columns)} {stream} feature(s) treated as missing"
                    + (f" ({had} had values)" if had else ""),
                    participant_id=pid,
                    session=ses,
                )
            )
    return features, excl


def build_subjects(participants, arm, spec, *, path, excl) -> pd.DataFrame:
    """Randomised subjects with their arm, covariates, strata and analysis-set flags."""
    needed = list(
        dict.fromkeys([*spec.covariates, *spec.strata] + ([spec.cmh_stratum] if spec.cmh_stratum else []))
    )
    for e in spec.endpoints:
        needed += [c for c in (e.adjust or []) if c not in needed]
    require_columns(participants, needed, path=path)
    set_columns = [c for c in spec.analysis_sets.values() if c]
    require_columns(participants, set_columns, path=path)
    subjects = participants[["participant_id", *needed, *set_columns]].copy()
    subjects = subjects.loc[:, ~subjects.columns.duplicated()]
    subjects = subjects[subjects["participant_id"].isin(arm.index)].copy()
    subjects["arm"] = subjects["participant_id"].map(arm)
    for name, column in spec.analysis_sets.items():
        if column is None:
            subjects[f"set_{name}"] = True
        else:
            subjects[f"set_{name}"] = subjects[column].astype(str).str.strip().str.lower().isin(TRUE_VALUES)
    incomplete = subjects[needed].isna().any(axis=1)
    for r in subjects[incomplete].itertuples(index=False):
        missing = [c for c in needed if pd.isna(getattr(r, c))]
        excl.append(
            exclusion(
                "subject",
                f"missing covariate(s) {missing}: not in any model",
                participant_id=r.participant_id,
            )
        )
    subjects = subjects[~incomplete].reset_index(drop=True)
    for name in spec.analysis_sets:
        counts = subjects.loc[subjects[f"set_{name}"], "arm"].value_counts()
        for a in (spec.treated_arm, spec.control_arm):
            if counts.get(a, 0) < spec.small_arm_warning:
                excl.append(
                    exclusion(
                        "analysis set",
                        f"small arm: {a} has {int(counts.get(a, 0))} subject(s) "
                        f"(< {spec.small_arm_warning}); large-sample methods are "
                        "unreliable",
                        analysis_set=name,
                    )
                )
    return subjects

"""Inputs of the trial statistics: checks, QC exclusions, outcomes and analysis sets.

Pure functions on DataFrames (the CLI reads the files). Every problem is
either a :class:`~pipeline.errors.PipelineInputError` naming the file and
what is wrong (allocation key missing a subject, unknown arm, duplicate
subject x session rows, a missing column) or an *exclusion*: a row of
``exclusions.tsv`` saying what was left out of the models and why (QC
failures, missing covariates, outcomes without data).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.errors import PipelineInputError
from pipeline.features.dictionary import STREAM_MODALITY
from pipeline.stats.spec import AnalysisSpec

log = logging.getLogger(__name__)
RATING_COLUMNS = ("participant_id", "session", "modality", "rating", "rater", "comment", "timestamp")
MODALITIES = ("T1w", "FLAIR", "dwi", "bold")
TRUE_VALUES = ("yes", "true", "1", "y")


@dataclass
class Outcome:
    name: str
    kind: str  # "primary" | "imaging"
    units: str = ""
    better: str = "n/a"
    description: str = ""


@dataclass
class AnalysisData:
    """Everything the models need, in long format, with the exclusions made on the way.

    ``values``: participant_id, session, outcome, value (NaN removed).
    ``subjects``: one row per randomised subject with data: arm, covariates,
    and one boolean column per analysis set.
    """

    values: pd.DataFrame
    subjects: pd.DataFrame
    outcomes: list
    exclusions: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def exclusion(scope, reason, *, participant_id="", session="", outcome="", analysis_set="") -> dict:
    return {"scope": scope, "participant_id": participant_id, "session": session,
            "outcome": outcome, "analysis_set": analysis_set, "reason": reason}


def _clean_session(series: pd.Series) -> pd.Series:
    return series.astype(str).str.removeprefix("ses-")


def check_unique(table: pd.DataFrame, keys, *, path) -> None:
    """Raise if ``keys`` do not identify rows uniquely."""
    dup = table[table.duplicated(list(keys), keep=False)]
    if len(dup):
        shown = ", ".join(" ".join(map(str, r)) for r in dup[list(keys)].drop_duplicates()
                          .head(5).itertuples(index=False))
        raise PipelineInputError(path, f"duplicate {' x '.join(keys)} rows: {shown}")


def require_columns(table: pd.DataFrame, columns, *, path) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise PipelineInputError(path, f"missing column(s) {missing}; has {list(table.columns)}")


def check_allocation(allocation: pd.DataFrame, participants: pd.DataFrame, spec: AnalysisSpec, *,
                     path="allocation key", with_data=()) -> tuple[pd.Series, list]:
    """Validate the allocation key; return participant_id -> arm and exclusions.

    Raises on duplicate subjects, arms other than the two configured labels,
    and any subject of participants.tsv (or with outcome data) not in the key.
    """
    require_columns(allocation, ("participant_id", "arm"), path=path)
    allocation = allocation.assign(participant_id=allocation["participant_id"].astype(str),
                                   arm=allocation["arm"].astype(str).str.strip())
    check_unique(allocation, ("participant_id",), path=path)
    arms = (spec.treated_arm, spec.control_arm)
    unknown = allocation[~allocation["arm"].isin(arms)]
    if len(unknown):
        shown = ", ".join(f"{r.participant_id}={r.arm!r}" for r in unknown.head(5).itertuples())
        raise PipelineInputError(path, f"unknown arm label(s) {shown}; expected one of {list(arms)} "
                                       "(config stats.arms)")
    key = allocation.set_index("participant_id")["arm"]
    expected = set(participants["participant_id"].astype(str)) | set(with_data)
    missing = sorted(expected - set(key.index))
    if missing:
        raise PipelineInputError(path, f"allocation key misses {len(missing)} subject(s): "
                                       f"{', '.join(missing[:10])}")
    excl = [exclusion("subject", "in the allocation key but not in participants.tsv: no covariates",
                      participant_id=s) for s in sorted(set(key.index) - expected)]
    return key, excl


def failed_ratings(ratings: pd.DataFrame, *, path="qc ratings") -> pd.DataFrame:
    """The latest rating per subject x session x modality, keeping only ``fail``."""
    require_columns(ratings, ("participant_id", "session", "modality", "rating"), path=path)
    ratings = ratings.copy()
    for col in RATING_COLUMNS:
        if col not in ratings.columns:
            ratings[col] = ""
    ratings["session"] = _clean_session(ratings["session"])
    bad = ratings[~ratings["modality"].isin(MODALITIES)]
    if len(bad):
        raise PipelineInputError(path, f"unknown modality {sorted(set(bad['modality']))}; "
                                       f"one of {MODALITIES}")
    bad = ratings[~ratings["rating"].isin(("pass", "fail", "uncertain"))]
    if len(bad):
        raise PipelineInputError(path, f"unknown rating {sorted(set(bad['rating']))}; pass|fail|uncertain")
    ratings["_time"] = pd.to_datetime(ratings["timestamp"], errors="coerce", utc=True, format="ISO8601")
    latest = (ratings.sort_values("_time", na_position="first", kind="stable")
              .groupby(["participant_id", "session", "modality"], as_index=False).tail(1))
    return latest[latest["rating"] == "fail"].drop(columns="_time").reset_index(drop=True)


def apply_qc(features: pd.DataFrame, dictionary: dict, fails: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Set the features of failed modalities to NaN; one exclusion per failed rating."""
    features = features.copy()
    excl = []
    for r in fails.itertuples(index=False):
        streams = [s for s, m in STREAM_MODALITY.items() if m == r.modality]
        columns = [c for c, d in dictionary.items()
                   if d.get("Stream") in streams and c in features.columns and not c.endswith("_status")]
        rows = (features["participant_id"] == r.participant_id) & (features["session"] == r.session)
        if not rows.any():
            continue
        features.loc[rows, columns] = np.nan
        who = f" by {r.rater}" if str(r.rater).strip() not in ("", "nan") else ""
        why = f": {r.comment}" if str(r.comment).strip() not in ("", "nan") else ""
        excl.append(exclusion(
            "features", f"QC rating 'fail' of {r.modality}{who}{why}; removed "
                        f"{len(columns)} feature(s) of stream(s) {', '.join(streams)}",
            participant_id=r.participant_id, session=r.session))
    return features, excl


def select_biomarkers(features: pd.DataFrame, dictionary: dict, spec: AnalysisSpec, *,
                      path="features.tsv") -> tuple[list, list]:
    """Imaging outcomes to model, and a note on how they were chosen."""
    if spec.biomarkers is not None:
        missing = [b for b in spec.biomarkers if b not in features.columns]
        if missing:
            raise PipelineInputError(path, f"stats.biomarkers not in the feature table: {missing}")
        chosen = list(spec.biomarkers)
        note = f"imaging biomarkers listed in config stats.biomarkers ({len(chosen)})"
    else:
        candidates = [c for c, d in dictionary.items() if c in features.columns
                      and d.get("Better") in ("higher", "lower")]
        chosen = [c for c in candidates if spec.is_default_biomarker(c)]
        left = [c for c in candidates if c not in chosen]
        note = ("imaging biomarkers: every numeric feature whose dictionary 'Better' is higher/lower, "
                f"except image-quality metrics matching stats.not_biomarkers ({', '.join(left) or 'none'})")
    numeric = []
    for name in chosen:
        values = pd.to_numeric(features[name], errors="coerce")
        if (values.isna() & features[name].notna()).any():
            if spec.biomarkers is not None:
                raise PipelineInputError(path, f"biomarker {name} is not numeric")
            continue
        numeric.append(name)
    return numeric, [note]


def assemble(*, features: pd.DataFrame, dictionary: dict, phenotype: pd.DataFrame,
             participants: pd.DataFrame, allocation: pd.DataFrame, spec: AnalysisSpec,
             ratings: pd.DataFrame | None = None, paths: dict | None = None) -> AnalysisData:
    """Check every input and build the long analysis data.

    Parameters
    ----------
    features : DataFrame
        features.tsv (one row per subject x session; never contains the arm).
    dictionary : dict
        features.json (column -> Description, Units, Better, Stream).
    phenotype : DataFrame
        Clinical scores, long format (participant_id, session, primary column).
    participants : DataFrame
        participants.tsv: covariates and analysis-set columns.
    allocation : DataFrame
        The allocation key: participant_id, arm.
    ratings : DataFrame, optional
        QC ratings; a ``fail`` removes the features of that modality's streams.
    paths : dict, optional
        File names used in error messages (keys: features, phenotype,
        participants, allocation, ratings).
    """
    paths = {"features": "features.tsv", "phenotype": spec.primary_outcome_file,
             "participants": "participants.tsv", "allocation": "allocation key",
             "ratings": "qc ratings", **(paths or {})}
    excl: list = []
    notes: list = []
    require_columns(participants, ("participant_id",), path=paths["participants"])
    participants = participants.assign(participant_id=participants["participant_id"].astype(str))
    check_unique(participants, ("participant_id",), path=paths["participants"])

    col = spec.primary_outcome_column
    require_columns(phenotype, ("participant_id", "session", col), path=paths["phenotype"])
    phenotype = phenotype.assign(session=_clean_session(phenotype["session"]))
    check_unique(phenotype, ("participant_id", "session"), path=paths["phenotype"])
    require_columns(features, ("participant_id", "session"), path=paths["features"])
    features = features.assign(session=_clean_session(features["session"]))
    check_unique(features, ("participant_id", "session"), path=paths["features"])
    if "arm" in features.columns:
        raise PipelineInputError(paths["features"], "the feature table must not contain the arm")

    with_data = set(features["participant_id"]) | set(phenotype["participant_id"])
    arm, more = check_allocation(allocation, participants, spec, path=paths["allocation"],
                                 with_data=with_data)
    excl += more

    if ratings is not None and len(ratings):
        features, more = apply_qc(features, dictionary, failed_ratings(ratings, path=paths["ratings"]))
        excl += more
    biomarkers, more = select_biomarkers(features, dictionary, spec, path=paths["features"])
    notes += more

    primary = Outcome(col, "primary", "points", "lower", f"{col} ({spec.primary_outcome_file})")
    outcomes = [primary]
    for b in biomarkers:
        entry = dictionary.get(b, {})
        outcomes.append(Outcome(b, "imaging", entry.get("Units", ""), entry.get("Better", "n/a"),
                                entry.get("Description", "")))
    frames = [phenotype[["participant_id", "session"]].assign(
        outcome=col, value=pd.to_numeric(phenotype[col], errors="coerce"))]
    frames += [features[["participant_id", "session"]].assign(
        outcome=b, value=pd.to_numeric(features[b], errors="coerce")) for b in biomarkers]
    values = pd.concat(frames, ignore_index=True)
    values = values[values["session"].isin(spec.visits)]
    kept = []
    for outcome in outcomes:
        v = values[(values["outcome"] == outcome.name) & values["value"].notna()]
        if v.empty:
            excl.append(exclusion("outcome", "all values are NA (not modelled)", outcome=outcome.name))
        elif not (v["session"] == spec.baseline_visit).any():
            excl.append(exclusion("outcome", f"no {spec.baseline_visit} value: change from baseline "
                                             "undefined (not modelled)", outcome=outcome.name))
        elif not v["session"].isin(spec.post_visits).any():
            excl.append(exclusion("outcome", "no post-baseline value (not modelled)", outcome=outcome.name))
        else:
            kept.append(outcome)
    values = values[values["value"].notna() & values["outcome"].isin([o.name for o in kept])]

    subjects = _subjects(participants, arm, spec, paths, excl)
    return AnalysisData(values=values.reset_index(drop=True), subjects=subjects, outcomes=kept,
                        exclusions=excl, notes=notes)


def _subjects(participants, arm, spec, paths, excl) -> pd.DataFrame:
    require_columns(participants, spec.covariates, path=paths["participants"])
    set_columns = [c for c in spec.analysis_sets.values() if c]
    require_columns(participants, set_columns, path=paths["participants"])
    subjects = participants[["participant_id", *spec.covariates, *set_columns]].copy()
    subjects = subjects.loc[:, ~subjects.columns.duplicated()]
    subjects = subjects[subjects["participant_id"].isin(arm.index)].copy()
    subjects["arm"] = subjects["participant_id"].map(arm)
    for name, column in spec.analysis_sets.items():
        if column is None:
            subjects[f"set_{name}"] = True
        else:
            subjects[f"set_{name}"] = subjects[column].astype(str).str.strip().str.lower().isin(TRUE_VALUES)
    incomplete = subjects[spec.covariates].isna().any(axis=1)
    for r in subjects[incomplete].itertuples(index=False):
        missing = [c for c in spec.covariates if pd.isna(getattr(r, c))]
        excl.append(exclusion("subject", f"missing covariate(s) {missing}: not in any model",
                              participant_id=r.participant_id))
    return subjects[~incomplete].reset_index(drop=True)

"""Endpoint values from the trial's tables: one :class:`~pipeline.stats.data.Outcome` per variable.

:func:`assemble` is the one entry point: it checks every table (errors name the
file and the problem), applies the QC exclusions to features.tsv, reads each
endpoint of the spec into its type's standard form, checks the allocation key
against the data and builds the subjects with their analysis sets. What is
left out is listed, never dropped silently: outcomes without data, subjects
with a baseline value only (or no baseline), event windows a subject was not
followed for.
"""

from __future__ import annotations

import fnmatch
import logging

import numpy as np
import pandas as pd

from pipeline.errors import PipelineInputError
from pipeline.stats.data import (
    AnalysisData,
    Outcome,
    apply_qc,
    apply_stream_status,
    build_subjects,
    check_allocation,
    check_unique,
    clean_session,
    exclusion,
    failed_ratings,
    require_columns,
)
from pipeline.stats.spec import DEFAULT_NOT_BIOMARKERS

log = logging.getLogger(__name__)
TRUE_EVENT = ("1", "1.0", "yes", "true", "y")
FALSE_EVENT = ("0", "0.0", "no", "false", "n")
OPERATORS = {"<=": np.less_equal, "<": np.less, ">=": np.greater_equal, ">": np.greater, "==": np.equal}


def _table(tables, path) -> pd.DataFrame:
    if path not in tables:
        raise PipelineInputError(path, "table named by the trial spec was not read (not found?)")
    table = tables[path]
    require_columns(table, ("participant_id",), path=path)
    table = table.assign(participant_id=table["participant_id"].astype(str))
    if "session" in table.columns:
        table = table.assign(session=clean_session(table["session"]))
    return table


def _numeric(series: pd.Series, *, path, what) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce")
    bad = series[values.isna() & series.notna()]
    if len(bad):
        raise PipelineInputError(path, f"{what} is not numeric: {sorted(map(str, set(bad)))[:5]}")
    return values


def _events_flag(series: pd.Series, *, path, what) -> pd.Series:
    text = series.astype(str).str.strip().str.lower()
    bad = series[series.notna() & ~text.isin(TRUE_EVENT + FALSE_EVENT)]
    if len(bad):
        raise PipelineInputError(path, f"{what} must be 0/1 or yes/no: {sorted(map(str, set(bad)))[:5]}")
    return text.isin(TRUE_EVENT).astype(float).where(series.notna())


def _long(tables, path, column, spec, endpoint) -> pd.DataFrame:
    table = _table(tables, path)
    require_columns(table, ("session", column), path=path)
    check_unique(table, ("participant_id", "session"), path=path)
    out = table[["participant_id", "session"]].assign(
        value=_numeric(table[column], path=path, what=f"column {column}")
    )
    keep = set(endpoint.visits or spec.visits) | (
        {spec.baseline_visit} if endpoint.type == "continuous" else set()
    )
    if endpoint.type != "continuous" and not endpoint.visits:
        keep -= {spec.baseline_visit}
    return out[out["session"].isin(keep)]


def _events(tables, source, spec) -> tuple[pd.DataFrame, list]:
    """Per subject: events in the window, exposure (days), first event day; plus exclusions."""
    path, fu = source["events"], source["followup"]
    events = _table(tables, path)
    day_col = source.get("day_column", "onset_day")
    require_columns(events, (day_col,), path=path)
    for col, value in (source.get("where") or {}).items():
        require_columns(events, (col,), path=path)
        events = events[events[col].astype(str).str.lower() == str(value).lower()]
    days = _numeric(events[day_col], path=path, what=f"column {day_col}")
    follow = _table(tables, fu["file"])
    require_columns(follow, (fu["column"],), path=fu["file"])
    check_unique(follow, ("participant_id",), path=fu["file"])
    followup = _numeric(follow[fu["column"]], path=fu["file"], what=f"column {fu['column']}")
    followup.index = follow["participant_id"]
    window = source.get("window_days")
    excl = [
        exclusion(
            "outcome",
            f"event table {path}: subject has events but no follow-up in {fu['file']}",
            participant_id=s,
        )
        for s in sorted(set(events["participant_id"]) - set(followup.index))
    ]
    ev = pd.DataFrame({"participant_id": events["participant_id"].to_numpy(), "day": days.to_numpy()})
    ev = ev[(ev["day"] >= 0) & (True if window is None else ev["day"] <= window)]
    per = ev.groupby("participant_id")["day"].agg(["count", "min"])
    out = pd.DataFrame({"participant_id": followup.index, "followup": followup.to_numpy()})
    out = out.join(per, on="participant_id")
    out["count"] = out["count"].fillna(0).astype(int)
    out["exposure"] = out["followup"] if window is None else np.minimum(out["followup"], window)
    out["session"] = "follow-up" if window is None else f"0-{window:g} d"
    return out, excl


def _outcomes_of(endpoint, spec, tables, features, dictionary, excl) -> list:
    s, kind = endpoint.source, endpoint.type
    base = {"units": endpoint.units, "better": endpoint.better, "label": endpoint.label or endpoint.name}
    if s.get("features"):
        if features is None:
            excl.append(
                exclusion(
                    "outcome", "no feature table given (--features): not analysed", outcome=endpoint.name
                )
            )
            return []
        out = []
        for name in select_biomarkers(features, dictionary, s):
            entry = dictionary.get(name, {})
            data = features[["participant_id", "session"]].assign(
                value=pd.to_numeric(features[name], errors="coerce")
            )
            data = data[data["session"].isin(set(endpoint.visits or spec.visits) | {spec.baseline_visit})]
            out.append(
                Outcome(
                    name,
                    endpoint,
                    data,
                    entry.get("Units", ""),
                    entry.get("Better", "n/a"),
                    name,
                    entry.get("Description", ""),
                )
            )
        return out
    if "columns" in s:
        return [
            Outcome(
                col,
                endpoint,
                _long(tables, s["file"], col, spec, endpoint),
                meta.get("units", ""),
                meta.get("better", "n/a"),
                meta.get("label") or col,
                f"{col} ({s['file']})",
            )
            for col, meta in s["columns"].items()
        ]
    if kind in ("continuous", "ordinal") or (kind == "binary" and "column" in s):
        data = _long(tables, s["file"], s["column"], spec, endpoint)
        if kind == "ordinal":
            bad = sorted(set(data["value"].dropna()) - set(endpoint.levels))
            if bad:
                raise PipelineInputError(
                    s["file"],
                    f"column {s['column']}: values {bad} are not levels "
                    f"{endpoint.levels} of endpoint {endpoint.name}",
                )
        if kind == "binary":
            if endpoint.responder:
                r = endpoint.responder
                hit = OPERATORS[r["operator"]](data["value"], r["threshold"])
                data = data.assign(value=hit.astype(float).where(data["value"].notna()))
            elif not set(data["value"].dropna()) <= {0.0, 1.0}:
                raise PipelineInputError(
                    s["file"],
                    f"column {s['column']} of binary endpoint {endpoint.name} "
                    "must be 0/1 (or give a responder rule)",
                )
        return [Outcome(endpoint.name, endpoint, data, description=f"{s['column']} ({s['file']})", **base)]
    if "events" in s:
        per, more = _events(tables, s, spec)
        excl += more
        if kind == "binary":
            unknown = per[(per["count"] == 0) & (per["followup"] < (s.get("window_days") or 0))]
            excl += [
                exclusion(
                    "outcome",
                    f"followed {r.followup:g} d, shorter than the {s['window_days']:g}-day "
                    "window, without an event: outcome unknown",
                    participant_id=r.participant_id,
                    outcome=endpoint.name,
                )
                for r in unknown.itertuples()
            ]
            per = per.drop(unknown.index).assign(value=lambda d: (d["count"] > 0).astype(float))
            data = per[["participant_id", "session", "value"]]
        elif kind == "count":
            data = per[["participant_id", "session", "count", "exposure"]]
        else:
            data = per.assign(
                event=(per["count"] > 0).astype(int),
                time=np.where(per["count"] > 0, per["min"], per["exposure"]),
            )
            data = data[["participant_id", "session", "time", "event"]]
        return [Outcome(endpoint.name, endpoint, data, description=f"events in {s['events']}", **base)]
    table = _table(tables, s["file"])
    check_unique(table, ("participant_id",), path=s["file"])
    if kind == "count":
        require_columns(table, (s["column"], s["time"]), path=s["file"])
        data = (
            table[["participant_id"]]
            .assign(
                session="follow-up",
                count=_numeric(table[s["column"]], path=s["file"], what=s["column"]),
                exposure=_numeric(table[s["time"]], path=s["file"], what=s["time"]),
            )
            .dropna()
        )
    else:
        require_columns(table, (s["time"], s["event"]), path=s["file"])
        data = (
            table[["participant_id"]]
            .assign(
                session="follow-up",
                time=_numeric(table[s["time"]], path=s["file"], what=s["time"]),
                event=_events_flag(table[s["event"]], path=s["file"], what=s["event"]),
            )
            .dropna()
        )
    return [Outcome(endpoint.name, endpoint, data, description=f"{s['file']}", **base)]


def select_biomarkers(features: pd.DataFrame, dictionary: dict, source: dict) -> list:
    """Imaging outcomes: ``include`` patterns, or every numeric feature whose Better is higher/lower,
    minus the ``exclude`` patterns (image-quality metrics)."""
    exclude = source.get("exclude", DEFAULT_NOT_BIOMARKERS)
    if source.get("include"):
        chosen = [c for c in features.columns if any(fnmatch.fnmatch(c, p) for p in source["include"])]
        missing = [p for p in source["include"] if not any(fnmatch.fnmatch(c, p) for c in features.columns)]
        if missing:
            raise PipelineInputError(
                "features.tsv", f"biomarkers of the spec not in the feature table: {missing}"
            )
    else:
        chosen = [
            c
            for c, d in dictionary.items()
            if c in features.columns
            and d.get("Better") in ("higher", "lower")
            and not any(fnmatch.fnmatch(c, p) for p in exclude)
        ]
    numeric = []
    for name in chosen:
        values = pd.to_numeric(features[name], errors="coerce")
        if (values.isna() & features[name].notna()).any():
            if source.get("include"):
                raise PipelineInputError("features.tsv", f"biomarker {name} is not numeric")
            continue
        numeric.append(name)
    return numeric


def _prepare_features(features, dictionary, ratings, spec, paths, excl) -> pd.DataFrame:
    require_columns(features, ("participant_id", "session"), path=paths["features"])
    features = features.assign(
        participant_id=features["participant_id"].astype(str), session=clean_session(features["session"])
    )
    check_unique(features, ("participant_id", "session"), path=paths["features"])
    if "arm" in features.columns:
        raise PipelineInputError(paths["features"], "the feature table must not contain the arm")
    done = []
    if ratings is not None and len(ratings):
        fails = failed_ratings(ratings, path=paths["ratings"])
        features, more = apply_qc(features, dictionary, fails)
        excl += more
        from pipeline.features.dictionary import STREAM_MODALITY

        done = [
            (r.participant_id, r.session, s)
            for r in fails.itertuples()
            for s, m in STREAM_MODALITY.items()
            if m == r.modality
        ]
    features, more = apply_stream_status(features, dictionary, visits=spec.visits, done=done)
    excl += more
    return features


def _list_subjects(outcome, spec, subjects, listed):
    """(participant, reason) pairs of a continuous outcome's subjects not in its model."""
    v = outcome.data.dropna(subset=["value"])
    post = set(v.loc[v["session"].isin(spec.post_visits), "participant_id"])
    base = set(v.loc[v["session"] == spec.baseline_visit, "participant_id"])
    for pid in sorted((base - post) & subjects):
        listed.setdefault((pid, "baseline value only, no post-baseline value: not in the model"), []).append(
            outcome.name
        )
    for pid in sorted((post - base) & subjects):
        listed.setdefault(
            (pid, f"no {spec.baseline_visit} value: no change from baseline, not in the model"), []
        ).append(outcome.name)


def assemble(
    *,
    spec,
    participants: pd.DataFrame,
    allocation: pd.DataFrame,
    tables=None,
    features=None,
    dictionary=None,
    ratings=None,
    paths=None,
) -> AnalysisData:
    """Check every input and build the analysis data of a trial spec.

    Parameters
    ----------
    spec : TrialSpec
    participants, allocation : DataFrame
        participants.tsv (covariates, strata, analysis-set columns) and the
        allocation key (participant_id, arm).
    tables : dict
        Spec file name -> DataFrame for every table the spec names.
    features, dictionary : DataFrame, dict, optional
        features.tsv and features.json (imaging endpoints).
    ratings : DataFrame, optional
        QC ratings; a ``fail`` removes the features of that modality's streams.
    paths : dict, optional
        Names used in error messages (participants, allocation, features, ratings).
    """
    paths = {
        "features": "features.tsv",
        "participants": "participants.tsv",
        "allocation": "allocation key",
        "ratings": "qc ratings",
        **(paths or {}),
    }
    tables, dictionary, excl, notes = dict(tables or {}), dict(dictionary or {}), [], []
    require_columns(participants, ("participant_id",), path=paths["participants"])
    participants = participants.assign(participant_id=participants["participant_id"].astype(str))
    check_unique(participants, ("participant_id",), path=paths["participants"])
    if features is not None:
        features = _prepare_features(features, dictionary, ratings, spec, paths, excl)
    outcomes = []
    for endpoint in spec.ordered_endpoints():
        outcomes += _outcomes_of(endpoint, spec, tables, features, dictionary, excl)
    with_data = set()
    for o in outcomes:
        measured = o.data.drop(columns=["participant_id", "session"]).notna().all(axis=1)
        with_data |= set(o.data.loc[measured, "participant_id"])
    arm, more = check_allocation(
        allocation, participants, spec, path=paths["allocation"], with_data=with_data
    )
    excl += more
    subjects = build_subjects(participants, arm, spec, path=paths["participants"], excl=excl)
    in_model = set(subjects["participant_id"])
    kept, listed = [], {}
    for o in outcomes:
        value_cols = [c for c in o.data.columns if c not in ("participant_id", "session")]
        o.data = o.data.dropna(subset=value_cols)
        if o.data.empty:
            excl.append(exclusion("outcome", "all values are NA (not modelled)", outcome=o.name))
            continue
        if o.type == "continuous":
            if not (o.data["session"] == spec.baseline_visit).any():
                excl.append(
                    exclusion(
                        "outcome",
                        f"no {spec.baseline_visit} value: change from baseline undefined (not modelled)",
                        outcome=o.name,
                    )
                )
                continue
            if not o.data["session"].isin(spec.post_visits).any():
                excl.append(exclusion("outcome", "no post-baseline value (not modelled)", outcome=o.name))
                continue
            _list_subjects(o, spec, in_model, listed)
        kept.append(o)
    group_size = {}
    for o in kept:
        group_size[o.endpoint.name] = group_size.get(o.endpoint.name, 0) + 1
    for (pid, reason), names in listed.items():
        endpoint = next(o.endpoint.name for o in kept if o.name == names[0])
        if len(names) > 1 and len(names) == group_size[endpoint]:
            excl.append(
                exclusion(
                    "outcome", reason, participant_id=pid, outcome=f"{endpoint} (all {len(names)} outcomes)"
                )
            )
        else:
            excl += [exclusion("outcome", reason, participant_id=pid, outcome=n) for n in names]
    return AnalysisData(subjects=subjects, outcomes=kept, exclusions=excl, notes=notes)

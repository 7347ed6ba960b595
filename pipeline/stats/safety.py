"""Adverse-event tables by group: the blinded DSMB looks (groups A/B) and the unblinded safety summary.

The DSMB of RESSTORE looks at safety after 15, 30 and 60 patients have
completed 2 weeks (trial spec ``dsmb``). :func:`safety_table` needs only a
group per participant -- the coded key an independent statistician holds
(``participant_id``, ``group`` = A/B), never the arm labels -- so the blinded
table can be produced without unblinding anyone (``resstore dsmb-safety``).
The unblinded report calls it with the real arms.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline.errors import PipelineInputError
from pipeline.stats.data import require_columns

log = logging.getLogger(__name__)
COLUMNS = ["look", "patients", "window", "measure", "group", "n_group", "value", "percent"]


def coded_groups(groups: pd.DataFrame, spec, *, path="groups") -> pd.Series:
    """participant_id -> group code of a coded (blinded) key; refuses the real arm labels."""
    require_columns(groups, ("participant_id",), path=path)
    column = "group" if "group" in groups.columns else "arm" if "arm" in groups.columns else None
    if column is None:
        raise PipelineInputError(path, "needs a 'group' column (coded arms, e.g. A/B)")
    codes = groups[column].astype(str).str.strip()
    if set(codes) & {spec.treated_arm, spec.control_arm}:
        raise PipelineInputError(
            path,
            f"holds the arm labels {spec.treated_arm}/{spec.control_arm}: this is the "
            "unblinded allocation key; the DSMB table takes a coded key (A/B)",
        )
    if codes.nunique() > 2:
        raise PipelineInputError(path, f"more than two groups: {sorted(set(codes))}")
    return pd.Series(codes.to_numpy(), index=groups["participant_id"].astype(str))


def safety_table(
    spec, participants: pd.DataFrame, groups: pd.Series, tables: dict, *, looks=None
) -> tuple[pd.DataFrame, list]:
    """AE counts by group in each window of ``spec.dsmb``, at each look (or over everyone).

    Parameters
    ----------
    groups : Series
        participant_id -> group label (A/B for the DSMB, arm labels unblinded).
    looks : list of int or None
        Numbers of patients who completed ``completed_after_days``, in
        inclusion order; None = one look over every patient with follow-up.

    Returns
    -------
    table : DataFrame
        ``COLUMNS``: per look, window and measure, the value (and % of the
        group's patients) of each group and of all patients.
    notes : list of str
    """
    d = spec.dsmb
    if not d:
        raise PipelineInputError(
            spec.source, "the trial spec has no dsmb section (windows, events, follow-up)"
        )
    events = tables[d["events"]].assign(participant_id=lambda t: t["participant_id"].astype(str))
    require_columns(events, (d["day_column"],), path=d["events"])
    follow = tables[d["followup"]["file"]]
    require_columns(follow, ("participant_id", d["followup"]["column"]), path=d["followup"]["file"])
    follow = follow.assign(participant_id=follow["participant_id"].astype(str)).set_index("participant_id")
    people = participants.assign(participant_id=participants["participant_id"].astype(str))
    if d["order_by"] not in people.columns:
        raise PipelineInputError(
            "participants.tsv", f"missing column {d['order_by']!r} (trial spec dsmb.order_by)"
        )
    people = people[people["participant_id"].isin(groups.index)].sort_values(d["order_by"], kind="stable")
    fu = pd.to_numeric(people["participant_id"].map(follow[d["followup"]["column"]]), errors="coerce")
    completed = people[fu.to_numpy() >= d["completed_after_days"]]
    notes = []
    rows = []
    for look in looks if looks is not None else [None]:
        if look is not None and len(completed) < look:
            notes.append(
                f"look at {look} patients not reached: {len(completed)} have completed "
                f"{d['completed_after_days']:g} days"
            )
            continue
        ids = list(completed["participant_id"] if look is None else completed["participant_id"].iloc[:look])
        label = "all patients" if look is None else f"{look} patients"
        rows += _look_rows(label, ids, groups, events, d)
    return pd.DataFrame(rows, columns=COLUMNS), notes


def _look_rows(label, ids, groups, events, d) -> list:
    g = groups.reindex(ids)
    sets = {name: list(g.index[g == name]) for name in sorted(set(g.dropna()))}
    sets["total"] = list(ids)
    day = pd.to_numeric(events[d["day_column"]], errors="coerce")
    serious = d.get("serious_column")
    rows = []
    for w in d["windows"]:
        in_window = events[(day >= 0) & (day <= w["days"])]
        measures = {
            "patients with >= 1 adverse event": (in_window, True),
            "adverse events": (in_window, False),
        }
        if serious and serious in events.columns:
            sae = in_window[in_window[serious].astype(str).str.lower().isin(("yes", "1", "true"))]
            measures["patients with >= 1 serious adverse event"] = (sae, True)
        for measure, (ev, per_patient) in measures.items():
            for name, members in sets.items():
                sub = ev[ev["participant_id"].isin(members)]
                value = sub["participant_id"].nunique() if per_patient else len(sub)
                pct = 100.0 * value / len(members) if per_patient and members else np.nan
                rows.append(
                    {
                        "look": label,
                        "patients": len(ids),
                        "window": w["label"],
                        "measure": measure,
                        "group": name,
                        "n_group": len(members),
                        "value": int(value),
                        "percent": pct,
                    }
                )
    return rows


def wide(table: pd.DataFrame) -> list[dict]:
    """One record per look x window x measure with a 'n (x%)' cell per group (report layout)."""
    out = []
    for (look, window, measure), sub in table.groupby(["look", "window", "measure"], sort=False):
        cells = {}
        for r in sub.itertuples():
            pct = f" ({r.percent:.0f}%)" if np.isfinite(r.percent) else ""
            cells[f"{r.group} (n={r.n_group})"] = f"{r.value}{pct}"
        out.append({"look": look, "window": window, "measure": measure, **cells})
    return out

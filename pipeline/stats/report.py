"""Self-contained HTML report of the trial statistics (inline SVG and base64 PNG; no network).

Order: the confirmatory endpoint first (marked), a summary of every endpoint's
main model in outcome units with the side it favours, then one section per
endpoint type (continuous with per-arm LS means and SEs, MCID, binary,
ordinal shift, counts, time to event), the biomarker family with its q
values, the safety table, model diagnostics and every exclusion. Numbers are
rounded for reading; ``results.tsv`` keeps full precision.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import __version__
from pipeline.stats import report_figures as figs
from pipeline.stats.analysis import key_visit
from pipeline.stats.continuous import change_from_baseline
from pipeline.stats.report_template import TEMPLATE


def num(x, digits: int = 3) -> str:
    """A number rounded for reading (``digits`` significant digits, no exponent for usual sizes)."""
    if x is None or (isinstance(x, float | np.floating) and np.isnan(x)):
        return ""
    if isinstance(x, float | np.floating) and np.isinf(x):
        return "inf" if x > 0 else "-inf"
    if isinstance(x, str):
        return x
    x = float(x)
    if x == 0:
        return "0"
    mag = int(np.floor(np.log10(abs(x))))
    decimals = max(0, digits - 1 - mag)
    return f"{x:.{decimals}f}" if -4 <= mag < 6 else f"{x:.{digits - 1}e}"


def pval(p) -> str:
    """A p value for reading: three decimals, or <0.001."""
    if p is None or not np.isfinite(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def ci(row) -> str:
    """'estimate (low to high)' of a results row, rounded for reading."""
    if np.isnan(row["ci_low"]):
        return num(row["estimate"])
    return f"{num(row['estimate'])} ({num(row['ci_low'])} to {num(row['ci_high'])})"


def _percent(x) -> str:
    return "" if not np.isfinite(x) else f"{100 * x:.0f}%"


def _summary_cell(row) -> tuple[str, str]:
    m = str(row.get("summary_measure") or "")
    if "proportion" in m:
        return _percent(row["summary_treated"]), _percent(row["summary_control"])
    if np.isfinite(row.get("lsmean_treated", np.nan)):
        return (
            f"{num(row['lsmean_treated'])} ({num(row['lsmean_treated_se'])})",
            f"{num(row['lsmean_control'])} ({num(row['lsmean_control_se'])})",
        )
    return num(row["summary_treated"]), num(row["summary_control"])


def _row_view(row) -> dict:
    row = {k: ("" if k in TEXT_COLUMNS and not isinstance(v, str) else v) for k, v in row.items()}
    ratio = "ratio" in str(row["measure"])
    better = "higher" if row["model"] == "mcid_responders" else row["better"]
    treated, control = _summary_cell(row)
    units = "" if ratio else row["units"]
    label = (
        "LS mean change (SE)"
        if np.isfinite(row.get("lsmean_treated", np.nan))
        else str(row.get("summary_measure") or "")
    )
    estimate_ci = ci(row)
    if str(row["measure"]) in ("risk difference", "difference in proportion reaching the MCID"):
        shown = {k: 100 * row[k] for k in ("estimate", "ci_low", "ci_high")}  # percentage points
        estimate_ci, units = ci(shown), "percentage points"
    return {
        **row,
        "estimate_ci": estimate_ci,
        "summary_label": label,
        "units_shown": units,
        "p_shown": pval(row["p"]),
        "q_shown": pval(row["q"]),
        "se_shown": num(row["se"]),
        "df_shown": num(row["df"], 3),
        "df_other_shown": num(row.get("df_other", np.nan), 3),
        "treated_shown": treated,
        "control_shown": control,
        "forest": forest(row, ratio, better),
        "lsm_t": f"{num(row['lsmean_treated'])} ({num(row['lsmean_treated_se'])})"
        if np.isfinite(row.get("lsmean_treated", np.nan))
        else "",
        "lsm_c": f"{num(row['lsmean_control'])} ({num(row['lsmean_control_se'])})"
        if np.isfinite(row.get("lsmean_control", np.nan))
        else "",
    }


TEXT_COLUMNS = ("covariance", "note", "family", "units", "measure", "summary_measure", "ddf_method", "label")


def forest(row, ratio, better) -> str:
    """The row's inline SVG mark (right = favours treatment)."""
    return figs.forest_svg(row["estimate"], row["ci_low"], row["ci_high"], ratio=ratio, better=better)


# notes worth reading beside an estimate (the methods themselves are in each section's text)
WARNINGS = ("left out", "prefer", "overdispersed", "boundary", "alpha ~ 0", "Fisher exact (an expected")


def wide_rows(views, data, spec) -> dict:
    """One table row per outcome x visit, one cell per model (estimate (95% CI), p), for a type section."""
    order = {o.name: i for i, o in enumerate(data.outcomes)}
    visits = {v: i for i, v in enumerate(spec.visits)}
    models = list(dict.fromkeys(v["model"] for v in views))
    groups = {}
    for v in views:
        groups.setdefault((v["outcome"], v["visit"]), []).append(v)
    rows, notes = [], []
    for (outcome, visit), members in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 0),
                                                                            visits.get(kv[0][1], len(visits)),
                                                                            kv[0][1])):
        by_model = {m["model"]: m for m in members}
        main = next((m for m in members if m["main_model"] == "yes"), members[0])
        cells = []
        for model in models:
            m = by_model.get(model)
            if m is None:
                cells.append({"text": "", "p": "", "status": "ok"})
                continue
            text = m["estimate_ci"] + (" pp" if m["units_shown"] == "percentage points" else "")
            if model == "chi_squared":  # its risk difference is the first column's; the test is what it adds
                text = "" if m["status"] == "ok" else text
            cells.append({"text": text if m["status"] == "ok" else "not estimated", "p": m["p_shown"],
                          "status": m["status"]})
            for part in str(m["note"]).split("; "):
                if m["status"] != "ok" or any(w in part for w in WARNINGS):
                    notes.append(f"{m['label']}, {visit}, {model}: {part}")
        rows.append({**main, "cells": cells, "first": not rows or rows[-1]["outcome"] != outcome})
    headers = [MODEL_HEADERS.get(m, m) for m in models]
    return {"models": headers, "rows": rows, "notes": list(dict.fromkeys(notes))}


MODEL_HEADERS = {
    "risk_difference": "risk difference", "fisher_exact": "Fisher exact: OR", "chi_squared": "chi-squared",
    "logistic": "logistic: adjusted OR", "cmh": "CMH: OR", "proportional_odds": "proportional odds: OR",
    "cmh_mean_score": "CMH mean score: difference", "negative_binomial": "negative binomial: RR",
    "poisson": "Poisson: RR", "cox": "Cox: HR", "log_rank": "log-rank"}


def change_summary(data, spec) -> pd.DataFrame:
    """Mean, SD and n of the observed change by outcome x visit x arm, first analysis set."""
    first = f"set_{next(iter(spec.analysis_sets))}"
    subjects = data.subjects.set_index("participant_id")
    frames = []
    for o in data.outcomes:
        if o.type != "continuous":
            continue
        ch = change_from_baseline(o.data, baseline=spec.baseline_visit, visits=spec.post_visits)
        ch = ch[ch["participant_id"].isin(subjects.index[subjects[first]])]
        ch["arm"] = ch["participant_id"].map(subjects["arm"])
        g = ch.groupby(["arm", "visit"])["change"].agg(["mean", "std", "count"]).reset_index()
        frames.append(g.rename(columns={"std": "sd", "count": "n"}).assign(outcome=o.name))
    if not frames:
        return pd.DataFrame(columns=["arm", "visit", "mean", "sd", "n", "outcome"])
    return pd.concat(frames, ignore_index=True)


def render(
    *,
    results: pd.DataFrame,
    exclusions: pd.DataFrame,
    details: dict,
    data,
    spec,
    inputs: dict,
    safety: list | None = None,
    safety_notes=(),
    lesion_sources: dict | None = None,
) -> str:
    """The report's HTML text."""
    from jinja2 import Environment, StrictUndefined

    first = next(iter(spec.analysis_sets))
    res = results.copy()
    views = [_row_view(r) for r in res.to_dict("records")]
    res_first = [v for v in views if v["analysis_set"] == first]
    confirmatory = next((v for v in views if v["confirmatory"] == "yes"), None)
    endpoints = {o.name: o for o in data.outcomes}
    summary, sets_table = [], []
    for o in data.outcomes:
        visit = key_visit(o.endpoint, spec, res[res["outcome"] == o.name])
        main = [
            v for v in views if v["outcome"] == o.name and v["main_model"] == "yes" and v["visit"] == visit
        ]
        summary += [v for v in main if v["analysis_set"] == first]
        by_set = {v["analysis_set"]: v for v in main}
        if by_set:
            sets_table.append(
                {
                    "label": o.label,
                    "visit": visit,
                    "measure": next(iter(by_set.values()))["measure"],
                    "cells": [by_set.get(s, {}).get("estimate_ci", "") for s in spec.analysis_sets],
                }
            )
    by_type = {
        t: [v for v in res_first if v["endpoint_type"] == t and v["family"] != "biomarkers"]
        for t in ("continuous", "binary", "ordinal", "count", "time_to_event")
    }
    order = {o.name: i for i, o in enumerate(data.outcomes)}
    visit_order = {v: i for i, v in enumerate(spec.visits)}
    continuous = sorted(
        (v for v in by_type["continuous"] if v["model"] in ("mmrm", "ancova")),
        key=lambda v: (order.get(v["outcome"], 0), visit_order.get(v["visit"], 0)),
    )
    mcid = []
    for o in data.outcomes:
        info = details.get((o.name, first), {}).get("mcid")
        row = next((v for v in res_first if v["outcome"] == o.name and v["model"] == "mcid_responders"), None)
        if info and row:
            arms = info["arms"]

            def mean_ci(a):
                if a["n"] < 2:
                    return num(a["mean"])
                half = 1.96 * a["sd"] / np.sqrt(a["n"])
                return f"{num(a['mean'])} ({num(a['mean'] - half)} to {num(a['mean'] + half)})"

            mcid.append(
                {
                    "label": o.label,
                    "visit": info["visit"],
                    "mcid": f"{'+' if info['sign'] > 0 else '-'}{num(info['value'])} {o.units}",
                    "reference": info["reference"],
                    "treated": mean_ci(arms[spec.treated_arm]),
                    "control": mean_ci(arms[spec.control_arm]),
                    "row": row,
                }
            )
    figures = _figures(data, spec, details, first, res)
    biomarkers = [
        v
        for v in res_first
        if v["family"] == "biomarkers" and v["main_model"] == "yes" and v["visit"] == spec.primary_visit
    ]
    diagnostics = _diagnostics(details)
    excl = exclusions.fillna("").to_dict("records")
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.from_string(TEMPLATE).render(
        version=__version__,
        spec=spec,
        first=first,
        confirmatory=confirmatory,
        summary=summary,
        sets_table=sets_table,
        continuous=continuous,
        mcid=mcid,
        binary=wide_rows(by_type["binary"], data, spec),
        ordinal=wide_rows(by_type["ordinal"], data, spec),
        counts=wide_rows(by_type["count"], data, spec),
        tte=wide_rows(by_type["time_to_event"], data, spec),
        biomarkers=biomarkers,
        figures=figures,
        diagnostics=diagnostics,
        exclusions=excl,
        n_excluded_rows=int((res["status"] == "excluded").sum()),
        inputs=inputs,
        notes=data.notes,
        n_results=len(res),
        set_counts=_set_counts(data, spec),
        endpoints=endpoints,
        safety=safety or [],
        safety_notes=list(safety_notes),
        weights_text=WEIGHTS_TEXT[spec.lsmeans_weights],
        ddf_text=DDF_TEXT[spec.ddf],
        lesion_sources=lesion_sources,
    )


WEIGHTS_TEXT = {
    "equal": "LS means weight the levels of each factor covariate equally (SAS LSMEANS and R emmeans "
    "default); numeric covariates and the baseline value are at their mean over the model's rows.",
    "observed": "LS means weight the levels of each factor covariate by their observed proportions "
    '(SAS OM, emmeans weights = "proportional"); numeric covariates and the baseline value are at '
    "their mean over the model's rows.",
}
DDF_TEXT = {
    "kenward-roger": "Kenward-Roger (1997): SEs from the bias-adjusted covariance of the fixed effects, KR "
    "degrees of freedom; Satterthwaite df and model-based SE in results.tsv (df_other, se_model).",
    "satterthwaite": "Satterthwaite degrees of freedom with model-based SEs; Kenward-Roger df in results.tsv "
    "(df_other).",
}


def _set_counts(data, spec) -> list:
    out = []
    for name, column in spec.analysis_sets.items():
        s = data.subjects[data.subjects[f"set_{name}"]]
        counts = s["arm"].value_counts()
        out.append(
            {
                "name": name,
                "column": column,
                "treated": int(counts.get(spec.treated_arm, 0)),
                "control": int(counts.get(spec.control_arm, 0)),
            }
        )
    return out


def _figures(data, spec, details, first, res) -> dict:
    summary = change_summary(data, spec)
    clinical = [o for o in data.outcomes if o.type == "continuous" and o.endpoint.family != "biomarkers"]
    out = {
        "mean_change": figs.mean_change_figure(
            summary,
            outcomes=[o.name for o in clinical],
            labels={o.name: o.label for o in clinical},
            units={o.name: o.units for o in clinical},
            arms=(spec.treated_arm, spec.control_arm),
            visits=spec.post_visits,
        ),
        "grotta": [],
        "km": [],
        "diagnostics": None,
        "sigma": [],
        "sigma_visits": [],
    }
    for o in data.outcomes:
        info = details.get((o.name, first), {})
        if o.type == "ordinal":
            visit = key_visit(o.endpoint, spec, res[res["outcome"] == o.name])
            out["grotta"].append(
                figs.grotta_figure(info.get("shift", {}).get(visit), title=f"{o.label} at {visit} ({first})")
            )
        if o.type == "time_to_event":
            for visit, curves in info.get("km", {}).items():
                out["km"].append(
                    figs.km_figure(
                        curves,
                        title=f"{o.label} ({visit}, {first})",
                        arms=(spec.treated_arm, spec.control_arm),
                        cumulative=o.better == "higher",
                    )
                )
    primary = spec.primary_endpoint
    info = details.get((primary.name, first), {}) if primary else {}
    if info.get("mmrm"):
        out["diagnostics"] = figs.diagnostics_figure(
            info["mmrm"], title=f"{primary.name}, {first}: residuals"
        )
        out["sigma"] = [
            [v] + [num(x) for x in row] for v, row in zip(info["visits"], info["mmrm"]["sigma"], strict=True)
        ]
        out["sigma_visits"] = info["visits"]
    out["grotta"] = [g for g in out["grotta"] if g]
    out["km"] = [k for k in out["km"] if k]
    return out


def _diagnostics(details) -> list:
    rows = []
    for (name, set_name), info in details.items():
        mm = info.get("mmrm")
        if mm is None:
            continue
        rows.append(
            {
                "outcome": name,
                "analysis_set": set_name,
                "model": info["model"],
                "covariance": mm["covariance"],
                "converged": mm["converged"],
                "n_subjects": mm["n_subjects"],
                "n_obs": mm["n_obs"],
                "loglik": f"{mm['loglik']:.2f}",
                "aic": f"{mm['aic']:.2f}",
                "fallback": "; ".join(f"{n}: {m}" for n, m in mm["attempts"] if m != "used"),
            }
        )
    return rows

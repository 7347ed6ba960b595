"""Self-contained HTML report of the trial statistics (figures inlined as base64 PNG).

Sections: the model (formula, covariance actually used, fallbacks), the
primary endpoint, a forest plot of every imaging biomarker, mean change by
arm and visit, model diagnostics, and every exclusion with its reason.
"""

from __future__ import annotations

import base64
import io
from importlib import resources

import numpy as np
import pandas as pd

from pipeline import __version__

TEMPLATE = "stats_report.html.j2"


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def forest_plot(results: pd.DataFrame, *, visit: str, model_names=("mmrm", "ancova"),
                colors=None) -> str | None:
    """Standardised treatment effects (estimate / SD of the change) of every outcome at ``visit``."""
    plt = _plt()
    rows = results[(results["visit"] == visit) & results["model"].isin(model_names)].copy()
    rows = rows[np.isfinite(rows["estimate"].astype(float))]
    if rows.empty:
        return None
    sets = list(dict.fromkeys(rows["analysis_set"]))
    outcomes = list(dict.fromkeys(rows["outcome"]))
    colors = colors or ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b"]
    fig, ax = plt.subplots(figsize=(8.5, 0.45 * len(outcomes) * max(1, len(sets)) ** 0.5 + 1.4))
    for s_index, set_name in enumerate(sets):
        sub = rows[rows["analysis_set"] == set_name].set_index("outcome")
        for o_index, name in enumerate(outcomes):
            if name not in sub.index:
                continue
            r = sub.loc[name]
            sd = float(r["sd_change"]) if np.isfinite(r["sd_change"]) and r["sd_change"] > 0 else np.nan
            y = o_index + (s_index - (len(sets) - 1) / 2) * 0.22
            ax.plot([r["ci_low"] / sd, r["ci_high"] / sd], [y, y], color=colors[s_index % len(colors)])
            ax.plot(r["estimate"] / sd, y, "o", color=colors[s_index % len(colors)], label=set_name)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(outcomes)))
    ax.set_yticklabels(outcomes)
    ax.invert_yaxis()
    ax.set_xlabel("treated minus control change from baseline / SD of the change (95% CI)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=False))
    ax.legend(unique.values(), unique.keys(), title="analysis set", fontsize=8, loc="best")
    ax.set_title(f"Treatment effects at {visit} (MMRM)")
    return _png(fig)


def mean_change_figure(summary: pd.DataFrame, *, outcomes, arms, visits) -> str | None:
    """Mean change from baseline (95% CI) by arm and visit, one panel per outcome."""
    plt = _plt()
    if summary.empty:
        return None
    n = len(outcomes)
    ncol = min(4, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), squeeze=False)
    x = np.arange(len(visits))
    for ax, name in zip(axes.ravel(), outcomes, strict=False):
        for offset, (arm, color) in zip((-0.08, 0.08), zip(arms, ("#d62728", "#1f77b4"), strict=True),
                                        strict=True):
            s = summary[(summary["outcome"] == name) & (summary["arm"] == arm)].set_index("visit")
            s = s.reindex(visits)
            half = 1.96 * s["sd"] / np.sqrt(s["n"])
            ax.errorbar(x + offset, s["mean"], yerr=half, color=color, marker="o", ms=3, capsize=2,
                        label=arm)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xticks(x)
        ax.set_xticklabels(visits, fontsize=7)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.suptitle("Mean change from baseline (95% CI), ITT", fontsize=9)
    fig.tight_layout()
    return _png(fig)


def diagnostics_figure(diag: dict, *, title: str) -> str | None:
    """Standardised (Cholesky-whitened) residuals vs fitted, and their normal QQ plot."""
    from scipy import stats

    plt = _plt()
    z = np.asarray(diag["standardised"], float)
    fitted = np.asarray(diag["fitted"], float)
    ok = np.isfinite(z)
    if ok.sum() < 3:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
    a.scatter(fitted[ok], z[ok], s=8, alpha=0.6)
    a.axhline(0, color="grey", lw=0.8)
    a.set_xlabel("fitted change")
    a.set_ylabel("standardised residual")
    (osm, osr), (slope, intercept, _) = stats.probplot(z[ok], dist="norm")
    b.scatter(osm, osr, s=8, alpha=0.6)
    b.plot(osm, slope * np.asarray(osm) + intercept, color="grey", lw=0.8)
    b.set_xlabel("normal quantile")
    b.set_ylabel("ordered residual")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def render(*, results: pd.DataFrame, exclusions: pd.DataFrame, details: dict, summary: pd.DataFrame,
           spec, outcomes, notes, inputs: dict) -> str:
    """The report's HTML text (no external resources)."""
    from jinja2 import Environment, StrictUndefined

    primary = next((o for o in outcomes if o.kind == "primary"), None)
    sd = summary[summary["arm"] == "all"].set_index(["outcome", "visit"])["sd"]
    with_sd = results.assign(sd_change=[sd.get((o, v), np.nan) for o, v in
                                        zip(results["outcome"], results["visit"], strict=True)])
    first_set = next(iter(spec.analysis_sets))
    figures = {
        "forest": forest_plot(with_sd, visit=spec.primary_visit),
        "mean_change": mean_change_figure(summary[summary["arm"] != "all"],
                                          outcomes=[o.name for o in outcomes],
                                          arms=(spec.treated_arm, spec.control_arm), visits=spec.post_visits),
    }
    diagnostics = []
    for (name, set_name), info in details.items():
        mm = info.get("mmrm")
        if mm is None:
            continue
        fallback = "; ".join(f"{n}: {m}" for n, m in mm["attempts"] if m != "used")
        diagnostics.append({"outcome": name, "analysis_set": set_name, "model": info["model"],
                            "covariance": mm["covariance"], "converged": mm["converged"],
                            "n_subjects": mm["n_subjects"], "n_obs": mm["n_obs"],
                            "loglik": f"{mm['loglik']:.2f}", "aic": f"{mm['aic']:.2f}",
                            "fallback": fallback})
    primary_info = details.get((primary.name, first_set)) if primary else None
    if primary_info and primary_info.get("mmrm"):
        figures["diagnostics"] = diagnostics_figure(
            primary_info["mmrm"], title=f"{primary.name}, {first_set}: residual diagnostics")
        sigma = np.asarray(primary_info["mmrm"]["sigma"])
        visits = primary_info["visits"]
        sigma_table = [[v] + [f"{x:.3g}" for x in row] for v, row in zip(visits, sigma, strict=True)]
    else:
        figures["diagnostics"], sigma_table, visits = None, [], []
    columns = ["outcome", "visit", "analysis_set", "model", "covariance", "estimate", "ci_low", "ci_high",
               "df", "p", "q", "n_treated", "n_control"]
    primary_rows = results[results["outcome_type"] == "primary"][columns] if primary else results.iloc[:0]
    imaging = results[(results["outcome_type"] == "imaging") & (results["visit"] == spec.primary_visit)
                      & results["model"].isin(("mmrm", "ancova"))][columns]
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    text = resources.files("pipeline").joinpath("templates", TEMPLATE).read_text()
    formula = ("change ~ baseline + visit + arm + arm:visit + " + " + ".join(spec.covariates))
    return env.from_string(text).render(
        version=__version__, spec=spec, formula=formula, figures=figures, notes=notes,
        primary=primary, primary_rows=_fmt(primary_rows), imaging_rows=_fmt(imaging),
        diagnostics=diagnostics, sigma_table=sigma_table, sigma_visits=visits,
        exclusions=exclusions.fillna("").to_dict("records"), inputs=inputs,
        outcomes=outcomes, n_results=len(results))


def _fmt(frame: pd.DataFrame) -> list[dict]:
    out = []
    for r in frame.to_dict("records"):
        row = {}
        for k, v in r.items():
            if isinstance(v, float | np.floating):
                row[k] = "" if not np.isfinite(v) else (f"{v:.3g}" if k in ("p", "q") else f"{v:.4g}")
            else:
                row[k] = v
        out.append(row)
    return out


def change_summary(data, spec) -> pd.DataFrame:
    """Mean, SD and n of the observed change by outcome x visit x arm (and all), first analysis set."""
    from pipeline.stats.models import change_from_baseline

    first = f"set_{next(iter(spec.analysis_sets))}"
    subjects = data.subjects.set_index("participant_id")
    frames = []
    for o in data.outcomes:
        ch = change_from_baseline(data.values[data.values["outcome"] == o.name],
                                  baseline=spec.baseline_visit, visits=spec.post_visits)
        ch = ch[ch["participant_id"].isin(subjects.index[subjects[first]])]
        ch["arm"] = ch["participant_id"].map(subjects["arm"])
        for arm_value, sub in list(ch.groupby("arm")) + [("all", ch)]:
            g = sub.groupby("visit")["change"].agg(["mean", "std", "count"]).reset_index()
            frames.append(g.rename(columns={"std": "sd", "count": "n"}).assign(outcome=o.name, arm=arm_value))
    if not frames:
        return pd.DataFrame(columns=["visit", "mean", "sd", "n", "outcome", "arm"])
    return pd.concat(frames, ignore_index=True)

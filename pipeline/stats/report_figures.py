"""Figures of the statistics report: inline SVG forest marks and base64 PNG plots (no network).

* :func:`forest_svg`: one outcome's estimate and 95% CI on its own axis in
  outcome units (log scale for ratios), oriented so that the right-hand side
  always favours treatment (the axis is flipped when lower is better).
* :func:`mean_change_figure`, :func:`grotta_figure` (ordinal shift bars),
  :func:`km_figure` (Kaplan-Meier), :func:`diagnostics_figure`.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd

ARM_COLORS = ("#1f5fa8", "#c0392b")  # treated, control


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def forest_svg(estimate, low, high, *, ratio: bool, better: str, width: int = 190, height: int = 20) -> str:
    """An inline SVG of estimate [low, high] with the no-effect line; right = favours treatment.

    Each row has its own scale (symmetric around no effect); with no stated
    better direction the mark is grey and not oriented.
    """
    values = np.array([estimate, low, high], float)
    if not np.all(np.isfinite(values)) or (ratio and np.any(values <= 0)):
        return ""
    x = np.log(values) if ratio else values
    flip = better == "lower"
    x = -x if flip else x
    span = max(float(np.max(np.abs(x))), 1e-12) * 1.15
    pad = 6

    def px(v):
        return pad + (v + span) / (2 * span) * (width - 2 * pad)

    est, a, b = (px(v) for v in x)
    lo, hi = min(a, b), max(a, b)
    colour = (
        "#555"
        if better not in ("higher", "lower")
        else ("#1f7a3a" if lo > width / 2 else "#b03a2e" if hi < width / 2 else "#333")
    )
    mid = height / 2
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="95% CI">'
        f'<line x1="{width / 2}" y1="1" x2="{width / 2}" y2="{height - 1}" stroke="#999" stroke-width="1"/>'
        f'<line x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}" stroke="{colour}" stroke-width="2"/>'
        f'<rect x="{est - 4:.1f}" y="{mid - 4}" width="8" height="8" fill="{colour}"/></svg>'
    )


def mean_change_figure(summary: pd.DataFrame, *, outcomes, labels, units, arms, visits) -> str | None:
    """Mean change from baseline (95% CI) by arm and visit, one panel per outcome, in outcome units."""
    if summary.empty or not outcomes:
        return None
    plt = _plt()
    n = len(outcomes)
    ncol = min(3, n)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 2.9 * nrow), squeeze=False)
    for ax, name in zip(axes.ravel(), outcomes, strict=False):
        s_all = summary[summary["outcome"] == name]
        shown = [v for v in visits if v in set(s_all["visit"])]
        x = np.arange(len(shown))
        for offset, arm, color in zip((-0.08, 0.08), arms, ARM_COLORS, strict=True):
            s = s_all[s_all["arm"] == arm].set_index("visit").reindex(shown)
            half = 1.96 * s["sd"] / np.sqrt(s["n"])
            ax.errorbar(x + offset, s["mean"], yerr=half, color=color, marker="o", ms=3, capsize=2, label=arm)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xticks(x)
        ax.set_xticklabels(shown, fontsize=8)
        ax.set_title(labels.get(name, name), fontsize=9)
        ax.set_ylabel(f"change ({units.get(name) or 'units'})", fontsize=8)
        ax.tick_params(labelsize=8)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=8)
    fig.suptitle("Mean change from baseline (95% CI), first analysis set", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def grotta_figure(shift: pd.DataFrame, *, title: str) -> str | None:
    """Horizontal stacked bars of the category distribution of each arm (the ordinal shift)."""
    if shift is None or shift.empty or shift.to_numpy().sum() == 0:
        return None
    plt = _plt()
    pct = shift.div(shift.sum(axis=1).replace(0, np.nan), axis=0) * 100
    cmap = plt.get_cmap("RdYlGn_r", len(shift.columns))
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(shift) + 1.0))
    for i, arm in enumerate(shift.index):
        left = 0.0
        for j, level in enumerate(shift.columns):
            w = float(pct.loc[arm, level]) if np.isfinite(pct.loc[arm, level]) else 0.0
            ax.barh(i, w, left=left, color=cmap(j), edgecolor="white")
            if w >= 6:
                ax.text(left + w / 2, i, f"{level:g}\n{w:.0f}%", ha="center", va="center", fontsize=7)
            left += w
    ax.set_yticks(range(len(shift)))
    ax.set_yticklabels([f"{a} (n={int(shift.loc[a].sum())})" for a in shift.index], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of patients by category", fontsize=8)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def km_figure(curves: dict, *, title: str, arms, cumulative: bool = False) -> str | None:
    """Kaplan-Meier curves by arm: probability without the event, or (``cumulative``, for a good
    event such as healing) the cumulative proportion with it."""
    if not curves:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for arm, color in zip(arms, ARM_COLORS, strict=True):
        if arm in curves:
            times, surv, _ = curves[arm]
            ax.step(times, 1 - surv if cumulative else surv, where="post", color=color, label=arm)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("days", fontsize=8)
    ax.set_ylabel(
        "cumulative proportion with the event" if cumulative else "probability without the event", fontsize=8
    )
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def diagnostics_figure(diag: dict, *, title: str) -> str | None:
    """Standardised (Cholesky-whitened) residuals vs fitted, and their normal QQ plot."""
    from scipy import stats

    z = np.asarray(diag["standardised"], float)
    fitted = np.asarray(diag["fitted"], float)
    ok = np.isfinite(z)
    if ok.sum() < 3:
        return None
    plt = _plt()
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

"""Time-to-event endpoints: Kaplan-Meier by arm, Cox proportional hazards, log-rank.

``frame``: participant_id, arm, time (days), event (1 = event, 0 = censored)
and the strata.

* ``cox``: hazard ratio treated / control from statsmodels ``PHReg`` with
  Efron ties, stratified by the spec's strata (a baseline hazard per stratum),
  Wald CI and p -- as R ``survival::coxph(Surv(time, event) ~ arm +
  strata(center), ties = "efron")``.
* ``log_rank``: stratified log-rank test (statsmodels ``survdiff``, as R
  ``survival::survdiff``).
* :func:`kaplan_meier`: statsmodels ``SurvfuncRight`` per arm (the report's
  curves and medians).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import SurvfuncRight, survdiff

from pipeline.stats.results import excluded_row, t_or_z_row

log = logging.getLogger(__name__)


def _strata(frame, adjust):
    if not adjust:
        return None
    return frame[list(adjust)].astype(str).agg("|".join, axis=1).to_numpy()


def fit_survival(frame: pd.DataFrame, *, treated, control, adjust=(), models=("cox", "log_rank")) -> list:
    """Every time-to-event model of one outcome."""
    arms = {arm: frame[frame["arm"] == arm] for arm in (treated, control)}
    events = {arm: int(sub["event"].sum()) for arm, sub in arms.items()}
    base = {
        "n_treated": len(arms[treated]),
        "n_control": len(arms[control]),
        "summary_measure": "proportion with the event (crude)",
        "summary_treated": events[treated] / len(arms[treated]) if len(arms[treated]) else np.nan,
        "summary_control": events[control] / len(arms[control]) if len(arms[control]) else np.nan,
    }
    rows = []
    for model in models:
        try:
            if not len(arms[treated]) or not len(arms[control]):
                raise ValueError("an arm has no subject")
            if sum(events.values()) == 0:
                raise ValueError("no event in either arm")
            row = cox(frame, treated, adjust) if model == "cox" else log_rank(frame, treated, adjust)
        except (ValueError, np.linalg.LinAlgError) as exc:
            row = excluded_row(f"{model} not estimated: {exc}")
        note = f"events {treated} {events[treated]}, {control} {events[control]}"
        row["note"] = "; ".join(x for x in (row.get("note", ""), note) if x)
        rows.append(
            {**base, "model": model, "converged": row.get("status", "ok") == "ok", "status": "ok", **row}
        )
    return rows


def cox(frame, treated, adjust) -> dict:
    """Hazard ratio of the treated arm, Cox model stratified by ``adjust``."""
    if min(frame.groupby("arm")["event"].sum()) == 0:
        raise ValueError("no event in one arm: the hazard ratio is not finite (monotone likelihood)")
    exog = (frame["arm"] == treated).to_numpy(float)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = PHReg(
            frame["time"].to_numpy(float),
            exog,
            status=frame["event"].to_numpy(int),
            strata=_strata(frame, adjust),
            ties="efron",
        ).fit(method="bfgs", maxiter=500, gtol=1e-10, disp=False)
    beta, se = float(res.params[0]), float(res.bse[0])
    if not np.isfinite(se) or se > 50:
        return excluded_row("Cox model did not converge")
    note = f"Efron ties; stratified by {', '.join(adjust)}" if adjust else "Efron ties"
    return t_or_z_row(beta, se, ratio=True, measure="hazard ratio", note=note)


def log_rank(frame, treated, adjust) -> dict:
    """Log-rank test of the arms, stratified by ``adjust`` (a p value; no estimate)."""
    stat, p = survdiff(
        frame["time"].to_numpy(float),
        frame["event"].to_numpy(int),
        (frame["arm"] == treated).to_numpy(int),
        strata=_strata(frame, adjust),
    )
    note = f"chi-squared {stat:.4g} (1 df)" + (f"; stratified by {', '.join(adjust)}" if adjust else "")
    return {
        "estimate": np.nan,
        "se": np.nan,
        "df": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": float(p),
        "measure": "log-rank test",
        "note": note,
    }


def kaplan_meier(frame: pd.DataFrame, arms) -> dict:
    """arm -> (times, survival probabilities, median time or NaN) of the Kaplan-Meier estimate."""
    out = {}
    for arm in arms:
        sub = frame[frame["arm"] == arm]
        if sub.empty:
            continue
        sf = SurvfuncRight(sub["time"].to_numpy(float), sub["event"].to_numpy(int))
        try:
            median = float(sf.quantile(0.5))
        except (ValueError, IndexError):
            median = np.nan
        out[arm] = (np.r_[0.0, sf.surv_times], np.r_[1.0, sf.surv_prob], median)
    return out

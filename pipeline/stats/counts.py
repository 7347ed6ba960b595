"""Count endpoints with exposure (recurrent events: adverse events, new ulcers).

``frame``: participant_id, arm, count, exposure (days) and the strata. The
rate ratio treated / control is ``exp(beta_arm)`` of a log-linear model with
offset ``log(exposure)``, adjusted for the strata:

* ``poisson``: statsmodels ``GLM`` Poisson (as R ``glm(family = poisson)``).
* ``negative_binomial``: NB2 (variance ``mu + alpha mu^2``). alpha by maximum
  likelihood (statsmodels discrete ``NegativeBinomial``), then the GLM with
  alpha fixed gives beta and its SE -- the same estimates and SEs as R
  ``MASS::glm.nb`` (theta = 1 / alpha), whose SEs also hold theta fixed.

Wald CIs; the summary is events per 100 days of exposure in each arm.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.discrete.discrete_model import NegativeBinomial

from pipeline.stats.binary import adjustment_design
from pipeline.stats.results import excluded_row, t_or_z_row

log = logging.getLogger(__name__)
RATE_PER_DAYS = 100.0


def fit_counts(
    frame: pd.DataFrame, *, treated, control, adjust=(), models=("poisson", "negative_binomial")
) -> list:
    """Every count model of one outcome."""
    frame = frame[frame["exposure"] > 0]
    arms = {arm: frame[frame["arm"] == arm] for arm in (treated, control)}
    rate = {
        arm: (RATE_PER_DAYS * sub["count"].sum() / sub["exposure"].sum()) if len(sub) else np.nan
        for arm, sub in arms.items()
    }
    base = {
        "n_treated": len(arms[treated]),
        "n_control": len(arms[control]),
        "summary_measure": f"events per {RATE_PER_DAYS:g} days of exposure",
        "summary_treated": rate[treated],
        "summary_control": rate[control],
    }
    rows = []
    for model in models:
        try:
            if not len(arms[treated]) or not len(arms[control]):
                raise ValueError("an arm has no subject with exposure")
            if frame["count"].sum() == 0:
                raise ValueError("no event in either arm")
            row = (
                poisson(frame, treated, adjust)
                if model == "poisson"
                else negative_binomial(frame, treated, adjust)
            )
        except (ValueError, np.linalg.LinAlgError) as exc:
            row = excluded_row(f"{model} not estimated: {exc}")
        rows.append(
            {**base, "model": model, "converged": row.get("status", "ok") == "ok", "status": "ok", **row}
        )
    return rows


def _design(frame, treated, adjust):
    X, _ = adjustment_design(frame, adjust, treated)
    return frame["count"].to_numpy(float), X, np.log(frame["exposure"].to_numpy(float))


def poisson(frame, treated, adjust) -> dict:
    """Rate ratio (treated / control) of a Poisson GLM, offset log(exposure days), adjusted for strata.

    Returns a results row: estimate and CI on the ratio scale, SE of the log rate ratio, Wald p; the note
    gives the Pearson dispersion (> 1.5: overdispersed, prefer the negative binomial).
    """
    y, X, offset = _design(frame, treated, adjust)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset).fit(tol=1e-12, maxiter=200)
    beta, se = float(res.params[1]), float(res.bse[1])
    if not res.converged or not np.isfinite(se) or se > 50:
        return excluded_row("Poisson regression did not converge (no events in an arm?)")
    dispersion = float(res.pearson_chi2 / res.df_resid) if res.df_resid > 0 else np.nan
    note = (
        f"adjusted for {', '.join(adjust) or 'nothing'}; offset log(exposure); Pearson dispersion "
        f"{dispersion:.3g}" + (" (overdispersed: prefer negative binomial)" if dispersion > 1.5 else "")
    )
    return t_or_z_row(beta, se, ratio=True, measure="rate ratio", note=note)


def _profile_alpha(y, X, offset) -> float:
    """alpha maximising the NB2 profile log-likelihood (beta by IRLS at each alpha), log alpha in [-14, 4]."""
    from scipy.optimize import minimize_scalar

    def neg_llf(log_alpha):
        family = sm.families.NegativeBinomial(alpha=float(np.exp(log_alpha)))
        res = sm.GLM(y, X, family=family, offset=offset).fit(scale=1.0, tol=1e-10, maxiter=100)
        return -float(res.llf)

    best = minimize_scalar(neg_llf, bounds=(-14.0, 4.0), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(best.x)) if best.success else float("nan")


def negative_binomial(frame, treated, adjust) -> dict:
    """Rate ratio (treated / control) of an NB2 regression with offset log(exposure days).

    alpha (variance ``mu + alpha mu^2``) by maximum likelihood (Newton; profile likelihood when Newton
    fails near alpha = 0), then beta and its SE from the GLM at that alpha (as ``MASS::glm.nb``).
    """
    y, X, offset = _design(frame, treated, adjust)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset).fit()
        model = NegativeBinomial(y, X, loglike_method="nb2", offset=offset)
        nb = model.fit(start_params=np.r_[start.params, 0.5], method="newton", maxiter=300, disp=False)
        alpha = float(nb.params[-1])
        if not nb.mle_retvals.get("converged", False) or not np.isfinite(alpha) or alpha <= 0:
            alpha = _profile_alpha(y, X, offset)  # Newton failed (alpha near 0): R glm.nb's way
        if not np.isfinite(alpha):
            return excluded_row("negative binomial: the maximum-likelihood alpha did not converge")
        if alpha < 1e-3:
            note_alpha = "alpha ~ 0 (boundary): no overdispersion, the model equals Poisson"
            alpha = 1e-8
        else:
            note_alpha = f"alpha {alpha:.4g} (theta {1 / alpha:.4g})"
        res = sm.GLM(y, X, family=sm.families.NegativeBinomial(alpha=alpha), offset=offset).fit(
            scale=1.0, tol=1e-12, maxiter=200
        )
    beta, se = float(res.params[1]), float(res.bse[1])
    if not res.converged or not np.isfinite(se) or se > 50:
        return excluded_row("negative binomial regression did not converge (no events in an arm?)")
    return t_or_z_row(
        beta,
        se,
        ratio=True,
        measure="rate ratio",
        note=f"NB2, {note_alpha}; adjusted for {', '.join(adjust) or 'nothing'}; offset log(exposure)",
    )

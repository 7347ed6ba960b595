"""Synthetic longitudinal trials with known treatment effects (tests, benchmarks).

Unlike :mod:`pipeline.simulate` (images), this writes only tables, in the
shapes the stats step reads: a features-like wide table (one row per
subject x session), participants (covariates, analysis-set columns) and the
allocation key.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ARMS = ("ADSC", "placebo")


def ar1_covariance(n_visits: int, *, sd, rho: float = 0.6) -> np.ndarray:
    """Heterogeneous AR(1) covariance: ``sd_j sd_k rho^|j-k|`` (sd scalar or per visit)."""
    sd = np.broadcast_to(np.asarray(sd, float), (n_visits,))
    lag = np.abs(np.subtract.outer(np.arange(n_visits), np.arange(n_visits)))
    return np.outer(sd, sd) * rho**lag


def synthetic_trial(rng: np.random.Generator, *, n_subjects: int = 80,
                    sessions=("baseline", "m01", "m03", "m06"), outcomes=None,
                    missing_fraction: float = 0.1, dropout_fraction: float = 0.05,
                    baseline_slope: float = -0.3):
    """A randomised trial with planted treated-minus-control effects on change from baseline.

    Parameters
    ----------
    rng : numpy Generator
    n_subjects : int
        Randomised 1:1 in permuted blocks of 4.
    sessions : sequence of str
        Visit labels; the first is baseline.
    outcomes : dict
        name -> dict(baseline_mean, baseline_sd, sd (of change), effect (at the
        last visit; the effect grows linearly over visits), rho (AR(1)
        correlation of the change)). Default: one outcome ``score``.
    missing_fraction : float
        Probability that a post-baseline value is missing (intermittent, MCAR).
    dropout_fraction : float
        Fraction of subjects without any post-baseline visit after a random
        visit (monotone); they are not alive_m06_1w / per_protocol.
    baseline_slope : float
        Regression of the change on the centred baseline value.

    Returns
    -------
    table : DataFrame
        participant_id, session, one column per outcome.
    participants : DataFrame
        participant_id, age, sex, center, recanalization, lesion_side,
        alive_m06_1w, per_protocol.
    allocation : DataFrame
        participant_id, arm.
    effects : dict
        outcome -> {session: planted treated-minus-control change effect}.
    """
    outcomes = outcomes or {"score": dict(baseline_mean=6.0, baseline_sd=2.0, sd=1.5,
                                          effect=-1.0, rho=0.6)}
    post = list(sessions[1:])
    k = len(post)
    ids = [f"sub-{i:03d}" for i in range(1, n_subjects + 1)]
    arms = []
    while len(arms) < n_subjects:
        arms.extend(rng.permutation(np.repeat(ARMS, 2)).tolist())
    arms = np.array(arms[:n_subjects])
    treated = (arms == ARMS[0]).astype(float)
    participants = pd.DataFrame({
        "participant_id": ids,
        "age": np.clip(np.round(rng.normal(63, 11, n_subjects)), 18, 80).astype(int),
        "sex": rng.choice(["M", "F"], n_subjects),
        "center": rng.choice(["C01", "C02", "C03"], n_subjects),
        "recanalization": rng.choice(["yes", "no"], n_subjects),
        "lesion_side": rng.choice(["left", "right"], n_subjects),
    })
    dropped = rng.random(n_subjects) < dropout_fraction
    last_visit = np.where(dropped, rng.integers(0, k, n_subjects), k)  # visits kept: post[:last]
    participants["alive_m06_1w"] = np.where(dropped, "no", "yes")
    participants["per_protocol"] = np.where(~dropped & (rng.random(n_subjects) < 0.9), "yes", "no")
    observed = (np.arange(k)[None, :] < last_visit[:, None]) & (rng.random((n_subjects, k))
                                                                 >= missing_fraction)
    table = pd.DataFrame({"participant_id": np.repeat(ids, k + 1),
                          "session": np.tile(list(sessions), n_subjects)})
    effects = {}
    age_c = (participants["age"].to_numpy() - 63) / 11
    for name, o in outcomes.items():
        base = rng.normal(o["baseline_mean"], o["baseline_sd"], n_subjects)
        sigma = ar1_covariance(k, sd=o["sd"], rho=o.get("rho", 0.6))
        noise = rng.multivariate_normal(np.zeros(k), sigma, n_subjects)
        effect = o["effect"] * np.arange(1, k + 1) / k
        trend = o.get("trend", 0.0) * np.arange(1, k + 1) / k
        change = (trend[None] + effect[None] * treated[:, None]
                  + baseline_slope * (base - o["baseline_mean"])[:, None]
                  + 0.2 * o["sd"] * age_c[:, None] + noise)
        values = np.column_stack([base, base[:, None] + change])
        values[:, 1:][~observed] = np.nan
        table[name] = values.ravel()
        effects[name] = dict(zip(post, effect.tolist(), strict=True))
    table = table[~table.drop(columns=["participant_id", "session"]).isna().all(axis=1)]
    allocation = pd.DataFrame({"participant_id": ids, "arm": arms})
    return table.reset_index(drop=True), participants, allocation, effects


def stratified_blocks(rng: np.random.Generator, strata, arms=ARMS, block: int = 4) -> np.ndarray:
    """1:1 allocation in permuted blocks of ``block`` within each stratum (e.g. centre)."""
    strata = np.asarray(strata)
    out = np.empty(len(strata), dtype=object)
    for level in np.unique(strata):
        idx = np.flatnonzero(strata == level)
        seq = []
        while len(seq) < len(idx):
            seq.extend(rng.permutation(np.repeat(arms, block // len(arms))).tolist())
        out[idx] = seq[:len(idx)]
    return out.astype(str)


def latent_scores(rng, n, days, *, baseline_mean, baseline_sd, recovery, recovery_sd, tau_days, sd, rho,
                  effect, key_day, shift=None):
    """Latent clinical scores over visits: baseline, then recovery ``1 - exp(-day / tau)``.

    ``score_v = baseline + (recovery_i + effect_i) * f(day_v) / f(key_day) + shift + AR(1) noise``
    with a subject-specific recovery (SD ``recovery_sd``), so changes are correlated over
    visits. ``effect`` is an (n,) array of each subject's planted effect at ``key_day``
    (0 for controls). Returns an (n, n_visits) array; column 0 is the baseline.
    """
    days = np.asarray(days, float)
    frac = (1 - np.exp(-days / tau_days)) / (1 - np.exp(-key_day / tau_days))
    base = rng.normal(baseline_mean, baseline_sd, n)
    slope = rng.normal(recovery, recovery_sd, n) + effect
    noise = rng.multivariate_normal(np.zeros(len(days)), ar1_covariance(len(days), sd=sd, rho=rho), n)
    noise[:, 0] = 0.0
    out = base[:, None] + slope[:, None] * frac[None, :] + noise
    if shift is not None:
        out[:, 1:] += np.asarray(shift, float)[:, None]
    return out


def ordinal_from_latent(latent, cuts) -> np.ndarray:
    """Category index (0..len(cuts)) of each latent value given increasing cut-points."""
    return np.sum(np.asarray(latent)[..., None] > np.asarray(cuts), axis=-1)

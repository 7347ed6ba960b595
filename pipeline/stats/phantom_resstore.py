"""Clinical phantom of RESSTORE: every endpoint type of ``configs/trials/resstore.yaml``, known effects.

Seven visits (V1 inclusion to V7 at 2 years), nine centres with centre
effects, 1:1 randomisation in permuted blocks within centre, deaths
(exponential, planted hazard ratio), MCAR drop-out and intermittent missing
visits. The planted effects (treated vs control) and where their truth comes
from:

* NIHSS motor / total, Barthel, Fugl-Meyer: latent recovery curve + AR(1)
  noise, rounded and clipped to the scale. Truth: mean change difference by
  visit, Monte Carlo (2 x 100 000 subjects, common random numbers).
* Blood biomarkers: the same, unrounded. Truth: planted (exact).
* mRS: latent logistic with cut-points by visit and centre effects. Truth:
  log odds ratio of a higher category (exact).
* mRS 0-2: mRS <= 2. Truth: odds ratio exp(-beta) (exact, logistic adjusted
  for centre); risk difference by Monte Carlo.
* Adverse events in week 1: gamma-frailty Poisson process (NB2). Truth: rate
  ratio (exact); 24 h occurrence risk difference (closed form).
* Serious adverse events: Poisson process over follow-up. Truth: rate ratio.
* Death: exponential hazard. Truth: hazard ratio (exact).
* Imaging biomarkers (features.tsv): baseline + change, two sessions with a
  failed dwi stream (stale values the stats must ignore). Truth: exact.

The truth is a list of ``{outcome, visit, model, measure, value}`` rows that
``benchmarks/stats_coverage.py`` matches to ``results.tsv``. The model (visits,
centres, scales, rates, planted effects and their draws) is in
:mod:`pipeline.stats.phantom_resstore_model`.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from pipeline.stats.phantom_resstore_model import (
    AE_RATES,
    BLOOD,
    BLOOD_VISITS,
    CENTRE_EFFECT,
    CENTRE_P,
    CENTRES,
    DEATH_2Y,
    FRAILTY_SHAPE,
    MRS_CUTS,
    SAE_PER_DAY,
    SCORES,
    VISITS,
    ResstoreEffects,
    adverse_events,
    clinical_scores,
)
from pipeline.stats.synthetic import ARMS, stratified_blocks

__all__ = ["AE_RATES", "BLOOD", "BLOOD_VISITS", "CENTRE_EFFECT", "CENTRE_P", "CENTRES", "DEATH_2Y",
           "FRAILTY_SHAPE", "MRS_CUTS", "SAE_PER_DAY", "SCORES", "VISITS", "ResstoreEffects",
           "simulate_resstore", "truth"]


def truth(effects: ResstoreEffects | None = None, *, n: int = 100_000, seed: int = 987) -> list:
    """Treated-vs-control estimands of the phantom (see the module table)."""
    effects = effects or ResstoreEffects()
    centre_idx = np.random.default_rng(seed).choice(len(CENTRES), n, p=CENTRE_P)
    arms = {}
    for arm, treated in (("treated", 1.0), ("control", 0.0)):
        arms[arm] = clinical_scores(np.random.default_rng(seed + 1), np.full(n, treated), centre_idx, effects)
    rows = []
    for name in SCORES:
        for j, visit in enumerate(list(VISITS)[1:], start=1):
            diff = float(np.mean(arms["treated"][name][:, j] - arms["control"][name][:, j]))
            rows.append(
                {
                    "outcome": name,
                    "visit": visit,
                    "model": "mmrm",
                    "measure": "difference in change",
                    "value": diff,
                }
            )
    for name in BLOOD:
        for visit in BLOOD_VISITS[1:]:
            frac = (1 - np.exp(-VISITS[visit] / 30.0)) / (1 - np.exp(-VISITS["m06"] / 30.0))
            rows.append(
                {
                    "outcome": name,
                    "visit": visit,
                    "model": "mmrm",
                    "measure": "difference in change",
                    "value": getattr(effects, name) * frac,
                }
            )
    for visit in ("m03", "m06", "m12", "m24"):
        j = list(VISITS).index(visit)
        rows.append(
            {
                "outcome": "mrs",
                "visit": visit,
                "model": "proportional_odds",
                "measure": "common odds ratio (higher category)",
                "value": np.exp(effects.mrs_log_or_higher),
            }
        )
        p1, p0 = (float(np.mean(arms[a]["mrs"][:, j] <= 2)) for a in ("treated", "control"))
        rows.append(
            {
                "outcome": "mrs_0_2",
                "visit": visit,
                "model": "risk_difference",
                "measure": "risk difference",
                "value": p1 - p0,
            }
        )
        for model, measure in (("logistic", "odds ratio"), ("cmh", "Mantel-Haenszel odds ratio")):
            rows.append(
                {
                    "outcome": "mrs_0_2",
                    "visit": visit,
                    "model": model,
                    "measure": measure,
                    "value": np.exp(-effects.mrs_log_or_higher),
                }
            )
    day1 = AE_RATES[0][2] * (AE_RATES[0][1] - AE_RATES[0][0])
    p_any = {rr: 1 - (1 + rr * day1 / FRAILTY_SHAPE) ** -FRAILTY_SHAPE for rr in (effects.ae_rate_ratio, 1.0)}
    rows.append(
        {
            "outcome": "ae_24h",
            "visit": "0-1 d",
            "model": "risk_difference",
            "measure": "risk difference",
            "value": p_any[effects.ae_rate_ratio] - p_any[1.0],
        }
    )
    rows.append(
        {
            "outcome": "ae_count_week1",
            "visit": "0-7 d",
            "model": "negative_binomial",
            "measure": "rate ratio",
            "value": effects.ae_rate_ratio,
        }
    )
    rows.append(
        {
            "outcome": "sae_count",
            "visit": "follow-up",
            "model": "poisson",
            "measure": "rate ratio",
            "value": effects.sae_rate_ratio,
        }
    )
    rows.append(
        {
            "outcome": "death",
            "visit": "follow-up",
            "model": "cox",
            "measure": "hazard ratio",
            "value": effects.death_hazard_ratio,
        }
    )
    for name in ("fa_cst_ipsilesional", "thickness_m1_ipsilesional_mm"):
        rows.append(
            {
                "outcome": name,
                "visit": "m06",
                "model": "ancova",
                "measure": "difference in change",
                "value": getattr(effects, name),
            }
        )
    return rows



def simulate_resstore(
    rng: np.random.Generator,
    n_subjects: int = 80,
    *,
    effects: ResstoreEffects | None = None,
    dropout_fraction: float = 0.1,
    missing_fraction: float = 0.05,
    with_features: bool = True,
) -> dict:
    """A RESSTORE phantom: participants, allocation (real and coded A/B), phenotype tables, features.

    Returns
    -------
    dict
        ``participants``, ``allocation``, ``allocation_coded`` (DataFrames),
        ``tables`` (spec file name -> DataFrame), ``features`` and
        ``dictionary`` (or None), ``effects`` (planted, as a dict).
    """
    effects = effects or ResstoreEffects()
    n = n_subjects
    ids = [f"sub-{i:03d}" for i in range(1, n + 1)]
    centre_idx = rng.choice(len(CENTRES), n, p=CENTRE_P)
    centres = np.array(CENTRES)[centre_idx]
    arms = stratified_blocks(rng, centres)
    treated = (arms == ARMS[0]).astype(float)
    scores = clinical_scores(rng, treated, centre_idx, effects)
    hazard = -np.log(1 - DEATH_2Y) / VISITS["m24"] * np.where(treated > 0, effects.death_hazard_ratio, 1.0)
    death_day = rng.exponential(1 / hazard)
    dropout_day = np.where(rng.random(n) < dropout_fraction, rng.uniform(1, VISITS["m24"], n), np.inf)
    followup = np.minimum.reduce([death_day, dropout_day, np.full(n, VISITS["m24"] + 10.0)])
    died = death_day <= followup
    inclusion = pd.Timestamp("2025-01-06") + pd.to_timedelta(np.cumsum(rng.exponential(9.0, n)).round(), "D")
    participants = pd.DataFrame(
        {
            "participant_id": ids,
            "age": np.clip(np.round(rng.normal(63, 11, n)), 18, 85).astype(int),
            "sex": rng.choice(["M", "F"], n, p=[0.6, 0.4]),
            "center": centres,
            "recanalization": rng.choice(["yes", "no"], n),
            "lesion_side": rng.choice(["left", "right"], n),
            "inclusion_date": inclusion.strftime("%Y-%m-%d"),
            "alive_m06_1w": np.where(followup >= VISITS["m06"] + 7, "yes", "no"),
        }
    )
    participants["per_protocol"] = np.where(
        (participants["alive_m06_1w"] == "yes") & (rng.random(n) < 0.92), "yes", "no"
    )
    seen = (np.array(list(VISITS.values()))[None, :] <= followup[:, None]) & (
        rng.random((n, len(VISITS))) >= missing_fraction
    )
    seen[:, 0] = True
    long = {}
    for name, (path, *_) in SCORES.items():
        long.setdefault(path, []).append(_long(ids, list(VISITS), scores[name], seen, name))
    long["phenotype/mrs.tsv"] = [_long(ids, list(VISITS), scores["mrs"], seen, "mrs")]
    bseen = seen[:, [list(VISITS).index(v) for v in BLOOD_VISITS]]
    long["phenotype/blood.tsv"] = [
        _long(ids, list(BLOOD_VISITS), np.round(scores[b], 3), bseen, b) for b in BLOOD
    ]
    tables = {path: _merge(frames) for path, frames in long.items()}
    ev = adverse_events(rng, treated, followup, effects)
    tables["phenotype/adverse_events.tsv"] = pd.DataFrame(
        [(ids[i], round(day, 3), term, serious) for i, day, term, serious in ev],
        columns=["participant_id", "onset_day", "term", "serious"],
    ).sort_values(["participant_id", "onset_day"])
    tables["phenotype/followup.tsv"] = pd.DataFrame(
        {
            "participant_id": ids,
            "followup_days": np.round(followup, 1),
            "died": died.astype(int),
            "completed_2_weeks": np.where(followup >= 14, "yes", "no"),
        }
    )
    out = {
        "participants": participants,
        "allocation": pd.DataFrame({"participant_id": ids, "arm": arms}),
        "tables": tables,
        "effects": asdict(effects),
        "features": None,
        "dictionary": None,
    }
    codes = dict(zip(ARMS, rng.permutation(["A", "B"]), strict=True))
    out["allocation_coded"] = pd.DataFrame({"participant_id": ids, "group": [codes[a] for a in arms]})
    if with_features:
        out["features"], out["dictionary"] = _features(
            rng, ids, treated, seen[:, list(VISITS).index("m06")], effects
        )
    return out


def _long(ids, visits, values, seen, name) -> pd.DataFrame:
    n, k = values.shape
    frame = pd.DataFrame(
        {"participant_id": np.repeat(ids, k), "session": np.tile(visits, n), name: values.ravel()}
    )
    return frame[seen.ravel()]


def _merge(frames) -> pd.DataFrame:
    out = frames[0]
    for f in frames[1:]:
        out = out.merge(f, on=["participant_id", "session"], how="outer")
    return out.reset_index(drop=True)


def _features(rng, ids, treated, has_m06, effects):
    """features.tsv rows (baseline, m06) with planted changes; two sessions have a failed dwi stream."""
    n = len(ids)
    spec = {
        "fa_cst_ipsilesional": ("dwi", "ratio", "higher", 0.45, 0.05, -0.06, 0.02),
        "md_cst_ipsilesional": ("dwi", "um2/ms", "lower", 0.8, 0.08, 0.05, 0.03),
        "thickness_m1_ipsilesional_mm": ("anat", "mm", "higher", 2.5, 0.2, -0.3, 0.12),
        "lesion_volume_ml": ("lesion", "mL", "lower", 40.0, 15.0, -8.0, 4.0),
        "t1w_snr": ("anat", "ratio", "higher", 20.0, 2.0, 0.0, 1.0),
    }
    rows = {"participant_id": np.repeat(ids, 2), "session": np.tile(["baseline", "m06"], n)}
    dictionary = {}
    for name, (stream, units, better, mean, sd, change, csd) in spec.items():
        base = rng.normal(mean, sd, n)
        m06 = base + change + getattr(effects, name, 0.0) * treated + rng.normal(0, csd, n)
        rows[name] = np.column_stack([base, np.where(has_m06, m06, np.nan)]).ravel()
        dictionary[name] = {
            "Description": name.replace("_", " "),
            "Units": units,
            "Better": better,
            "Stream": stream,
        }
    table = pd.DataFrame(rows)
    for stream in ("anat", "flair", "lesion", "dwi", "bold"):
        table[f"{stream}_status"] = "ok"
    failed = rng.choice(np.flatnonzero((table["session"] == "m06") & np.repeat(has_m06, 2)), 2, replace=False)
    table.loc[failed, "dwi_status"] = "failed: eddy current correction did not converge"
    table.loc[failed, "fa_cst_ipsilesional"] = 0.95  # stale garbage the stats must not use
    table["qc_excluded_streams"] = ""
    table = table[~(table["session"].eq("m06") & ~np.repeat(has_m06, 2))].reset_index(drop=True)
    return table, dictionary

"""Clinical phantom of ADUSE: allogeneic adipose-derived stromal cells injected into the digits of
patients with systemic sclerosis and active refractory ischaemic digital ulcers (phase II, multicentre,
randomised, placebo-controlled, 16 weeks). Clinical tables only, no imaging.

* Healing of all active ulcers (binary at w04..w16; primary at w16):
  exponential time to healing with centre effects and a hazard ratio. Truth:
  risk difference by Monte Carlo.
* Time to healing: the same time, censored at drop-out / 16 weeks. Truth:
  hazard ratio (exact, Cox stratified by centre).
* Complications (infection, gangrene, amputation) by w16: logistic with centre
  effects. Truth: odds ratio (exact); risk difference by Monte Carlo.
* New ulcers: gamma-frailty Poisson over follow-up (NB2). Truth: rate ratio.
* HAQ-DI (quality of life), pain NRS: latent change, rounded and clipped.
  Truth: mean change difference by visit, Monte Carlo.
* Adverse events: gamma-frailty Poisson over follow-up. Truth: rate ratio.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pipeline.stats.synthetic import ARMS, latent_scores, stratified_blocks

VISITS = {"baseline": 0, "w04": 28, "w08": 56, "w12": 84, "w16": 112}
CENTRES = ("C01", "C02", "C03", "C04", "C05")
CENTRE_P = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
CENTRE_EFFECT = np.array([-0.3, -0.1, 0.0, 0.15, 0.3])
HEALED_16W_CONTROL = 0.30
COMPLICATION_LOGIT = -1.0
NEW_ULCERS_PER_DAY, AE_PER_DAY, FRAILTY_SHAPE = 0.008, 0.01, 1.5
SCORES = {
    "haq_di": (1.3, 0.6, -0.1, 0.2, 0.25, 0.0, 3.0, 0.125),
    "pain_nrs": (6.0, 1.5, -1.0, 1.0, 1.0, 0.0, 10.0, 1.0),
}  # mean, sd, change, rsd, noise, lo, hi, step


@dataclass
class AduseEffects:
    """Planted effects, treated vs control."""

    healing_hazard_ratio: float = 2.0
    complication_log_or: float = float(np.log(0.5))
    new_ulcers_rate_ratio: float = 0.6
    haq_di: float = -0.25
    pain_nrs: float = -1.5
    ae_rate_ratio: float = 1.2


def _healing_rate(centre_idx, treated, effects):
    base = -np.log(1 - HEALED_16W_CONTROL) / VISITS["w16"]
    return base * np.exp(CENTRE_EFFECT[centre_idx]) * np.where(treated > 0, effects.healing_hazard_ratio, 1.0)


def _latent(rng, treated, centre_idx, effects):
    n = len(treated)
    out = {"healing_day": rng.exponential(1 / _healing_rate(centre_idx, treated, effects))}
    logit = COMPLICATION_LOGIT + effects.complication_log_or * treated + CENTRE_EFFECT[centre_idx]
    out["complication"] = rng.random(n) < 1 / (1 + np.exp(-logit))
    out["complication_day"] = rng.uniform(1, VISITS["w16"], n)
    for name, (mean, sd, change, rsd, noise, lo, hi, step) in SCORES.items():
        latent = latent_scores(
            rng,
            n,
            list(VISITS.values()),
            baseline_mean=mean,
            baseline_sd=sd,
            recovery=change,
            recovery_sd=rsd,
            tau_days=40.0,
            sd=noise,
            rho=0.5,
            effect=getattr(effects, name) * treated,
            key_day=VISITS["w16"],
        )
        out[name] = np.clip(np.round(latent / step) * step, lo, hi)
    return out


def truth(effects: AduseEffects | None = None, *, n: int = 100_000, seed: int = 321) -> list:
    """Treated-vs-control estimands of the phantom (see the module table)."""
    effects = effects or AduseEffects()
    centre_idx = np.random.default_rng(seed).choice(len(CENTRES), n, p=CENTRE_P)
    arms = {
        a: _latent(np.random.default_rng(seed + 1), np.full(n, t), centre_idx, effects)
        for a, t in (("treated", 1.0), ("control", 0.0))
    }
    rows = []
    for visit in ("w04", "w08", "w12", "w16"):
        p = {a: float(np.mean(arms[a]["healing_day"] <= VISITS[visit])) for a in arms}
        rows.append(
            {
                "outcome": "healing",
                "visit": visit,
                "model": "risk_difference",
                "measure": "risk difference",
                "value": p["treated"] - p["control"],
            }
        )
        j = list(VISITS).index(visit)
        for name in SCORES:
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
    p = {a: float(np.mean(arms[a]["complication"])) for a in arms}
    rows.append(
        {
            "outcome": "complications",
            "visit": "w16",
            "model": "risk_difference",
            "measure": "risk difference",
            "value": p["treated"] - p["control"],
        }
    )
    for model, measure in (("logistic", "odds ratio"), ("cmh", "Mantel-Haenszel odds ratio")):
        rows.append(
            {
                "outcome": "complications",
                "visit": "w16",
                "model": model,
                "measure": measure,
                "value": float(np.exp(effects.complication_log_or)),
            }
        )
    rows.append(
        {
            "outcome": "time_to_healing",
            "visit": "follow-up",
            "model": "cox",
            "measure": "hazard ratio",
            "value": effects.healing_hazard_ratio,
        }
    )
    rows.append(
        {
            "outcome": "new_ulcers",
            "visit": "follow-up",
            "model": "negative_binomial",
            "measure": "rate ratio",
            "value": effects.new_ulcers_rate_ratio,
        }
    )
    rows.append(
        {
            "outcome": "ae_count",
            "visit": "follow-up",
            "model": "negative_binomial",
            "measure": "rate ratio",
            "value": effects.ae_rate_ratio,
        }
    )
    return rows


def simulate_aduse(
    rng: np.random.Generator,
    n_subjects: int = 60,
    *,
    effects: AduseEffects | None = None,
    dropout_fraction: float = 0.1,
    missing_fraction: float = 0.05,
) -> dict:
    """An ADUSE phantom: participants, allocation (real and coded A/B) and the phenotype tables.

    Returns the same dict as :func:`pipeline.stats.phantom_resstore.simulate_resstore`
    (``features`` is None: ADUSE has no imaging).
    """
    effects = effects or AduseEffects()
    n = n_subjects
    ids = [f"sub-{i:03d}" for i in range(1, n + 1)]
    centre_idx = rng.choice(len(CENTRES), n, p=CENTRE_P)
    centres = np.array(CENTRES)[centre_idx]
    arms = stratified_blocks(rng, centres)
    treated = (arms == ARMS[0]).astype(float)
    lat = _latent(rng, treated, centre_idx, effects)
    end = float(VISITS["w16"])
    followup = np.where(rng.random(n) < dropout_fraction, rng.uniform(10, end, n), end)
    injected = rng.random(n) > 0.03
    participants = pd.DataFrame(
        {
            "participant_id": ids,
            "age": np.clip(np.round(rng.normal(55, 12, n)), 18, 85).astype(int),
            "sex": rng.choice(["F", "M"], n, p=[0.8, 0.2]),
            "center": centres,
            "ulcers_at_baseline": rng.integers(1, 4, n),
            "injected": np.where(injected, "yes", "no"),
        }
    )
    participants["per_protocol"] = np.where(
        injected & (followup >= end) & (rng.random(n) < 0.93), "yes", "no"
    )
    days = np.array(list(VISITS.values()), float)
    seen = (days[None, :] <= followup[:, None]) & (rng.random((n, len(days))) >= missing_fraction)
    seen[:, 0] = True
    rows = []
    for i, pid in enumerate(ids):
        for j, (visit, day) in enumerate(VISITS.items()):
            if not seen[i, j]:
                continue
            rows.append(
                {
                    "participant_id": pid,
                    "session": visit,
                    "all_healed": int(lat["healing_day"][i] <= day) if day > 0 else 0,
                    "complication": int(lat["complication"][i] and lat["complication_day"][i] <= day),
                    "haq_di": lat["haq_di"][i, j],
                    "pain_nrs": lat["pain_nrs"][i, j],
                }
            )
    visits = pd.DataFrame(rows)
    healed = lat["healing_day"] <= followup
    frailty = rng.gamma(FRAILTY_SHAPE, 1 / FRAILTY_SHAPE, n)
    new_ulcers = rng.poisson(
        followup * NEW_ULCERS_PER_DAY * frailty * np.where(treated > 0, effects.new_ulcers_rate_ratio, 1.0)
    )
    frailty = rng.gamma(FRAILTY_SHAPE, 1 / FRAILTY_SHAPE, n)
    k = rng.poisson(followup * AE_PER_DAY * frailty * np.where(treated > 0, effects.ae_rate_ratio, 1.0))
    ae = [
        (ids[i], round(day, 2), rng.choice(["injection-site pain", "infection", "haematoma"]), "no")
        for i in np.flatnonzero(k)
        for day in rng.uniform(0, followup[i], k[i])
    ]
    tables = {
        "phenotype/ulcers.tsv": visits[["participant_id", "session", "all_healed", "complication"]],
        "phenotype/scores.tsv": visits[["participant_id", "session", "haq_di", "pain_nrs"]],
        "phenotype/healing.tsv": pd.DataFrame(
            {
                "participant_id": ids,
                "days_to_healing": np.round(np.where(healed, lat["healing_day"], followup), 1),
                "healed": healed.astype(int),
            }
        ),
        "phenotype/new_ulcers.tsv": pd.DataFrame(
            {"participant_id": ids, "new_ulcers": new_ulcers, "followup_days": np.round(followup, 1)}
        ),
        "phenotype/followup.tsv": pd.DataFrame(
            {"participant_id": ids, "followup_days": np.round(followup, 1)}
        ),
        "phenotype/adverse_events.tsv": pd.DataFrame(
            ae, columns=["participant_id", "onset_day", "term", "serious"]
        ),
    }
    codes = dict(zip(ARMS, rng.permutation(["A", "B"]), strict=True))
    return {
        "participants": participants,
        "allocation": pd.DataFrame({"participant_id": ids, "arm": arms}),
        "allocation_coded": pd.DataFrame({"participant_id": ids, "group": [codes[a] for a in arms]}),
        "tables": tables,
        "features": None,
        "dictionary": None,
        "effects": asdict(effects),
    }

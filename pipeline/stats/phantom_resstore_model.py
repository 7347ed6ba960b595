"""Generative model of the RESSTORE clinical phantom (:mod:`pipeline.stats.phantom_resstore`).

Visits, centres and their effects, the scales and their recovery, the blood
biomarkers, the mRS cut-points, adverse-event rates and deaths; the planted
treatment effects (:class:`ResstoreEffects`); the draws of every score and of
the adverse events. The phantom's tables and its truth are built from these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.stats.synthetic import latent_scores, ordinal_from_latent

VISITS = {"baseline": 0, "w01": 7, "w02": 14, "m03": 91, "m06": 182, "m12": 365, "m24": 730}
CENTRES = tuple(f"C{i:02d}" for i in range(1, 10))
CENTRE_P = np.array([0.18, 0.15, 0.13, 0.12, 0.1, 0.1, 0.08, 0.08, 0.06])
CENTRE_EFFECT = np.linspace(-0.4, 0.4, len(CENTRES))
# name: (column, file, baseline mean, sd, recovery at m06 (control), its sd, noise sd, lo, hi, rounded)
SCORES = {
    "nihss_motor": ("phenotype/nihss.tsv", 6.5, 1.8, -3.0, 1.5, 1.0, 0, 10, True),
    "nihss_total": ("phenotype/nihss.tsv", 12.0, 3.0, -5.0, 2.5, 1.5, 0, 42, True),
    "barthel_index": ("phenotype/barthel.tsv", 35.0, 15.0, 35.0, 12.0, 8.0, 0, 100, True),
    "fugl_meyer_ue": ("phenotype/fugl_meyer.tsv", 20.0, 10.0, 18.0, 8.0, 5.0, 0, 66, True),
}
BLOOD = {
    "crp_mg_l": (12.0, 5.0, -8.0),
    "il6_pg_ml": (9.0, 3.0, -5.0),
    "bdnf_ng_ml": (20.0, 5.0, 1.0),
    "s100b_ug_l": (0.3, 0.1, -0.2),
}  # baseline mean, sd, control change by m06
BLOOD_VISITS = ("baseline", "w01", "w02", "m03", "m06")
MRS_CUTS = {
    "baseline": [-4.0, -3.0, -2.0, -1.0, 0.5, 3.0],
    "w01": [-3.5, -2.5, -1.2, 0.0, 1.5, 3.5],
    "w02": [-3.0, -2.0, -0.8, 0.4, 2.0, 3.8],
    "m03": [-2.0, -1.0, 0.2, 1.5, 3.0, 4.0],
    "m06": [-1.5, -0.5, 0.6, 2.0, 3.4, 4.2],
    "m12": [-1.2, -0.2, 0.9, 2.3, 3.6, 4.4],
    "m24": [-1.0, 0.0, 1.1, 2.5, 3.8, 4.6],
}
AE_RATES = ((0.0, 1.0, 0.25), (1.0, 7.0, 0.05))  # (from day, to day, events/day), week 1
DEATH_2Y, SAE_PER_DAY, FRAILTY_SHAPE = 0.25, 0.0008, 2.0


@dataclass
class ResstoreEffects:
    """Planted effects, treated vs control (latent scale for scores at m06; growing with recovery)."""

    nihss_motor: float = -1.5
    nihss_total: float = -2.5
    barthel_index: float = 8.0
    fugl_meyer_ue: float = 6.0
    crp_mg_l: float = -2.0
    il6_pg_ml: float = -1.5
    bdnf_ng_ml: float = 2.0
    s100b_ug_l: float = 0.0
    mrs_log_or_higher: float = -0.6
    ae_rate_ratio: float = 1.3
    sae_rate_ratio: float = 1.2
    death_hazard_ratio: float = 0.7
    fa_cst_ipsilesional: float = 0.03
    thickness_m1_ipsilesional_mm: float = 0.1


def clinical_scores(rng, treated, centre_idx, effects):
    """Latent then observed scores (n, visits) of every score and blood biomarker.

    Parameters
    ----------
    rng : numpy.random.Generator
    treated : ndarray, shape (n,)
        1.0 for the treated arm, 0.0 for control.
    centre_idx : ndarray of int, shape (n,)
        Index of each subject's centre in :data:`CENTRES`.
    effects : ResstoreEffects

    Returns
    -------
    dict of str to ndarray
        Each name of :data:`SCORES` and :data:`BLOOD`, and ``mrs``: values at
        each visit of :data:`VISITS` (blood: :data:`BLOOD_VISITS`), shape (n, visits).
    """
    n, days = len(treated), list(VISITS.values())
    out = {}
    for name, (_, mean, sd, recovery, rsd, noise, lo, hi, rounded) in SCORES.items():
        latent = latent_scores(
            rng,
            n,
            days,
            baseline_mean=mean,
            baseline_sd=sd,
            recovery=recovery,
            recovery_sd=rsd,
            tau_days=45.0,
            sd=noise,
            rho=0.6,
            effect=getattr(effects, name) * treated,
            key_day=VISITS["m06"],
            shift=CENTRE_EFFECT[centre_idx] * noise,
        )
        out[name] = np.clip(np.round(latent) if rounded else latent, lo, hi)
    bdays = [VISITS[v] for v in BLOOD_VISITS]
    for name, (mean, sd, change) in BLOOD.items():
        out[name] = latent_scores(
            rng,
            n,
            bdays,
            baseline_mean=mean,
            baseline_sd=sd,
            recovery=change,
            recovery_sd=0.3 * sd,
            tau_days=30.0,
            sd=0.4 * sd,
            rho=0.5,
            effect=getattr(effects, name) * treated,
            key_day=VISITS["m06"],
        )
    logistic = rng.logistic(size=(n, len(VISITS)))
    shift = effects.mrs_log_or_higher * treated + 0.5 * CENTRE_EFFECT[centre_idx]
    out["mrs"] = np.column_stack(
        [ordinal_from_latent(shift + logistic[:, j], MRS_CUTS[v]) for j, v in enumerate(VISITS)]
    )
    return out


def adverse_events(rng, treated, followup, effects):
    """Adverse events (gamma-frailty Poisson, week 1) and serious AEs (Poisson, whole follow-up).

    Parameters
    ----------
    rng, treated, effects
        As for :func:`clinical_scores`.
    followup : ndarray, shape (n,)
        Days each subject is followed.

    Returns
    -------
    list of tuple
        ``(subject index, onset day, term, serious "yes"/"no")`` of every event.
    """
    n = len(treated)
    frailty = rng.gamma(FRAILTY_SHAPE, 1 / FRAILTY_SHAPE, n)
    rr = np.where(treated > 0, effects.ae_rate_ratio, 1.0)
    rows = []
    for start, stop, rate in AE_RATES:
        end = np.minimum(stop, followup)
        k = rng.poisson(np.clip(end - start, 0, None) * rate * rr * frailty)
        for i in np.flatnonzero(k):
            for day in rng.uniform(start, end[i], k[i]):
                rows.append((i, day, rng.choice(["fever", "headache", "phlebitis", "nausea"]), "no"))
    k = rng.poisson(followup * SAE_PER_DAY * np.where(treated > 0, effects.sae_rate_ratio, 1.0))
    for i in np.flatnonzero(k):
        for day in rng.uniform(0, followup[i], k[i]):
            rows.append((i, day, rng.choice(["pneumonia", "recurrent stroke", "fall"]), "yes"))
    return rows

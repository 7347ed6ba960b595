"""Clinical data of a phantom trial: participants, allocation, NIHSS motor score.

The primary endpoint is the NIHSS motor sub-score (upper limb + lower limb +
hand, 0-10 here: 0-4, 0-4, 0-2). The 6-month score follows the protocol's
sample-size assumptions -- control mean 3.5, SD 2 -- and the treated arm is
lower by ``effect_nihss`` points. Scores are integers, so the effect on the
observed scale differs slightly from the nominal one; the expected effect on
the observed scale is computed by Monte Carlo and written to the truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ARMS = ("ADSC", "placebo")
CENTERS = ("C01", "C02", "C03", "C04")
NIHSS_MOTOR_MAX = 10
BASELINE_MEAN, BASELINE_SD = 6.5, 1.8
CONTROL_MEAN_M06, SD_M06 = 3.5, 2.0
BASELINE_SLOPE = 0.5


def _latent_m06(rng, baseline_latent, treated, effect):
    resid_sd = np.sqrt(SD_M06**2 - (BASELINE_SLOPE * BASELINE_SD) ** 2)
    return (CONTROL_MEAN_M06 + BASELINE_SLOPE * (baseline_latent - BASELINE_MEAN)
            - effect * treated + rng.normal(0, resid_sd, np.shape(baseline_latent)))


def _observe(latent):
    return np.clip(np.round(latent), 0, NIHSS_MOTOR_MAX).astype(int)


def split_motor_score(total: int) -> tuple[int, int, int]:
    """Split a motor sub-score into (upper limb 0-4, lower limb 0-4, hand 0-2)."""
    hand = min(2, int(round(total * 0.2)))
    upper = min(4, int(np.ceil((total - hand) / 2)))
    return upper, total - hand - upper, hand


def expected_observed_effect(effect: float, n_draws: int = 400_000, seed: int = 12345) -> float:
    """Treated-minus-control difference of the mean observed 6-month score.

    ``effect`` is the latent reduction of the treated arm (points, positive =
    treated better), as in :func:`simulate_clinical`.
    """
    rng = np.random.default_rng(seed)
    base = rng.normal(BASELINE_MEAN, BASELINE_SD, n_draws)
    noise_rng = np.random.default_rng(seed + 1)
    control = _observe(_latent_m06(noise_rng, base, 0, effect)).mean()
    noise_rng = np.random.default_rng(seed + 1)
    treated = _observe(_latent_m06(noise_rng, base, 1, effect)).mean()
    return float(treated - control)


def simulate_clinical(rng: np.random.Generator, n_subjects: int, *, effect_nihss: float,
                      dropout_fraction: float = 0.0):
    """Participants, allocation and NIHSS motor scores of a phantom trial.

    ``effect_nihss`` is the latent reduction (points) of the treated arm's
    6-month score.

    Returns
    -------
    participants : DataFrame
        BIDS participants.tsv (no treatment arm).
    allocation : DataFrame
        ``participant_id``, ``arm`` -- 1:1 permuted-block randomisation.
    nihss : DataFrame
        Long format: ``participant_id``, ``session``, item scores and total.
    """
    ids = [f"sub-{i:03d}" for i in range(1, n_subjects + 1)]
    arms = []
    while len(arms) < n_subjects:  # permuted blocks of 4
        arms.extend(rng.permutation(np.repeat(ARMS, 2)).tolist())
    arms = np.array(arms[:n_subjects])
    treated = (arms == ARMS[0]).astype(float)
    age = np.clip(np.round(rng.normal(63, 11, n_subjects)), 18, 80).astype(int)
    participants = pd.DataFrame({
        "participant_id": ids,
        "age": age,
        "sex": rng.choice(["M", "F"], n_subjects, p=[0.6, 0.4]),
        "center": rng.choice(CENTERS, n_subjects, p=[0.35, 0.25, 0.25, 0.15]),
        "recanalization": rng.choice(["yes", "no"], n_subjects),
        "lesion_side": rng.choice(["left", "right"], n_subjects),
    })
    baseline_latent = rng.normal(BASELINE_MEAN, BASELINE_SD, n_subjects)
    m06_latent = _latent_m06(rng, baseline_latent, treated, effect_nihss)
    dropped = rng.random(n_subjects) < dropout_fraction
    participants["nihss_baseline_total"] = _observe(baseline_latent) + rng.integers(2, 8, n_subjects)
    participants["alive_m06_1w"] = np.where(dropped, "no", "yes")
    participants["full_treatment"] = np.where(rng.random(n_subjects) < 0.95, "yes", "no")
    participants["per_protocol"] = np.where(
        (participants["full_treatment"] == "yes") & ~dropped, "yes", "no")

    rows = []
    for i, pid in enumerate(ids):
        for session, latent in (("baseline", baseline_latent[i]), ("m06", m06_latent[i])):
            if session == "m06" and dropped[i]:
                continue
            total = int(_observe(latent))
            upper, lower, hand = split_motor_score(total)
            rows.append({"participant_id": pid, "session": session,
                         "nihss_motor_upper_limb": upper, "nihss_motor_lower_limb": lower,
                         "nihss_motor_hand": hand, "nihss_motor": total})
    allocation = pd.DataFrame({"participant_id": ids, "arm": arms})
    return participants, allocation, pd.DataFrame(rows), dropped


def simulate_clinical_trial(trial: str, rng: np.random.Generator, n_subjects: int, *, with_features=True,
                            with_truth=True, **kwargs) -> dict:
    """Clinical phantom of a whole trial spec: ``"resstore"`` or ``"aduse"`` (tables only).

    Every endpoint type of ``configs/trials/<trial>.yaml`` with planted effects,
    centres, drop-outs and deaths (:mod:`pipeline.stats.phantom_resstore`,
    :mod:`pipeline.stats.phantom_aduse`). ``kwargs`` go to the simulator
    (``effects``, ``dropout_fraction``, ...).

    Returns
    -------
    dict
        ``participants``, ``allocation``, ``allocation_coded`` (groups A/B),
        ``tables`` (spec file -> DataFrame), ``features``/``dictionary``
        (RESSTORE imaging, or None), ``effects`` and ``truth`` (the estimands:
        rows of outcome, visit, model, measure, value).
    """
    from pipeline.stats import phantom_aduse, phantom_resstore

    if trial == "resstore":
        out = phantom_resstore.simulate_resstore(rng, n_subjects, with_features=with_features, **kwargs)
        module = phantom_resstore
    elif trial == "aduse":
        out = phantom_aduse.simulate_aduse(rng, n_subjects, **kwargs)
        module = phantom_aduse
    else:
        raise ValueError(f"unknown trial {trial!r}: resstore or aduse")
    out["truth"] = module.truth(kwargs.get("effects")) if with_truth else []
    return out

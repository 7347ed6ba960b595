"""95% CIs cover known treatment effects: the NIHSS primary endpoint of simulated trials and
planted imaging effects (the phantom's FA change, M1 thinning and laterality effects)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.simulate import TrialSpec
from pipeline.simulate.clinical import expected_observed_effect, simulate_clinical
from pipeline.stats.analysis import analyse
from pipeline.stats.sources import assemble
from pipeline.stats.synthetic import synthetic_trial
from pipeline.stats.trialspec import trial_spec_from_config


def _analyse(features, phenotype, participants, allocation, dictionary, sessions):
    spec = trial_spec_from_config({"analysis_sets": {"ITT": None}, "random_intercept_model": False},
                                  sessions=list(sessions), baseline_session=sessions[0])
    data = assemble(spec=spec, participants=participants, allocation=allocation, features=features,
                    dictionary=dictionary, tables={"phenotype/nihss.tsv": phenotype})
    results, _, _ = analyse(data, spec)
    return results


def test_primary_endpoint_ci_covers_observed_scale_effect_over_simulated_trials():
    """ANCOVA (one post-baseline visit) on simulate_clinical trials of 80 subjects: the 95% CI of
    the treated-minus-control change covers the observed-scale truth in ~95% of 150 trials."""
    latent = 1.5  # TrialSpec.effect_nihss = -1.5 (treated lower)
    assert TrialSpec().effect_nihss == -latent
    truth = expected_observed_effect(latent)
    hits, estimates = [], []
    for seed in range(150):
        participants, allocation, nihss, _ = simulate_clinical(
            np.random.default_rng(seed), 80, effect_nihss=latent, dropout_fraction=0.1)
        features = pd.DataFrame({"participant_id": [], "session": []})
        res = _analyse(features, nihss, participants, allocation, {}, ("baseline", "m06"))
        row = res[(res["outcome"] == "nihss_motor") & (res["model"] == "ancova")].iloc[0]
        assert row["n_treated"] + row["n_control"] < 80  # dropouts have no 6-month score
        hits.append(row["ci_low"] <= truth <= row["ci_high"])
        estimates.append(row["estimate"])
    coverage = np.mean(hits)
    assert 0.90 <= coverage <= 0.99, coverage
    assert np.mean(estimates) == pytest.approx(truth, abs=0.1)


def test_mmrm_ci_covers_planted_imaging_effects():
    """Three post-baseline visits with missing data; effects of TrialSpec's defaults on
    FA change, ipsilesional M1 thickness change and laterality-index change at m06."""
    spec = TrialSpec()
    planted = {
        "fa_cst_ipsilesional": dict(baseline_mean=0.45, baseline_sd=0.05, sd=0.03, effect=spec.effect_fa,
                                    trend=spec.fa_change_control),
        "thickness_m1_ipsilesional_mm": dict(baseline_mean=2.5, baseline_sd=0.2, sd=0.12,
                                             effect=spec.effect_thinning_mm, trend=-spec.thinning_control_mm),
        "bold_laterality_index": dict(baseline_mean=spec.li_baseline, baseline_sd=0.2, sd=0.25,
                                      effect=spec.effect_li, trend=spec.li_change_control),
    }
    dictionary = {name: {"Units": "", "Better": "higher", "Stream": "dwi", "Description": name}
                  for name in planted}
    sessions = ("baseline", "m01", "m03", "m06")
    hits = {name: [] for name in planted}
    for seed in range(50):
        table, participants, allocation, effects = synthetic_trial(
            np.random.default_rng(seed), n_subjects=80, sessions=sessions, outcomes=planted,
            missing_fraction=0.1, dropout_fraction=0.1)
        phenotype = table[["participant_id", "session"]].assign(nihss_motor=np.nan)
        res = _analyse(table, phenotype, participants, allocation, dictionary, sessions)
        for name in planted:
            row = res[(res["outcome"] == name) & (res["model"] == "mmrm") & (res["visit"] == "m06")].iloc[0]
            assert row["covariance"] == "unstructured"
            hits[name].append(row["ci_low"] <= effects[name]["m06"] <= row["ci_high"])
    coverage = np.mean([h for v in hits.values() for h in v])
    assert 0.90 <= coverage <= 0.99, {k: np.mean(v) for k, v in hits.items()}
    for name, h in hits.items():
        assert np.mean(h) >= 0.84, (name, np.mean(h))

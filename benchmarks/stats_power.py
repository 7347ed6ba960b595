"""Type I error and power of the trial statistics by simulation.

* Type I error: null trials (no treatment effect) analysed like the real data; the rejection
  rate at alpha = 0.05 must be 5% +/- 1.5% for the t-test, ANCOVA (one post-baseline visit)
  and the MMRM (three post-baseline visits, intermittent missing values and dropout).
* Power: the protocol's sample size (39 per arm, 6-month NIHSS motor control mean 3.5, SD 2,
  two-sided t-test, 90% power) implies an effect of (z_0.975 + z_0.90) * 2 * sqrt(2/39) =
  1.47 points; simulated trials at that effect reproduce 90% for the t-test and show the
  power of the protocol's ANCOVA/MMRM beside it (baseline-adjusted, hence higher).

    python benchmarks/stats_power.py --trials 1000 --out stats_power.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from pipeline.simulate.clinical import simulate_clinical  # noqa: E402
from pipeline.stats.continuous import change_from_baseline, fit_continuous  # noqa: E402
from pipeline.stats.synthetic import synthetic_trial  # noqa: E402

ARMS = ("ADSC", "placebo")
COVARIATES = ["sex", "age", "recanalization", "lesion_side", "center"]


def protocol_trial(rng, n_per_arm, effect, *, control_mean=3.5, sd=2.0, baseline_mean=6.5,
                   baseline_sd=1.8, slope=0.5):
    """Baseline and 6-month scores (normal, unrounded); the 6-month SD in each arm is ``sd``."""
    n = 2 * n_per_arm
    arm = rng.permutation(np.repeat(ARMS, n_per_arm))
    base = rng.normal(baseline_mean, baseline_sd, n)
    resid = np.sqrt(sd**2 - (slope * baseline_sd) ** 2)
    m06 = control_mean + slope * (base - baseline_mean) - effect * (arm == ARMS[0]) + rng.normal(0, resid, n)
    ids = [f"sub-{i:03d}" for i in range(n)]
    subjects = pd.DataFrame({"participant_id": ids, "arm": arm, "sex": rng.choice(["M", "F"], n),
                             "age": rng.normal(63, 11, n), "recanalization": rng.choice(["yes", "no"], n),
                             "lesion_side": rng.choice(["left", "right"], n),
                             "center": rng.choice(["C01", "C02", "C03", "C04"], n)})
    values = pd.DataFrame({"participant_id": ids * 2, "session": ["baseline"] * n + ["m06"] * n,
                           "value": np.r_[base, m06]})
    return values, subjects


DDF = {"method": "kenward-roger"}


def analyse(values, subjects, visits):
    change = change_from_baseline(values, baseline="baseline", visits=visits)
    frame = change.join(subjects.set_index("participant_id"), on="participant_id")
    rows, _ = fit_continuous(frame, visits=visits, covariates=COVARIATES, treated=ARMS[0], control=ARMS[1],
                             random_intercept=False, ddf=DDF["method"])
    return {r["model"]: r for r in rows if r["visit"] == visits[-1]}


def ttest_m06(values, subjects):
    m06 = values[values["session"] == "m06"].merge(subjects[["participant_id", "arm"]])
    a, b = (m06.loc[m06["arm"] == arm, "value"] for arm in ARMS)
    return stats.ttest_ind(a, b).pvalue


def rate(hits):
    hits = np.asarray(hits, bool)
    k, n = int(hits.sum()), len(hits)
    ci = stats.binomtest(k, n).proportion_ci(0.95)
    return {"rate": k / n, "ci95": [ci.low, ci.high], "trials": n}


def run(args) -> dict:
    rng = np.random.default_rng(args.seed)
    n = args.n_per_arm
    delta = (stats.norm.ppf(0.975) + stats.norm.ppf(0.90)) * args.sd * np.sqrt(2 / n)
    t_power = stats.nct.sf(stats.t.ppf(0.975, 2 * n - 2), 2 * n - 2, delta / (args.sd * np.sqrt(2 / n)))
    out = {"n_per_arm": n, "control_mean": 3.5, "sd": args.sd, "alpha": 0.05,
           "effect_for_90pct_power": delta, "t_test_power_exact_noncentral_t": float(t_power)}
    results = {}
    t0 = time.process_time()
    for label, effect, trials in (("null", 0.0, args.trials), ("protocol_effect", delta, args.power_trials)):
        hits = {"t_test_m06_score": [], "t_test_change": [], "ancova": [], "mann_whitney_change": []}
        for _ in range(trials):
            values, subjects = protocol_trial(rng, n, effect, sd=args.sd)
            rows = analyse(values, subjects, ["m06"])
            hits["t_test_m06_score"].append(ttest_m06(values, subjects) < 0.05)
            hits["t_test_change"].append(rows["t_test"]["p"] < 0.05)
            hits["ancova"].append(rows["ancova"]["p"] < 0.05)
            hits["mann_whitney_change"].append(rows["mann_whitney"]["p"] < 0.05)
        results[label] = {k: rate(v) for k, v in hits.items()}
    # the phantom's observed (integer, clipped) NIHSS motor scale, simulate_clinical
    hits = {"t_test_m06_score": [], "ancova": []}
    for _ in range(args.power_trials):
        participants, allocation, nihss, _ = simulate_clinical(rng, 2 * n, effect_nihss=delta)
        subjects = participants.merge(allocation)
        values = nihss.rename(columns={"nihss_motor": "value"})[["participant_id", "session", "value"]]
        hits["t_test_m06_score"].append(ttest_m06(values, subjects) < 0.05)
        hits["ancova"].append(analyse(values, subjects, ["m06"])["ancova"]["p"] < 0.05)
    results["protocol_effect_phantom_integer_scores"] = {k: rate(v) for k, v in hits.items()}
    # MMRM: three post-baseline visits, missing values and dropout
    sessions = ("baseline", "m01", "m03", "m06")
    for label, effect, trials in (("mmrm_null", 0.0, args.mmrm_trials),
                                  ("mmrm_protocol_effect", -delta, args.mmrm_power_trials)):
        hits = {"mmrm": [], "t_test_change": []}
        notes = []
        for _ in range(trials):
            table, participants, allocation, _ = synthetic_trial(
                rng, n_subjects=2 * n, sessions=sessions, missing_fraction=0.1, dropout_fraction=0.1,
                outcomes={"score": dict(baseline_mean=6.5, baseline_sd=1.8, sd=args.sd, effect=effect,
                                        rho=0.6)})
            values = table.rename(columns={"score": "value"})
            rows = analyse(values, participants.merge(allocation), list(sessions[1:]))
            hits["mmrm"].append(rows["mmrm"]["p"] < 0.05)
            hits["t_test_change"].append(rows["t_test"]["p"] < 0.05)
            notes.append(rows["mmrm"]["covariance"])
        results[label] = {k: rate(v) for k, v in hits.items()}
        results[label]["covariance_used"] = pd.Series(notes).value_counts().to_dict()
    out["results"] = results
    out["cpu_seconds"] = time.process_time() - t0
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000, help="null trials (ANCOVA, t-test)")
    parser.add_argument("--power-trials", type=int, default=1000)
    parser.add_argument("--mmrm-trials", type=int, default=1000, help="null trials of the 3-visit MMRM")
    parser.add_argument("--mmrm-power-trials", type=int, default=300)
    parser.add_argument("--n-per-arm", type=int, default=39)
    parser.add_argument("--sd", type=float, default=2.0, help="SD of the 6-month score (points)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--ddf", choices=("kenward-roger", "satterthwaite"), default="kenward-roger",
                        help="df (and SE) of the MMRM/ANCOVA rows")
    parser.add_argument("--out", help="write the results as JSON")
    args = parser.parse_args(argv)
    DDF["method"] = args.ddf
    out = run(args)
    print(f"n = {out['n_per_arm']} per arm, SD {out['sd']}: effect for 90% power "
          f"{out['effect_for_90pct_power']:.3f} points "
          f"(exact t-test power {out['t_test_power_exact_noncentral_t']:.3f})")
    print(f"{'scenario':40s} {'test':20s} {'rate':>7s}  95% CI            trials")
    for scenario, tests in out["results"].items():
        for test, r in tests.items():
            if test == "covariance_used":
                print(f"{'':40s} covariance used: {r}")
                continue
            print(f"{scenario:40s} {test:20s} {r['rate']:7.3f}  [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
                  f"  {r['trials']}")
    print(f"CPU time {out['cpu_seconds']:.1f} s")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

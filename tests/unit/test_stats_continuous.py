"""Continuous endpoints: LS means with equal or observed weights (against an independent least-squares
fit on a reference grid), Kenward-Roger in cases where it is exact, and the MCID responder row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from pipeline.stats.continuous import fit_continuous
from pipeline.stats.mmrm import fit_mmrm
from pipeline.stats.synthetic import ar1_covariance


def _one_visit(seed=1, n=90):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "participant_id": [f"s{i}" for i in range(n)],
            "visit": "m06",
            "arm": np.where(rng.permutation(n) % 2 == 0, "ADSC", "placebo"),
            "sex": rng.choice(["F", "M"], n, p=[0.25, 0.75]),
            "center": rng.choice(["C1", "C2", "C3"], n, p=[0.6, 0.3, 0.1]),
            "age": rng.normal(60, 10, n),
            "baseline": rng.normal(6, 2, n),
        }
    )
    frame["change"] = (
        -1.0 * (frame["arm"] == "ADSC")
        + 0.8 * (frame["sex"] == "M")
        + frame["center"].map({"C1": 0.0, "C2": 1.5, "C3": -2.0})
        - 0.3 * frame["baseline"]
        + 0.02 * frame["age"]
        + rng.normal(0, 1, n)
    )
    return frame


@pytest.mark.parametrize("weights", ["equal", "observed"])
def test_lsmeans_match_an_ols_reference_grid(weights):
    """LS mean of each arm = the average prediction over the grid of factor levels (equal weights, SAS
    LSMEANS) or over the rows (observed margins), at the mean baseline and age; SE from the same
    contrast of an independent statsmodels OLS fit."""
    frame = _one_visit()
    rows, _ = fit_continuous(
        frame,
        visits=["m06"],
        covariates=["sex", "center", "age"],
        treated="ADSC",
        control="placebo",
        lsmeans_weights=weights,
    )
    row = next(r for r in rows if r["model"] == "ancova")
    import statsmodels.api as sm

    def exog(d):
        return np.column_stack(
            [
                np.ones(len(d)),
                d["baseline"],
                d["arm"] == "ADSC",
                d["sex"] == "M",
                d["center"] == "C2",
                d["center"] == "C3",
                d["age"],
            ]
        ).astype(float)

    ols = sm.OLS(frame["change"].to_numpy(), exog(frame)).fit()
    for arm in ("ADSC", "placebo"):
        if weights == "equal":
            grid = pd.DataFrame(
                [(s, c) for s in ("F", "M") for c in ("C1", "C2", "C3")], columns=["sex", "center"]
            )
        else:
            grid = frame[["sex", "center"]]
        grid = grid.assign(arm=arm, baseline=frame["baseline"].mean(), age=frame["age"].mean())
        test = ols.t_test(exog(grid).mean(axis=0))
        key = "treated" if arm == "ADSC" else "control"
        assert row[f"lsmean_{key}"] == pytest.approx(float(test.effect[0]), rel=1e-9)
        assert row[f"lsmean_{key}_se"] == pytest.approx(float(test.sd[0, 0]), rel=1e-9)
    assert row["estimate"] == pytest.approx(ols.params[2], rel=1e-9)
    assert row["df"] == ols.df_resid


def test_equal_and_observed_weights_differ_for_unbalanced_factors():
    frame = _one_visit()
    out = {}
    for weights in ("equal", "observed"):
        rows, _ = fit_continuous(
            frame,
            visits=["m06"],
            covariates=["sex", "center"],
            treated="ADSC",
            control="placebo",
            lsmeans_weights=weights,
        )
        out[weights] = next(r for r in rows if r["model"] == "ancova")
    assert abs(out["equal"]["lsmean_treated"] - out["observed"]["lsmean_treated"]) > 0.1
    assert out["equal"]["estimate"] == pytest.approx(out["observed"]["estimate"], rel=1e-12)


def test_kenward_roger_is_exact_for_a_complete_multivariate_regression():
    """Complete data, unstructured covariance, every effect by visit: GLS is least squares per visit, so the
    exact test is t with n - 3 df and no SE inflation; Kenward-Roger reproduces it (Kenward & Roger 1997)."""
    rng = np.random.default_rng(5)
    n, k = 30, 3
    arm = rng.permutation(np.repeat([1.0, 0.0], n // 2))
    base = rng.normal(0, 1, n)
    noise = rng.multivariate_normal(np.zeros(k), ar1_covariance(k, sd=[1, 2, 3], rho=0.5), n)
    subj, visit = np.repeat(np.arange(n), k), np.tile(np.arange(k), n)
    y = (0.5 * base[:, None] + 0.8 * arm[:, None] + noise).ravel()
    X = np.column_stack(
        [np.kron(np.eye(k)[v], [1, base[s], arm[s]]) for s, v in zip(subj, visit, strict=True)]
    ).T
    fit = fit_mmrm(y, X, subj, visit, n_visits=k, covariance="unstructured")
    for v in range(k):
        c = np.zeros(3 * k)
        c[3 * v + 2] = 1
        kr = fit.contrast(c, "kenward-roger")
        ols = smf.ols("y ~ b + a", data=pd.DataFrame({"y": y[visit == v], "b": base, "a": arm})).fit()
        assert kr["df"] == pytest.approx(n - 3, rel=1e-8)
        assert kr["se"] == pytest.approx(ols.bse["a"], rel=1e-6)
        assert kr["se"] == pytest.approx(kr["se_model"], rel=1e-8)


def test_kenward_roger_inflates_the_se_with_missing_data_and_ancova_is_exact():
    from tests.unit.test_stats_mmrm import _trial

    y, X, subj, visit = _trial(3, n=40, k=3, missing=0.2)
    fit = fit_mmrm(y, X, subj, visit, n_visits=3)
    c = np.eye(X.shape[1])[4]
    kr, satt = fit.contrast(c, "kenward-roger"), fit.contrast(c, "satterthwaite")
    assert kr["se"] > satt["se"] and kr["estimate"] == satt["estimate"]
    one = visit == 0
    fit1 = fit_mmrm(y[one], X[one][:, [0, 1, 4, 7, 8]], subj[one], visit[one], n_visits=1)
    kr1 = fit1.contrast([0, 0, 1, 0, 0], "kenward-roger")
    assert kr1["df"] == one.sum() - 5 and kr1["se"] == kr1["se_model"]


def test_mcid_responder_row_counts_changes_beyond_the_mcid_in_the_better_direction():
    from pipeline.stats.analysis import analyse
    from pipeline.stats.sources import assemble
    from pipeline.stats.trialspec import trial_spec_from_dict

    frame = _one_visit(n=60)
    table = pd.concat(
        [
            frame.assign(session="baseline", score=frame["baseline"]),
            frame.assign(session="m06", score=frame["baseline"] + frame["change"]),
        ]
    )
    spec = trial_spec_from_dict(
        {
            "trial": "T",
            "arms": {"treated": "ADSC", "control": "placebo"},
            "visits": [{"name": "baseline"}, {"name": "m06"}],
            "analysis_sets": {"ITT": None},
            "endpoints": [
                {
                    "name": "score",
                    "type": "continuous",
                    "role": "primary",
                    "better": "lower",
                    "units": "points",
                    "source": {"file": "s.tsv", "column": "score"},
                    "mcid": {"value": 1.0, "reference": "test"},
                }
            ],
        }
    )
    data = assemble(
        spec=spec,
        participants=frame[["participant_id", "sex", "center", "age"]],
        allocation=frame[["participant_id", "arm"]],
        tables={"s.tsv": table},
    )
    results, _, details = analyse(data, spec)
    row = results[results["model"] == "mcid_responders"].iloc[0]
    expected = {
        arm: float(np.mean(frame.loc[frame["arm"] == arm, "change"] <= -1.0)) for arm in ("ADSC", "placebo")
    }
    assert row["summary_treated"] == pytest.approx(expected["ADSC"])
    assert row["summary_control"] == pytest.approx(expected["placebo"])
    assert row["estimate"] == pytest.approx(expected["ADSC"] - expected["placebo"])
    assert row["favours"] == ("treatment" if row["estimate"] > 0 else "control")
    assert details[("score", "ITT")]["mcid"]["visit"] == "m06"


def test_satterthwaite_rows_carry_kenward_roger_df_beside_them():
    from tests.unit.test_stats_mmrm import _trial

    y, X, subj, visit = _trial(6, n=50, k=3, missing=0.15)
    frame = pd.DataFrame({"participant_id": subj, "visit": [f"v{v}" for v in visit], "baseline": X[:, 1],
                          "arm": np.where(X[:, 4] == 1, "ADSC", "placebo"), "change": y})
    rows = {}
    for ddf in ("kenward-roger", "satterthwaite"):
        out, _ = fit_continuous(frame, visits=["v0", "v1", "v2"], covariates=[], treated="ADSC",
                                control="placebo", ddf=ddf, random_intercept=False, simple_tests=False)
        rows[ddf] = {r["visit"]: r for r in out}
    for v in ("v0", "v1", "v2"):
        kr, sat = rows["kenward-roger"][v], rows["satterthwaite"][v]
        assert (kr["ddf_method"], sat["ddf_method"]) == ("kenward-roger", "satterthwaite")
        assert kr["df"] == pytest.approx(sat["df_other"]) and sat["df"] == pytest.approx(kr["df_other"])
        assert sat["se"] == pytest.approx(kr["se_model"]) and kr["se"] > sat["se"]
        assert kr["estimate"] == sat["estimate"]

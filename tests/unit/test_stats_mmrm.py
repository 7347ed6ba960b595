"""The MMRM engine against an independent implementation (R nlme), exact cases and fallbacks."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from pipeline.stats.covariance import STRUCTURES, Structure
from pipeline.stats.mmrm import fit_mmrm
from pipeline.stats.synthetic import ar1_covariance


def _trial(seed, *, n=60, k=3, missing=0.15, effect=-1.0):
    """Long data with missing visits: y, X (intercept, baseline, visits, arm, arm:visit, age, sex)."""
    rng = np.random.default_rng(seed)
    arm = rng.permutation(np.repeat([1.0, 0.0], n // 2))
    base = rng.normal(6, 2, n)
    age = rng.normal(0, 1, n)
    male = (rng.random(n) < 0.6).astype(float)
    sigma = ar1_covariance(k, sd=[1.0, 1.4, 1.9, 2.2][:k], rho=0.6)
    noise = rng.multivariate_normal(np.zeros(k), sigma, n)
    rows = []
    for i in range(n):
        for v in range(k):
            if rng.random() < missing and not (v == 0 and i % 7 == 0):
                continue
            y = -0.3 * (base[i] - 6) - 0.5 * v + effect * arm[i] * (v + 1) / k + 0.4 * age[i] + noise[i, v]
            rows.append((i, v, y, base[i], arm[i], age[i], male[i]))
    subj, visit, y, base_, arm_, age_, male_ = map(np.array, zip(*rows, strict=True))
    cols = [np.ones(len(y)), base_] + [(visit == j).astype(float) for j in range(1, k)] + [arm_] + \
        [arm_ * (visit == j) for j in range(1, k)] + [age_, male_]
    return y, np.column_stack(cols), subj, visit


def _rscript_or_skip():
    if shutil.which("Rscript") is None:
        if os.environ.get("CI"):
            pytest.fail("Rscript is required in CI (apt-get install r-base-core r-cran-nlme)")
        pytest.skip("Rscript not installed (apt-get install r-base-core r-cran-nlme)")


# nlme's default optimiser (nlminb) stops at a relative change of 1e-10 in the criterion, which
# leaves ~1e-5 relative error in the fixed effects; optim's BFGS with reltol 1e-14 does not.
R_GLS = """
suppressPackageStartupMessages(library(nlme))
d <- read.csv(commandArgs(TRUE)[1])
xs <- grep("^x", names(d), value = TRUE)
f <- as.formula(paste("y ~ 0 +", paste(xs, collapse = " + ")))
d$visit_f <- factor(d$visit)
m <- gls(f, data = d, correlation = corSymm(form = ~ t | subject),
         weights = varIdent(form = ~ 1 | visit_f), method = "REML",
         control = glsControl(maxIter = 1000, msMaxIter = 10000, tolerance = 1e-12, msTol = 1e-14,
                              opt = "optim", optimMethod = "BFGS", returnObject = TRUE))
out <- data.frame(coef = coef(m), se = sqrt(diag(vcov(m))))
write.csv(out, commandArgs(TRUE)[2], row.names = FALSE)
cat(format(logLik(m), digits = 15), file = commandArgs(TRUE)[3])
"""


@pytest.mark.parametrize("seed,k", [(1, 3), (2, 4)])
def test_unstructured_mmrm_matches_nlme_gls(tmp_path, seed, k):
    """Fixed effects and SEs agree with nlme::gls(corSymm + varIdent, REML) within 1e-4 (relative)."""
    _rscript_or_skip()
    import pandas as pd

    y, X, subj, visit = _trial(seed, k=k)
    assert len(y) < len(np.unique(subj)) * k  # there are missing visits
    fit = fit_mmrm(y, X, subj, visit, n_visits=k, covariance="unstructured")
    assert fit.converged and fit.covariance == "unstructured"

    data = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    data = data.assign(y=y, subject=subj, visit=visit, t=visit + 1)
    data.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "gls.R").write_text(R_GLS)
    proc = subprocess.run(["Rscript", str(tmp_path / "gls.R"), str(tmp_path / "d.csv"),
                           str(tmp_path / "out.csv"), str(tmp_path / "ll.txt")],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "nlme" in proc.stderr and not os.environ.get("CI"):
        pytest.skip("R package nlme not installed (apt-get install r-cran-nlme)")
    assert proc.returncode == 0, proc.stderr
    ref = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_allclose(fit.beta, ref["coef"], rtol=1e-4, atol=1e-8)
    np.testing.assert_allclose(fit.se, ref["se"], rtol=1e-4)
    assert fit.loglik == pytest.approx(float((tmp_path / "ll.txt").read_text()), abs=1e-6)


def test_satterthwaite_exact_for_visitwise_regression():
    """Complete data, unstructured covariance and every effect by visit: GLS is OLS per visit and
    the Satterthwaite df of a visit's treatment effect is exactly n - 3."""
    rng = np.random.default_rng(5)
    n, k = 30, 3
    arm = rng.permutation(np.repeat([1.0, 0.0], n // 2))
    base = rng.normal(0, 1, n)
    noise = rng.multivariate_normal(np.zeros(k), ar1_covariance(k, sd=[1, 2, 3], rho=0.5), n)
    subj, visit = np.repeat(np.arange(n), k), np.tile(np.arange(k), n)
    y = (0.5 * base[:, None] + 0.8 * arm[:, None] + noise).ravel()
    X = np.column_stack([np.kron(np.eye(k)[v], [1, base[s], arm[s]]) for s, v in zip(subj, visit,
                                                                                    strict=True)]).T
    fit = fit_mmrm(y, X, subj, visit, n_visits=k, covariance="unstructured")
    for v in range(k):
        c = np.zeros(3 * k)
        c[3 * v + 2] = 1
        res = fit.contrast(c)
        ols = np.linalg.lstsq(X[visit == v][:, 3 * v:3 * v + 3], y[visit == v], rcond=None)[0]
        assert res["estimate"] == pytest.approx(ols[2], rel=1e-6)
        assert res["df"] == pytest.approx(n - 3, rel=1e-4)


def test_one_visit_is_ancova():
    rng = np.random.default_rng(2)
    n = 40
    X = np.column_stack([np.ones(n), rng.normal(size=n), np.repeat([0.0, 1.0], n // 2)])
    y = X @ [1.0, 0.5, -1.0] + rng.normal(size=n)
    fit = fit_mmrm(y, X, np.arange(n), np.zeros(n, int), n_visits=1)
    beta, rss, *_ = np.linalg.lstsq(X, y, rcond=None)
    cov = rss[0] / (n - 3) * np.linalg.inv(X.T @ X)
    np.testing.assert_allclose(fit.beta, beta, rtol=1e-10)
    np.testing.assert_allclose(fit.cov_beta, cov, rtol=1e-8)
    assert fit.contrast([0, 0, 1])["df"] == n - 3


def test_fallback_when_unstructured_is_not_identifiable():
    """Visits 2 and 3 are never observed in the same subject: their covariance is not
    identifiable, the unstructured fit is rejected and heterogeneous Toeplitz is used (logged)."""
    y, X, subj, visit = _trial(3, n=80, k=3, missing=0.0)
    drop = ((subj % 2 == 0) & (visit == 2)) | ((subj % 2 == 1) & (visit == 1))
    y, X, subj, visit = y[~drop], X[~drop], subj[~drop], visit[~drop]
    fit = fit_mmrm(y, X, subj, visit, n_visits=3)
    assert fit.attempts[0][0] == "unstructured" and "did not converge" in fit.attempts[0][1]
    assert fit.covariance == "heterogeneous Toeplitz" and fit.converged
    assert np.all(np.isfinite(fit.se))


@pytest.mark.parametrize("name", STRUCTURES)
def test_structures_positive_definite_and_jacobian(name):
    rng = np.random.default_rng(0)
    s = Structure(name, 4)
    theta = rng.normal(0, 0.7, s.n_params)
    sigma = s.matrix(theta)
    assert np.all(np.linalg.eigvalsh(sigma) > 0)
    jac = s.jacobian(theta)
    h = 1e-6
    for j in range(s.n_params):
        step = np.zeros(s.n_params)
        step[j] = h
        np.testing.assert_allclose(jac[j], (s.matrix(theta + step) - s.matrix(theta - step)) / (2 * h),
                                   atol=1e-6)
    target = ar1_covariance(4, sd=[1, 2, 3, 4], rho=0.5)
    if name in ("unstructured", "heterogeneous Toeplitz"):  # AR(1) is in both families
        np.testing.assert_allclose(s.matrix(s.start(target)), target, rtol=1e-6)


def test_random_intercept_matches_statsmodels_mixedlm():
    import statsmodels.api as sm

    y, X, subj, visit = _trial(4, n=80, k=4, missing=0.1)
    fit = fit_mmrm(y, X, subj, visit, n_visits=4, covariance="random intercept")
    scale = y.std()
    ref = sm.MixedLM(y / scale, X, groups=subj).fit(reml=True, method=["bfgs"])
    p = X.shape[1]
    np.testing.assert_allclose(fit.beta, np.asarray(ref.fe_params) * scale, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(fit.se, np.sqrt(np.diag(ref.cov_params())[:p]) * scale, rtol=1e-3)
    tau2 = fit.sigma[0, 1]
    assert tau2 == pytest.approx(float(np.ravel(ref.cov_re)[0]) * scale**2, rel=1e-3)


def test_bad_input_is_rejected():
    y, X, subj, visit = _trial(1)
    with pytest.raises(ValueError, match="same visit"):
        fit_mmrm(np.r_[y, y[:1]], np.vstack([X, X[:1]]), np.r_[subj, subj[:1]], np.r_[visit, visit[:1]],
                 n_visits=3)
    with pytest.raises(ValueError, match="rank deficient"):
        fit_mmrm(y, np.column_stack([X, X[:, 0]]), subj, visit, n_visits=3)


R_LMER = """
suppressPackageStartupMessages(library(lmerTest))
d <- read.csv(commandArgs(TRUE)[1])
xs <- grep("^x", names(d), value = TRUE)
m <- lmer(as.formula(paste("y ~ 0 +", paste(xs, collapse = " + "), "+ (1 | subject)")), data = d,
          REML = TRUE, control = lmerControl(optimizer = "bobyqa",
                                             optCtrl = list(rhobeg = 1e-2, rhoend = 1e-12)))
L <- as.matrix(read.csv(commandArgs(TRUE)[2]))
one <- function(i) contest(m, L[i, , drop = FALSE], joint = FALSE, ddf = "Satterthwaite")
out <- do.call(rbind, lapply(seq_len(nrow(L)), function(i) one(i)[, c("Estimate", "Std. Error", "df")]))
write.csv(out, commandArgs(TRUE)[3], row.names = FALSE)
"""


def test_random_intercept_satterthwaite_matches_lmertest(tmp_path):
    """Estimates, SEs and Satterthwaite df of contrasts of the
    random-intercept model agree with lmerTest::contest (the same method, Kuznetsova et al. 2017)."""
    import pandas as pd

    _rscript_or_skip()
    if subprocess.run(["Rscript", "-e", "library(lmerTest)"], capture_output=True).returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("R package lmerTest is required in CI (apt-get install r-cran-lmertest)")
        pytest.skip("R package lmerTest not installed (apt-get install r-cran-lmertest)")
    y, X, subj, visit = _trial(4, n=60, k=4, missing=0.15)
    fit = fit_mmrm(y, X, subj, visit, n_visits=4, covariance="random intercept")
    p = X.shape[1]
    contrasts = np.array([np.eye(p)[5], np.eye(p)[5] + np.eye(p)[8], np.eye(p)[1]])
    pd.DataFrame(X, columns=[f"x{j}" for j in range(p)]).assign(y=y, subject=subj).to_csv(
        tmp_path / "d.csv", index=False)
    pd.DataFrame(contrasts).to_csv(tmp_path / "L.csv", index=False)
    (tmp_path / "lmer.R").write_text(R_LMER)
    proc = subprocess.run(["Rscript", str(tmp_path / "lmer.R"), str(tmp_path / "d.csv"),
                           str(tmp_path / "L.csv"), str(tmp_path / "out.csv")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ref = pd.read_csv(tmp_path / "out.csv")
    ours = pd.DataFrame([fit.contrast(c) for c in contrasts])
    np.testing.assert_allclose(ours["estimate"], ref["Estimate"], rtol=1e-5)
    np.testing.assert_allclose(ours["se"], ref["Std. Error"], rtol=1e-5)
    np.testing.assert_allclose(ours["df"], ref["df"], rtol=1e-4)

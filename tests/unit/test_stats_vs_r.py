"""Every model type against R on simulated data, within 1e-4 relative (CI runs these; R is required there).

One R session (``R_SCRIPT``) computes every reference; the R function that is the reference of each
model is named in its test and in docs/statistics.md:

| model | our code | R reference |
|---|---|---|
| MMRM, unstructured, Kenward-Roger | ``fit_mmrm`` + ``kenward_roger`` | ``nlme::gls(corSymm + varIdent, REML)`` fed to ``pbkrtest:::vcovAdj_internal`` (the code of ``pbkrtest::vcovAdj``) with the linear derivative matrices of the unstructured Sigma; df ``pbkrtest:::Lb_ddf`` |
| random intercept, Kenward-Roger | ``fit_mmrm(covariance="random intercept")`` | ``lmerTest::contest(lmer(...), ddf = "Kenward-Roger")`` |
| logistic | ``binary._logistic`` (statsmodels GLM) | ``glm(family = binomial)`` |
| proportional odds | ``ordinal.proportional_odds`` (statsmodels OrderedModel) | ``MASS::polr(Hess = TRUE)`` |
| CMH 2x2xK | ``binary._cmh`` (statsmodels StratifiedTable) | ``mantelhaen.test(correct = FALSE)`` |
| CMH row mean scores | ``ordinal.cmh_mean_score`` | ``vcdExtra::CMHtest(types = "rmeans")`` |
| Fisher exact, chi-squared | ``binary._fisher``, ``binary._chi_squared`` (scipy) | ``fisher.test``, ``chisq.test(correct = FALSE)`` |
| Poisson, negative binomial | ``counts.poisson``, ``counts.negative_binomial`` | ``glm(family = poisson)``, ``MASS::glm.nb`` |
| Cox, log-rank | ``survival.cox``, ``survival.log_rank`` (statsmodels PHReg, survdiff) | ``survival::coxph(ties = "efron")``, ``survival::survdiff`` |
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from pipeline.stats import binary, counts, ordinal, survival
from pipeline.stats.mmrm import fit_mmrm

RTOL = 1e-4
PACKAGES = ("nlme", "lme4", "lmerTest", "pbkrtest", "MASS", "survival", "vcdExtra")

R_SCRIPT = r"""
suppressPackageStartupMessages({
  library(nlme); library(lmerTest); library(pbkrtest); library(MASS); library(survival); library(vcdExtra)
})
dir <- commandArgs(TRUE)[1]
out <- list()
put <- function(model, quantity, value) out[[length(out) + 1]] <<- data.frame(model, quantity, value = as.numeric(value))

# --- MMRM, unstructured: nlme::gls + pbkrtest's Kenward-Roger on the linear parametrisation
d <- read.csv(file.path(dir, "mmrm.csv")); L <- as.matrix(read.csv(file.path(dir, "contrasts.csv")))
xs <- grep("^x", names(d), value = TRUE); d$visit_f <- factor(d$visit)
g <- gls(as.formula(paste("y ~ 0 +", paste(xs, collapse = " + "))), data = d,
         correlation = corSymm(form = ~ t | subject), weights = varIdent(form = ~ 1 | visit_f), method = "REML",
         control = glsControl(maxIter = 1000, msMaxIter = 10000, tolerance = 1e-12, msTol = 1e-14, opt = "optim",
                              optimMethod = "BFGS", returnObject = TRUE))
K <- length(unique(d$t)); cs <- coef(g$modelStruct$corStruct, unconstrained = FALSE)
R <- diag(K); k <- 1; for (j in 1:(K - 1)) for (i in (j + 1):K) { R[i, j] <- R[j, i] <- cs[k]; k <- k + 1 }
sdv <- g$sigma * coef(g$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)[levels(d$visit_f)]
S <- diag(sdv) %*% R %*% diag(sdv); X <- as.matrix(d[, xs]); n <- nrow(d); blocks <- split(seq_len(n), d$subject)
Sigma <- matrix(0, n, n); for (b in blocks) Sigma[b, b] <- S[d$t[b], d$t[b]]
G <- list()
for (j in 1:K) for (i in j:K) {
  E <- matrix(0, K, K); E[i, j] <- 1; E[j, i] <- 1
  M <- matrix(0, n, n); for (b in blocks) M[b, b] <- E[d$t[b], d$t[b]]
  G[[length(G) + 1]] <- M }
Phi <- vcov(g); PhiA <- pbkrtest:::vcovAdj_internal(Phi, list(Sigma = Sigma, G = G, n.ggamma = length(G)), X)
for (i in 1:nrow(L)) {
  put("mmrm_un", paste0("estimate", i), sum(L[i, ] * coef(g)))
  put("mmrm_un", paste0("se_model", i), sqrt(drop(L[i, ] %*% Phi %*% L[i, ])))
  put("mmrm_un", paste0("se_kr", i), sqrt(drop(L[i, ] %*% as.matrix(PhiA) %*% L[i, ])))
  put("mmrm_un", paste0("df_kr", i), pbkrtest:::Lb_ddf(L[i, ], Phi, PhiA))
}
# --- random intercept: lmerTest with Kenward-Roger (pbkrtest)
m <- lmer(as.formula(paste("y ~ 0 +", paste(xs, collapse = " + "), "+ (1 | subject)")), data = d, REML = TRUE,
          control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 1e-2, rhoend = 1e-12)))
for (i in 1:nrow(L)) {
  r <- contest(m, L[i, , drop = FALSE], joint = FALSE, ddf = "Kenward-Roger")
  put("random_intercept", paste0("estimate", i), r$Estimate); put("random_intercept", paste0("se_kr", i), r[["Std. Error"]])
  put("random_intercept", paste0("df_kr", i), r$df)
}
# --- binary
b <- read.csv(file.path(dir, "binary.csv")); b$arm <- factor(b$arm, levels = c("placebo", "ADSC"))
b$center <- factor(b$center)
f <- summary(glm(y ~ arm + center, family = binomial, data = b, control = glm.control(epsilon = 1e-14, maxit = 100)))$coefficients
put("logistic", "logor", f["armADSC", 1]); put("logistic", "se", f["armADSC", 2]); put("logistic", "p", f["armADSC", 4])
tab <- xtabs(~ factor(arm, levels = c("ADSC", "placebo")) + factor(y, levels = c(1, 0)) + center, data = b)
mh <- mantelhaen.test(tab, correct = FALSE)
put("cmh", "p", mh$p.value); put("cmh", "or", mh$estimate); put("cmh", "low", mh$conf.int[1]); put("cmh", "high", mh$conf.int[2])
t2 <- margin.table(tab, c(1, 2)); fe <- fisher.test(t2)
put("fisher", "p", fe$p.value); put("fisher", "or", fe$estimate); put("fisher", "low", fe$conf.int[1]); put("fisher", "high", fe$conf.int[2])
put("chi_squared", "p", chisq.test(t2, correct = FALSE)$p.value)
# --- ordinal
o <- read.csv(file.path(dir, "ordinal.csv")); o$arm <- factor(o$arm, levels = c("placebo", "ADSC")); o$center <- factor(o$center)
po <- polr(factor(y, levels = sort(unique(y))) ~ arm + center, data = o, Hess = TRUE, method = "logistic",
           control = list(reltol = 1e-14, maxit = 1000))
put("proportional_odds", "logor", coef(po)["armADSC"]); put("proportional_odds", "se", sqrt(vcov(po)["armADSC", "armADSC"]))
levels_y <- sort(unique(o$y))
ot <- xtabs(~ factor(arm, levels = c("ADSC", "placebo")) + factor(y, levels = levels_y) + center, data = o)
cm <- CMHtest(ot, types = "rmeans", cscores = levels_y, overall = TRUE)
chisq <- as.numeric(cm$ALL$table[["rmeans", "Chisq"]])  # overall (all strata); its Prob is not filled in
put("cmh_mean_score", "p", pchisq(chisq, 1, lower.tail = FALSE))
# --- counts
cnt <- read.csv(file.path(dir, "counts.csv")); cnt$arm <- factor(cnt$arm, levels = c("placebo", "ADSC")); cnt$center <- factor(cnt$center)
pf <- summary(glm(count ~ arm + center + offset(log(exposure)), family = poisson, data = cnt,
                  control = glm.control(epsilon = 1e-14, maxit = 100)))$coefficients
put("poisson", "logrr", pf["armADSC", 1]); put("poisson", "se", pf["armADSC", 2])
nb <- glm.nb(count ~ arm + center + offset(log(exposure)), data = cnt, control = glm.control(epsilon = 1e-14, maxit = 200))
nf <- summary(nb)$coefficients
put("negative_binomial", "logrr", nf["armADSC", 1]); put("negative_binomial", "se", nf["armADSC", 2]); put("negative_binomial", "theta", nb$theta)
# --- survival
s <- read.csv(file.path(dir, "survival.csv")); s$arm <- factor(s$arm, levels = c("placebo", "ADSC"))
cx <- coxph(Surv(time, event) ~ arm + strata(center), data = s, ties = "efron", control = coxph.control(eps = 1e-12, iter.max = 100))
put("cox", "loghr", coef(cx)["armADSC"]); put("cox", "se", sqrt(vcov(cx)["armADSC", "armADSC"]))
put("log_rank", "p", pchisq(survdiff(Surv(time, event) ~ arm + strata(center), data = s)$chisq, 1, lower.tail = FALSE))
write.csv(do.call(rbind, out), file.path(dir, "reference.csv"), row.names = FALSE)
"""


def _require_r():
    missing = "Rscript" if shutil.which("Rscript") is None else None
    if missing is None:
        probe = "for (p in c(%s)) if (!requireNamespace(p, quietly = TRUE)) cat(p, '')" % ", ".join(
            f'"{p}"' for p in PACKAGES)
        missing = subprocess.run(["Rscript", "-e", probe], capture_output=True, text=True).stdout.strip() or None
    if missing:
        message = (f"R reference needs {missing} (apt-get install r-base-core r-cran-nlme r-cran-lmertest "
                   "r-cran-pbkrtest r-cran-mass r-cran-survival r-cran-vcdextra)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _mmrm_data(seed=7, n=60, k=4):
    from tests.unit.test_stats_mmrm import _trial

    y, X, subj, visit = _trial(seed, n=n, k=k, missing=0.15)
    p = X.shape[1]
    # arm at the first visit, arm at the last visit (arm + arm:visit), the baseline slope
    contrasts = np.array([np.eye(p)[k + 1], np.eye(p)[k + 1] + np.eye(p)[2 * k], np.eye(p)[1]])
    return y, X, subj, visit, contrasts


def _datasets(rng):
    n = 160
    arm = np.where(rng.permutation(n) % 2 == 0, "ADSC", "placebo")
    center = rng.choice(["C1", "C2", "C3", "C4"], n)
    shift = (arm == "ADSC") * 0.8 + pd.Series(center).map({"C1": -0.4, "C2": 0.0, "C3": 0.3, "C4": 0.6}).to_numpy()
    frames = {}
    frames["binary"] = pd.DataFrame({"arm": arm, "center": center,
                                     "y": (rng.random(n) < 1 / (1 + np.exp(-(shift - 0.5)))).astype(int)})
    latent = shift + rng.logistic(size=n)
    frames["ordinal"] = pd.DataFrame({"arm": arm, "center": center,
                                      "y": np.digitize(latent, [-1.0, 0.0, 0.7, 1.5, 2.5])})
    exposure = rng.uniform(20, 120, n)
    mean = exposure * 0.03 * np.exp(shift - 0.8) * rng.gamma(2.0, 0.5, n)
    frames["counts"] = pd.DataFrame({"arm": arm, "center": center, "count": rng.poisson(mean),
                                     "exposure": exposure})
    t = rng.exponential(1 / (0.01 * np.exp(shift)))
    c = rng.uniform(30, 200, n)
    frames["survival"] = pd.DataFrame({"arm": arm, "center": center, "time": np.round(np.minimum(t, c), 1),
                                       "event": (t <= c).astype(int)})
    return frames


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    _require_r()
    folder = tmp_path_factory.mktemp("r_reference")
    y, X, subj, visit, contrasts = _mmrm_data()
    pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])]).assign(
        y=y, subject=subj, visit=visit, t=visit + 1).to_csv(folder / "mmrm.csv", index=False)
    pd.DataFrame(contrasts).to_csv(folder / "contrasts.csv", index=False)
    frames = _datasets(np.random.default_rng(11))
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    (folder / "reference.R").write_text(R_SCRIPT)
    proc = subprocess.run(["Rscript", str(folder / "reference.R"), str(folder)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = pd.read_csv(folder / "reference.csv")
    return {(m, q): v for m, q, v in ref.itertuples(index=False)}, frames


def _close(ours, theirs, rtol=RTOL):
    assert ours == pytest.approx(theirs, rel=rtol), (ours, theirs)


@pytest.mark.parametrize("covariance,key", [("unstructured", "mmrm_un"), ("random intercept", "random_intercept")])
def test_mmrm_kenward_roger_matches_pbkrtest(reference, covariance, key):
    """Estimates, KR-adjusted SEs and KR df of three contrasts; unstructured against pbkrtest's vcovAdj
    on the nlme::gls fit, random intercept against lmerTest::contest(ddf = "Kenward-Roger")."""
    ref, _ = reference
    y, X, subj, visit, contrasts = _mmrm_data()
    fit = fit_mmrm(y, X, subj, visit, n_visits=4, covariance=covariance)
    assert fit.converged and fit.covariance == covariance
    for i, c in enumerate(contrasts, start=1):
        ours = fit.contrast(c, "kenward-roger")
        _close(ours["estimate"], ref[(key, f"estimate{i}")])
        _close(ours["se"], ref[(key, f"se_kr{i}")])
        _close(ours["df"], ref[(key, f"df_kr{i}")])
        if key == "mmrm_un":
            _close(ours["se_model"], ref[(key, f"se_model{i}")])
        assert ours["se"] > ours["se_model"]  # the adjustment inflates the SE


def test_logistic_fisher_chi_squared_and_cmh_match_r(reference):
    ref, frames = reference
    frame = frames["binary"].rename(columns={"y": "value"})
    rows = {r["model"]: r for r in binary.fit_binary(frame, treated="ADSC", control="placebo", adjust=["center"],
                                                     cmh_stratum="center")}
    assert all(r["status"] == "ok" for r in rows.values()), rows
    _close(np.log(rows["logistic"]["estimate"]), ref[("logistic", "logor")])
    _close(rows["logistic"]["se"], ref[("logistic", "se")])
    _close(rows["logistic"]["p"], ref[("logistic", "p")])
    for q in ("p", "or", "low", "high"):
        column = {"or": "estimate", "low": "ci_low", "high": "ci_high", "p": "p"}[q]
        _close(rows["cmh"][column], ref[("cmh", q)])
        _close(rows["fisher_exact"][column], ref[("fisher", q)])
    _close(rows["chi_squared"]["p"], ref[("chi_squared", "p")])


def test_proportional_odds_and_cmh_mean_score_match_r(reference):
    ref, frames = reference
    frame = frames["ordinal"].rename(columns={"y": "value"})
    levels = sorted(frame["value"].unique())
    rows = {r["model"]: r for r in ordinal.fit_ordinal(frame, levels=levels, treated="ADSC", control="placebo",
                                                       adjust=["center"], cmh_stratum="center")}
    _close(np.log(rows["proportional_odds"]["estimate"]), ref[("proportional_odds", "logor")])
    _close(rows["proportional_odds"]["se"], ref[("proportional_odds", "se")])
    _close(rows["cmh_mean_score"]["p"], ref[("cmh_mean_score", "p")])


def test_poisson_and_negative_binomial_match_r(reference):
    ref, frames = reference
    rows = {r["model"]: r for r in counts.fit_counts(frames["counts"], treated="ADSC", control="placebo",
                                                     adjust=["center"])}
    for model in ("poisson", "negative_binomial"):
        _close(np.log(rows[model]["estimate"]), ref[(model, "logrr")])
        _close(rows[model]["se"], ref[(model, "se")])


def test_cox_and_log_rank_match_r(reference):
    ref, frames = reference
    rows = {r["model"]: r for r in survival.fit_survival(frames["survival"], treated="ADSC", control="placebo",
                                                         adjust=["center"])}
    _close(np.log(rows["cox"]["estimate"]), ref[("cox", "loghr")])
    _close(rows["cox"]["se"], ref[("cox", "se")])
    _close(rows["log_rank"]["p"], ref[("log_rank", "p")])

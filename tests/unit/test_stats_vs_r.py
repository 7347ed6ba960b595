"""Every model type against R on simulated data, within 1e-4 relative (CI runs these; R is required there).

One R session (``R_SCRIPT``) computes every reference; the R function that is the reference of each
model is named in its test and in docs/statistics.md:

* MMRM, unstructured, Kenward-Roger (``fit_mmrm`` + :mod:`pipeline.stats.kenward_roger`):
  ``nlme::gls(corSymm + varIdent, REML)`` fed to ``pbkrtest:::vcovAdj_internal`` (the code behind
  ``pbkrtest::vcovAdj``) with the linear derivative matrices of the unstructured Sigma; df
  ``pbkrtest:::Lb_ddf``; model-based SE ``vcov(gls)``.
* Random intercept, Kenward-Roger: ``lmerTest::contest(lmer(...), ddf = "Kenward-Roger")``.
* Logistic (statsmodels GLM): ``glm(family = binomial)``.
* Proportional odds (statsmodels OrderedModel): ``MASS::polr(Hess = TRUE)``.
* CMH 2x2xK (statsmodels StratifiedTable): ``mantelhaen.test(correct = FALSE)``.
* CMH row mean scores: ``vcdExtra::CMHtest(types = "rmeans")``.
* Fisher exact, chi-squared (scipy): ``fisher.test``, ``chisq.test(correct = FALSE)``.
* Poisson, negative binomial (statsmodels GLM / NegativeBinomial): ``glm(family = poisson)``,
  ``MASS::glm.nb``.
* Cox, log-rank (statsmodels PHReg, survdiff): ``survival::coxph(ties = "efron")``, ``survival::survdiff``.
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
put <- function(model, quantity, value) {
  out[[length(out) + 1]] <<- data.frame(model, quantity, value = as.numeric(value))
}
arms <- function(d) { d$arm <- factor(d$arm, levels = c("placebo", "ADSC")); d$center <- factor(d$center); d }
tight <- glm.control(epsilon = 1e-14, maxit = 200)

# MMRM, unstructured: nlme::gls, then pbkrtest's Kenward-Roger with the linear parametrisation
d <- read.csv(file.path(dir, "mmrm.csv")); L <- as.matrix(read.csv(file.path(dir, "contrasts.csv")))
xs <- grep("^x", names(d), value = TRUE); d$visit_f <- factor(d$visit)
ctrl <- glsControl(maxIter = 1000, msMaxIter = 10000, tolerance = 1e-12, msTol = 1e-14, opt = "optim",
                   optimMethod = "BFGS", returnObject = TRUE)
g <- gls(as.formula(paste("y ~ 0 +", paste(xs, collapse = " + "))), data = d, method = "REML",
         correlation = corSymm(form = ~ t | subject), weights = varIdent(form = ~ 1 | visit_f),
         control = ctrl)
K <- length(unique(d$t)); cs <- coef(g$modelStruct$corStruct, unconstrained = FALSE)
R <- diag(K); k <- 1
for (j in 1:(K - 1)) for (i in (j + 1):K) { R[i, j] <- R[j, i] <- cs[k]; k <- k + 1 }
sdv <- g$sigma * coef(g$modelStruct$varStruct, unconstrained = FALSE, allCoef = TRUE)[levels(d$visit_f)]
S <- diag(sdv) %*% R %*% diag(sdv); X <- as.matrix(d[, xs]); n <- nrow(d)
blocks <- split(seq_len(n), d$subject)
embed <- function(M) { A <- matrix(0, n, n); for (b in blocks) A[b, b] <- M[d$t[b], d$t[b]]; A }
G <- list()
for (j in 1:K) for (i in j:K) {
  E <- matrix(0, K, K); E[i, j] <- 1; E[j, i] <- 1; G[[length(G) + 1]] <- embed(E)
}
Phi <- vcov(g)
PhiA <- pbkrtest:::vcovAdj_internal(Phi, list(Sigma = embed(S), G = G, n.ggamma = length(G)), X)
for (i in 1:nrow(L)) {
  l <- L[i, ]
  put("mmrm_un", paste0("estimate", i), sum(l * coef(g)))
  put("mmrm_un", paste0("se_model", i), sqrt(drop(l %*% Phi %*% l)))
  put("mmrm_un", paste0("se_kr", i), sqrt(drop(l %*% as.matrix(PhiA) %*% l)))
  put("mmrm_un", paste0("df_kr", i), pbkrtest:::Lb_ddf(l, Phi, PhiA))
}
# random intercept: lmerTest with Kenward-Roger (pbkrtest)
m <- lmer(as.formula(paste("y ~ 0 +", paste(xs, collapse = " + "), "+ (1 | subject)")), data = d, REML = TRUE,
          control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhobeg = 1e-2, rhoend = 1e-12)))
for (i in 1:nrow(L)) {
  r <- contest(m, L[i, , drop = FALSE], joint = FALSE, ddf = "Kenward-Roger")
  put("random_intercept", paste0("estimate", i), r$Estimate)
  put("random_intercept", paste0("se_kr", i), r[["Std. Error"]])
  put("random_intercept", paste0("df_kr", i), r$df)
}
# binary
b <- arms(read.csv(file.path(dir, "binary.csv")))
f <- summary(glm(y ~ arm + center, family = binomial, data = b, control = tight))$coefficients["armADSC", ]
put("logistic", "logor", f[1]); put("logistic", "se", f[2]); put("logistic", "p", f[4])
tab <- xtabs(~ factor(arm, levels = c("ADSC", "placebo")) + factor(y, levels = c(1, 0)) + center, data = b)
mh <- mantelhaen.test(tab, correct = FALSE)
put("cmh", "p", mh$p.value); put("cmh", "or", mh$estimate)
put("cmh", "low", mh$conf.int[1]); put("cmh", "high", mh$conf.int[2])
t2 <- margin.table(tab, c(1, 2)); fe <- fisher.test(t2)
put("fisher", "p", fe$p.value); put("fisher", "or", fe$estimate)
put("fisher", "low", fe$conf.int[1]); put("fisher", "high", fe$conf.int[2])
put("chi_squared", "p", chisq.test(t2, correct = FALSE)$p.value)
# ordinal
o <- arms(read.csv(file.path(dir, "ordinal.csv"))); lv <- sort(unique(o$y))
po <- polr(factor(y, levels = lv) ~ arm + center, data = o, Hess = TRUE, method = "logistic",
           control = list(reltol = 1e-14, maxit = 1000))
put("proportional_odds", "logor", coef(po)["armADSC"])
put("proportional_odds", "se", sqrt(vcov(po)["armADSC", "armADSC"]))
ot <- xtabs(~ factor(arm, levels = c("ADSC", "placebo")) + factor(y, levels = lv) + center, data = o)
cm <- CMHtest(ot, types = "rmeans", cscores = lv, overall = TRUE)
chisq <- as.numeric(cm$ALL$table[["rmeans", "Chisq"]])  # overall (all strata); its Prob is not filled in
put("cmh_mean_score", "p", pchisq(chisq, 1, lower.tail = FALSE))
# counts
cnt <- arms(read.csv(file.path(dir, "counts.csv")))
pf <- summary(glm(count ~ arm + center + offset(log(exposure)), family = poisson, data = cnt,
                  control = tight))$coefficients["armADSC", ]
put("poisson", "logrr", pf[1]); put("poisson", "se", pf[2])
nb <- glm.nb(count ~ arm + center + offset(log(exposure)), data = cnt, control = tight)
nf <- summary(nb)$coefficients["armADSC", ]
put("negative_binomial", "logrr", nf[1]); put("negative_binomial", "se", nf[2])
# survival
s <- read.csv(file.path(dir, "survival.csv")); s$arm <- factor(s$arm, levels = c("placebo", "ADSC"))
cx <- coxph(Surv(time, event) ~ arm + strata(center), data = s, ties = "efron",
            control = coxph.control(eps = 1e-12, iter.max = 100))
put("cox", "loghr", coef(cx)["armADSC"]); put("cox", "se", sqrt(vcov(cx)["armADSC", "armADSC"]))
lr <- survdiff(Surv(time, event) ~ arm + strata(center), data = s)
put("log_rank", "p", pchisq(lr$chisq, 1, lower.tail = FALSE))
write.csv(do.call(rbind, out), file.path(dir, "reference.csv"), row.names = FALSE)
"""


def _require_r():
    missing = "Rscript" if shutil.which("Rscript") is None else None
    if missing is None:
        names = ", ".join(f'"{p}"' for p in PACKAGES)
        probe = f"for (p in c({names})) if (!requireNamespace(p, quietly = TRUE)) cat(p, '')"
        missing = (
            subprocess.run(["Rscript", "-e", probe], capture_output=True, text=True).stdout.strip() or None
        )
    if missing:
        message = (
            f"R reference needs {missing} (apt-get install r-base-core r-cran-nlme r-cran-lmertest "
            "r-cran-pbkrtest r-cran-mass r-cran-survival r-cran-vcdextra)"
        )
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
    shift = (arm == "ADSC") * 0.8 + pd.Series(center).map(
        {"C1": -0.4, "C2": 0.0, "C3": 0.3, "C4": 0.6}
    ).to_numpy()
    frames = {}
    frames["binary"] = pd.DataFrame(
        {"arm": arm, "center": center, "y": (rng.random(n) < 1 / (1 + np.exp(-(shift - 0.5)))).astype(int)}
    )
    latent = shift + rng.logistic(size=n)
    frames["ordinal"] = pd.DataFrame(
        {"arm": arm, "center": center, "y": np.digitize(latent, [-1.0, 0.0, 0.7, 1.5, 2.5])}
    )
    exposure = rng.uniform(20, 120, n)
    mean = exposure * 0.03 * np.exp(shift - 0.8) * rng.gamma(2.0, 0.5, n)
    frames["counts"] = pd.DataFrame(
        {"arm": arm, "center": center, "count": rng.poisson(mean), "exposure": exposure}
    )
    t = rng.exponential(1 / (0.01 * np.exp(shift)))
    c = rng.uniform(30, 200, n)
    frames["survival"] = pd.DataFrame(
        {"arm": arm, "center": center, "time": np.round(np.minimum(t, c), 1), "event": (t <= c).astype(int)}
    )
    return frames


def run_reference(folder):
    """Write the data sets, run ``R_SCRIPT`` once; return ({(model, quantity): R value}, data sets)."""
    y, X, subj, visit, contrasts = _mmrm_data()
    pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])]).assign(
        y=y, subject=subj, visit=visit, t=visit + 1
    ).to_csv(folder / "mmrm.csv", index=False)
    pd.DataFrame(contrasts).to_csv(folder / "contrasts.csv", index=False)
    frames = _datasets(np.random.default_rng(11))
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    (folder / "reference.R").write_text(R_SCRIPT)
    proc = subprocess.run(
        ["Rscript", str(folder / "reference.R"), str(folder)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = pd.read_csv(folder / "reference.csv")
    return {(m, q): v for m, q, v in ref.itertuples(index=False)}, frames


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    _require_r()
    return run_reference(tmp_path_factory.mktemp("r_reference"))


def ours(frames) -> dict:
    """Our values under the reference's keys (model, quantity)."""
    out = {}
    y, X, subj, visit, contrasts = _mmrm_data()
    for covariance, key in (("unstructured", "mmrm_un"), ("random intercept", "random_intercept")):
        fit = fit_mmrm(y, X, subj, visit, n_visits=4, covariance=covariance)
        assert fit.converged and fit.covariance == covariance
        for i, c in enumerate(contrasts, start=1):
            kr = fit.contrast(c, "kenward-roger")
            assert kr["se"] > kr["se_model"]  # the adjustment inflates the SE
            out.update(
                {
                    (key, f"estimate{i}"): kr["estimate"],
                    (key, f"se_kr{i}"): kr["se"],
                    (key, f"df_kr{i}"): kr["df"],
                }
            )
            if key == "mmrm_un":
                out[(key, f"se_model{i}")] = kr["se_model"]
    rows = {
        r["model"]: r
        for r in binary.fit_binary(
            frames["binary"].rename(columns={"y": "value"}),
            treated="ADSC",
            control="placebo",
            adjust=["center"],
            cmh_stratum="center",
        )
    }
    assert all(r["status"] == "ok" for r in rows.values()), rows
    out.update(
        {
            ("logistic", "logor"): np.log(rows["logistic"]["estimate"]),
            ("logistic", "se"): rows["logistic"]["se"],
            ("logistic", "p"): rows["logistic"]["p"],
            ("chi_squared", "p"): rows["chi_squared"]["p"],
        }
    )
    for q, column in (("p", "p"), ("or", "estimate"), ("low", "ci_low"), ("high", "ci_high")):
        out[("cmh", q)] = rows["cmh"][column]
        out[("fisher", q)] = rows["fisher_exact"][column]
    frame = frames["ordinal"].rename(columns={"y": "value"})
    rows = {
        r["model"]: r
        for r in ordinal.fit_ordinal(
            frame,
            levels=sorted(frame["value"].unique()),
            treated="ADSC",
            control="placebo",
            adjust=["center"],
            cmh_stratum="center",
        )
    }
    out.update(
        {
            ("proportional_odds", "logor"): np.log(rows["proportional_odds"]["estimate"]),
            ("proportional_odds", "se"): rows["proportional_odds"]["se"],
            ("cmh_mean_score", "p"): rows["cmh_mean_score"]["p"],
        }
    )
    rows = {
        r["model"]: r
        for r in counts.fit_counts(frames["counts"], treated="ADSC", control="placebo", adjust=["center"])
    }
    for model in ("poisson", "negative_binomial"):
        out.update({(model, "logrr"): np.log(rows[model]["estimate"]), (model, "se"): rows[model]["se"]})
    rows = {
        r["model"]: r
        for r in survival.fit_survival(
            frames["survival"], treated="ADSC", control="placebo", adjust=["center"]
        )
    }
    out.update(
        {
            ("cox", "loghr"): np.log(rows["cox"]["estimate"]),
            ("cox", "se"): rows["cox"]["se"],
            ("log_rank", "p"): rows["log_rank"]["p"],
        }
    )
    return out


def relative_differences(reference) -> dict:
    """model -> {quantity: |ours - R| / |R|}."""
    ref, frames = reference
    mine = ours(frames)
    out = {}
    for (model, quantity), theirs in ref.items():
        if (model, quantity) in mine:
            out.setdefault(model, {})[quantity] = abs(mine[(model, quantity)] - theirs) / abs(theirs)
    return out


@pytest.mark.parametrize(
    "model",
    [
        "mmrm_un",
        "random_intercept",
        "logistic",
        "fisher",
        "chi_squared",
        "cmh",
        "proportional_odds",
        "cmh_mean_score",
        "poisson",
        "negative_binomial",
        "cox",
        "log_rank",
    ],
)
def test_agrees_with_r_within_1e_4(reference, model):
    """Every compared quantity of the model (estimates, SEs, KR df, CIs, p) within 1e-4 relative of R."""
    rel = relative_differences(reference)[model]
    assert rel and max(rel.values()) < RTOL, rel


def test_every_r_value_is_compared(reference):
    ref, frames = reference
    assert set(ours(frames)) == set(ref)

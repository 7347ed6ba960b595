"""Mixed model for repeated measures (MMRM): GLS with a within-subject covariance by REML.

Model, for subject i observed at post-baseline visits V_i::

    y_i = X_i beta + e_i,   e_i ~ N(0, Sigma[V_i, V_i])

Sigma is a K x K matrix (K visits) of a chosen structure
(:mod:`pipeline.stats.covariance`); missing visits simply drop rows and the
matching rows/columns of Sigma (valid under missing at random).

Notes
-----
* REML log-likelihood (Harville 1977, JASA 72:320-338; Patterson &
  Thompson 1971)::

      l(theta) = -1/2 [ sum_i log|V_i| + log|X'V^-1 X| + r'V^-1 r + (N-p) log 2 pi ]

  with beta(theta) the GLS estimate, maximised with scipy's BFGS using the
  analytic gradient ``dl/dtheta_j = -1/2 tr(M dSigma/dtheta_j)``, where M is
  the K x K sum over subjects of ``V_i^-1 - V_i^-1 X_i A^-1 X_i' V_i^-1 -
  V_i^-1 r_i r_i' V_i^-1`` embedded at the visits of subject i, then polished
  by a Newton step with the numerical Hessian. The criterion and its
  derivatives: :class:`pipeline.stats.reml.RemlProblem`.
* Fixed effects covariance: ``A^-1 = (X'V^-1 X)^-1`` at the REML estimate
  (the model-based covariance, as nlme::gls, SAS PROC MIXED without
  DDFM=KR and R mmrm with ``method = "Satterthwaite"``).
* Satterthwaite (1946, Biometrics Bulletin 2:110-114) degrees of freedom of
  a contrast c: ``df = 2 (c'A^-1 c)^2 / (g' H^-1 g)`` with
  ``g_j = d(c'A^-1 c)/dtheta_j = c' A^-1 (sum_i X_i'V_i^-1 dV_i/dtheta_j V_i^-1 X_i) A^-1 c``
  (analytic) and H the observed information (numerical Hessian of -l), as in
  R mmrm and lmerTest (Kuznetsova et al. 2017, J Stat Softw 82(13)).
* Kenward & Roger (1997, Biometrics 53:983-997): bias-adjusted covariance of
  the fixed effects and its df, :mod:`pipeline.stats.kenward_roger`
  (``MMRMFit.contrast(c, ddf="kenward-roger")``).
* Mallinckrodt et al. (2008, Drug Inf J 42:303-319) recommend this model
  (unstructured covariance, REML, Satterthwaite/KR df) for the primary
  analysis of longitudinal clinical trials.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from pipeline.stats.covariance import FALLBACK, Structure
from pipeline.stats.kenward_roger import kenward_roger_df, kenward_roger_parts
from pipeline.stats.reml import LOG_2PI, RemlProblem

__all__ = ["LOG_2PI", "MMRMFit", "fit_mmrm", "satterthwaite_at"]

log = logging.getLogger(__name__)


@dataclass
class MMRMFit:
    """Result of :func:`fit_mmrm` (original units of y).

    Attributes
    ----------
    beta, cov_beta : ndarray
        Fixed effects and their model-based covariance ``(X'V^-1X)^-1``.
    cov_beta_kr : ndarray or None
        Kenward-Roger adjusted covariance ``Phi_A`` (None where undefined).
    sigma : ndarray, (K, K)
        Estimated within-subject covariance.
    covariance : str
        Structure actually used (after any fallback).
    converged : bool
    attempts : list of (structure, message)
        Every structure tried, in order, and why it was (not) kept.
    """

    beta: np.ndarray
    cov_beta: np.ndarray
    sigma: np.ndarray
    covariance: str
    converged: bool
    loglik: float
    n_params_cov: int
    n_subjects: int
    n_obs: int
    n_fixed: int
    attempts: list = field(default_factory=list)
    cov_beta_kr: np.ndarray | None = None
    _info_inv: np.ndarray | None = None
    _d_a_inv: np.ndarray | None = None
    _kr: dict | None = None
    _scale: float = 1.0

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov_beta))

    @property
    def aic(self) -> float:
        return -2 * self.loglik + 2 * self.n_params_cov

    def contrast(self, c, ddf: str = "satterthwaite") -> dict:
        """Estimate, SE and df of ``c' beta``.

        Parameters
        ----------
        c : array, (p,)
            Contrast vector.
        ddf : {"satterthwaite", "kenward-roger"}
            Satterthwaite: model-based SE, Satterthwaite df. Kenward-Roger:
            SE from the adjusted covariance ``Phi_A`` and KR df.

        Returns
        -------
        dict
            ``estimate``, ``se``, ``df`` and ``se_model`` (the model-based SE).
        """
        c = np.asarray(c, float)
        estimate = float(c @ self.beta)
        se_model = float(np.sqrt(max(float(c @ self.cov_beta @ c), 0.0)))
        if ddf == "satterthwaite":
            return {"estimate": estimate, "se": se_model, "df": self.satterthwaite(c), "se_model": se_model}
        if ddf != "kenward-roger":
            raise ValueError(f"unknown ddf method {ddf!r}; satterthwaite or kenward-roger")
        if self.k == 1:  # ordinary least squares: Phi_A = Phi and df = N - p exactly
            return {"estimate": estimate, "se": se_model, "df": float(self.n_obs - self.n_fixed),
                    "se_model": se_model}
        if self._kr is None or self.cov_beta_kr is None:
            return {"estimate": estimate, "se": float("nan"), "df": float("nan"), "se_model": se_model}
        se = float(np.sqrt(max(float(c @ self.cov_beta_kr @ c), 0.0)))
        df = kenward_roger_df(c, self._kr["phi"], self._kr["P"], self._kr["W"])
        return {"estimate": estimate, "se": se, "df": df, "se_model": se_model}

    def satterthwaite(self, c) -> float:
        """Satterthwaite df of ``c' beta`` (NaN where the observed information is singular)."""
        c = np.asarray(c, float)
        if self.k == 1:
            return float(self.n_obs - self.n_fixed)
        if self._d_a_inv is None or self._info_inv is None:
            return float("nan")
        var_scaled = float(c @ self.cov_beta @ c) / self._scale**2
        g = np.einsum("p,jpq,q->j", c, self._d_a_inv, c)
        denom = float(g @ self._info_inv @ g)
        if not np.isfinite(denom) or denom <= 0:
            return float("nan")
        return float(2 * var_scaled**2 / denom)

    @property
    def k(self) -> int:
        return self.sigma.shape[0]


def _optimise(problem: RemlProblem, structure: Structure, theta0):
    def fun(theta):
        out = problem.evaluate(structure, theta, gradient=True)
        if out is None:
            return np.inf, np.zeros_like(theta)
        return -out["loglik"], -out["gradient"]

    res = optimize.minimize(fun, theta0, jac=True, method="BFGS",
                            options={"gtol": 1e-6, "maxiter": 1000})
    theta = res.x
    value, grad = fun(theta)
    # Newton polish with the numerical Hessian (tight optimum for the SEs)
    H = None
    for _ in range(4):
        if not np.isfinite(value) or np.max(np.abs(grad)) < 1e-8:
            break
        H = problem.hessian(structure, theta) if H is None else H
        try:
            step = np.linalg.solve(H, grad)
        except np.linalg.LinAlgError:
            break
        new_value, new_grad = fun(theta - step)
        if not new_value <= value + 1e-12:
            break
        theta, value, grad = theta - step, new_value, new_grad
    ok = bool(np.isfinite(value)) and float(np.max(np.abs(grad), initial=0.0)) < 1e-3
    message = res.message if isinstance(res.message, str) else str(res.message)
    return theta, f"{message}; max|gradient| {np.max(np.abs(grad), initial=0.0):.2g}", ok, H


def fit_mmrm(y, X, subject, visit, *, n_visits: int, covariance=FALLBACK) -> MMRMFit:
    """Fit an MMRM by REML, trying covariance structures in order until one converges.

    Parameters
    ----------
    y : array, (N,)
        Outcome (e.g. change from baseline), one row per subject x visit, no NaN.
    X : array, (N, p)
        Full-rank fixed-effects design.
    subject : array, (N,)
        Subject identifier (the repeated unit).
    visit : array of int, (N,)
        Visit index 0..n_visits-1 of each row.
    n_visits : int
        K, number of post-baseline visits.
    covariance : str or sequence of str
        Structure(s) to try, in order (default: unstructured, then heterogeneous
        Toeplitz, then compound symmetry). A structure is kept when the
        optimiser's gradient is ~0 and the observed information is positive
        definite.

    Returns
    -------
    MMRMFit

    Notes
    -----
    With one visit (K = 1) the model is ordinary least squares ANCOVA:
    ``sigma^2 = RSS/(N-p)``, df = N - p. See the module docstring for the
    REML criterion and the Satterthwaite degrees of freedom.
    """
    problem = RemlProblem(y, X, subject, visit, n_visits)
    names = (covariance,) if isinstance(covariance, str) else tuple(covariance)
    if problem.k == 1:
        names = names[:1]
    attempts, last = [], None
    for name in names:
        structure = Structure(name, problem.k)
        if problem.k == 1:
            beta, *_ = np.linalg.lstsq(problem.X, problem.y, rcond=None)
            rss = float(np.sum((problem.y - problem.X @ beta) ** 2))
            theta = np.array([0.5 * np.log(rss / (problem.n_obs - problem.p))])
            message, ok, H = "ANCOVA (one visit): closed form", True, None
        else:
            theta0 = structure.start(problem.start_sigma())
            theta, message, ok, H = _optimise(problem, structure, theta0)
        fit = _finish(problem, structure, theta, ok, hessian=H)
        if fit.converged or problem.k == 1:
            attempts.append((name, "used"))
            fit.attempts = attempts
            return fit
        reason = message if not ok else "observed information not positive definite"
        attempts.append((name, f"did not converge ({reason})"))
        log.warning("MMRM with %s covariance did not converge: %s", name, reason)
        last = fit
    last.attempts = attempts
    return last


def _finish(problem: RemlProblem, structure: Structure, theta, ok: bool, hessian=None) -> MMRMFit:
    out = problem.evaluate(structure, theta, derivatives=True)
    if out is None:
        nan = np.full((problem.p, problem.p), np.nan)
        return MMRMFit(np.full(problem.p, np.nan), nan, np.full((problem.k,) * 2, np.nan),
                       structure.name, False, float("nan"), structure.n_params,
                       problem.n_subjects, problem.n_obs, problem.p)
    s2 = problem.scale**2
    info_inv = None
    if problem.k > 1:
        # the Hessian of the last Newton step (theta moved by < 1e-6) or a new one
        H = problem.hessian(structure, theta) if hessian is None else hessian
        eig = np.linalg.eigvalsh(H) if np.all(np.isfinite(H)) else np.array([-1.0])
        if eig.min() <= 1e-8 * max(eig.max(), 1e-12):
            ok = False
        else:
            info_inv = np.linalg.inv(H)
    loglik = out["loglik"] - (problem.n_obs - problem.p) * np.log(problem.scale)
    kr = None
    if problem.k > 1:
        kr = kenward_roger_parts(problem.Xpad, out["vinv"], out["vinv_p"], problem.counts, out["a_inv"],
                                 structure.jacobian(theta))
        if kr is not None:
            kr["phi"] = out["a_inv"]
    return MMRMFit(beta=out["beta"] * problem.scale, cov_beta=out["a_inv"] * s2,
                   cov_beta_kr=None if kr is None else kr["phi_adjusted"] * s2, _kr=kr,
                   sigma=out["sigma"] * s2, covariance=structure.name, converged=bool(ok),
                   loglik=float(loglik), n_params_cov=structure.n_params,
                   n_subjects=problem.n_subjects, n_obs=problem.n_obs, n_fixed=problem.p,
                   _info_inv=info_inv, _d_a_inv=out["d_a_inv"], _scale=problem.scale)


def satterthwaite_at(y, X, subject, visit, *, n_visits: int, covariance: str, sigma) -> MMRMFit:
    """An :class:`MMRMFit` evaluated at a given covariance matrix (no optimisation).

    Used to get Satterthwaite df for a model fitted elsewhere (the random-
    intercept variant fitted by statsmodels MixedLM): ``sigma`` must be of the
    given structure (e.g. ``tau2 J + sigma2 I`` for ``"random intercept"``).
    """
    problem = RemlProblem(y, X, subject, visit, n_visits)
    structure = Structure(covariance, problem.k)
    sigma = np.asarray(sigma, float) / problem.scale**2
    if covariance == "random intercept" and problem.k > 1:
        tau2 = max(float(np.mean(sigma[np.triu_indices(problem.k, 1)])), 1e-6 * sigma[0, 0])
        theta = np.log([tau2, max(float(sigma[0, 0]) - tau2, 1e-12)])
    else:
        theta = structure.start(sigma)
    return _finish(problem, structure, theta, True)

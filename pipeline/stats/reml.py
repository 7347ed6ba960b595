"""REML criterion of the MMRM on one data set: log-likelihood, gradient, observed information.

The model, the criterion and its gradient are written out in the Notes of
:mod:`pipeline.stats.mmrm`, which fits the model with :class:`RemlProblem`.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from pipeline.stats.covariance import Structure

LOG_2PI = float(np.log(2 * np.pi))


class RemlProblem:
    """REML criterion of one data set, vectorised over subjects.

    Each subject's rows are padded to the K visits (zeros where missing); its
    inverse covariance is computed once per missing-data pattern as
    ``(D Sigma D + I - D)^-1 - (I - D)`` (D = diagonal 0/1 mask), which is
    ``Sigma[V_i, V_i]^-1`` embedded at the observed visits and 0 elsewhere.
    """

    def __init__(self, y, X, subject, visit, n_visits):
        y, X = np.asarray(y, float), np.asarray(X, float)
        subject, visit = np.asarray(subject), np.asarray(visit, int)
        if not (len(y) == len(X) == len(subject) == len(visit)):
            raise ValueError("y, X, subject and visit must have the same number of rows")
        if not np.all(np.isfinite(y)) or not np.all(np.isfinite(X)):
            raise ValueError("y and X must be finite (drop missing rows first)")
        if visit.min() < 0 or visit.max() >= n_visits:
            raise ValueError(f"visit indices must be in 0..{n_visits - 1}")
        self.k, self.n_obs, self.p = int(n_visits), len(y), X.shape[1]
        if np.linalg.matrix_rank(X) < self.p:
            raise ValueError("the design matrix is rank deficient")
        self.scale = float(np.std(y)) or 1.0
        ids, row_subject = np.unique(subject, return_inverse=True)
        self.n_subjects = len(ids)
        if len(np.unique(row_subject * self.k + visit)) != len(y):
            raise ValueError("a subject has two rows at the same visit")
        self.Xpad = np.zeros((self.n_subjects, self.k, self.p))
        self.ypad = np.zeros((self.n_subjects, self.k))
        mask = np.zeros((self.n_subjects, self.k), bool)
        self.Xpad[row_subject, visit] = X
        self.ypad[row_subject, visit] = y / self.scale
        mask[row_subject, visit] = True
        self.masks, self.pattern = np.unique(mask, axis=0, return_inverse=True)
        self.pattern = self.pattern.ravel()
        self.counts = np.bincount(self.pattern, minlength=len(self.masks))
        self.X, self.y = X, y / self.scale
        self.visit = visit

    # ------------------------------------------------------------------------------
    def evaluate(self, structure: Structure, theta, *, gradient=False, derivatives=False):
        """REML log-likelihood (scaled data) and optionally its gradient / dA^-1."""
        sigma = structure.matrix(theta)
        if not np.all(np.isfinite(sigma)):
            return None
        m = self.masks.astype(float)
        eye = np.eye(self.k)
        padded = sigma[None] * m[:, :, None] * m[:, None, :] + eye[None] * (1 - m)[:, None, :]
        try:
            chol = np.linalg.cholesky(padded)
        except np.linalg.LinAlgError:
            return None
        diag = np.diagonal(chol, axis1=1, axis2=2)
        if np.any(diag <= 0) or not np.all(np.isfinite(diag)):
            return None
        logdet = float(np.sum(self.counts * 2 * np.sum(np.log(diag), axis=1)))
        vinv_p = np.linalg.inv(padded) - eye[None] * (1 - m)[:, None, :]
        vinv = vinv_p[self.pattern]
        Q = np.matmul(vinv, self.Xpad)
        A = self.Xpad.reshape(-1, self.p).T @ Q.reshape(-1, self.p)
        b = np.einsum("nkp,nk->p", Q, self.ypad)
        try:
            chol_a = linalg.cho_factor(A, lower=True)
        except linalg.LinAlgError:
            return None
        a_inv = linalg.cho_solve(chol_a, np.eye(self.p))
        beta = a_inv @ b
        r = self.ypad - np.einsum("nkp,p->nk", self.Xpad, beta)
        vr = np.einsum("nkl,nl->nk", vinv, r)
        quad = float(np.sum(vr * r))
        logdet_a = 2 * np.sum(np.log(np.diag(chol_a[0])))
        loglik = -0.5 * (logdet + logdet_a + quad + (self.n_obs - self.p) * LOG_2PI)
        out = {"loglik": float(loglik), "beta": beta, "a_inv": a_inv, "sigma": sigma}
        if gradient or derivatives:
            jac = structure.jacobian(theta)
        if gradient:
            qa = Q @ a_inv
            qa_k = qa.transpose(1, 0, 2).reshape(self.k, -1)
            q_k = Q.transpose(1, 0, 2).reshape(self.k, -1)
            M = (np.tensordot(self.counts.astype(float), vinv_p, axes=1) - qa_k @ q_k.T - vr.T @ vr)
            out["gradient"] = -0.5 * np.einsum("kl,jkl->j", M, jac)
        if derivatives:
            outer = np.tensordot(Q, Q, axes=([0], [0]))  # (K, p, K, p)
            d_a = np.tensordot(jac, outer, axes=([1, 2], [0, 2]))  # (j, p, p)
            out["d_a_inv"] = a_inv @ d_a @ a_inv
            out["vinv_p"], out["vinv"] = vinv_p, vinv
        return out

    def hessian(self, structure: Structure, theta, step=1e-4):
        """Observed information: numerical Hessian of -l from the analytic gradient."""
        n = len(theta)
        H = np.zeros((n, n))
        for j in range(n):
            up, down = np.array(theta, float), np.array(theta, float)
            up[j] += step
            down[j] -= step
            gu = self.evaluate(structure, up, gradient=True)
            gd = self.evaluate(structure, down, gradient=True)
            if gu is None or gd is None:
                return np.full((n, n), np.nan)
            H[:, j] = -(gu["gradient"] - gd["gradient"]) / (2 * step)
        return (H + H.T) / 2

    def start_sigma(self) -> np.ndarray:
        """Covariance of OLS residuals by visit (pairwise complete), for starting values."""
        beta, *_ = np.linalg.lstsq(self.X, self.y, rcond=None)
        m = self.masks[self.pattern].astype(float)
        r = (self.ypad - np.einsum("nkp,p->nk", self.Xpad, beta)) * m
        counts = m.T @ m
        dof = max(1e-3, 1 - self.p / max(self.n_subjects, self.p + 1))
        sigma = np.where(counts > 0, (r.T @ r) / np.maximum(counts, 1), 0.0) / dof
        diag = np.diag(sigma).copy()
        diag[diag <= 0] = np.mean(diag[diag > 0]) if np.any(diag > 0) else 1.0
        sigma[np.diag_indices(self.k)] = diag
        return sigma

"""Kenward-Roger (1997) small-sample inference for the MMRM: adjusted covariance and df.

Kenward & Roger (1997, Biometrics 53:983-997) replace the model-based
covariance of the fixed effects ``Phi = (X'V^-1 X)^-1`` by a bias-adjusted
``Phi_A`` and give the denominator degrees of freedom of a Wald test of
``L'beta``. For covariance parameters theta_1..theta_H with
``G_h = dSigma/dtheta_h``::

    P_h    = -X' V^-1 G_h V^-1 X
    Q_hj   =  X' V^-1 G_h V^-1 G_j V^-1 X
    I_hj   =  1/2 tr(Pr G_h Pr G_j),   Pr = V^-1 - V^-1 X Phi X' V^-1   (expected REML information)
    W      =  I^-1
    Phi_A  =  Phi + 2 Phi [ sum_hj W_hj (Q_hj - P_h Phi P_j - R_hj / 4) ] Phi

and, for one contrast ``c`` (rank 1), ``df = 2 / (a' W a)`` with
``a_h = c' Phi P_h Phi c / c' Phi c`` (the general-rank formulas reduce to
this, with scale factor lambda = 1).

Notes
-----
* ``R_hj = X'V^-1 d2Sigma/dtheta_h dtheta_j V^-1 X`` is zero for structures that
  are linear in their parameters: unstructured (the matrix elements),
  compound symmetry and random intercept (``tau2 J + sigma2 I``). The first-
  order terms are invariant to reparametrisation (P and Q transform with the
  Jacobian, W with its inverse), so they are computed here with the engine's
  own (log-Cholesky / log) parametrisation and ``R`` is taken as zero. For
  those structures this is exactly the Kenward-Roger of SAS PROC MIXED
  ``DDFM=KR`` with linear parameters, of R ``pbkrtest::vcovAdj`` (which builds
  ``Sigma = sum_h theta_h G_h`` linearly) and of R mmrm's
  ``"Kenward-Roger-Linear"``. For the heterogeneous Toeplitz fallback, which is
  not linear in any parametrisation, it is the first-order form (SAS
  ``DDFM=KR(FIRSTORDER)``).
* W is the inverse *expected* information, as in Kenward & Roger (1997) and
  pbkrtest (``IE2`` there is ``2 I``); R mmrm uses the observed one.
* Written here, not taken from a library, because no Python package offers
  Kenward-Roger (statsmodels MixedLM has model-based covariance only). It is
  validated against ``pbkrtest`` in ``tests/unit/test_stats_vs_r.py``.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def kenward_roger_parts(Xpad, vinv, vinv_patterns, counts, phi, jac) -> dict | None:
    """Adjusted covariance ``Phi_A`` and the pieces the df of a contrast needs.

    Parameters
    ----------
    Xpad : ndarray, (n_subjects, K, p)
        Fixed-effects rows of each subject at its visits (zeros where missing).
    vinv : ndarray, (n_subjects, K, K)
        Each subject's inverse covariance at its observed visits, embedded in
        K x K (zeros elsewhere).
    vinv_patterns : ndarray, (n_patterns, K, K)
        The same per missing-data pattern; ``counts`` subjects have each.
    counts : ndarray, (n_patterns,)
    phi : ndarray, (p, p)
        Model-based covariance ``(X'V^-1X)^-1``.
    jac : ndarray, (H, K, K)
        ``dSigma/dtheta_h`` of the covariance structure at the estimate.

    Returns
    -------
    dict or None
        ``phi_adjusted`` (p, p), ``P`` (H, p, p), ``W`` (H, H); None when the
        expected information is singular (Kenward-Roger undefined).
    """
    n, k, p = Xpad.shape
    h = jac.shape[0]
    Q = np.matmul(vinv, Xpad)  # V^-1 X per subject, (n, K, p)
    B = np.einsum("hkl,nlp->nhkp", jac, Q)  # G_h V^-1 X
    C = np.matmul(vinv[:, None], B)  # V^-1 G_h V^-1 X
    P = -np.einsum("nkp,nhkq->hpq", Q, B)
    b2 = B.transpose(1, 3, 0, 2).reshape(h * p, n * k)
    c2 = C.transpose(0, 2, 1, 3).reshape(n * k, h * p)
    Q_all = (b2 @ c2).reshape(h, p, h, p).transpose(0, 2, 1, 3)  # Q_hj, (H, H, p, p)
    M = np.einsum("akl,hlm->ahkm", vinv_patterns, jac)
    ktrace = np.einsum("a,ahkm,ajmk->hj", counts.astype(float), M, M)
    phi_p = np.matmul(phi, P)  # Phi P_h
    info2 = (
        ktrace - 2 * np.einsum("pq,hjqp->hj", phi, Q_all) + np.einsum("hpq,jqp->hj", phi_p, phi_p)
    )  # 2 x expected REML information
    info2 = (info2 + info2.T) / 2
    eig = np.linalg.eigvalsh(info2)
    if not np.all(np.isfinite(eig)) or eig.min() <= 1e-10 * max(abs(eig.max()), 1e-300):
        log.warning("Kenward-Roger: expected information singular (min eigenvalue %.3g)", eig.min())
        return None
    W = 2 * np.linalg.inv(info2)
    W = (W + W.T) / 2
    U = np.tensordot(W, Q_all, axes=([0, 1], [0, 1]))
    U -= np.einsum("hj,hpq,jqs->ps", W, P, phi_p)
    phi_adj = phi + 2 * phi @ U @ phi
    return {"phi_adjusted": (phi_adj + phi_adj.T) / 2, "P": P, "W": W}


def kenward_roger_df(c, phi, P, W) -> float:
    """Kenward-Roger denominator df of the one-row contrast ``c' beta``.

    ``df = 2 / (a' W a)``, ``a_h = c' Phi P_h Phi c / (c' Phi c)`` (pbkrtest
    ``Lb_ddf`` with rank 1; Phi is the unadjusted covariance).
    """
    c = np.asarray(c, float)
    var = float(c @ phi @ c)
    if not np.isfinite(var) or var <= 0:
        return float("nan")
    phic = phi @ c
    a = np.einsum("p,hpq,q->h", phic, P, phic) / var
    denom = float(a @ W @ a)
    if not np.isfinite(denom) or denom <= 0:
        return float("nan")
    return 2.0 / denom

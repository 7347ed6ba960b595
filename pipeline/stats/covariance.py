"""Within-subject covariance structures of the MMRM.

Each structure maps an unconstrained parameter vector ``theta`` to a
positive-definite K x K covariance matrix (K = number of post-baseline
visits), so the REML likelihood can be maximised without constraints.

| name | parameters | matrix |
|---|---|---|
| ``unstructured`` | K(K+1)/2 | ``L L'``, L lower triangular with log-diagonal (log-Cholesky) |
| ``heterogeneous Toeplitz`` | 2K-1 | ``s_j s_k r_|j-k|``; r from partial autocorrelations ``tanh(phi)`` |
| ``compound symmetry`` | 2 | ``s2 ((1-rho) I + rho J)``, rho in (-1/(K-1), 1) |
| ``random intercept`` | 2 | ``tau2 J + sigma2 I`` (marginal covariance of a random-intercept model) |

Notes
-----
The log-Cholesky parametrisation of the unstructured matrix is the one of
the R package mmrm (Sabanes Bove et al., 2023, "mmrm: Mixed Models for
Repeated Measures", https://openpharma.github.io/mmrm/) and of Pinheiro &
Bates (1996, Statistics and Computing 6:289-296). The heterogeneous
Toeplitz matrix (SAS ``TYPE=TOEPH``) is parametrised by its partial
autocorrelations, which are free in (-1, 1) and always give a positive-
definite Toeplitz correlation matrix (Durbin-Levinson recursion; Barndorff-
Nielsen & Schou 1973, J Multivariate Anal 3:408-419).
"""

from __future__ import annotations

import numpy as np

STRUCTURES = ("unstructured", "heterogeneous Toeplitz", "compound symmetry", "random intercept")
# Documented fallback order when the unstructured matrix does not converge.
FALLBACK = ("unstructured", "heterogeneous Toeplitz", "compound symmetry")


def _nearest_pd(sigma: np.ndarray) -> np.ndarray:
    sigma = (sigma + sigma.T) / 2
    values, vectors = np.linalg.eigh(sigma)
    floor = max(1e-3 * float(np.mean(np.diag(sigma))), 1e-8)
    return (vectors * np.maximum(values, floor)) @ vectors.T


def _pacf_to_acf(pacf: np.ndarray) -> np.ndarray:
    """Autocorrelations r_1..r_m from partial autocorrelations (Durbin-Levinson)."""
    m = len(pacf)
    r = np.zeros(m + 1)
    r[0] = 1.0
    a = np.zeros(0)
    for k in range(1, m + 1):
        phi = pacf[k - 1]
        if k == 1:
            r[1] = phi
            a = np.array([phi])
            continue
        r[k] = phi * (1 - a @ r[1:k]) + a @ r[k - 1:0:-1]
        a = np.concatenate([a - phi * a[::-1], [phi]])
    return r


def _acf_to_pacf(r: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_pacf_to_acf` (r[0] == 1)."""
    m = len(r) - 1
    pacf = np.zeros(m)
    a = np.zeros(0)
    for k in range(1, m + 1):
        num = r[k] - (a @ r[k - 1:0:-1] if k > 1 else 0.0)
        den = 1 - (a @ r[1:k] if k > 1 else 0.0)
        phi = float(np.clip(num / den, -0.95, 0.95))
        pacf[k - 1] = phi
        a = np.concatenate([a - phi * a[::-1], [phi]]) if k > 1 else np.array([phi])
    return pacf


class Structure:
    """A covariance structure over ``n_visits`` visits.

    Parameters
    ----------
    name : str
        One of :data:`STRUCTURES`.
    n_visits : int
        K, the number of post-baseline visits in the model.
    """

    def __init__(self, name: str, n_visits: int):
        if name not in STRUCTURES:
            raise ValueError(f"unknown covariance structure {name!r}; one of {STRUCTURES}")
        self.name, self.k = name, int(n_visits)
        self._tril = np.tril_indices(self.k)

    @property
    def n_params(self) -> int:
        k = self.k
        if k == 1:
            return 1
        return {"unstructured": k * (k + 1) // 2, "heterogeneous Toeplitz": 2 * k - 1,
                "compound symmetry": 2, "random intercept": 2}[self.name]

    # --- theta -> matrix -----------------------------------------------------------
    def matrix(self, theta: np.ndarray) -> np.ndarray:
        """The K x K covariance matrix of ``theta``."""
        k, theta = self.k, np.asarray(theta, float)
        if k == 1:
            return np.array([[np.exp(2 * theta[0])]])
        if self.name == "unstructured":
            lower = self._cholesky(theta)
            return lower @ lower.T
        if self.name == "heterogeneous Toeplitz":
            sd = np.exp(theta[:k])
            r = _pacf_to_acf(np.tanh(theta[k:]))
            lag = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
            return np.outer(sd, sd) * r[lag]
        if self.name == "compound symmetry":
            lo = -1.0 / (k - 1)
            rho = lo + (1 - lo) / (1 + np.exp(-theta[1]))
            return np.exp(theta[0]) * ((1 - rho) * np.eye(k) + rho * np.ones((k, k)))
        return np.exp(theta[0]) * np.ones((k, k)) + np.exp(theta[1]) * np.eye(k)

    def _cholesky(self, theta: np.ndarray) -> np.ndarray:
        lower = np.zeros((self.k, self.k))
        lower[self._tril] = theta
        diag = np.diag_indices(self.k)
        lower[diag] = np.exp(lower[diag])
        return lower

    def jacobian(self, theta: np.ndarray) -> np.ndarray:
        """d matrix / d theta, shape (n_params, K, K)."""
        theta = np.asarray(theta, float)
        if self.k == 1:
            return 2 * self.matrix(theta)[None]
        if self.name == "unstructured":
            lower = self._cholesky(theta)
            out = np.zeros((self.n_params, self.k, self.k))
            for p, (i, j) in enumerate(zip(*self._tril, strict=True)):
                d = np.zeros((self.k, self.k))
                d[i, j] = lower[i, j] if i == j else 1.0
                out[p] = d @ lower.T + lower @ d.T
            return out
        # cheap K x K function: central differences are accurate to ~1e-10
        out = np.zeros((self.n_params, self.k, self.k))
        for p in range(self.n_params):
            h = 1e-6 * max(1.0, abs(theta[p]))
            up, down = theta.copy(), theta.copy()
            up[p] += h
            down[p] -= h
            out[p] = (self.matrix(up) - self.matrix(down)) / (2 * h)
        return out

    # --- starting values ---------------------------------------------------------------
    def start(self, sigma: np.ndarray) -> np.ndarray:
        """Parameters of a matrix of this structure close to ``sigma``."""
        k = self.k
        sigma = _nearest_pd(np.asarray(sigma, float))
        if k == 1:
            return np.array([0.5 * np.log(sigma[0, 0])])
        sd = np.sqrt(np.diag(sigma))
        corr = sigma / np.outer(sd, sd)
        if self.name == "unstructured":
            lower = np.linalg.cholesky(sigma)
            lower[np.diag_indices(k)] = np.log(np.diag(lower))
            return lower[self._tril].copy()
        if self.name == "heterogeneous Toeplitz":
            r = np.array([1.0] + [float(np.mean(np.diag(corr, d))) for d in range(1, k)])
            return np.concatenate([np.log(sd), np.arctanh(_acf_to_pacf(r))])
        mean_var = float(np.mean(np.diag(sigma)))
        rho = float(np.mean(corr[np.triu_indices(k, 1)]))
        if self.name == "compound symmetry":
            lo = -1.0 / (k - 1)
            frac = np.clip((rho - lo) / (1 - lo), 0.02, 0.98)
            return np.array([np.log(mean_var), np.log(frac / (1 - frac))])
        rho = float(np.clip(rho, 0.05, 0.95))
        return np.log([rho * mean_var, (1 - rho) * mean_var])

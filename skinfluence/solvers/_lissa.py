"""LiSSA: the stochastic Neumann-series estimator of Agarwal et al. (2017)."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from ._base import ConvergenceError, InverseHessian


class LissaInverseHessian(InverseHessian):
    r"""``H_d^{-1} B`` by the LiSSA recursion, with automatic scale.

    With the Jacobi preconditioner ``M = diag(H_d)`` and ``S = M^{-1/2} H_d
    M^{-1/2}``, the recursion

    .. math::  h_0 = c, \qquad h_j = c + (I - \tilde S_j / \sigma)\, h_{j-1},
               \qquad S^{-1} c \approx h_J / \sigma,

    uses a fresh mini-batch estimate ``S~_j`` of ``S`` at each step, and
    ``x = M^{-1/2} S^{-1} M^{-1/2} b``. It converges when
    ``sigma > lambda_max(S~_j)``; ``scale=None`` sets ``sigma`` from a few power
    iterations on ``S`` (times a safety margin that grows as the batch
    shrinks), so the defaults need no tuning. ``repeats`` independent runs are
    averaged. A run stops when the relative change of ``h`` over ten steps
    falls below ``tol`` (by default ``1e-7``, or ``100 eps`` of the operator's
    products where that is larger: ``1.2e-5`` for float32 data, whose
    products cannot resolve smaller changes) or at ``depth`` steps; a run
    whose iterates blow up
    raises :class:`ConvergenceError` saying what to change. The final residual
    ``||H_d x - b|| / ||b||`` is measured and reported.
    """

    name = "lissa"

    def __init__(
        self,
        operator,
        depth: int | None = None,
        repeats: int = 1,
        batch_size: int | None = None,
        scale: float | None = None,
        tol: float | None = None,
        random_state=None,
        verbose: int = 0,
    ):
        super().__init__(operator)
        xp = self.xp
        self.depth = depth or 20_000
        self.repeats = repeats
        n = operator.n_samples
        self.batch_size = n if batch_size is None else min(int(batch_size), n)
        if tol is None:
            tol = max(1e-7, 100 * float(xp.finfo(operator.product_dtype).eps))
        self.tol = tol
        self.verbose = verbose
        self._rng = check_random_state(random_state)
        # every solve replays the same mini-batch sequence, so that a result
        # does not depend on how many solves came before it
        self._solve_seed = int(self._rng.randint(np.iinfo(np.int32).max))
        d = operator.diagonal()
        self._m = 1.0 / xp.sqrt(xp.where(d > 0, d, 1.0))
        self.scale = scale if scale is not None else self._auto_scale()
        self.report.details["scale"] = self.scale
        self.report.details["batch_size"] = self.batch_size

    def _S(self, V, rows=None):
        op = self.operator
        mV = self._m[:, None] * V
        HV = op.matvec(mV) if rows is None else op.matvec_sample(mV, rows)
        return self._m[:, None] * HV

    def _auto_scale(self, n_iter: int = 30) -> float:
        """``sigma`` from power iteration on the full preconditioned Hessian."""
        xp = self.xp
        p = self.operator.n_params
        v = xp.asarray(self._rng.standard_normal((p, 1)))
        v = v / xp.sqrt(xp.sum(v * v))
        lam = 0.0
        for _ in range(n_iter):
            w = self._S(v)
            lam = float(xp.sqrt(xp.sum(w * w)))
            v = w / lam
        # mini-batch Hessians fluctuate around S: leave more room for small batches
        frac = self.batch_size / self.operator.n_samples
        margin = 1.1 if frac >= 1.0 else 1.1 + 1.0 * (1.0 - frac)
        return margin * lam

    def _sample(self, rng):
        n = self.operator.n_samples
        if self.batch_size >= n:
            return None
        return np.sort(rng.choice(n, self.batch_size, replace=False))

    def _solve(self, B):
        xp = self.xp
        c = self._m[:, None] * B
        cnorm = float(xp.max(xp.sqrt(xp.sum(c * c, axis=0)))) + 1e-300
        total = None
        worst_change = 0.0
        steps = 0
        rng = np.random.RandomState(self._solve_seed)
        for _ in range(self.repeats):
            h = c
            prev = h
            change = np.inf
            for j in range(1, self.depth + 1):
                h = c + h - self._S(h, self._sample(rng)) / self.scale
                if j % 10 == 0:
                    hn = float(xp.max(xp.sqrt(xp.sum(h * h, axis=0))))
                    if not np.isfinite(hn) or hn > 1e12 * cnorm * self.depth:
                        raise ConvergenceError(
                            f"LiSSA diverged after {j} steps (|h| = {hn:.3g}): the scale "
                            f"{self.scale:.4g} is below the curvature of the sampled "
                            "Hessians. Pass a larger `scale`, a larger `batch_size`, or "
                            "damping > 0 if the Hessian may be singular."
                        )
                    change = _relative_norm(h - prev, h, xp)
                    prev = h
                    if self.verbose and j % (10 * self.verbose) == 0:
                        print(f"[skinfluence lissa] step {j}: relative change {change:.3g}")
                    if change < self.tol:
                        break
            steps = max(steps, j)
            worst_change = max(worst_change, change)
            total = h if total is None else total + h
        X = self._m[:, None] * (total / (self.repeats * self.scale))
        R = self.operator.matvec(X) - B
        residual = _relative_norm(R, B, xp)  # ||H x - b|| / ||b||
        self.report.iterations = max(self.report.iterations, steps)
        self.report.residual = max(self.report.residual, residual)
        self.report.details["relative_change"] = worst_change
        converged = worst_change < self.tol
        self.report.converged = self.report.converged and converged
        if not converged:
            warnings.warn(
                f"LiSSA stopped at depth={self.depth} before converging: relative "
                f"change per 10 steps {worst_change:.3g} > tol={self.tol:g}, residual "
                f"||Hx - b||/||b|| = {residual:.3g}. Raise `depth`, add damping, "
                "or use solver='cg'.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return X


def _relative_norm(D, ref, xp) -> float:
    """Largest ``||d|| / ||r||`` over the columns of ``D`` and ``ref``. A zero
    column of ``ref`` (a zero right-hand side, e.g. a test row whose loss
    gradient underflows) counts as 0 rather than 0/0: its solution, 0, is
    exact from the first step."""
    dn = xp.sqrt(xp.sum(D * D, axis=0))
    rn = xp.sqrt(xp.sum(ref * ref, axis=0))
    return float(xp.max(xp.where(rn > 0, dn / xp.where(rn > 0, rn, 1.0), 0.0)))

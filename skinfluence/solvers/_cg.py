"""Preconditioned conjugate gradients over many right-hand sides at once."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .._backend import to_numpy
from ._base import InverseHessian


class CGInverseHessian(InverseHessian):
    r"""``H_d^{-1} B`` by preconditioned conjugate gradients.

    All columns of ``B`` iterate together: each iteration is one
    Hessian-matrix product ``H_d P`` over the still-active columns (one pass
    over the data for all of them), never a Python loop per right-hand side.
    A column stops once ``||b - H_d x|| <= tol ||b||``. The preconditioner is
    the exact diagonal of ``H_d``, available in closed form for every design,
    unless the operator brings its own (``operator.preconditioner()``).

    Parameters
    ----------
    operator : HessianOperator
    tol : float
        Relative residual at which a column has converged.
    max_iter : int or None
        Iteration cap; ``None`` means ``max(100, 2 * n_params)`` capped at 5000.
    verbose : int
        Print the residual every ``verbose`` iterations (0 = silent).
    """

    name = "cg"

    def __init__(self, operator, tol: float = 1e-10, max_iter: int | None = None, verbose=0):
        super().__init__(operator)
        self.tol = tol
        self.max_iter = max_iter or min(5000, max(100, 2 * operator.n_params))
        self.verbose = verbose
        if hasattr(operator, "preconditioner"):
            self._precondition = operator.preconditioner()
        else:
            d = operator.diagonal()
            inv_diag = 1.0 / self.xp.where(d > 0, d, 1.0)
            self._precondition = lambda R: inv_diag[:, None] * R

    def _solve(self, B):
        xp = self.xp
        op = self.operator
        m = B.shape[1]
        bnorm = xp.sqrt(xp.sum(B * B, axis=0))
        X = xp.zeros_like(B)
        R = B
        Z = self._precondition(R)
        P = Z
        rz = xp.sum(R * Z, axis=0)
        active = np.arange(m)
        done_X, done_res = {}, {}
        worst = 0.0
        it = 0
        thresh = self.tol * bnorm
        while True:
            rnorm = xp.sqrt(xp.sum(R * R, axis=0))
            finished = to_numpy(rnorm <= thresh) | (to_numpy(bnorm) == 0)
            if it >= self.max_iter:
                finished = np.ones_like(finished)
            if finished.any():
                rel = to_numpy(rnorm) / np.maximum(to_numpy(bnorm), 1e-300)
                for c in np.flatnonzero(finished):
                    done_X[int(active[c])] = X[:, int(c)]
                    done_res[int(active[c])] = float(rel[c])
                keep = np.flatnonzero(~finished)
                if keep.size == 0:
                    break
                idx = xp.asarray(keep)
                X, R, P, Z = (xp.take(A, idx, axis=1) for A in (X, R, P, Z))
                rz, bnorm, thresh = (xp.take(a, idx, axis=0) for a in (rz, bnorm, thresh))
                active = active[keep]
            if self.verbose and it % self.verbose == 0:
                print(
                    f"[skinfluence cg] iter {it}: {active.size} of {m} columns active, "
                    f"max residual {float(xp.max(rnorm)):.3g}"
                )
            HP = op.matvec(P)
            alpha = rz / xp.sum(P * HP, axis=0)
            X = X + alpha[None, :] * P
            R = R - alpha[None, :] * HP
            Z = self._precondition(R)
            rz_new = xp.sum(R * Z, axis=0)
            P = Z + (rz_new / rz)[None, :] * P
            rz = rz_new
            it += 1
        worst = max(done_res.values()) if done_res else 0.0
        if not np.isfinite(worst):
            raise FloatingPointError(
                "CG produced non-finite values: the Hessian is likely indefinite; pass damping>0."
            )
        converged = worst <= self.tol or all(v <= self.tol for v in done_res.values())
        self.report.iterations = max(self.report.iterations, it)
        self.report.residual = max(self.report.residual, worst)
        self.report.converged = self.report.converged and converged
        if not converged:
            warnings.warn(
                f"CG did not converge in {self.max_iter} iterations: worst relative "
                f"residual {worst:.3g} > tol={self.tol:g}. Raise max_iter, add damping, "
                "or use solver='exact' when the parameter count allows.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return xp.stack([done_X[j] for j in range(m)], axis=1)

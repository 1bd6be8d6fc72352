"""Direct solve: Cholesky factorisation of the dense Hessian."""

from __future__ import annotations

import warnings

from .._backend import cholesky, eigh, to_numpy
from ._base import InverseHessian


class ExactInverseHessian(InverseHessian):
    r"""``H_d^{-1}`` from the Cholesky factor ``H_d = L L^T``.

    Where ``H_d`` is not positive definite (a rank-deficient design without
    penalty, say) it falls back to the eigen-decomposition and applies the
    pseudo-inverse over eigenvalues above ``rcond * lambda_max``, with a
    warning that names the discarded directions and suggests ``damping``.
    Cost: ``O(n p^2)`` to form ``H``, ``O(p^3)`` to factor it.
    """

    name = "exact"

    def __init__(self, operator, rcond: float = 1e-10):
        super().__init__(operator)
        xp = self.xp
        H = operator.dense()
        self._factor = cholesky(H, xp)
        self._eig = None
        if self._factor is None:
            w, V = eigh(H, xp)
            w_np = to_numpy(w)
            top = float(max(w_np.max(), 0.0))
            keep = w_np > rcond * top
            n_drop = int((~keep).sum())
            warnings.warn(
                f"The Hessian is not positive definite: smallest eigenvalue "
                f"{w_np.min():.3g}, largest {top:.3g}. Using its pseudo-inverse, "
                f"which ignores {n_drop} flat direction(s) of the objective; "
                "influence along them is undefined. Pass damping>0 to regularise "
                "instead, or check for duplicated or constant features.",
                RuntimeWarning,
                stacklevel=3,
            )
            inv_sqrt = xp.where(xp.asarray(keep), 1.0 / xp.sqrt(xp.where(w > 0, w, 1.0)), 0.0)
            self._eig = (V, inv_sqrt)
            self.report.details["pseudo_inverse_dropped"] = n_drop
        self.report.details["min_eigenvalue_checked"] = self._factor is None

    def solve(self, B):
        if self._factor is not None:
            return self._factor.solve(B)
        V, s = self._eig
        return V @ ((s * s)[:, None] * (V.T @ B))

    def half_solve(self, B):
        if self._factor is not None:
            return self._factor.half_solve(B)
        V, s = self._eig
        return s[:, None] * (V.T @ B)

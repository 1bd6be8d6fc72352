"""Direct solve: Cholesky factorisation of the dense Hessian."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg.lapack

from .._backend import astype, cholesky, eigh, to_numpy
from ._base import InverseHessian


class ExactInverseHessian(InverseHessian):
    r"""``H_d^{-1}`` from the Cholesky factor ``H_d = L L^T``.

    The factorisation is of the equilibrated ``S H_d S`` with ``S =
    diag(H_d)^{-1/2}`` (Jacobi scaling): its condition number is that of
    ``H_d`` less whatever the features' scales contribute.

    Where ``H_d`` is not positive definite (a rank-deficient design without
    penalty, say) it falls back to the eigen-decomposition and applies the
    pseudo-inverse over eigenvalues above ``rcond * lambda_max``, with a
    warning that names the discarded directions and suggests ``damping``.
    Cost: ``O(n p^2)`` to form ``H``, ``O(p^3)`` to factor it.

    With float32 data the factorisation stays float64, and ``H_d^{-1}`` and
    ``L^{-1}`` are then formed explicitly (``O(p^3)`` once) and kept at the
    data's dtype: solves with one right-hand side per row (leverages,
    self-influence) become float32 matrix products instead of float64
    triangular solves.
    """

    name = "exact"
    direct = True

    def __init__(self, operator, rcond: float = 1e-10):
        super().__init__(operator)
        xp = self.xp
        H = operator.dense()
        # equilibrate: factor A = S H S with S = diag(H)^(-1/2), so that badly
        # scaled features (a column 1e12 times larger than the others) cost no
        # accuracy and are not mistaken for flat directions; H^-1 = S A^-1 S
        d = xp.linalg.diagonal(H)
        self._scale = xp.where(d > 0, 1.0 / xp.sqrt(xp.where(d > 0, d, 1.0)), 1.0)
        H = self._scale[:, None] * H * self._scale[None, :]
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
        if self._factor is not None:
            self._check_precision(self._factor.L, H)
        # H_d^{-1} and its half at the data's dtype (float32 data only)
        self._inverse_at_data = self._half_at_data = None
        if operator.product_dtype != operator.dtype:
            eye = xp.eye(operator.n_params, dtype=operator.dtype)
            self._inverse_at_data = astype(self._solve(eye), operator.product_dtype, xp)
            self._half_at_data = astype(self._half_solve(eye), operator.product_dtype, xp)

    def _at_data_dtype(self, B) -> bool:
        return self._inverse_at_data is not None and B.dtype == self.operator.product_dtype

    def solve(self, B):
        return self._inverse_at_data @ B if self._at_data_dtype(B) else super().solve(B)

    def half_solve(self, B):
        return self._half_at_data @ B if self._at_data_dtype(B) else super().half_solve(B)

    def _check_precision(self, L, A):
        """Warn where the data's precision cannot resolve ``H``: rounding the
        rows to ``product_dtype`` perturbs ``H`` by about ``eps`` relative, and
        the solution by up to ``cond(H) eps``. The 1-norm condition number of
        the equilibrated ``A = L L^T`` is estimated from the factor by LAPACK's
        ``dpocon`` (``O(p^2)``); it sees near-collinear features, which the
        factor's diagonal alone does not."""
        A_np, L_np = to_numpy(A).astype(np.float64), to_numpy(L).astype(np.float64)
        anorm = float(np.abs(A_np).sum(axis=0).max())
        rcond, info = scipy.linalg.lapack.dpocon(L_np, anorm, uplo="L")
        condition = float(np.inf if info != 0 or rcond <= 0 else 1.0 / rcond)
        self.report.details["condition_estimate"] = condition
        op = self.operator
        eps = float(self.xp.finfo(op.product_dtype).eps)
        if condition * eps > 1.0:
            fix = "Remove nearly collinear features or add damping."
            if op.product_dtype != op.dtype:
                fix = "Pass dtype='float64', remove nearly collinear features or add damping."
            warnings.warn(
                f"The Hessian's condition number is at least {condition:.2g}, so rounding "
                f"the data to {op.product_dtype} (relative precision {eps:.1g}) can "
                f"change influence values by up to {condition * eps:.2g} of their size. {fix}",
                RuntimeWarning,
                stacklevel=3,
            )

    def _solve(self, B):
        S = self._scale[:, None]
        if self._factor is not None:
            return S * self._factor.solve(S * B)
        V, s = self._eig
        return S * (V @ ((s * s)[:, None] * (V.T @ (S * B))))

    def _half_solve(self, B):
        S = self._scale[:, None]
        if self._factor is not None:
            return self._factor.half_solve(S * B)
        V, s = self._eig
        return s[:, None] * (V.T @ (S * B))

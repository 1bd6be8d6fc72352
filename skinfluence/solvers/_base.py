"""What every inverse-Hessian solver sees: a symmetric positive (semi-)definite
operator given by matrix products, in the style of
:class:`scipy.sparse.linalg.LinearOperator`."""

from __future__ import annotations

from dataclasses import dataclass, field

from .._backend import astype


class ConvergenceError(RuntimeError):
    """An iterative solver diverged; the message says what to change."""


@dataclass
class SolverReport:
    """How a solve went: iterations, the worst relative residual reached, and
    whether every right-hand side met the tolerance."""

    solver: str
    converged: bool = True
    iterations: int = 0
    residual: float = 0.0
    details: dict = field(default_factory=dict)


class HessianOperator:
    r"""``H_d = H + damping I + N N^T`` as products only.

    ``N`` spans the known null space of ``H`` (directions that change no
    prediction, see :meth:`Objective.null_space`); adding ``N N^T`` makes the
    operator definite without changing ``H_d^{-1} b`` for any gradient ``b``,
    all of which are orthogonal to ``N``.

    The operator is also the precision boundary. The objective's products
    over the rows run at the data's dtype (``product_dtype``, float32 when the
    user asks for it); what solvers see -- vectors of ``n_params``, the dense
    ``H_d`` they factor -- is always float64 (``dtype``). Parameter-sized
    work is cheap next to a pass over the rows, and keeping it in float64
    keeps ill-conditioned factorisations and CG recurrences accurate.

    Parameters
    ----------
    state : ObjectiveState
    damping : float
    """

    def __init__(self, state, damping: float = 0.0):
        self.state = state
        self.damping = float(damping)
        self.xp = state.xp
        self.n_params = state.n_params
        self.n_samples = state.design.n_samples
        self.dtype = self.xp.float64
        self.product_dtype = state.theta.dtype
        null_space = state.null_space
        self.null_space = None if null_space is None else self._solver_side(null_space)

    def _solver_side(self, A):
        return astype(A, self.dtype, self.xp)

    def _product_side(self, V):
        return astype(V, self.product_dtype, self.xp)

    def _extra(self, V, out):
        if self.damping:
            out = out + self.damping * V
        if self.null_space is not None:
            N = self.null_space
            out = out + N @ (N.T @ V)
        return out

    def matvec(self, V):
        """``H_d V`` for ``V`` of shape (n_params, m)."""
        HV = self.state.hvp(self._product_side(V))
        return self._extra(V, self._solver_side(HV))

    def matvec_sample(self, V, rows):
        """An unbiased estimate of ``H_d V`` from the rows ``rows``."""
        scale = self.n_samples / len(rows)
        HV = self.state.hvp_rows(self._product_side(V), rows, scale=scale)
        return self._extra(V, self._solver_side(HV))

    def diagonal(self):
        xp = self.xp
        d = self._solver_side(self.state.hessian_diagonal()) + self.damping
        if self.null_space is not None:
            d = d + xp.sum(self.null_space * self.null_space, axis=1)
        return d

    def dense(self):
        xp = self.xp
        H = self._solver_side(self.state.hessian())
        if self.damping:
            H = H + self.damping * xp.eye(self.n_params, dtype=H.dtype)
        if self.null_space is not None:
            H = H + self.null_space @ self.null_space.T
        return H

    def upper_bound(self) -> float:
        """A cheap, safe upper bound on the largest eigenvalue."""
        extra = 1.0 if self.null_space is not None else 0.0
        return self.state.curvature_bound() + self.damping + extra


class InverseHessian:
    """Base class: ``solve(B)`` returns ``H_d^{-1} B`` for ``B`` (n_params, m).

    Subclasses implement ``_solve`` (and optionally ``_half_solve``) at the
    operator's float64; right-hand sides arrive, and solutions leave, at the
    caller's dtype.
    """

    name = "base"
    #: whether many right-hand sides cost about one matrix product each (a
    #: factorisation), so that per-row quadratic forms are cheap
    direct = False

    def __init__(self, operator: HessianOperator):
        self.operator = operator
        self.xp = operator.xp
        self.report = SolverReport(self.name)

    def solve(self, B):
        """``H_d^{-1} B`` at the dtype of ``B``."""
        return astype(self._solve(astype(B, self.operator.dtype, self.xp)), B.dtype, self.xp)

    def half_solve(self, B):
        """``W B`` with ``W^T W = H_d^{-1}`` at the dtype of ``B``, or ``None``
        where not available.

        Quadratic forms ``b^T H^{-1} b`` (leverages, self-influence) then cost
        one product instead of a solve and a dot.
        """
        W = self._half_solve(astype(B, self.operator.dtype, self.xp))
        return None if W is None else astype(W, B.dtype, self.xp)

    def _solve(self, B):  # pragma: no cover - abstract
        raise NotImplementedError

    def _half_solve(self, B):
        return None

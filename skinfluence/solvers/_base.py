"""What every inverse-Hessian solver sees: a symmetric positive (semi-)definite
operator given by matrix products, in the style of
:class:`scipy.sparse.linalg.LinearOperator`."""

from __future__ import annotations

from dataclasses import dataclass, field


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
        self.null_space = state.null_space

    def _extra(self, V, out):
        if self.damping:
            out = out + self.damping * V
        if self.null_space is not None:
            N = self.null_space
            out = out + N @ (N.T @ V)
        return out

    def matvec(self, V):
        """``H_d V`` for ``V`` of shape (n_params, m)."""
        return self._extra(V, self.state.hvp(V))

    def matvec_sample(self, V, rows):
        """An unbiased estimate of ``H_d V`` from the rows ``rows``."""
        scale = self.n_samples / len(rows)
        return self._extra(V, self.state.hvp_rows(V, rows, scale=scale))

    def diagonal(self):
        xp = self.xp
        d = self.state.hessian_diagonal() + self.damping
        if self.null_space is not None:
            d = d + xp.sum(self.null_space * self.null_space, axis=1)
        return d

    def dense(self):
        xp = self.xp
        H = self.state.hessian()
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
    """Base class: ``solve(B)`` returns ``H_d^{-1} B`` for ``B`` (n_params, m)."""

    name = "base"

    def __init__(self, operator: HessianOperator):
        self.operator = operator
        self.xp = operator.xp
        self.report = SolverReport(self.name)

    def solve(self, B):  # pragma: no cover - abstract
        raise NotImplementedError

    def half_solve(self, B):
        """``W B`` with ``W^T W = H_d^{-1}``, or ``None`` where not available.

        Quadratic forms ``b^T H^{-1} b`` (leverages, self-influence) then cost
        one product instead of a solve and a dot.
        """
        return None

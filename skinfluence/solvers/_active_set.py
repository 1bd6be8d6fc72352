r"""The exact ``t -> 0`` limit of smoothed-hinge influence: an active-set
(KKT) system over the margin support vectors.

At a hinge-loss optimum the rows split into *margin* rows ``M`` (on the
kink: ``y_i f(x_i) = 1`` for SVC, ``|y_i - f(x_i)| = epsilon`` for SVR),
*bound* rows ``B`` (past it, constant gradient ``u_i psi_i``) and the rest.
For a small change of the data the sets stay put, so margin rows act as
equality constraints ``psi_i . theta = const`` and stationarity reads

.. math::  R \theta + \sum_{B} u_i \psi_i + \sum_{M} \nu_i \psi_i = 0

with multipliers ``nu``. Differentiating gives the KKT system
``[[R, Psi_M^T], [Psi_M, 0]]`` whose inverse ``[[S, T], [T^T, U]]`` replaces
``H^{-1}``: removing a bound row moves ``theta`` by ``S u_i psi_i`` and
removing a margin row (dropping its constraint) by ``-nu_i T e_i / U_ii``.
This is what a tiny smoothing temperature approximates, without its
numerical trouble (a curvature of ``1 / 4t`` on the margin rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from .._backend import asarray, to_numpy
from ..objectives._objective import relative_gradient
from ._base import InverseHessian

#: distance from the kink below which a row counts as a margin row (solvers
#: stop at a tolerance, so margins are not exact)
MARGIN_TOL = 1e-3


def margin_rows(state, margin_tol: float = MARGIN_TOL):
    """Rows of a single-output hinge-type fit within ``margin_tol`` of a kink."""
    obj = state.objective
    distance = to_numpy(obj.loss.kink_distance(obj.targets, state.z))[:, 0]
    return np.flatnonzero(distance <= margin_tol)


@dataclass(frozen=True)
class HingeKKT:
    """The KKT split of a single-output hinge-type fit (see :func:`hinge_kkt`).

    Attributes
    ----------
    margin : ndarray of int
        Rows on a kink.
    bound_gradient : array of shape (n,)
        ``u_i`` of rows past the kink, 0 elsewhere.
    Psi : array of shape (n_margin, n_params)
        The margin rows' design.
    R : array of shape (n_params, n_params)
        The penalty matrix (times its strength).
    multipliers : array of shape (n_margin,)
        Least-squares ``nu``.
    residual : float
        ``||R theta + sum_B u_i psi_i + Psi^T nu||`` relative to
        ``sum_i |u_i| ||psi_i||``: about 0 at a hinge optimum.
    n_bound : int
        Rows past the kink.
    """

    margin: np.ndarray
    bound_gradient: Any
    Psi: Any
    R: Any
    multipliers: Any
    residual: float
    n_bound: int


def hinge_kkt(state, margin_tol: float = MARGIN_TOL) -> HingeKKT:
    """Split the rows of a single-output hinge-type fit at its kink and solve
    for the margin rows' multipliers.

    Returns
    -------
    HingeKKT
    """
    xp = state.xp
    obj = state.objective
    design = state.design
    if design.n_outputs != 1:
        raise ValueError("the active-set hinge method needs a single-output model")
    loss = obj.loss
    y, z = obj.targets, state.z
    margin = margin_rows(state, margin_tol)
    # bound rows: constant gradient u_i = w_i * l'(z_i) off the kink
    sub = loss.subgradient(y, z)[:, 0] * obj.weights
    on_margin = np.zeros(design.n_samples, dtype=bool)
    on_margin[margin] = True
    bound = xp.where(xp.asarray(on_margin), 0.0, sub)
    R = obj.total_strength * obj.regularizer.to_dense()
    Psi = design.take(margin).expand(xp.ones((margin.size, 1), dtype=R.dtype)).T
    stationary = obj.total_strength * obj.regularizer.matvec(state.theta)
    stationary = stationary + design.backward(bound[:, None])
    if margin.size:
        # small (m x P) least-squares problem; NumPy's lstsq copes with
        # dependent margin rows, which the array API has no routine for
        nu_np = np.linalg.lstsq(to_numpy(Psi).T, -to_numpy(stationary), rcond=None)[0]
        nu = asarray(nu_np, xp)
        leftover = stationary + Psi.T @ nu
    else:
        nu, leftover = xp.zeros(0, dtype=R.dtype), stationary
    # a hinge row's loss derivative is at most its weight (slopes of size <= 1)
    residual = relative_gradient(leftover, design, xp.abs(obj.weights))
    return HingeKKT(
        margin=margin,
        bound_gradient=bound,
        Psi=Psi,
        R=R,
        multipliers=nu,
        residual=residual,
        n_bound=int(np.sum(to_numpy(sub) != 0) - np.sum(to_numpy(sub)[margin] != 0)),
    )


class ActiveSetInverse(InverseHessian):
    r"""KKT-projected inverse for single-output hinge-type objectives, exact
    at degenerate vertices too.

    Margin rows ``M`` hold ``Psi_M theta = const`` to first order, so
    parameter changes live in ``null(Psi_M)``. With ``N`` an orthonormal
    basis of that null space,

    .. math::  S = N (N^T R N)^{-1} N^T

    is the constrained inverse: removing a row past the kink moves the
    parameters by ``S u_i psi_i``. Removing margin row ``i`` drops its
    constraint and its multiplier's term ``nu_i psi_i``: the parameters move
    by ``S_{-i} nu_i psi_i`` with ``S_{-i}`` the inverse for the other
    constraints. Where ``psi_i`` lies in the span of the other margin rows
    (a duplicated row, a one-hot design with tied values: more margin rows
    than independent directions) the constraints do not change, its twins
    absorb the multiplier, and the change is 0. Otherwise ``null(Psi_{-i})``
    gains one direction ``v_i`` and, with ``w_i`` its ``R``-orthogonal part
    to ``N``, ``S_{-i} = S + w_i w_i^T / (v_i^T R w_i)``; since ``S psi_i =
    0`` the change is ``nu_i w_i (w_i^T psi_i) / (v_i^T R w_i)``.

    The rank of ``Psi_M`` and the rows that are *essential* (not in the span
    of the others: leverage 1 in ``Psi_M``'s row space) come from one SVD.
    Without degeneracy this is the classical KKT solution.

    Parameters
    ----------
    operator : HessianOperator
        Of the smoothed objective; only its design, weights, regulariser and
        the loss's kink structure are used.
    margin_tol : float
        Rows whose distance from the kink is below ``margin_tol`` count as
        margin rows (solvers stop at a tolerance, so margins are not exact).
    kkt : HingeKKT, default=None
        The fit's KKT split, if already computed.
    """

    name = "active_set"
    #: relative singular value below which margin rows count as dependent
    rank_tol = 1e-9
    #: leverage above which a margin row is essential (not in the others' span)
    essential_leverage = 1.0 - 1e-8

    def __init__(self, operator, margin_tol: float = MARGIN_TOL, kkt: HingeKKT | None = None):
        super().__init__(operator)
        xp = self.xp
        if kkt is None:
            kkt = hinge_kkt(operator.state, margin_tol)
        margin = kkt.margin
        Psi, R = to_numpy(kkt.Psi), to_numpy(kkt.R).astype(np.float64)
        if operator.damping:
            R = R + operator.damping * np.eye(R.shape[0])
        nu = to_numpy(kkt.multipliers)
        P, m = R.shape[0], margin.size
        self.margin_rows = margin
        self.bound_gradient = kkt.bound_gradient
        self.multipliers = kkt.multipliers
        self.n_params = P
        rank, N, essential, leverage_dirs = _constraint_geometry(Psi, self.rank_tol)
        A = N.T @ R @ N
        try:
            A_factor = scipy.linalg.cho_factor(A) if A.size else None
        except np.linalg.LinAlgError:
            raise ValueError(
                f"the hinge fit is not unique: {P - rank} direction(s) of its {P} parameters "
                f"are held by no margin row (of {m}) and not penalised (an unpenalised "
                "intercept with every row strictly inside or outside the margin). Pass "
                "damping>0, or refit with a larger C."
            ) from None
        solve_A = (lambda B: scipy.linalg.cho_solve(A_factor, B)) if A.size else (lambda B: B)
        self._N, self._solve_A = N, solve_A
        # the margin rows' parameter changes: 0 for rows in the others' span
        W = np.zeros((P, m))
        scale = np.zeros(m)
        rows = np.flatnonzero(essential)
        if rows.size:
            V = leverage_dirs[:, rows]
            Wr = V - N @ solve_A(N.T @ (R @ V)) if N.shape[1] else V
            curvature = np.sum(V * (R @ Wr), axis=0)
            flat = curvature <= 1e-12 * max(np.abs(R).max(), 1e-300)
            if np.any(flat):
                raise ValueError(
                    f"removing margin row(s) {margin[rows[flat]][:10].tolist()} frees a "
                    "direction the penalty does not hold (an unpenalised intercept), so the "
                    "optimum without them is not unique. Pass damping>0."
                )
            W[:, rows] = Wr
            scale[rows] = nu[rows] * np.sum(Wr * Psi[rows].T, axis=0) / curvature
        self._W = asarray(W, xp)
        self.margin_scale = asarray(scale, xp)
        self.report.details.update(
            margin_rows=int(m),
            margin_rank=int(rank),
            essential_margin_rows=int(rows.size),
            n_params=int(P),
            bound_rows=kkt.n_bound,
            kkt_residual=kkt.residual,
            degenerate=bool(m > rank),
        )

    def _solve(self, B):
        """``S B = N (N^T R N)^{-1} N^T B``: the constrained inverse."""
        xp = self.xp
        N = asarray(self._N, xp)
        if N.shape[1] == 0:
            return xp.zeros_like(B)
        inner = self._solve_A(to_numpy(N.T @ B))
        return N @ asarray(inner, xp)

    def margin_solve(self, B):
        """``W^T B``: (n_margin, m); with :attr:`margin_scale` it gives the
        margin rows' parameter changes projected on ``B``."""
        return self._W.T @ B

    def margin_shifts(self):
        """Parameter change of removing each margin row, (n_params, n_margin)."""
        return self._W * self.margin_scale[None, :]


def _constraint_geometry(Psi, rank_tol):
    """``(rank, N, essential, directions)`` of the margin rows' design ``Psi``
    (m, P): its numerical rank, an orthonormal basis ``N`` of its null space
    (P, P - rank), which rows are essential (leverage 1 in the row space: not
    in the span of the others) and, per row, the unit direction ``v_i`` that
    dropping it frees (``Psi^+ e_i`` normalised; meaningful for essential
    rows)."""
    m, P = Psi.shape
    if m == 0:
        return 0, np.eye(P), np.zeros(0, dtype=bool), np.zeros((P, 0))
    U, sv, Vt = np.linalg.svd(Psi, full_matrices=True)
    rank = int(np.sum(sv > rank_tol * max(m, P) * sv[0])) if sv.size and sv[0] > 0 else 0
    N = Vt[rank:].T
    Ur = U[:, :rank]
    leverage = np.sum(Ur * Ur, axis=1)
    essential = leverage > ActiveSetInverse.essential_leverage
    directions = Vt[:rank].T @ (Ur.T / sv[:rank, None])  # Psi^+ (P, m)
    norms = np.linalg.norm(directions, axis=0)
    directions = directions / np.where(norms > 0, norms, 1.0)
    return rank, N, essential, directions

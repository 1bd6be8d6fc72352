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

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from .._backend import asarray, to_numpy
from ..objectives._objective import gradient_scale
from ._base import InverseHessian

#: distance from the kink below which a row counts as a margin row (solvers
#: stop at a tolerance, so margins are not exact)
MARGIN_TOL = 1e-3


def margin_rows(state, margin_tol: float = MARGIN_TOL):
    """Rows of a single-output hinge-type fit within ``margin_tol`` of a kink."""
    obj = state.objective
    distance = to_numpy(obj.loss.kink_distance(obj.targets, state.z))[:, 0]
    return np.flatnonzero(distance <= margin_tol)


def margin_intervals(state, margin):
    """Where the margin rows' multipliers may lie: ``c_i`` times the loss's
    slopes either side of the kink each row sits on, ``(lo, hi)``."""
    obj = state.objective
    kinks, slopes = obj.loss.kinks(to_numpy(obj.targets))
    z = to_numpy(state.z)[margin, 0]
    nearest = np.argmin(np.abs(kinks[margin] - z[:, None]), axis=1)
    c = to_numpy(obj.weights).astype(float)[margin]
    return c * slopes[margin, nearest], c * slopes[margin, nearest + 1]


def bounded_multipliers(A, b, lo, hi):
    r"""Margin multipliers ``nu`` closest to stationarity, within their
    intervals: ``argmin ||A nu - b||`` over ``lo <= nu <= hi``.

    Plain least squares where its answer is within bounds (a non-degenerate
    vertex: the multipliers are unique); otherwise bounded least squares
    (BVLS). Clipping an out-of-bounds least-squares answer instead would
    break stationarity unseen -- e.g. the intercept's ``sum_i nu_i = 0`` of
    an SVR -- and the KKT residual must measure the multipliers used.
    """
    nu = np.linalg.lstsq(A, b, rcond=None)[0]
    width = hi - lo
    slack = 1e-9 * np.maximum(width, 1e-300)
    if np.all((nu >= lo - slack) & (nu <= hi + slack)):
        return np.clip(nu, lo, hi)
    from scipy.optimize import lsq_linear

    free = width > 0  # zero-weight rows: nu_i = 0 is all they allow
    nu = np.clip(nu, lo, hi)
    if free.any():
        rest = b - A[:, ~free] @ nu[~free]
        fit = lsq_linear(A[:, free], rest, bounds=(lo[free], hi[free]), method="bvls", tol=1e-12)
        nu[free] = np.clip(fit.x, lo[free], hi[free])
    return nu


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
        ``nu`` closest to stationarity within the margin rows' intervals
        (:func:`bounded_multipliers`).
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

    Solvers stop at a tolerance, so no row lies exactly on a kink: rows
    within ``margin_tol`` of one are *candidates*. The margin rows are the
    fewest of them, nearest the kink first, whose multipliers (within their
    intervals) make the fit stationary as well as all candidates' do; the
    others keep the slope of the side they lie on. A row that the fit left
    at ``1e-4`` from the kink with its multiplier at a bound is then not
    held on it: a removal moves it there first (a libsvm fit of a linear
    kernel resolves its margin rows to about ``1e-6`` only, and rows within
    ``1e-3`` of the kink at their bound are common on tables with ties).

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
    distance = to_numpy(loss.kink_distance(y, z))[:, 0]
    candidates = np.flatnonzero(distance <= margin_tol)
    candidates = candidates[np.argsort(distance[candidates], kind="stable")]
    # off the kink: constant gradient u_i = w_i * l'(z_i)
    sub = loss.subgradient(y, z)[:, 0] * obj.weights
    on_candidate = np.zeros(design.n_samples, dtype=bool)
    on_candidate[candidates] = True
    R = obj.total_strength * obj.regularizer.to_dense()
    Psi = design.take(candidates).expand(xp.ones((candidates.size, 1), dtype=R.dtype)).T
    stationary = obj.total_strength * obj.regularizer.matvec(state.theta)
    stationary = stationary + design.backward(
        xp.where(xp.asarray(on_candidate), 0.0, sub)[:, None]
    )
    A, b = to_numpy(Psi).T, -np.ravel(to_numpy(stationary))
    # a hinge row's loss derivative is at most its weight (slopes of size <= 1)
    scale = gradient_scale(design, xp.abs(obj.weights)) + 1e-300
    u = to_numpy(sub)[candidates]
    nu_np, residual = _fewest_margin_rows(A, b, u, *margin_intervals(state, candidates), scale)
    k = nu_np.size
    order = np.argsort(candidates[:k], kind="stable")  # margin rows in row order
    margin, nu_np, Psi_m = candidates[:k][order], nu_np[order], A[:, :k][:, order].T
    on_margin = np.zeros(design.n_samples, dtype=bool)
    on_margin[margin] = True
    return HingeKKT(
        margin=margin,
        bound_gradient=xp.where(xp.asarray(on_margin), 0.0, sub),
        Psi=asarray(Psi_m, xp),
        R=R,
        multipliers=asarray(nu_np, xp),
        residual=residual,
        n_bound=int(np.sum(to_numpy(sub) != 0) - np.sum(to_numpy(sub)[margin] != 0)),
    )


def _fewest_margin_rows(A, b, u, lo, hi, scale):
    """``(nu, residual)`` of the shortest prefix ``k`` of the candidates
    (columns of ``A``, nearest the kink first) that leaves a stationarity
    residual ``||b - A_k nu - A_rest u_rest|| / scale`` within ``max(100
    r_all, 1e-10)`` (``r_all``: all candidates held; the others keep their
    gradients ``u``). Holding more rows only relaxes the fit (each interval
    contains the slope of either side), so the residual falls with ``k`` and
    a bisection finds it."""
    m = A.shape[1]
    outside = 0.0  # the part of b no multiplier can reach
    if A.shape[0] > m:
        # the same problems in the m-dimensional range of A (kernel features:
        # P = n parameters, a few hundred candidates)
        basis, A = np.linalg.qr(A)
        inside = basis.T @ b
        outside = float(np.linalg.norm(b - basis @ inside)) ** 2
        b = inside

    def solve(k):
        rest = b - A[:, k:] @ u[k:]
        nu = bounded_multipliers(A[:, :k], rest, lo[:k], hi[:k]) if k else np.zeros(0)
        leftover = float(np.linalg.norm(rest - A[:, :k] @ nu)) ** 2 + outside
        return nu, np.sqrt(leftover) / scale

    best = solve(m)
    enough = max(100.0 * best[1], 1e-10)
    low, high = 0, m  # best = solve(high) is enough; find the smallest such k
    while low < high:
        k = (low + high) // 2
        trial = solve(k)
        if trial[1] <= enough:
            high, best = k, trial
        else:
            low = k + 1
    return best


#: share of the rows past the kink (nonzero loss gradient) from which a fit
#: counts as collapsed
COLLAPSED_SHARE = 0.9


def warn_if_collapsed(n: int, n_margin: int, n_bound: int) -> bool:
    """Whether a hinge fit of ``n`` rows has collapsed (no margin row, or at
    least 90 % of the rows past the kink), with a warning that says what to
    change."""
    collapsed = n_bound > 0 and (n_margin == 0 or n_bound >= COLLAPSED_SHARE * n)
    if collapsed:
        warnings.warn(
            f"the hinge fit has collapsed: {n_bound} of {n} training rows are past "
            f"the margin with a nonzero loss gradient and {n_margin} on it, so the "
            "penalty dominates the fit (C too small for these features?). Influence is "
            "then about each row's own gradient term, and an intercept that no margin "
            "row holds sits in an interval of optima (libsvm takes its middle). Refit "
            "with a larger C, or standardise the features.",
            RuntimeWarning,
            stacklevel=7,
        )
    return collapsed


def hinge_diagnostics(state, kkt: HingeKKT) -> dict:
    """What :attr:`solver_.report.details` says about a hinge fit's vertex,
    and a warning for a collapsed fit.

    Returns ``kkt_residual``, ``margin_rows`` against ``n_params``,
    ``duplicate_margin_rows`` (margin rows equal to another one, target
    included: their multipliers are not unique), ``bound_rows`` (past the
    kink) and ``collapsed``: no margin row, or at least 90 % of the rows past
    the kink -- a penalty too strong for the data (``C`` too small), where
    the fit is nearly the penalty's minimum and every row's influence is
    about its own gradient term.
    """
    n = state.design.n_samples
    distinct = 0
    if kkt.margin.size:
        targets = to_numpy(state.objective.targets)[kkt.margin]
        table = np.column_stack([to_numpy(kkt.Psi), targets.reshape(kkt.margin.size, -1)])
        distinct = len(np.unique(table, axis=0))
    collapsed = warn_if_collapsed(n, int(kkt.margin.size), int(kkt.n_bound))
    return {
        "kkt_residual": kkt.residual,
        "margin_rows": int(kkt.margin.size),
        "n_params": int(state.n_params),
        "duplicate_margin_rows": int(kkt.margin.size - distinct),
        "bound_rows": int(kkt.n_bound),
        "collapsed": bool(collapsed),
    }


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

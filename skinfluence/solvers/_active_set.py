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
    """KKT-projected inverse for single-output hinge-type objectives.

    Parameters
    ----------
    operator : HessianOperator
        Of the smoothed objective; only its design, weights, regulariser and
        the loss's kink structure are used.
    margin_tol : float
        Rows whose distance from the kink is below ``margin_tol`` count as
        margin rows (solvers stop at a tolerance, so margins are not exact).
    """

    name = "active_set"

    def __init__(self, operator, margin_tol: float = MARGIN_TOL, kkt: HingeKKT | None = None):
        super().__init__(operator)
        xp = self.xp
        if kkt is None:
            kkt = hinge_kkt(operator.state, margin_tol)
        margin, Psi, R = kkt.margin, kkt.Psi, kkt.R
        if operator.damping:
            R = R + operator.damping * xp.eye(R.shape[0], dtype=R.dtype)
        self.margin_rows = margin
        self.bound_gradient = kkt.bound_gradient
        self.multipliers = nu = kkt.multipliers
        P, m = R.shape[0], margin.size
        system = xp.concat(
            [
                xp.concat([R, Psi.T], axis=1),
                xp.concat([Psi, xp.zeros((m, m), dtype=R.dtype)], axis=1),
            ],
            axis=0,
        )
        try:
            self._kkt_inv = xp.linalg.inv(system)
        except np.linalg.LinAlgError as err:
            raise ValueError(
                f"the {m} margin support vectors are linearly dependent in the model's "
                f"{P}-dimensional feature space, so the active-set (t -> 0) hinge "
                "influence is undefined. Use hinge='smoothed', or a kernel whose feature "
                "space separates the support vectors."
            ) from err
        U = self._kkt_inv[P:, P:]
        self.margin_scale = -nu / xp.linalg.diagonal(U) if m else nu
        self.n_params = P
        self.report.details.update(
            margin_rows=int(m), bound_rows=kkt.n_bound, kkt_residual=kkt.residual
        )

    def _solve(self, B):
        """``S B``: the constrained inverse applied to gradients."""
        return self._kkt_inv[: self.n_params, : self.n_params] @ B

    def margin_solve(self, B):
        """``T^T B``: (n_margin, m); with :attr:`margin_scale` it gives margin rows'
        parameter changes projected on ``B``."""
        return self._kkt_inv[self.n_params :, : self.n_params] @ B

    def margin_shifts(self):
        """Parameter change of removing each margin row, (n_params, n_margin)."""
        T = self._kkt_inv[: self.n_params, self.n_params :]
        return T * self.margin_scale[None, :]

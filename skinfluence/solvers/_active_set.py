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

import numpy as np

from .._backend import to_numpy
from ._base import InverseHessian


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

    def __init__(self, operator, margin_tol: float = 1e-3):
        super().__init__(operator)
        xp = self.xp
        state = operator.state
        obj = state.objective
        design = state.design
        if design.n_outputs != 1:
            raise ValueError("the active-set hinge method needs a single-output model")
        loss = obj.loss
        y, z = obj.targets, state.z
        dist = to_numpy(loss.kink_distance(y, z))[:, 0]
        margin = np.flatnonzero(dist <= margin_tol)
        self.margin_rows = margin
        # bound rows: constant gradient u_i = w_i * l'(z_i) off the kink
        sub = loss.subgradient(y, z)[:, 0] * obj.weights
        on_margin = np.zeros(design.n_samples, dtype=bool)
        on_margin[margin] = True
        self.bound_gradient = xp.where(xp.asarray(on_margin), 0.0, sub)
        R = obj.total_strength * obj.regularizer.to_dense()
        if operator.damping:
            R = R + operator.damping * xp.eye(R.shape[0], dtype=R.dtype)
        Psi = design.take(margin).expand(xp.ones((margin.size, 1), dtype=R.dtype)).T
        P, m = R.shape[0], margin.size
        kkt = xp.concat(
            [
                xp.concat([R, Psi.T], axis=1),
                xp.concat([Psi, xp.zeros((m, m), dtype=R.dtype)], axis=1),
            ],
            axis=0,
        )
        self._kkt_inv = xp.linalg.inv(kkt)
        U = self._kkt_inv[P:, P:]
        # multipliers from stationarity, in the least-squares sense
        residual = R @ state.theta + design.backward(self.bound_gradient[:, None])
        nu = xp.linalg.solve(Psi @ Psi.T, -(Psi @ residual)) if m else xp.zeros(0)
        self.multipliers = nu
        self._margin_scale = -nu / xp.linalg.diagonal(U) if m else nu
        self.n_params = P
        self.report.details.update(margin_rows=int(m), bound_rows=int(np.sum(to_numpy(sub) != 0)))

    def solve(self, B):
        """``S B``: the constrained inverse applied to gradients."""
        return self._kkt_inv[: self.n_params, : self.n_params] @ B

    def margin_solve(self, B):
        """``T^T B``: (n_margin, m); with :attr:`margin_scale` it gives margin rows'
        parameter changes projected on ``B``."""
        return self._kkt_inv[self.n_params :, : self.n_params] @ B

    def margin_shifts(self):
        """Parameter change of removing each margin row, (n_params, n_margin)."""
        T = self._kkt_inv[: self.n_params, self.n_params :]
        return T * self._margin_scale[None, :]

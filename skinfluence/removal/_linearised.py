r"""Removal models linear in the row gradients: ``Delta_i = H^{-1} g~_i``.

The influence of training row ``i`` on test row ``j`` is

.. math::  \mathcal{I}[j, i] = -\nabla_\theta L(z_j)^T H^{-1} \tilde g_i ,

computed as ``G~ F`` with the test factors ``F = -H^{-1} [grad L(z_j)]``
solved once per block of test rows. The classes differ in ``g~_i`` and in how
``H^{-1}`` is applied:

* :class:`FirstOrderRemoval` -- ``g~_i = g_i`` (Koh & Liang).
* :class:`NewtonRemoval` -- ``H^{-1} g~_i = (H - H_i)^{-1} g_i``: one Newton
  step on the leave-one-out objective (:func:`newton_row_gradients`).
* :class:`ActiveSetRemoval` -- the hinge's ``t -> 0`` limit: rows past the
  kink keep their constant gradient, margin rows move through the KKT system.
* :class:`RowSpaceRemoval`, :class:`RowSpaceNewtonRemoval` -- kernel models
  with ``H^{-1}`` applied in the row space of the training rows.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np

from .._backend import asarray, dense_rows, is_numpy, to_numpy
from ..objectives import RowGradients
from ._base import NotAvailableError, RemovalModel

#: rows whose leverage :meth:`FirstOrderRemoval.check_leverage` solves for
LEVERAGE_PROBE = 50
#: one-step correction factor of a removal above which it warns
LEVERAGE_FACTOR = 1.5


class FirstOrderRemoval(RemovalModel):
    """The influence function: ``Delta_i = H^{-1} g_i``.

    Parameters
    ----------
    state, solver, budget, stationarity
        See :class:`RemovalModel`; ``solver`` is an :class:`InverseHessian`.
    row_gradients : RowGradients, default=None
        ``g_i``; the objective's own by default.
    data : ModifiedData, default=None
        Builds changed objectives (relabelled rows).
    """

    name = "influence"

    def __init__(self, state, solver, budget, stationarity, row_gradients=None, data=None):
        super().__init__(state, solver, budget, stationarity)
        self.data = data
        self._leverage_cache = None
        self.row_gradients = self._gradients(
            state.row_gradients() if row_gradients is None else row_gradients
        )

    def _gradients(self, grads):
        """``g~_i`` from the objective's ``g_i``, held as ``G`` where it fits."""
        grads = self._prepare_gradients(grads)
        if self._materialize(grads):
            grads = grads.materialized()
        return grads

    def for_rows(self, state):
        """This model over the training rows of ``state``, sharing the solver.

        ``state`` holds a chunk of a training table too large for one process
        (:mod:`skinfluence._dask`), its objective scaled as the full data's
        (weights, penalty total, class totals); ``H^{-1}`` is that of the full
        objective. The chunk's per-row quantities -- its block of the
        influence matrix, its self-influence, its leave-one-out outputs --
        are then those of the same rows in the full model."""
        model = copy.copy(self)
        RemovalModel.__init__(model, state, self.solver, self.budget, self.stationarity)
        model._leverage_cache = None
        # not materialised: a chunk's task uses its gradients once (a GEMM with
        # G would cost a chunk-sized copy and save nothing)
        model.row_gradients = model._prepare_gradients(state.row_gradients())
        return model

    def _prepare_gradients(self, grads):
        """The ``g~_i`` this model pairs with ``H^{-1}``."""
        return grads

    def _materialize(self, grads) -> bool:
        """Hold ``G`` (n_train x n_params) when it fits one memory block:
        influence is then a single GEMM per block, with no per-row scaling."""
        design = self.state.design
        return design.dense and self.budget.fits(self.n_train * design.n_params)

    # --- the influence matrix ------------------------------------------
    def test_factors(self, query, rows):
        return -self.solver.solve(query.gradients(rows, self.state.theta))

    def training_block(self, factors, rows, out=None):
        """``G~_rows F``; one GEMM written in place into ``out`` where it can be."""
        grads = self.row_gradients.take(rows)
        if out is not None and is_numpy(self.xp) and self._gemm_into_output(grads, factors):
            return np.matmul(grads.dense(), factors, out=out)
        return grads.dot(factors)

    def _gemm_into_output(self, grads, F) -> bool:
        # the block's gradients, if formed here, are no larger than its output
        if grads.matrix is not None:
            return True
        return grads.design.dense and self.state.n_params <= F.shape[1]

    # --- per training row ----------------------------------------------
    def parameter_shifts(self, rows):
        G = self.row_gradients.take(rows).dense().T
        return self.solver.solve(G)

    def group_shifts(self, groups):
        """``H^{-1} sum_{i in G} g~_i``: one solve for all groups."""
        xp = self.xp
        totals = [self.row_gradients.take(np.asarray(rows)).total() for rows in groups]
        return self.solver.solve(xp.stack(totals, axis=1))

    def change_shifts(self, objectives):
        """``-H^{-1} (grad F'(theta) - grad F(theta))``: one solve for all."""
        xp, theta = self.xp, self.state.theta
        fitted = self.state.gradient()
        changes = [objective.at(theta).gradient() - fitted for objective in objectives]
        if not changes:
            return RemovalModel.change_shifts(self, changes)
        return -self.solver.solve(xp.stack(changes, axis=1))

    def own_output_shifts(self):
        """From the leverages where they are cheap (``M_i u~_i`` plus the
        low-rank part), else from parameter shifts."""
        grads = self.row_gradients
        if not (self._leverages_cheap() or self.state.design.n_outputs == 1):
            return super().own_output_shifts()
        shift = self.xp.matmul(self.leverages(), grads.U[:, :, None])[:, :, 0]
        if grads.coef is not None:
            shift = shift + self._low_rank_output_shifts(grads)
        return shift

    def _leverages_cheap(self) -> bool:
        return self._leverage_cache is not None or self.solver.direct

    def _low_rank_output_shifts(self, grads):
        """``A_i H^{-1} V c_i``: the low-rank part of the row gradients (penalty
        shares, balanced class weights) carried to each row's outputs, (n, K)."""
        AHV = self.state.design.forward(self.solver.solve(grads.vecs))  # (n, K, q)
        return self.xp.sum(AHV * grads.coef[:, None, :], axis=2)

    def leverages(self):
        if self._leverage_cache is None:
            self._leverage_cache = self._compute_leverages()
        return self._leverage_cache

    def _compute_leverages(self):
        xp = self.xp
        design = self.state.design
        K = design.n_outputs
        if K > 1 and design.shared and self.solver.direct and design.n_params <= self.n_train:
            return self._shared_leverages()
        dtype = self.state.theta.dtype
        out = []
        for rows in self.budget.slices(self.n_train, 2 * K * design.n_params):
            sub = design.take(rows)
            eye = xp.eye(K, dtype=dtype)
            ones = xp.ones((rows.stop - rows.start, 1), dtype=dtype)
            cols = [sub.expand(ones * eye[k : k + 1, :]) for k in range(K)]
            half = [self.solver.half_solve(C) for C in cols]
            if half[0] is not None:
                M = [[xp.sum(half[a] * half[b], axis=0) for b in range(K)] for a in range(K)]
            else:
                sol = [self.solver.solve(C) for C in cols]
                M = [[xp.sum(cols[a] * sol[b], axis=0) for b in range(K)] for a in range(K)]
            out.append(xp.stack([xp.stack(r, axis=1) for r in M], axis=1))
        return xp.concat(out, axis=0) if out else xp.zeros((0, K, K), dtype=dtype)

    def _leverages_of(self, idx):
        """``M_i`` of the training rows ``idx`` (indices), (len(idx), K, K)."""
        xp, design = self.xp, self.state.design
        K, dtype = design.n_outputs, self.state.theta.dtype
        sub = design.take(np.asarray(idx))
        eye = xp.eye(K, dtype=dtype)
        ones = xp.ones((len(idx), 1), dtype=dtype)
        cols = [sub.expand(ones * eye[k : k + 1, :]) for k in range(K)]
        sol = [self.solver.solve(C) for C in cols]
        M = [[xp.sum(cols[a] * sol[b], axis=0) for b in range(K)] for a in range(K)]
        return xp.stack([xp.stack(r, axis=1) for r in M], axis=1)

    def check_leverage(self, probe: int = LEVERAGE_PROBE):
        r"""Warn when the first-order estimate understates removals a lot.

        For one output, removing row ``i`` in one Newton step scales its
        first-order effect by ``1 / (1 - D_i h_i)`` (``h_i = a_i^T H^{-1}
        a_i``; exact for least squares). The ``probe`` rows with the largest
        ``|u_i| ||a_i||`` -- the largest first-order effects, roughly -- are
        checked, at one solve each with a factored Hessian (iterative solvers
        skip the check: it would cost about one influence solve). For a
        quadratic loss (least squares,
        kernel ridge), where that step is the exact refit, a factor above
        ``LEVERAGE_FACTOR`` gets a warning naming ``approximation="newton"``;
        for others the factors only go into the solver's ``report.details``.
        """
        design = self.state.design
        if not getattr(self.solver, "direct", False):
            # with an iterative solver (CG, LiSSA, row space) the probe costs
            # about one influence solve: not spent at fit
            self.solver.report.details["leverage_probed"] = 0
            return
        if design.n_outputs != 1 or self.n_train == 0:
            return
        xp = self.xp
        grads = self.row_gradients
        size = to_numpy(xp.abs(grads.U[:, 0]) * xp.sqrt(design.row_sq_norms()))
        rows = np.sort(np.argsort(-size, kind="stable")[:probe])
        h = to_numpy(self._leverages_of(rows))[:, 0, 0]
        d = to_numpy(self.state.D)[rows, 0, 0]
        factor = 1.0 / np.maximum(1.0 - d * h, 1e-12)
        worst = float(factor.max())
        self.solver.report.details.update(
            leverage_probed=int(rows.size),
            leverage_factor_median=float(np.median(factor)),
            leverage_factor_max=worst,
        )
        if worst > LEVERAGE_FACTOR and self.state.objective.loss.quadratic:
            warnings.warn(
                f"the first-order estimate understates the effect of removing "
                f"high-leverage rows: for {int(np.sum(factor > LEVERAGE_FACTOR))} of the "
                f"{rows.size} rows with the largest effects the exact leave-one-out "
                f"effect is up to {worst:.2g}x larger (row "
                f"{int(rows[np.argmax(factor)])}; median {np.median(factor):.2g}x). "
                "approximation='newton' applies the "
                "correction (exact for least squares and kernel ridge); in row space, pass "
                "influence(..., rows=top) to solve for chosen rows only.",
                RuntimeWarning,
                stacklevel=7,
            )

    def _shared_leverages(self):
        """``M_i[a, b] = x_i^T (H^{-1})_{ab} x_i`` for a design shared by all
        ``K`` outputs: from the explicit inverse (``P^3`` once) instead of ``K``
        solves with ``n`` right-hand sides each (``K n P^2``)."""
        xp = self.xp
        design = self.state.design
        K, p = design.n_outputs, design.sizes[0]
        Hinv = self.solver.solve(xp.eye(design.n_params, dtype=self.state.theta.dtype))
        X = design.blocks[0]
        out = []
        for rows in self.budget.slices(self.n_train, 2 * K * p):
            Xb = dense_rows(X[rows, ...], xp)
            entries = {}
            for a in range(K):  # upper triangle b >= a; M_i is symmetric
                Y = Xb @ Hinv[a * p : (a + 1) * p, a * p :]  # x_i^T (H^-1)_{a, b>=a}
                Y = xp.reshape(Y, (Y.shape[0], K - a, p))
                upper = xp.sum(Y * Xb[:, None, :], axis=2)  # (b, K - a)
                for b in range(a, K):
                    entries[a, b] = entries[b, a] = upper[:, b - a]
            M = [xp.stack([entries[a, b] for b in range(K)], axis=1) for a in range(K)]
            out.append(xp.stack(M, axis=1))
        return xp.concat(out, axis=0) if out else xp.zeros((0, K, K), dtype=Hinv.dtype)

    def feature_influence(self, query, rows, outputs, n_features):
        """``-d L(z_j) / d x_i`` through the parameters: the row's features
        enter its gradient ``g_i`` both through ``u_i`` (via ``z_i``) and as
        the design row itself."""
        xp, state = self.xp, self.state
        n_test = query.n_samples
        F = self.solver.solve(query.gradients(slice(0, n_test), state.theta))
        sub = state.design.take(rows)
        idx = xp.asarray(rows)
        U = xp.take(state.U, idx, axis=0)
        D = xp.take(state.D, idx, axis=0)
        AF = sub.forward(F)  # (r, K, m): A_i f_j
        p = n_features
        offs = state.design.offsets
        theta = state.theta
        result = None
        for k in outputs:
            Wk = theta[offs[k] : offs[k] + p]  # dz_k / dx
            Fk = F[offs[k] : offs[k] + p, :]  # (p, m)
            coef_term = xp.sum(AF * D[:, :, k, None], axis=1)  # (r, m): (A_i f)^T D_i e_k
            term = (
                coef_term[:, :, None] * Wk[None, None, :] + U[:, k, None, None] * Fk.T[None, ...]
            )
            result = term if result is None else result + term
        return -xp.permute_dims(result, (1, 0, 2))


def newton_row_gradients(model, base):
    r"""Row gradients ``g~_i`` with ``H^{-1} g~_i = (H - H_i)^{-1} g_i``.

    Woodbury with ``H_i = A_i^T D_i A_i`` and ``g_i = A_i^T u_i + V c_i``:
    ``g~_i = A_i^T u~_i + V c_i`` with
    ``u~_i = (I - D_i M_i)^{-1} (u_i + D_i A_i H^{-1} V c_i)``. The low-rank
    part (penalty shares, balanced class weights: O(1/n) of ``H``) stays
    first order. ``base`` holds the plain ``g_i``; ``model`` provides the
    leverages ``M_i`` and ``H^{-1}``.
    """
    xp = model.xp
    state = model.state
    M = model.leverages()
    D = state.D
    U = base.U
    if base.coef is not None:
        AHVc = model._low_rank_output_shifts(base)
        U = U + xp.matmul(D, AHVc[:, :, None])[:, :, 0]
    return base.with_U(leverage_corrected(U, D, M, xp, stacklevel=6))


def leverage_corrected(U, D, M, xp, stacklevel=5):
    r"""``u~_i = (I - D_i M_i)^{-1} u_i`` per row: (n, K) from ``U`` (n, K),
    curvatures ``D`` and leverages ``M`` (n, K, K). Rows of leverage 1 (the
    model is undetermined without them) keep ``u_i``, with a warning."""
    eye = xp.eye(U.shape[1], dtype=U.dtype)
    Amat = eye[None, :, :] - xp.matmul(D, M)
    det = to_numpy(xp.linalg.det(Amat))
    bad = ~(det > 1e-10)
    if np.any(bad):
        warnings.warn(
            f"{int(bad.sum())} training row(s) have leverage 1 (the model is "
            "undetermined without them); their Newton estimate is replaced by the "
            "plain influence function.",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
        Amat = xp.where(xp.asarray(bad)[:, None, None], eye[None, :, :], Amat)
    return xp.linalg.solve(Amat, U[:, :, None])[:, :, 0]


class NewtonRemoval(FirstOrderRemoval):
    """One Newton step on the leave-one-out objective: ``Delta_i = (H - H_i)^{-1}
    g_i`` (a ``1 / (1 - h_ii)`` leverage correction for single-output
    models), exact for least squares.

    A group ``G`` is removed the same way, with the group's Hessian taken out:
    ``Delta_G = (H - H_G)^{-1} g_G`` -- not the sum of the rows' own steps --
    evaluated at the shifted outputs (groups move them far enough for the
    test function's curvature to matter).

    Parameters
    ----------
    state, solver, budget, stationarity
        See :class:`FirstOrderRemoval`.
    data : ModifiedData, default=None
        Builds the objectives without a group or with changed labels.
    step : NewtonChangeStep, default=None
        The Newton step to a changed objective.
    """

    name = "newton"
    _prepare_gradients = newton_row_gradients
    group_exact = True

    def __init__(self, state, solver, budget, stationarity, data=None, step=None):
        super().__init__(state, solver, budget, stationarity, data=data)
        self._step = step

    def group_shifts(self, groups):
        return RemovalModel.group_shifts(self, groups)

    def feature_influence(self, query, rows, outputs, n_features):
        return RemovalModel.feature_influence(self, query, rows, outputs, n_features)

    def change_shifts(self, objectives):
        if self._step is None:
            return RemovalModel.change_shifts(self, objectives)
        steps, far = [], []
        for k, objective in enumerate(objectives):
            step, residual = self._step(objective)
            steps.append(step)
            if residual > self._step.tol:
                far.append((k, residual))
        if far:
            warnings.warn(
                f"one Newton step leaves {len(far)} change(s) far from their optimum "
                f"(numbers {[k for k, _ in far][:10]} in the order given; relative gradient "
                f"up to {max(r for _, r in far):.2g}): their effects can be off by a large "
                "factor. Use approximation='refit' for them.",
                RuntimeWarning,
                stacklevel=5,
            )
        return self.xp.stack(steps, axis=1)


#: how many of the most influential removals :func:`check_margin_set` looks at
MARGIN_SET_PROBE = 50
#: share of them whose margin set may change before a warning
MARGIN_SET_SHARE = 0.2


def check_margin_set(first_event, sizes, report, stacklevel=6):
    """Warn when the first-order active-set estimate cannot be trusted.

    The estimate extrapolates the first segment of each removal's
    decremental path; it is exact while the margin set holds, i.e. for
    removals whose first event lies at ``s >= 1`` (``first_event``, from
    :meth:`DecrementalPath.remove`). Among the ``MARGIN_SET_PROBE`` rows
    with the largest parameter changes (``sizes``; 0 for rows not probed),
    a share above ``MARGIN_SET_SHARE`` whose margin set changes before the
    removal completes gets a warning that names the exact option. The
    counts go into ``report.details``.
    """
    top = np.argsort(-sizes, kind="stable")[:MARGIN_SET_PROBE]
    top = top[sizes[top] > 0]
    changing = top[first_event[top] < 1.0]
    report.details.update(margin_set_probed=int(top.size), margin_set_changes=int(changing.size))
    if top.size and changing.size > MARGIN_SET_SHARE * top.size:
        halfway = float(np.median(first_event[changing]))
        warnings.warn(
            f"removing {changing.size} of the {top.size} most influential training rows "
            f"changes the SVM's margin set before the removal completes (at "
            f"{halfway:.0%} of the way, median; rows {changing[:10].tolist()}). The "
            "first-order active-set estimate is exact only while the margin set holds, "
            "so its values can be far from refitted ones here (tables with tied values "
            "or few support vectors). Use approximation='path' for the exact effects "
            "of removing single rows.",
            RuntimeWarning,
            stacklevel=stacklevel,
        )


class ActiveSetRemoval(FirstOrderRemoval):
    """The exact ``t -> 0`` limit of the smoothed hinge for single-output
    hinge-type models (:class:`~skinfluence.solvers.ActiveSetInverse`): rows
    past the kink keep their constant gradient and are solved with the
    KKT-projected inverse ``S``; margin rows (dropping their constraint) move
    the parameters by the KKT system's ``T e_i`` scaled by ``-nu_i / U_ii``."""

    name = "influence"

    def __init__(self, state, solver, budget, stationarity, probe=None):
        bound = RowGradients(state.design, solver.bound_gradient[:, None])
        super().__init__(state, solver, budget, stationarity, row_gradients=bound)
        if probe is not None:
            self._check_margin_set(probe)

    def _check_margin_set(self, probe):
        """Follow the most influential removals to their first event with
        ``probe`` (a first-order :class:`DecrementalPath`) and warn where
        the margin set changes before they complete."""
        # each row's gradient term nu_i psi_i: the size of its removal's effect,
        # without solving for every row's parameter change at fit
        norms = to_numpy(self.xp.sqrt(self.state.design.row_sq_norms()))
        sizes = np.abs(probe.nu0) * norms
        top = np.argsort(-sizes, kind="stable")[:MARGIN_SET_PROBE]
        check_margin_set(probe.first_events(top[sizes[top] > 0]), sizes, self.solver.report)

    def test_factors(self, query, rows):
        G = query.gradients(rows, self.state.theta)
        return -self.solver.solve(G), -self.solver.margin_solve(G)

    def _margin_selection(self, rows):
        """``(select, hit)``: the margin rows among ``rows`` (a slice or
        indices) as positions ``hit`` into :attr:`margin_rows` and a 0/1
        matrix ``select`` (n_rows, n_hit) placing them in the block."""
        if isinstance(rows, slice):
            rows = np.arange(rows.start, rows.stop)
        position = {int(r): k for k, r in enumerate(self.solver.margin_rows)}
        pairs = [(c, position[int(r)]) for c, r in enumerate(rows) if int(r) in position]
        select = np.zeros((len(rows), len(pairs)))
        hit = np.zeros(len(pairs), dtype=np.int64)
        for j, (c, k) in enumerate(pairs):
            select[c, j], hit[j] = 1.0, k
        return asarray(select, self.xp), hit

    def training_block(self, factors, rows, out=None):
        F, margin = factors
        block = super().training_block(F, rows, out)
        select, hit = self._margin_selection(rows)
        if hit.size:
            xp = self.xp
            scale = xp.take(self.solver.margin_scale, xp.asarray(hit), axis=0)
            block = block + select @ (xp.take(margin, xp.asarray(hit), axis=0) * scale[:, None])
        return block

    def group_shifts(self, groups):
        shift = super().group_shifts(groups)
        xp = self.xp
        margin = self.solver.margin_shifts()  # (n_params, n_margin)
        parts = []
        for rows in groups:
            _, hit = self._margin_selection(np.asarray(rows))
            parts.append(xp.sum(xp.take(margin, xp.asarray(hit), axis=1), axis=1))
        return shift + xp.stack(parts, axis=1)

    def parameter_shifts(self, rows):
        shift = super().parameter_shifts(rows)
        select, hit = self._margin_selection(rows)
        if hit.size:
            xp = self.xp
            shift = (
                shift + xp.take(self.solver.margin_shifts(), xp.asarray(hit), axis=1) @ select.T
            )
        return shift

    def change_shifts(self, objectives):
        # the smoothed loss's gradients are not the hinge's: no changed objectives
        return RemovalModel.change_shifts(self, objectives)

    def for_rows(self, state):
        # the KKT system couples the margin rows of the whole table
        return RemovalModel.for_rows(self, state)

    def own_output_shifts(self):
        # margin rows move through the KKT system, not through leverages
        return RemovalModel.own_output_shifts(self)

    def feature_influence(self, query, rows, outputs, n_features):
        return RemovalModel.feature_influence(self, query, rows, outputs, n_features)


class RowSpaceRemoval(FirstOrderRemoval):
    """Influence of a kernel model with ``H^{-1}`` applied in row space
    (:class:`~skinfluence.solvers.RowSpaceInverse`): the training rows'
    outputs respond to ``-H^{-1} g_j`` of a test row by
    ``Phi H^{-1} phi(x_j) t_j``, paired with ``u_i``. Nothing
    ``n_train x n_params`` exists, so parameter shifts are not available."""

    name = "influence"

    def _materialize(self, grads) -> bool:
        return False  # influence comes from the training outputs' responses

    def test_factors(self, query, rows):
        # (n_train, K, m): responses to the test rows' kernel columns, per output
        sub, Y, z = query.at(rows, self.state.theta)
        T = query.function.gradient(Y, z)
        E = self.solver.responses(sub.blocks[0].T.dense())
        return -E[:, None, :] * T.T[None, :, :]

    def training_block(self, factors, rows, out=None):
        grads = self.row_gradients.take(rows)
        return self.xp.sum(grads.U[:, :, None] * factors[rows, ...], axis=1)

    def parameter_shifts(self, rows):
        raise NotAvailableError(
            "the parameters of a kernel model explained in row space are implicit "
            "(the feature map is never formed), so parameter-space quantities "
            "(influence_params, influence_features) are not available. Use "
            "solver='exact' (kernel features, O(n^2) memory) for them."
        )

    def feature_influence(self, query, rows, outputs, n_features):
        return self.parameter_shifts(rows)

    def group_shifts(self, groups):
        return RemovalModel.group_shifts(self, groups)

    def change_shifts(self, objectives):
        return RemovalModel.change_shifts(self, objectives)

    def for_rows(self, state):
        # the test factors are responses of all training rows' outputs
        return RemovalModel.for_rows(self, state)

    def _leverages_cheap(self) -> bool:
        return True

    def _leverages_of(self, idx):
        """``M_i = h_i I`` of the rows ``idx``: their responses to their own
        kernel columns."""
        xp = self.xp
        idx = np.asarray(idx)
        train = self.state.design.blocks[0]
        h = np.empty(idx.size)
        for part in self.budget.slices(idx.size, 6 * self.n_train):
            chosen = idx[part]
            E = to_numpy(self.solver.responses(train.take_rows(chosen).T.dense()))
            h[part] = E[chosen, np.arange(chosen.size)]
        K = self.state.design.n_outputs
        return asarray(h, xp)[:, None, None] * xp.eye(K, dtype=xp.float64)[None, :, :]

    def _compute_leverages(self):
        """``M_i = h_i I`` with ``h_i = phi_i^T H^{-1} phi_i``: the responses to
        the training rows' own kernel columns, a bounded block at a time (one
        row-space solve per training row: ``O(n)`` solves in all)."""
        xp = self.xp
        n, K = self.n_train, self.state.design.n_outputs
        train = self.state.design.blocks[0]
        h = np.empty(n)
        # conjugate gradients hold about five n x b arrays per block of b rows
        for rows in self.budget.slices(n, 6 * n):
            E = self.solver.responses(train.take_rows(rows).T.dense())
            h[rows] = E[np.arange(rows.start, rows.stop), np.arange(rows.stop - rows.start)]
        return asarray(h, xp)[:, None, None] * xp.eye(K, dtype=xp.float64)[None, :, :]


class RowSpaceNewtonRemoval(RowSpaceRemoval):
    r""":class:`NewtonRemoval` for kernel models in row space.

    The leverage correction ``u~_i = (I - D_i M_i)^{-1} u_i`` (``M_i = h_i
    I``) needs one row-space solve per training row for ``h_i``. It is
    applied per block of the rows asked for, each ``h_i`` computed once:
    ``influence(..., rows=top)`` costs ``len(top)`` solves, not ``n`` --
    the leverage-corrected effects of the most influential rows of a large
    kernel ridge at the cost of a first-order ranking. Quantities over every
    row (self-influence, leave-one-out losses) compute them all. Models with
    a low-rank part in their row gradients (class reweighting) are corrected
    up front, as :class:`NewtonRemoval` does.
    """

    name = "newton"
    _lazy = False

    def _prepare_gradients(self, grads):
        self._leverage_rows = np.full(self.n_train, np.nan)
        if grads.coef is not None:
            return newton_row_gradients(self, grads)
        self._lazy = True
        return grads

    def training_block(self, factors, rows, out=None):
        if not self._lazy:
            return super().training_block(factors, rows, out)
        U = self._corrected_U(rows)
        return self.xp.sum(U[:, :, None] * factors[rows, ...], axis=1)

    def own_output_shifts(self):
        if not self._lazy:
            return super().own_output_shifts()
        U = self._corrected_U(slice(0, self.n_train))
        return self.xp.matmul(self.leverages(), U[:, :, None])[:, :, 0]

    def _corrected_U(self, rows):
        """``u~_i`` of ``rows`` (a slice or indices), (n_rows, K)."""
        xp = self.xp
        idx = np.arange(self.n_train)[rows] if isinstance(rows, slice) else np.asarray(rows)
        h = asarray(self._row_leverages(idx), xp)
        U = self.row_gradients.take(rows).U
        eye = xp.eye(U.shape[1], dtype=U.dtype)
        D = xp.take(self.state.D, xp.asarray(idx), axis=0)
        return leverage_corrected(U, D, h[:, None, None] * eye[None, :, :], xp, stacklevel=7)

    def _row_leverages(self, idx):
        """``h_i`` of the training rows ``idx``, solved for once each."""
        known = self._leverage_rows
        missing = np.unique(idx[np.isnan(known[idx])])
        if missing.size:
            known[missing] = to_numpy(self._leverages_of(missing))[:, 0, 0]
        return known[idx]

    def _compute_leverages(self):
        xp = self.xp
        h = asarray(self._row_leverages(np.arange(self.n_train)), xp)
        eye = xp.eye(self.state.design.n_outputs, dtype=xp.float64)
        return h[:, None, None] * eye[None, :, :]

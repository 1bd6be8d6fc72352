r"""Removal models that find the parameters without row ``i`` themselves and
evaluate the test function there.

With ``Delta_i`` the parameter change of removing row ``i``, the influence is

.. math::  \mathcal{I}[j, i] = -\big(L(z_j + A_j \Delta_i) - L(z_j)\big),

the test function at the refitted outputs, not its linearisation:

* :class:`PathRemoval` -- hinge-type models: the decremental solution path
  gives the exact ``Delta_i`` (:class:`~skinfluence.solvers._decremental.DecrementalPath`).
* :class:`FirstSegmentRemoval` -- the path's first segment for hinge
  models, extrapolated and linearised (the first-order active set, exact
  at degenerate vertices; kernel models in row space).
* :class:`NewtonRefitRemoval` -- smooth models: Newton iterations on the
  leave-one-out objective to its optimum.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._backend import asarray, take_rows, to_numpy
from ..objectives._objective import relative_gradient
from ..solvers import SOLVERS, HessianOperator, SolverReport
from ._base import RemovalModel, effect_of_shifts
from ._linearised import check_margin_set


class ParameterShiftRemoval(RemovalModel):
    """Influence from explicit parameter changes ``Delta_i`` of a block of rows."""

    #: evaluate the test function at the shifted outputs (else linearise it)
    exact = True

    def test_factors(self, query, rows):
        return query.evaluated(rows, self.state.theta)

    def training_width(self, test_width):
        return max(test_width, self.state.n_params)  # a block forms its parameter changes

    def training_block(self, factors, rows, out=None):
        return effect_of_shifts(factors, self.parameter_shifts(rows), self.exact)

    def self_influence(self, loss):
        if not self.exact:
            return super().self_influence(loss)
        Y, z = self.state.objective.targets, self.state.z
        return loss.value(Y, self.leave_one_out_outputs()) - loss.value(Y, z)


class PathRemoval(ParameterShiftRemoval):
    """The exact effect of each removal from a hinge-type fit, by the
    decremental solution path (one small KKT solve per active-set event).

    Parameters
    ----------
    state, budget, stationarity
        See :class:`RemovalModel`.
    path : DecrementalPath
        Followed here for every row with a non-zero multiplier.
    """

    name = "path"

    def __init__(self, state, path, budget, stationarity):
        super().__init__(state, path, budget, stationarity)
        self.shifts = path.shifts()

    def parameter_shifts(self, rows):
        return asarray(self.shifts.take(rows), self.xp, self.state.theta.dtype)


class FirstSegmentRemoval(PathRemoval):
    """The first-order active-set estimate of a hinge-type fit: the
    decremental path's first segment of positive length (after the
    zero-length pivots of a degenerate vertex, where tied or duplicated rows
    trade multipliers), extrapolated to the full removal, with the test
    function linearised. It is the directional derivative of the optimum in
    the row's weight: exact for removals that keep the margin set, and
    well defined where the fitted multipliers are not unique. Used for
    kernel models in row space and for degenerate vertices on the design
    (:class:`~skinfluence.removal.ActiveSetRemoval` elsewhere)."""

    name = "influence"
    exact = False

    def __init__(self, state, path, budget, stationarity):
        super().__init__(state, path, budget, stationarity)
        # how far each removal moves the multipliers: the size of its effect,
        # read off the sparse changes without forming parameter changes
        sizes = np.sqrt(
            np.asarray(self.shifts.delta_nu.multiply(self.shifts.delta_nu).sum(axis=0)).ravel()
            + np.sum(self.shifts.delta_free**2, axis=0)
        )
        check_margin_set(path.first_event_, sizes, path.report, stacklevel=7)


class NewtonMinimiser:
    r"""Newton's method on a smooth objective, each step solved by an
    inverse-Hessian solver of :data:`~skinfluence.solvers.SOLVERS`.

    .. math::  \theta_{k+1} = \theta_k - H(\theta_k)^{-1} \nabla F(\theta_k),

    stopped when the relative stationarity (:meth:`ObjectiveState.stationarity`)
    is at most ``tol``. ``report`` describes the minimisation of the full
    objective (:meth:`NewtonRefitRemoval` polishes the fit with it) and
    counts the rows refitted since.
    """

    name = "newton_refit"

    def __init__(self, solver="exact", solver_options=None, damping=0.0, tol=1e-12, max_iter=50):
        self.solver = solver
        self.solver_options = dict(solver_options or {})
        self.damping = float(damping)
        self.tol = float(tol)
        self.max_iter = int(max_iter)
        self.report = SolverReport(self.name)

    def newton_step(self, state, gradient):
        """``H(theta)^{-1} gradient`` with the objective's Hessian at ``state``."""
        operator = HessianOperator(state, self.damping)
        inverse = SOLVERS[self.solver](operator, **self.solver_options)
        return inverse.solve(gradient[:, None])[:, 0]

    @staticmethod
    def _line_search(objective, state, gradient, step, shrink=0.5, max_halvings=30):
        """Backtracking (Armijo) on ``F``: the full step where it decreases
        ``F`` enough, else halved. Far from the optimum (a relabelled row
        the model was sure about) the pure Newton step of a logistic loss
        can overshoot and diverge."""
        xp = state.xp
        value = objective.value(state.theta)
        slope = float(xp.sum(gradient * step))  # decrease along -step
        t = 1.0
        for _ in range(max_halvings):
            candidate = state.theta - t * step
            if objective.value(candidate) <= value - 1e-4 * t * slope:
                break
            t *= shrink
        return objective.at(state.theta - t * step), t * step

    def minimise(self, objective, theta) -> tuple[object, SolverReport]:
        """Newton iterations with a backtracking line search from ``theta``:
        ``(theta*, report)``."""
        report = SolverReport(self.name)
        state = objective.at(theta)
        for iteration in range(self.max_iter + 1):
            residual = state.stationarity()
            report.iterations, report.residual = iteration, residual
            if residual <= self.tol:
                return state.theta, report
            if iteration == self.max_iter:
                break
            gradient = state.gradient()
            step = self.newton_step(state, gradient)
            state, step = self._line_search(objective, state, gradient, step)
            if _norm(step) <= 1e-14 * (1.0 + _norm(state.theta)):
                # a step at rounding level: nothing left to gain (least squares
                # is solved by the first step)
                report.iterations, report.residual = iteration + 1, state.stationarity()
                return state.theta, report
        report.converged = False
        return state.theta, report


class NewtonChangeStep:
    r"""One Newton direction from the fitted parameters towards the optimum of
    a changed objective ``F'`` (rows removed, labels changed), with its length
    set by an exact line search on ``F'``:

    .. math::

        d = -H'(\theta)^{-1} \big(\nabla F'(\theta) - \nabla F(\theta)\big),
        \qquad
        \Delta = t^* d, \quad t^* = \arg\min_t F'(\theta + t d).

    Subtracting ``grad F`` keeps the fit's own tolerance out of the step;
    for least squares ``t* = 1`` and the step is the exact change. The line
    search costs a few gradient evaluations of ``F'`` and no further solve:
    removing a tenth of a logistic regression's rows moves the curvature
    enough for the pure step (``t = 1``) to miss the refitted effect by up to
    1.3x along an otherwise right direction (``benchmarks/bench_groups.py``).
    Each call also returns the relative gradient of ``F'`` left after the
    step (about 0 when one step reaches the optimum).

    Parameters
    ----------
    state : ObjectiveState
        The full objective at the fitted parameters.
    minimiser : NewtonMinimiser
        Solves the step.
    """

    #: relative gradient (:func:`relative_gradient`) left after the step
    #: above which the step is reported as far from the changed optimum
    tol = 1e-2
    #: the line search stops when the slope ``phi'(t)`` is this fraction of
    #: ``|phi'(0)|``, or after ``max_evaluations`` gradients
    slope_tol = 1e-6
    max_evaluations = 20

    def __init__(self, state, minimiser):
        self.state = state
        self.minimiser = minimiser
        self.gradient = state.gradient()

    def __call__(self, objective):
        """``(Delta, residual)`` for the changed objective ``objective``."""
        theta = self.state.theta
        changed = objective.at(theta)
        leftover = changed.gradient() - self.gradient
        direction = -self.minimiser.newton_step(changed, leftover)
        t, after = self._minimise_along(objective, direction, self._dot(leftover, direction))
        residual = relative_gradient(after.gradient() - self.gradient, after.design, _sizes(after))
        return t * direction, residual

    def _dot(self, a, b) -> float:
        return float(self.state.xp.sum(a * b))

    def _minimise_along(self, objective, direction, slope_at_0):
        r"""``(t*, state at theta + t* d)``: the root of
        ``phi'(t) = (grad F'(theta + t d) - grad F(theta)) . d``.

        ``F'`` is convex, so ``phi'`` increases; ``phi'(0) < 0`` along a
        Newton direction. The root is bracketed (doubling ``t`` while
        ``phi' < 0``) and found by regula falsi with the Illinois
        modification, which keeps the bracket and converges superlinearly.
        """
        theta = self.state.theta

        def slope(t):
            state = objective.at(theta + t * direction)
            return self._dot(state.gradient() - self.gradient, direction), state

        enough = self.slope_tol * abs(slope_at_0)
        lo, s_lo = 0.0, slope_at_0
        hi = 1.0
        s_hi, at_hi = slope(hi)
        evaluations = 1
        if s_lo >= 0 or abs(s_hi) <= enough:
            return hi, at_hi  # no descent to search along, or t = 1 is the minimum
        while s_hi < 0 and evaluations < self.max_evaluations:
            lo, s_lo, hi = hi, s_hi, 2.0 * hi
            s_hi, at_hi = slope(hi)
            evaluations += 1
        best = (hi, s_hi, at_hi)
        side = 0
        while evaluations < self.max_evaluations and abs(best[1]) > enough and s_hi > s_lo:
            t = (lo * s_hi - hi * s_lo) / (s_hi - s_lo)
            s_t, at_t = slope(t)
            evaluations += 1
            best = (t, s_t, at_t)
            if s_t < 0:
                lo, s_lo = t, s_t
                if side == -1:
                    s_hi /= 2.0  # Illinois: halve the stale end's slope
                side = -1
            else:
                hi, s_hi = t, s_t
                if side == 1:
                    s_lo /= 2.0
                side = 1
        return best[0], best[2]


class ModifiedData:
    """Objectives of the same estimator on modified training data, built by
    its spec (class weights, penalty shares and ``1/n`` recomputed).

    Parameters
    ----------
    spec : ModelSpec
    X : array or sparse matrix
        Training features in the work namespace.
    y : ndarray
        Training targets as given (labels for classifiers).
    sample_weight : ndarray or None
    xp : array namespace
    """

    def __init__(self, spec, X, y, sample_weight, xp):
        self.spec, self.X, self.y, self.sample_weight, self.xp = spec, X, y, sample_weight, xp
        self.n = X.shape[0]

    def keeping(self, keep):
        """The objective on the rows ``keep`` (indices)."""
        sw = None if self.sample_weight is None else self.sample_weight[keep]
        return self.spec.objective(take_rows(self.X, keep, self.xp), self.y[keep], sw, self.xp)

    def without(self, rows):
        """The objective without the rows ``rows``."""
        return self.keeping(np.setdiff1d(np.arange(self.n), rows))

    def relabelled(self, row, label):
        """The objective with row ``row``'s target replaced by ``label``."""
        y = self.y.astype(np.result_type(self.y.dtype, np.asarray(label).dtype), copy=True)
        y[row] = label
        return self.spec.objective(self.X, y, self.sample_weight, self.xp)


class NewtonRefitRemoval(ParameterShiftRemoval):
    r"""The leave-one-out optimum of a smooth objective by Newton's method.

    For each removed row ``i``, Newton iterations (:class:`NewtonMinimiser`)
    on ``F_{-i}(theta) = F(theta) - F_i(theta)`` -- the objective the same
    estimator minimises on the other rows: class weights, penalty shares and
    ``1/n`` scalings recomputed without row ``i`` -- started at the fitted
    optimum. The first iteration is the ``"newton"`` approximation; the
    next ones make it exact for any smooth convex objective. The fitted
    parameters are first polished the same way on the full objective, so
    that ``Delta_i = theta_{-i} - theta`` measures the removal, not the
    fit's tolerance. Each iteration costs one Hessian solve (``O(n p^2 +
    p^3)`` with ``"exact"``), so this is for checking chosen rows:
    ``influence(..., rows=...)``, or small tables.

    Parameters
    ----------
    state, budget
        See :class:`RemovalModel`.
    data : ModifiedData
        Builds the objective without a row, as the estimator defines it.
    minimiser : NewtonMinimiser
    """

    name = "refit"

    def __init__(self, state, data, budget, minimiser):
        super().__init__(state, minimiser, budget, state.stationarity())
        self.data = data
        # the optimum of the full objective, from which every removal is measured
        self.optimum, polish = minimiser.minimise(state.objective, state.theta)
        minimiser.report.iterations = polish.iterations
        minimiser.report.residual = polish.residual
        minimiser.report.converged = polish.converged
        minimiser.report.details["rows_refitted"] = 0

    def parameter_shifts(self, rows):
        if isinstance(rows, slice):
            rows = np.arange(rows.start, rows.stop)
        rows = np.asarray(to_numpy(rows), dtype=np.int64)
        if rows.size == 0:
            return self.xp.zeros((self.state.n_params, 0), dtype=self.state.theta.dtype)
        # built one at a time: each objective holds a copy of the training rows
        objectives = (self.data.without([r]) for r in rows.tolist())
        shifts = self._minimise_each(objectives, "without row(s)", rows.tolist())
        self.solver.report.details["rows_refitted"] += len(rows)
        return shifts

    group_exact = True

    def change_shifts(self, objectives):
        """Newton iterations to the optimum of each changed objective."""
        return self._minimise_each(objectives, "on change(s) (in the order given)")

    def _minimise_each(self, objectives, what, names=None):
        """``theta' - theta`` for each objective, (n_params, r). Warnings of
        the per-objective solves are said once each, and the objectives whose
        iterations did not converge are named together."""
        minimiser = self.solver
        shifts, failed = [], []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for k, objective in enumerate(objectives):
                theta, report = minimiser.minimise(objective, self.optimum)
                if not report.converged:
                    failed.append((k if names is None else names[k], report.residual))
                shifts.append(theta - self.optimum)
        _say_once(caught)
        if failed:
            worst = max(res for _, res in failed)
            warnings.warn(
                f"Newton iterations {what} {[k for k, _ in failed][:10]} stopped after "
                f"{minimiser.max_iter} iterations at a relative gradient of {worst:.2g} "
                f"(tol {minimiser.tol:.0e}); their effects are not converged. Pass "
                "damping>0 or check the model's convergence.",
                RuntimeWarning,
                stacklevel=4,
            )
        return self.xp.stack(shifts, axis=1)


def _sizes(state):
    """Per-row loss-derivative sizes, the scale of :func:`relative_gradient`."""
    xp = state.xp
    return xp.sqrt(xp.sum(state.U * state.U, axis=1))


def _norm(v) -> float:
    return float(np.linalg.norm(to_numpy(v)))


def _say_once(caught):
    """Re-issue each distinct warning of the per-row solves once, not per row."""
    seen = set()
    for w in caught:
        key = (w.category, str(w.message))
        if key not in seen:
            seen.add(key)
            warnings.warn(w.message, w.category, stacklevel=5)

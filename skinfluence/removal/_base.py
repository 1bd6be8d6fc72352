r"""What every removal model offers, and what it is built from.

A *removal model* answers one question for a fitted objective
``F = sum_i F_i + penalty``: what does removing training row ``i`` (refitting
without its term ``F_i``) do to the parameters, to the training rows' own
outputs, and to a test function ``L(z_j)`` of test row ``j``? Each way of
answering -- the first-order influence function, one Newton step on the
leave-one-out objective, the hinge's active set, the decremental path,
Newton iterations to the leave-one-out optimum -- is one subclass of
:class:`RemovalModel`; :mod:`._policy` chooses one per fit.

The quantities, with ``Delta_i`` the parameter change of removing row ``i``
(first order: ``Delta_i = H^{-1} g_i``):

=====================  =====================================================
``parameter_shifts``   ``Delta_i`` for chosen rows, (n_params, n_rows)
``own_output_shifts``  ``A_i Delta_i``: each row's own outputs, (n_train, K)
``training_block``     ``-(change of L(z_j))``: the influence of a block of
                       training rows on the test rows behind ``factors``
``self_influence``     the row's own loss increase
=====================  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .._backend import block_slices, get_namespace, rows_per_block


class NotAvailableError(ValueError):
    """The chosen removal model does not offer this quantity; the message
    says which parameters do."""


@dataclass(frozen=True)
class BlockBudget:
    """The one home of memory-block sizing.

    Parameters
    ----------
    max_bytes : int
        Memory of one block of working values.
    itemsize : int
        Bytes per working float (8 for float64, 4 for float32).
    """

    max_bytes: int
    itemsize: int

    def rows(self, n_cols: int) -> int:
        """Rows of ``n_cols`` working floats that fit one block (at least 1)."""
        return max(1, rows_per_block(n_cols, self.max_bytes, self.itemsize))

    def slices(self, n: int, n_cols: int):
        """``slice`` objects covering ``n`` rows of ``n_cols`` floats each."""
        return block_slices(n, self.rows(n_cols))

    @property
    def kernel_bytes(self) -> int:
        """Memory of one block of kernel values (kernel models in row space)."""
        return max(1, self.max_bytes // 8)

    def fits(self, n_values: int) -> bool:
        """Whether ``n_values`` working floats fit one block."""
        return n_values * self.itemsize <= self.max_bytes


@dataclass(frozen=True)
class TestQuery:
    """Test rows as a removal model sees them: their design, the test
    function ``L`` (a pointwise loss or prediction) and its targets ``Y``."""

    design: Any
    function: Any
    targets: Any

    @property
    def n_samples(self) -> int:
        return self.design.n_samples

    def at(self, rows, theta):
        """``(design, targets, outputs)`` of the test rows ``rows`` (a slice)."""
        sub = self.design.take(rows)
        return sub, self.targets[rows, ...], sub.predict(theta)

    def evaluated(self, rows, theta):
        """``(design, targets, outputs, function)`` of the test rows ``rows``:
        what :func:`effect_of_shifts` evaluates parameter changes on."""
        return (*self.at(rows, theta), self.function)

    def gradients(self, rows, theta):
        """``grad_theta L(z_j)`` for the test rows ``rows``: (n_params, b)."""
        sub, Y, z = self.at(rows, theta)
        return sub.expand(self.function.gradient(Y, z))


def effect_of_shifts(factors, shifts, exact: bool):
    """``-(L(z_j + A_j Delta) - L(z_j))`` for parameter changes ``shifts``
    (n_params, r) and the test rows behind ``factors`` (``(design, targets,
    outputs, function)``): (r, m). With ``exact=False`` the test function is
    linearised: ``-grad L(z_j) . A_j Delta``."""
    sub, Y, z, func = factors
    xp = get_namespace(z)
    dZ = xp.permute_dims(sub.forward(shifts), (2, 0, 1))  # (r, m, K)
    if not exact:
        return -xp.sum(dZ * func.gradient(Y, z)[None, ...], axis=2)
    r, m, K = dZ.shape
    Z = xp.reshape(z[None, ...] + dZ, (r * m, K))
    Yr = xp.reshape(xp.broadcast_to(Y[None, ...], (r, *Y.shape)), (r * m, *Y.shape[1:]))
    after = xp.reshape(func.value(Yr, Z), (r, m))
    return -(after - func.value(Y, z)[None, :])


class RemovalModel:
    """One way of computing what removing training rows does.

    Subclasses implement :meth:`test_factors` and :meth:`training_block`
    (the influence matrix, block by block) and :meth:`parameter_shifts`;
    the others have defaults in terms of these.

    Parameters
    ----------
    state : ObjectiveState
        The objective at the fitted parameters.
    solver : object with a ``report``
        What solves the model's linear systems (an inverse Hessian, the
        decremental path, ...).
    budget : BlockBudget
    stationarity : float
        How far the fitted parameters are from the optimum this model assumes
        (0 at an exact optimum; see :meth:`ObjectiveState.stationarity`).
    """

    #: the approximation's name, as passed to ``InfluenceExplainer``
    name: ClassVar[str] = "base"

    def __init__(self, state, solver, budget: BlockBudget, stationarity: float):
        self.state = state
        self.solver = solver
        self.budget = budget
        self.stationarity = float(stationarity)
        self.xp = state.xp
        self.n_train = state.design.n_samples

    # --- the influence matrix ------------------------------------------
    def test_factors(self, query: TestQuery, rows: slice):  # pragma: no cover - abstract
        """What the test rows ``rows`` contribute, computed once per test block."""
        raise NotImplementedError

    def training_width(self, test_width: int) -> int:
        """Working floats per training row of a block, for ``test_width``
        test columns (test rows times outputs)."""
        return test_width

    def training_block(self, factors, rows, out=None):  # pragma: no cover - abstract
        """Influence of training rows ``rows`` (a slice) on the test rows behind
        ``factors``, transposed: (n_rows, m); written into ``out`` if given."""
        raise NotImplementedError

    # --- per training row ----------------------------------------------
    def parameter_shifts(self, rows):  # pragma: no cover - abstract
        """``Delta_i``: the parameter change of removing each of ``rows``
        (indices or a slice), (n_params, n_rows)."""
        raise NotImplementedError

    def own_output_shifts(self):
        """``A_i Delta_i``: how removing row ``i`` moves its own raw outputs,
        (n_train, K)."""
        xp, state = self.xp, self.state
        out = []
        for rows in self.budget.slices(self.n_train, 2 * state.n_params):
            out.append(state.design.take(rows).rowwise(self.parameter_shifts(rows).T))
        if not out:  # no rows
            return xp.zeros((0, state.design.n_outputs), dtype=state.theta.dtype)
        return xp.concat(out, axis=0)

    def for_rows(self, state):
        """This model over the training rows of ``state``, a chunk of the
        training table (see :meth:`FirstOrderRemoval.for_rows`)."""
        raise NotAvailableError(
            f"approximation={self.name!r} here couples all training rows, so it cannot run "
            "one chunk of rows at a time; chunked (Dask) tables support "
            "approximation='influence' and 'newton' for smooth linear models."
        )

    def leave_one_out_outputs(self):
        """``z_i + A_i Delta_i``: each row's outputs without it, (n_train, K)."""
        return self.state.z + self.own_output_shifts()

    def self_influence(self, loss):
        """Increase of each row's own ``loss`` when it is removed, (n_train,).

        First order: the loss gradient of row ``i`` is ``A_i^T t_i``, so the
        increase is ``t_i . (A_i Delta_i)``."""
        T = loss.gradient(self.state.objective.targets, self.state.z)
        return self.xp.sum(T * self.own_output_shifts(), axis=1)

    #: whether group effects evaluate the test function at the shifted outputs
    #: (else its linearisation: the sum of the rows' influences)
    group_exact: ClassVar[bool] = False

    #: builds objectives on modified training data (:class:`ModifiedData`),
    #: for the models that solve changed objectives
    data = None

    def group_shifts(self, groups):
        """``Delta_G``: the parameter change of removing each group of rows
        at once, (n_params, n_groups); ``groups`` is a list of index arrays."""
        if self.data is None:
            self.change_shifts([])  # raises: not available
        # a generator: each objective holds a copy of the training rows
        return self.change_shifts(self.data.without(rows) for rows in groups)

    def relabel_shifts(self, rows, labels):
        """The parameter change of giving row ``rows[k]`` the target
        ``labels[k]`` (one change at a time), (n_params, n_rows)."""
        if self.data is None:
            self.change_shifts([])  # raises: not available
        pairs = zip(rows, labels, strict=True)
        return self.change_shifts(self.data.relabelled(r, label) for r, label in pairs)

    def change_shifts(self, objectives):
        """The parameter change to the optimum of each changed objective
        ``F'`` (rows removed, labels changed; an iterable, consumed once),
        (n_params, n_changes)."""
        raise NotAvailableError(
            f"group removals and relabelling are not available with approximation="
            f"{self.name!r} for this model; they need a smooth objective in parameter "
            "space (approximation='influence', 'newton' or 'refit'; hinge='smoothed' for "
            "SVMs; solver='exact' for kernel models)."
        )

    def leverages(self):
        """``M_i = A_i H^{-1} A_i^T`` per training row, (n_train, K, K)."""
        raise NotAvailableError(
            f"leverages are not available with approximation={self.name!r} here; they "
            "need an inverse Hessian in parameter space (approximation='influence' or "
            "'newton' with solver='exact' or 'cg')."
        )

    def feature_influence(self, query: TestQuery, rows, outputs, n_features: int):
        """Perturbation influence ``I_pert`` (Koh & Liang, Eq. 5) of the
        training rows ``rows`` through the ``n_features`` input features of
        the outputs ``outputs``: (n_test, n_rows, n_features)."""
        raise NotAvailableError(
            "influence_features is the first-order derivative of a smooth objective: it "
            f"is not available with approximation={self.name!r}. Use "
            "approximation='influence' (and hinge='smoothed' for SVMs)."
        )

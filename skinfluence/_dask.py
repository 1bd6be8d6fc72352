r"""Training rows held by Dask: the same removal model, one chunk of rows at a time.

A smooth linear model's objective is a sum over rows plus a penalty,

.. math::  F(\theta) = \sum_i w_i\, l(y_i, A_i\theta)
           + \tfrac12 \big(\lambda_0 + \textstyle\sum_i s_i\big)\, \theta^T R \theta ,

so everything that touches the ``n x p`` features is a sum over chunks of
rows or a function of one row. This module runs the explainer's blocks over
the row chunks of a ``dask.array`` or ``dask.dataframe``:

* **fit** -- the per-row terms (encoded targets, weights ``w_i`` with the
  class weights of the *full* labels, shares ``s_i`` and their total) come
  from the spec's own :meth:`~ModelSpec.objective_terms` on the labels, the
  one ``O(n)`` thing gathered on the client. Each chunk's task rebuilds the
  objective over its rows with that global scaling and returns its part of
  ``sum_i A_i^T u_i`` (the gradient), ``sum_i A_i^T D_i A_i`` (the Hessian),
  the stationarity scale and, for ``class_weight="balanced"``, the class
  totals ``L_k``; they are summed in a tree on the workers. The client adds
  the penalty and factors the ``p x p`` Hessian with
  :class:`~skinfluence.solvers.ExactInverseHessian`.
* **per-row work** -- test factors ``-H^{-1} grad L(z_j)`` are solved once
  on the client; each chunk's task restricts the removal model to its rows
  (:meth:`FirstOrderRemoval.for_rows`) and computes its block of the
  influence matrix, its self-influence or leave-one-out outputs. Results are
  lazy Dask arrays chunked along the training rows; :func:`most_influential`
  keeps the top ``k`` per chunk and merges them on the client.

Dask is imported only here, and this module only when the training rows are
a Dask collection.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

from ._backend import asarray, astype, float_dtype, get_namespace, to_numpy
from ._compat import _check_sample_weight
from .objectives._objective import Objective
from .removal import BlockBudget, FirstOrderRemoval, NewtonRemoval, Setting, family, rule_for
from .removal._base import NotAvailableError
from .solvers import HessianOperator
from .solvers._exact import ExactInverseHessian

#: (family, space, approximation) -> the removal model run chunk by chunk;
#: the others couple all training rows (active sets, paths, refits)
CHUNKED = {
    ("smooth", "parameters", "influence"): FirstOrderRemoval,
    ("smooth", "parameters", "newton"): NewtonRemoval,
}

SUPPORTED = (
    "Dask input supports smooth linear models (LogisticRegression, LinearRegression, "
    "Ridge, RidgeClassifier, PoissonRegressor, HuberRegressor, SGDClassifier with a "
    "smooth loss, dask-ml's LogisticRegression and LinearRegression, or a Pipeline "
    "ending in one) with approximation='influence' or 'newton', "
    "solver='auto' or 'exact', device='cpu' or 'auto' and dtype='float64'"
)

#: chunks summed per task of the fit's tree reduction
FAN_IN = 8


def _fail(what: str):
    raise ValueError(f"{what}. {SUPPORTED}; fit on in-memory rows for the others.")


class ReducedHessianOperator(HessianOperator):
    """:class:`HessianOperator` of an objective whose rows' Hessian
    ``sum_i A_i^T D_i A_i`` was summed over chunks elsewhere (``data_hessian``);
    ``state`` (over no rows) supplies the penalty, the null space and the
    parameters."""

    def __init__(self, state, data_hessian, n_samples: int, damping: float = 0.0):
        super().__init__(state, damping)
        self.n_samples = int(n_samples)
        self._data_hessian = data_hessian

    def dense(self):
        H = self._data_hessian + self._solver_side(self.state.hessian())  # + the penalty
        xp = self.xp
        if self.damping:
            H = H + self.damping * xp.eye(self.n_params, dtype=H.dtype)
        if self.null_space is not None:
            H = H + self.null_space @ self.null_space.T
        return H

    # the products below are of the p x p matrix: the rows are on the workers
    def matvec(self, V):
        return self.dense() @ V

    def diagonal(self):
        return self.xp.linalg.diagonal(self.dense())

    def upper_bound(self) -> float:
        return float(self.xp.max(self.xp.sum(self.xp.abs(self.dense()), axis=1)))


def _gather(a):
    """A Dask collection computed to memory (labels, weights, test rows)."""
    return a.compute() if hasattr(a, "__dask_graph__") else a


def _on_workers(values: list) -> list:
    """``values`` scattered to the workers of the current ``distributed``
    client (futures), or as they are without one: the chunks' per-row terms
    (``O(n)`` in all) then enter each computation's graph by reference
    instead of travelling with it through the scheduler."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # no distributed, or no client: a local scheduler
        return values
    if getattr(dask.base.get_scheduler(), "__self__", None) is not client:
        return values  # another scheduler is configured (dask.config.set(scheduler=...))
    return client.scatter(values)


def _is_frame(X) -> bool:
    return hasattr(X, "map_partitions") and hasattr(X, "columns")


def _row_chunks(X):
    """``(parts, lengths)``: one Dask delayed object per chunk of rows and
    their row counts."""
    if _is_frame(X):
        # a DataFrame's partitions have no known lengths: count them (one pass)
        lengths = tuple(int(v) for v in X.map_partitions(len).compute())
        return list(X.to_delayed()), lengths
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X is a {type(X).__name__}; pass a dask.array.Array or dask.dataframe.DataFrame."
        )
    if X.ndim != 2:
        raise ValueError(f"X must be 2-dimensional; got a Dask array of shape {X.shape}.")
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            "X has unknown chunk sizes along its rows (after boolean indexing or "
            "from a DataFrame). Call X.compute_chunk_sizes() first, or build it with "
            "df.to_dask_array(lengths=True)."
        )
    if len(X.chunks[1]) != 1:
        raise ValueError(
            f"X is chunked along its columns ({len(X.chunks[1])} column chunks); influence "
            "needs whole rows in each chunk. Rechunk with X.rechunk({1: -1})."
        )
    return list(X.to_delayed()[:, 0]), tuple(int(c) for c in X.chunks[0])


class _ChunkObjective:
    """What a task needs to rebuild the objective over one chunk of rows with
    the full data's scaling (picklable, shipped once per computation)."""

    def __init__(self, spec, feature_map, final, theta, dtype_name, total_shares):
        self.spec = spec
        self.feature_map = feature_map
        self.final = final
        self.theta = theta
        self.dtype_name = dtype_name
        self.total_shares = total_shares

    def state(self, X, terms, totals=None):
        """The objective over the rows ``X`` (a chunk as given: array, sparse
        matrix or DataFrame) at the fitted parameters."""
        from ._explainer import _features

        Xf = _features(X, self.feature_map, self.final)
        xp = get_namespace(np.empty(0))
        dtype = float_dtype(self.dtype_name, xp)
        n = terms["weights"].shape[0]
        if Xf.shape[0] != n:
            raise ValueError(
                f"a chunk of X has {Xf.shape[0]} rows where {n} were counted; X changed "
                "between fit and this computation (pass the same rows)."
            )
        X_work = astype(Xf, dtype, xp)
        terms = dict(terms)
        if terms["reweighting"] is not None and totals is not None:
            terms["reweighting"] = terms["reweighting"].take(slice(None), totals)
        objective = Objective(
            design=self.spec.make_design(X_work, xp), total_shares=self.total_shares, **terms
        )
        return objective.at(asarray(self.theta, xp, dtype))


def _chunk_terms(terms, rows):
    """The per-row objective terms of the rows ``rows`` (a slice)."""
    out = dict(terms)
    for name in ("targets", "weights", "shares"):
        if terms[name] is not None:
            out[name] = terms[name][rows, ...]
    if terms["reweighting"] is not None:
        out["reweighting"] = terms["reweighting"].take(rows)
    return out


# --- tasks -------------------------------------------------------------------
def _fit_sums(ctx, X, terms):
    """A chunk's part of the sums the fit needs."""
    state = ctx.state(X, terms)
    rw = state.objective.reweighting
    totals = None if rw is None else to_numpy(rw.class_totals(state.design, state.U))
    return [
        to_numpy(state.data_gradient()),
        to_numpy(state.data_hessian()),
        state.gradient_scale(),
        totals,
    ]


def _add(*parts):
    return [None if p[0] is None else sum(p[1:], p[0]) for p in zip(*parts, strict=True)]


def _tree_sum(tasks):
    while len(tasks) > 1:
        tasks = [
            dask.delayed(_add, pure=True)(*tasks[i : i + FAN_IN])
            for i in range(0, len(tasks), FAN_IN)
        ]
    return tasks[0]


def _local(ctx, model, X, terms, totals):
    state = ctx.state(X, terms, totals)
    return state, model.for_rows(state)


def _influence_block(ctx, model, X, terms, totals, factors):
    state, local = _local(ctx, model, X, terms, totals)
    return to_numpy(local.training_block(factors, slice(0, state.design.n_samples))).T


def _self_influence(ctx, model, X, terms, totals):
    _, local = _local(ctx, model, X, terms, totals)
    return to_numpy(local.self_influence(ctx.spec.test_loss))


def _leave_one_out_outputs(ctx, model, X, terms, totals):
    _, local = _local(ctx, model, X, terms, totals)
    return to_numpy(local.leave_one_out_outputs())


def _leave_one_out_loss(ctx, model, X, terms, totals):
    state, local = _local(ctx, model, X, terms, totals)
    Z = local.leave_one_out_outputs()
    return to_numpy(ctx.spec.test_loss.value(state.objective.targets, Z))


def _training_decision(ctx, model, X, terms, totals):
    return to_numpy(ctx.state(X, terms, totals).z)


def _training_loss(ctx, model, X, terms, totals):
    state = ctx.state(X, terms, totals)
    return to_numpy(ctx.spec.test_loss.value(state.objective.targets, state.z))


def _top_of_chunk(ctx, model, X, terms, totals, factors, k, start):
    """The ``k`` largest and smallest influences of a chunk per test row."""
    from ._explainer import keep_top

    B = _influence_block(ctx, model, X, terms, totals, factors)
    idx = np.broadcast_to(np.arange(start, start + B.shape[1]), B.shape)  # a view
    hi = keep_top(None, idx, B, k)
    B *= -1.0  # in place: the block is this task's own
    return hi, keep_top(None, idx, B, k)


def _merge_tops(k, *tops):
    from ._explainer import keep_top

    hi = lo = None
    for (hi_idx, hi_val), (lo_idx, lo_val) in tops:
        hi = keep_top(hi, hi_idx, hi_val, k)
        lo = keep_top(lo, lo_idx, lo_val, k)
    return hi, lo


class ChunkedRows:
    """The training rows of an explainer fitted on a Dask collection: their
    chunks, per-row objective terms and the removal model over no rows."""

    def __init__(self, parts, lengths, terms, ctx, totals, model, dtype):
        self.parts = parts
        self.lengths = lengths
        self.starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
        self.terms = terms
        self.ctx = ctx
        self.totals = totals
        self.model = model
        self.dtype = dtype

    def _tasks(self, function, *extra, with_start=False):
        """One delayed call ``function(ctx, model, X, terms, totals, *extra)``
        per chunk, plus the chunk's first row if ``with_start``; the shared
        arguments enter the graph once."""
        shared = [dask.delayed(a, traverse=False) for a in (self.ctx, self.model, self.totals)]
        ctx, model, totals = shared
        extra = [dask.delayed(a, traverse=False) for a in extra]
        return [
            dask.delayed(function, pure=True)(
                ctx, model, part, terms, totals, *extra, *([int(start)] if with_start else [])
            )
            for part, terms, start in zip(self.parts, self.terms, self.starts[:-1], strict=True)
        ]

    def _stacked(self, tasks, shape, axis):
        """Lazy chunks of ``shape(length)`` joined along ``axis``."""
        blocks = [
            da.from_delayed(t, shape=shape(n), dtype=self.dtype)
            for t, n in zip(tasks, self.lengths, strict=True)
        ]
        return da.concatenate(blocks, axis=axis)

    def influence(self, explainer, X_test, y_test, target, rows):
        query = explainer._prepare_test(_gather(X_test), _gather(y_test), target)
        n_test = query.n_samples
        factors = self.model.test_factors(query, slice(0, n_test))
        out = self._stacked(self._tasks(_influence_block, factors), lambda n: (n_test, n), axis=1)
        if rows is not None:
            out = out[:, explainer._training_rows(_gather(rows))]
        return out

    def per_row(self, name: str):
        tasks = self._tasks(
            {
                "self_influence": _self_influence,
                "leave_one_out_loss": _leave_one_out_loss,
                "training_loss": _training_loss,
            }[name]
        )
        return self._stacked(tasks, lambda n: (n,), axis=0)

    def leave_one_out_decision(self):
        K = self.model.state.design.n_outputs
        return self._stacked(self._tasks(_leave_one_out_outputs), lambda n: (n, K), axis=0)

    def training_decision(self):
        """The raw outputs ``A_i theta`` of the fitted model, ``(n, n_outputs)``
        (the in-memory ``state_.z``)."""
        K = self.model.state.design.n_outputs
        return self._stacked(self._tasks(_training_decision), lambda n: (n, K), axis=0)

    def most_influential(self, explainer, X_test, y_test, k: int, target):
        """The top ``k`` (checked by the explainer) of each direction."""
        from ._explainer import ranked_bunch

        query = explainer._prepare_test(_gather(X_test), _gather(y_test), target)
        factors = self.model.test_factors(query, slice(0, query.n_samples))
        tops = self._tasks(_top_of_chunk, factors, k, with_start=True)
        while len(tops) > 1:  # a tree of merges: the client gets n_test x k per direction
            tops = [
                dask.delayed(_merge_tops, pure=True)(k, *tops[i : i + FAN_IN])
                for i in range(0, len(tops), FAN_IN)
            ]
        hi, lo = dask.compute(tops[0])[0]
        return ranked_bunch(hi, lo, explainer.training_index_)


def fit_chunked(explainer, X, y, sample_weight, spec, feature_map, final) -> None:
    """Fit ``explainer`` on the Dask collection ``X`` (see the module docstring)."""
    if explainer.device == "gpu":
        _fail("device='gpu' was passed with Dask input")
    if explainer.solver not in ("auto", "exact"):
        _fail(f"solver={explainer.solver!r} was passed with Dask input")
    if np.dtype(explainer.dtype) != np.float64:
        _fail(f"dtype={np.dtype(explainer.dtype).name!r} was passed with Dask input")
    if not spec.row_local:
        _fail(f"{type(final).__name__} is a kernel model, whose features couple all rows")
    setting = Setting(
        family(spec, hinge=explainer.hinge, space="parameters"),
        "parameters",
        explainer.approximation,
        False,
    )
    rule_for(setting, type(final).__name__, explainer.hinge)  # the in-memory refusals
    removal_class = CHUNKED.get((setting.family, setting.space, setting.approximation))
    if removal_class is None:
        _fail(
            f"{type(final).__name__} with approximation={explainer.approximation!r} and "
            f"hinge={explainer.hinge!r} is not supported on Dask input"
        )
    parts, lengths = _row_chunks(X)
    n = int(sum(lengths))
    # the labels (and a DataFrame's index labels, as in memory) in one pass
    y, index = dask.compute(y, X.index if _is_frame(X) else None)
    y = explainer._check_targets(y, n, spec, name="y")
    if spec.is_classifier and len(np.unique(y)) < 2:
        raise ValueError(
            "y has a single class; influence on a classifier needs the labels it "
            "was fitted on, with at least two classes."
        )
    if sample_weight is not None:
        sample_weight = _check_sample_weight(
            to_numpy(_gather(sample_weight)), np.empty((n, 0)), dtype=np.float64
        )
    xp = get_namespace(np.empty(0))
    dtype = float_dtype("float64", xp)
    # row-local specs read at most column statistics from the rows (dask-ml's
    # standardisation); a pipeline's transformers run on the chunks only
    spec = spec.prepared(X if feature_map is None else None)
    terms = spec.objective_terms(y, sample_weight, n, xp, dtype)
    total_shares = None if terms["shares"] is None else float(np.sum(terms["shares"]))
    theta = spec.theta()
    ctx = _ChunkObjective(spec, feature_map, final, theta, "float64", total_shares)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    chunk_terms = [
        _chunk_terms(terms, slice(a, b)) for a, b in zip(starts[:-1], starts[1:], strict=True)
    ]
    chunk_terms = _on_workers(chunk_terms)
    ctx_d = dask.delayed(ctx, traverse=False)
    sums = [
        dask.delayed(_fit_sums, pure=True)(ctx_d, part, t)
        for part, t in zip(parts, chunk_terms, strict=True)
    ]
    gradient, hessian, scale, totals = dask.compute(_tree_sum(sums))[0]
    # the objective over no rows, with the full data's scaling: the penalty,
    # the null space and the parameters the solver and test factors need
    empty_terms = _chunk_terms(terms, slice(0, 0))
    if totals is not None:
        empty_terms["reweighting"] = empty_terms["reweighting"].take(slice(None), totals)
    empty = Objective(
        design=spec.make_design(xp.zeros((0, spec.n_features), dtype=dtype), xp),
        total_shares=total_shares,
        **empty_terms,
    ).at(asarray(theta, xp, dtype))
    operator = ReducedHessianOperator(empty, asarray(hessian, xp), n, explainer.damping)
    solver = ExactInverseHessian(operator)
    stationarity = empty.stationarity_of(empty.gradient() + asarray(gradient, xp), scale)
    budget = BlockBudget(explainer.max_block_bytes, 8)
    model = removal_class(empty, solver, budget, stationarity)

    explainer.spec_ = spec
    explainer.xp_ = xp
    explainer._work_dtype = dtype
    explainer._budget = budget
    explainer.n_train_ = n
    explainer.objective_ = empty.objective
    explainer.state_ = empty
    explainer.removal_ = model
    explainer.solver_ = solver
    explainer.stationarity_ = model.stationarity
    explainer.feature_map_ = feature_map
    explainer.training_index_ = index
    explainer._X_features = None
    explainer._y = y
    explainer._sample_weight = sample_weight
    explainer._chunks = ChunkedRows(parts, lengths, chunk_terms, ctx, totals, model, np.float64)
    explainer._warn_if_not_optimal(final)


def not_available(name: str):
    """The error of an explainer method that needs the training rows in memory."""
    return NotAvailableError(
        f"{name} is not available for an explainer fitted on Dask input; there: influence, "
        "most_influential, self_influence, leave_one_out_loss, leave_one_out_decision and "
        "training_loss. Fit the explainer on in-memory rows for the others."
    )

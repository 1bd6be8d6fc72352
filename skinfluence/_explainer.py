"""The influence explainer: objective (per estimator family) composed with an
inverse-Hessian operator (per solver), over an array backend."""

from __future__ import annotations

import functools
import warnings
from numbers import Integral, Real
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike
from pandas import isna as pd_isna
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted
from sklearn_compat.utils.validation import check_array, validate_data

from ._backend import (
    asarray,
    astype,
    float_dtype,
    get_namespace,
    is_cupy,
    is_dask_collection,
    is_numpy,
    is_sparse,
    to_numpy,
)
from ._compat import HasMethods, Interval, Options, StrOptions, _check_sample_weight
from .objectives._registry import spec_for
from .removal import (
    APPROXIMATIONS,
    BlockBudget,
    FitContext,
    Setting,
    TestQuery,
    effect_of_shifts,
    family,
    row_space,
    rule_for,
)


class NotAtOptimumWarning(UserWarning):
    """The fitted parameters are not a stationary point of the training objective."""


#: a result array: NumPy for NumPy, pandas or SciPy input, else the input's
#: array-API namespace (CuPy stays on the GPU)
Array = Any
Target = Literal["loss", "prediction"]


def _numeric_targets(y, name):
    """A regressor's targets as floats, or a clear error."""
    try:
        return y.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be numeric for a regressor; got values of dtype {y.dtype} "
            f"({exc}). Pass the numeric targets the model was fitted on."
        ) from None


def split_pipeline(estimator):
    """``(feature map or None, final estimator)``; earlier pipeline steps are a
    fixed feature map. A ``FrozenEstimator`` is explained as the estimator it
    wraps."""
    estimator = _unfrozen(estimator)
    if isinstance(estimator, Pipeline):
        if len(estimator.steps) == 1:
            return None, estimator.steps[-1][1]
        return estimator[:-1], _unfrozen(estimator.steps[-1][1])
    return None, estimator


def _unfrozen(estimator):
    """The fitted estimator inside ``sklearn.frozen.FrozenEstimator``
    (scikit-learn >= 1.6), which keeps it fitted through ``clone``."""
    if type(estimator).__name__ == "FrozenEstimator" and hasattr(estimator, "estimator"):
        return estimator.estimator
    return estimator


def _resolve_namespace(device, X):
    """The array namespace the heavy work runs in."""
    if is_sparse(X) and (device == "gpu" or not sp.issparse(X)):
        # the sparse products of the design are SciPy's; their CuPy
        # counterparts have not been validated on a device yet
        raise ValueError(
            "sparse input is supported on the CPU only: pass a SciPy sparse matrix with "
            "device='cpu' (it stays sparse there), or a dense array for device='gpu'."
        )
    if not sp.issparse(X) and not isinstance(X, np.ndarray):
        xp = get_namespace(X)
        if not is_numpy(xp):
            return xp  # CuPy or another array-API library: stay there
    if device == "gpu":
        from ._backend import cupy_namespace

        return cupy_namespace()
    if device == "auto":
        from ._backend import gpu_available

        n, p = X.shape
        # A dense problem of this size keeps a GPU busy long enough to repay the
        # transfers (see benchmarks/gpu.py and the docs' GPU table).
        if gpu_available() and not sp.issparse(X) and n * p * p >= 5e10:
            from ._backend import cupy_namespace

            return cupy_namespace()
    return get_namespace(np.empty(0))


def _with_memory_advice(method):
    """Re-raise running out of memory (NumPy's or CuPy's ``MemoryError``) with
    what to change, keeping the original error as the cause."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except MemoryError as exc:
            xp = getattr(self, "xp_", None)
            where = "GPU" if xp is not None and is_cupy(xp) else "host"
            raise MemoryError(
                f"InfluenceExplainer.{method.__name__} ran out of {where} memory ({exc}). "
                f"Lower max_block_bytes (now {self.max_block_bytes / 2**20:.0f} MiB), use "
                "solver='cg' (no dense Hessian), ask for fewer test rows at a time or "
                "most_influential(...) instead of the full matrix"
                + (", or device='cpu'." if where == "GPU" else ".")
            ) from exc

    return wrapper


def _features(X, feature_map, final):
    """``X`` through the pipeline's transformers, validated as the final
    estimator reads it (a chunk of a Dask table goes through the same)."""
    if feature_map is not None:
        X = feature_map.transform(X)
    if hasattr(X, "columns") and hasattr(final, "feature_names_in_"):
        # columns are matched by name, as in the estimator's own predict:
        # reordered or renamed columns raise instead of being read by position
        validate_data(final, X, reset=False, skip_check_array=True)
    if sp.issparse(X) or isinstance(X, (np.ndarray, list)) or hasattr(X, "iloc"):
        X = check_array(
            X,
            accept_sparse=("csr", "csc"),
            dtype=np.float64,
            ensure_all_finite=True,
            input_name="X",
        )
        if sp.issparse(X):
            X = X.tocsr()
    expected = getattr(final, "n_features_in_", None)
    if expected is not None and X.shape[1] != expected:
        raise ValueError(
            f"X has {X.shape[1]} features after the pipeline's transformers, but "
            f"{type(final).__name__} was fitted on {expected}. Pass the same columns "
            "the model was fitted on."
        )
    return X


def keep_top(best, idx, values, k):
    """The ``k`` largest ``values`` per row (n_test, m) with their ``idx``,
    merged with the ``(idx, values)`` pair ``best`` kept so far (or None)."""
    if best is not None:
        idx = np.concatenate([best[0], idx], axis=1)
        values = np.concatenate([best[1], values], axis=1)
    kk = min(k, values.shape[1])
    part = np.argpartition(-values, kk - 1, axis=1)[:, :kk]
    return np.take_along_axis(idx, part, 1), np.take_along_axis(values, part, 1)


def ranked_bunch(hi, lo, training_index):
    """:meth:`InfluenceExplainer.most_influential`'s answer from the kept
    ``(idx, values)`` of the largest influences (``hi``) and of the largest
    negated ones (``lo``)."""
    out = Bunch()
    for (idx, val), label, sign in ((hi, "harmful", 1.0), (lo, "helpful", -1.0)):
        order = np.argsort(-val, axis=1, kind="stable")
        out[f"{label}_indices"] = np.take_along_axis(idx, order, 1)
        out[f"{label}_values"] = sign * np.take_along_axis(val, order, 1)
        if training_index is not None:
            out[f"{label}_labels"] = np.asarray(training_index)[out[f"{label}_indices"]]
    return out


class InfluenceExplainer(BaseEstimator):
    r"""Influence of training rows on a fitted scikit-learn model's predictions.

    For a fitted estimator minimising ``F(theta) = sum_i F_i(theta)`` (its own
    objective, with its own scaling, see the user guide), ``influence[j, i]``
    is the first-order estimate

    .. math::  \mathcal{I}[j, i] = -\nabla_\theta L(z_j)^T H^{-1} \nabla_\theta F_i(\hat\theta)

    such that **removing training row i and refitting the same estimator with
    the same hyper-parameters changes the loss on test row j by about
    ``-influence[j, i]``**. Positive values are harmful (the row raises the
    test loss), negative helpful. This is Koh & Liang's ``I_up,loss`` times the
    row's weight in the objective (``1/n`` for a mean loss).

    Parameters
    ----------
    estimator : fitted estimator or Pipeline
        A supported linear model, or a ``Pipeline`` ending in one; earlier
        steps are treated as a fixed feature map. Never refitted or modified.
    solver : {"auto", "exact", "cg", "lissa"}, default="auto"
        Inverse-Hessian solver. ``"auto"`` factors the dense Hessian while the
        parameter count is at most 4000 and uses conjugate gradients above.
        Kernel models (``KernelRidge``; ``SVC`` and ``SVR`` with
        ``hinge="active_set"``) with ``"cg"``, or ``"auto"`` beyond 3000
        training rows, are explained in the row space of the training rows,
        with kernel values evaluated on demand instead of the
        ``n_train x n_train`` kernel features. Kernel ridge then runs
        preconditioned CG (``solver_options`` also takes
        ``preconditioner_rank``: at most 500, within half of
        ``max_block_bytes``); hinge models need the margin rows' kernel
        columns only.
    approximation : {"influence", "newton", "path"}, default="influence"
        ``"influence"``: the first-order estimate above. ``"newton"`` (smooth
        objectives) replaces ``H`` by the leave-one-out Hessian ``H - H_i``
        (one Newton step on the leave-one-out objective; a ``1/(1 - h_ii)``
        leverage correction for single-output models), exact for least
        squares. ``"path"`` (hinge-type models with ``hinge="active_set"``)
        follows the decremental solution path to the optimum without row
        ``i`` and evaluates the test quantity there: the exact effect of the
        removal, at one small KKT solve per active-set change.
    damping : float, default=0.0
        Added to the Hessian's diagonal.
    temperature : float, default=0.001
        Smoothing of hinge-type losses (SVMs): the test loss is the smoothed
        hinge ``t log(1 + exp((1 - m) / t))`` of the decision function.
    hinge : {"active_set", "smoothed"}, default="active_set"
        How hinge-type training objectives are differentiated.
        ``"active_set"``: the exact ``t -> 0`` limit, a KKT system over the
        margin support vectors (single-output models without per-row penalty
        shares; others fall back to ``"smoothed"``). ``"smoothed"``: the
        smoothed hinge's Hessian at the fitted hinge optimum (Koh & Liang
        section 4.3).
    solver_options : dict, default=None
        Passed to the solver: ``tol``, ``max_iter`` (CG); ``depth``,
        ``repeats``, ``batch_size``, ``scale``, ``tol``, ``random_state``
        (LiSSA).
    device : {"auto", "cpu", "gpu"}, default="auto"
        Where the heavy linear algebra runs. CuPy input stays on its device.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the work over the rows: the design, per-row gradients
        and curvatures, Hessian products and the returned influence values.
        ``"float32"`` halves their memory and the time of the passes over the
        data; the Hessian's factor and the solvers' iterates stay float64, so
        the loss is that of float32 data (at most ``1e-4`` of the largest
        influence over the test suite's estimators; more for ill-conditioned
        Hessians, where the exact solver warns). Smooth objectives and
        ``hinge="smoothed"`` only: the active set, the decremental path and
        row-space kernel models solve small, badly conditioned systems that
        need float64.
    max_block_bytes : int, default=256 MiB
        Memory budget of one internal block of the ``n_test x n_train`` matrix;
        kernel models explained in row space evaluate kernel values in blocks
        of an eighth of it.
    verbose : int, default=0
        Solver progress every ``verbose`` iterations; silent by default.

    Attributes
    ----------
    spec_ : ModelSpec
        How the estimator defines its objective.
    objective_ : Objective
    solver_ : InverseHessian
        The fitted inverse-Hessian operator; ``solver_.report`` says how its
        solves converged.
    stationarity_ : float
        ``||grad F|| / sum_i ||grad F_i||`` at the fitted parameters.
    removal_ : RemovalModel
        How removing rows is computed (chosen by
        :data:`skinfluence.removal.POLICY`).
    n_train_ : int
        Number of training rows.
    training_index_ : pandas.Index or None
        The training DataFrame's index, to turn row positions (from
        :meth:`self_influence`, :meth:`most_influential`, ...) into its
        labels: ``training_index_[np.argsort(-self_influence())]``.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skinfluence import InfluenceExplainer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10)).fit(X, y)
    >>> exp = InfluenceExplainer(model).fit(X, y)
    >>> exp.influence(X[:2], y[:2]).shape
    (2, 569)
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit"])],
        "solver": [StrOptions({"auto", "exact", "cg", "lissa"})],
        "approximation": [StrOptions(set(APPROXIMATIONS))],
        "damping": [Interval(Real, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "hinge": [StrOptions({"active_set", "smoothed"})],
        "solver_options": [dict, None],
        "device": [StrOptions({"auto", "cpu", "gpu"})],
        "dtype": [StrOptions({"float64", "float32"}), Options(type, {np.float64, np.float32})],
        "max_block_bytes": [Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        estimator,
        *,
        solver="auto",
        approximation="influence",
        damping=0.0,
        temperature=1e-3,
        hinge="active_set",
        solver_options=None,
        device="auto",
        dtype="float64",
        max_block_bytes=256 * 2**20,
        verbose=0,
    ):
        self.estimator = estimator
        self.solver = solver
        self.approximation = approximation
        self.damping = damping
        self.temperature = temperature
        self.hinge = hinge
        self.solver_options = solver_options
        self.device = device
        self.dtype = dtype
        self.max_block_bytes = max_block_bytes
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True  # influence on the loss needs the labels
        tags.input_tags.sparse = True  # SciPy sparse rows stay sparse (CPU)
        tags.array_api_support = True  # CuPy and array-API input stay in their namespace
        return tags

    def _more_tags(self):  # scikit-learn < 1.6
        return {"requires_y": True, "array_api_support": True, "X_types": ["2darray", "sparse"]}

    # ------------------------------------------------------------------ fit
    @_with_memory_advice
    def fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> InfluenceExplainer:
        """Build the objective at the fitted parameters and factor its Hessian.

        Parameters
        ----------
        X : array-like, sparse matrix or DataFrame of shape (n_train, n_features)
            The data the estimator was fitted on. A row-chunked ``dask.array``
            or ``dask.dataframe`` stays on the Dask workers: the Hessian is
            reduced over its chunks and the results are lazy Dask arrays
            chunked along the training rows (smooth linear models; see the
            user guide's Dask section).
        y : array-like of shape (n_train,) or (n_train, n_targets)
            The targets the estimator was fitted on (Dask collections are
            gathered: ``n_train`` values).
        sample_weight : array-like of shape (n_train,), default=None
            The weights the estimator was fitted with.

        Returns
        -------
        self : InfluenceExplainer
            The fitted explainer.
        """
        self._validate_params()
        feature_map, final = split_pipeline(self.estimator)
        try:
            check_is_fitted(self.estimator)
        except NotFittedError as exc:
            raise NotFittedError(
                f"{exc} InfluenceExplainer explains a fitted estimator and never fits "
                "it. If it was fitted and then cloned (clone(), GridSearchCV, "
                "cross_validate), wrap it as InfluenceExplainer(FrozenEstimator(model)) "
                "(sklearn.frozen, scikit-learn >= 1.6): a frozen estimator survives clone."
            ) from None
        validate_data(self, X, reset=True, skip_check_array=True)
        spec = spec_for(final, temperature=self.temperature)
        if is_dask_collection(X):
            from ._dask import fit_chunked

            fit_chunked(self, X, y, sample_weight, spec, feature_map, final)
            return self
        self._chunks = None
        Xf = self._features(X, feature_map, final)
        y = self._check_targets(y, Xf.shape[0], spec, name="y")
        if spec.is_classifier and len(np.unique(y)) < 2:
            raise ValueError(
                "y has a single class; influence on a classifier needs the labels it "
                "was fitted on, with at least two classes."
            )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, Xf, dtype=np.float64)
        self.feature_map_ = feature_map
        self.training_index_ = getattr(X, "index", None) if hasattr(X, "iloc") else None
        self._X_features = Xf
        self._y = y
        self._sample_weight = sample_weight
        self._build(spec)
        return self

    def _build(self, spec):
        """Objective, state and removal model from the stored training features.

        The removal model -- how removing rows is computed -- comes from the
        policy table (:data:`skinfluence.removal.POLICY`), which also refuses
        combinations that do not apply."""
        Xf, y, sample_weight = self._X_features, self._y, self._sample_weight
        xp = _resolve_namespace(self.device, Xf)
        work_dtype = float_dtype(np.dtype(self.dtype).name, xp)
        budget = BlockBudget(self.max_block_bytes, np.dtype(self.dtype).itemsize)
        n_train = Xf.shape[0]
        in_rows = row_space(spec, solver=self.solver, hinge=self.hinge, n_train=n_train, xp=xp)
        space = "rows" if in_rows else "parameters"
        setting = Setting(
            family(spec, hinge=self.hinge, space=space),
            space,
            self.approximation,
            budget.itemsize < 8,
        )
        rule = rule_for(setting, type(spec.estimator).__name__, self.hinge)
        spec = spec.prepared(Xf, row_space=in_rows, kernel_block_bytes=budget.kernel_bytes)
        self.spec_ = spec
        self.xp_ = xp
        self._work_dtype = work_dtype
        self._budget = budget
        self.n_train_ = n_train
        X_work = self._to_xp(Xf)
        self.objective_ = spec.objective(X_work, y, sample_weight, xp)
        self.state_ = self.objective_.at(asarray(spec.theta(), xp, work_dtype))
        context = FitContext(
            spec=spec,
            state=self.state_,
            data=(X_work, y, sample_weight),
            budget=budget,
            solver=self.solver,
            solver_options=dict(self.solver_options or {}),
            damping=self.damping,
            verbose=self.verbose,
        )
        self.removal_ = rule.build(context)
        self.solver_ = self.removal_.solver
        self.stationarity_ = self.removal_.stationarity
        self._warn_if_not_optimal(split_pipeline(self.estimator)[1])

    #: fitted attributes rebuilt from the training features on unpickling
    #: (they hold array namespaces, which are modules and cannot be pickled)
    _REBUILT = ("spec_", "xp_", "_work_dtype", "_budget", "n_train_", "objective_", "state_")
    _REBUILT += ("stationarity_", "solver_", "removal_")

    def __getstate__(self):
        if self._chunked is not None:
            raise TypeError(
                "an InfluenceExplainer fitted on Dask input holds the Dask collections it "
                "was fitted on and cannot be pickled; pickle the estimator and refit the "
                "explainer where the data is."
            )
        state = super().__getstate__()
        fitted = "solver_" in state
        state = {k: v for k, v in state.items() if k not in self._REBUILT}
        state["_pickled_fitted"] = fitted
        return state

    def __setstate__(self, state):
        fitted = state.pop("_pickled_fitted", False)
        super().__setstate__(state)
        if fitted:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotAtOptimumWarning)  # said at fit time
                _, final = split_pipeline(self.estimator)
                self._build(spec_for(final, temperature=self.temperature))

    def _features(self, X, feature_map, final):
        return _features(X, feature_map, final)

    def _to_xp(self, A):
        """Features in the explainer's namespace, at its working dtype."""
        xp, dtype = self.xp_, self._work_dtype
        if sp.issparse(A):
            return astype(A, dtype, xp)  # sparse work stays on the CPU (see _resolve_namespace)
        if isinstance(A, np.ndarray):
            return asarray(A, xp, dtype)
        if get_namespace(A) is not xp:
            # test rows from another library than the training rows: the work
            # stays where the explainer was fitted
            return asarray(to_numpy(A), xp, dtype)
        return astype(A, dtype, xp)

    @staticmethod
    def _check_targets(y, n, spec, name):
        if y is None:
            raise ValueError(f"{name} is required")
        y = np.asarray(to_numpy(y) if not hasattr(y, "to_numpy") else y.to_numpy())
        if y.ndim == 0 or y.shape[0] != n:
            got = "a scalar" if y.ndim == 0 else f"{y.shape[0]} rows"
            raise ValueError(f"{name} has {got} but X has {n}; pass the targets of the same rows.")
        expected = spec.n_outputs
        if spec.is_classifier:
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]  # a column vector of labels, as scikit-learn accepts
            if y.ndim != 1:
                raise ValueError(
                    f"{name} has shape {y.shape}; a classifier's labels are one column: "
                    f"pass an array of shape ({n},)."
                )
            spec.class_index(y)  # raises on unknown labels
            return y
        y = y.astype(np.float64) if y.dtype.kind in "biuf" else _numeric_targets(y, name)
        if expected == 1 and y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        shape_ok = (y.ndim == 1 and expected == 1) or (y.ndim == 2 and y.shape[1] == expected)
        if not shape_ok:
            want = f"({n},)" if expected == 1 else f"({n}, {expected})"
            raise ValueError(
                f"{name} has shape {y.shape}, but {type(spec.estimator).__name__} predicts "
                f"{expected} target(s) per row: pass an array of shape {want}."
            )
        if not np.all(np.isfinite(y)):
            raise ValueError(f"{name} contains NaN or infinity.")
        return y

    def _warn_if_not_optimal(self, final):
        tol = 1e-3
        if self.stationarity_ > tol:
            warnings.warn(
                f"{type(final).__name__} is not at the optimum of its training "
                f"objective: the gradient norm is {self.stationarity_:.2g} of the total "
                "per-row gradient norm (0 at an exact optimum). Influence estimates "
                "assume an optimum (Koh & Liang, appendix B); refit with a smaller tol "
                "/ larger max_iter, or check that X, y and sample_weight are those the "
                "model was fitted on.",
                NotAtOptimumWarning,
                stacklevel=5,  # the caller of fit, through the memory-advice wrapper
            )

    # ------------------------------------------------------------ internals
    def _test_function(self, target, y, n):
        spec = self.spec_
        if target == "loss":
            if y is None:
                raise ValueError(
                    "y_test is required for target='loss'; pass target='prediction' to "
                    "explain the prediction itself."
                )
            return spec.test_loss, spec.encode(y)
        if target == "prediction":
            return spec.prediction, spec.prediction_targets(y, n)
        raise ValueError(f"target must be 'loss' or 'prediction', got {target!r}")

    def _prepare_test(self, X_test, y_test, target) -> TestQuery:
        check_is_fitted(self, "solver_")
        _, final = split_pipeline(self.estimator)
        Xf = self._features(X_test, self.feature_map_, final)
        if y_test is not None:
            y_test = self._check_targets(y_test, Xf.shape[0], self.spec_, name="y_test")
        func, Y = self._test_function(target, y_test, Xf.shape[0])
        design = self.spec_.make_design(self._to_xp(Xf), self.xp_)
        return TestQuery(design, func, asarray(Y, self.xp_, self._work_dtype))

    def _training_rows(self, rows):
        """Training rows as a ``slice`` (all of them) or sorted-as-given
        integer indices; boolean masks of length ``n_train`` are accepted."""
        if rows is None:
            return slice(0, self.n_train_)
        rows = np.asarray(to_numpy(rows) if not hasattr(rows, "to_numpy") else rows.to_numpy())
        if rows.dtype == bool:
            if rows.shape != (self.n_train_,):
                raise ValueError(
                    f"a boolean rows mask must have one entry per training row "
                    f"({self.n_train_}); got shape {rows.shape}."
                )
            return np.flatnonzero(rows)
        if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
            raise ValueError(
                "rows must be integer positions of training rows (or a boolean mask of "
                f"length {self.n_train_}); got an array of dtype {rows.dtype} and shape "
                f"{rows.shape}."
            )
        rows = rows.astype(np.int64)
        bad = (rows < -self.n_train_) | (rows >= self.n_train_)
        if np.any(bad):
            raise ValueError(
                f"rows {rows[bad][:5].tolist()} are out of range for {self.n_train_} "
                "training rows."
            )
        return np.where(rows < 0, rows + self.n_train_, rows)

    def _blocks(self, query: TestQuery, train=None, *, output_held=False):
        """Yield ``(test_rows, train_block, positions, factors)`` covering the
        influence matrix in blocks of bounded memory; factors are solved once
        per test block. ``train`` is :meth:`_training_rows`' answer;
        ``positions`` are the block's columns of the result.

        Unless the caller already holds the whole ``n_test x n_train`` output
        (``output_held``), a test block is also small enough for its row of
        ``n_train`` results to fit the budget."""
        removal, budget = self.removal_, self._budget
        train = slice(0, self.n_train_) if train is None else train
        n_test = query.n_samples
        n_rows = train.stop - train.start if isinstance(train, slice) else train.size
        P = self.state_.n_params
        # factors and test gradients: 2 P numbers per test row
        per_test_row = 2 * P if output_held else max(2 * P, n_rows)
        for test_rows in budget.slices(n_test, per_test_row):
            factors = removal.test_factors(query, test_rows)
            width = (test_rows.stop - test_rows.start) * max(1, query.design.n_outputs)
            for positions in budget.slices(n_rows, removal.training_width(width)):
                block = positions if isinstance(train, slice) else train[positions]
                yield test_rows, block, positions, factors

    @property
    def _chunked(self):
        """The training rows of a fit on Dask input (:mod:`._dask`), else None."""
        return getattr(self, "_chunks", None)

    def _in_memory_only(self, name):
        if self._chunked is not None:
            from ._dask import not_available

            raise not_available(name)

    def _output(self, A):
        """NumPy for NumPy input (also after GPU work); the input's namespace otherwise."""
        return to_numpy(A) if self._numpy_io else A

    @property
    def _numpy_io(self):
        X = self._X_features
        return sp.issparse(X) or isinstance(X, np.ndarray)

    # --------------------------------------------------------------- public
    @_with_memory_advice
    def influence(
        self,
        X_test: ArrayLike,
        y_test: ArrayLike | None = None,
        *,
        target: Target = "loss",
        rows: ArrayLike | None = None,
    ) -> Array:
        """Influence of every training row on each test row.

        Parameters
        ----------
        X_test : array-like of shape (n_test, n_features)
            Test rows, in the estimator's input space.
        y_test : array-like of shape (n_test,), default=None
            Required for ``target="loss"``.
        target : {"loss", "prediction"}, default="loss"
            ``"loss"``: the test loss (log-loss of the predicted probability for
            probabilistic classifiers, the model's own loss for other
            classifiers, squared error for regressors). ``"prediction"``: the
            predicted probability of class ``y_test`` (or of the positive class)
            for probabilistic classifiers, the decision function otherwise, the
            prediction for regressors.
        rows : array-like of int or bool, default=None
            Training rows to compute (positions, or a boolean mask of length
            ``n_train``); all by default. With ``approximation="refit"``
            each row costs a few Hessian solves: pass the rows to check.

        Returns
        -------
        ndarray of shape (n_test, n_train) or (n_test, n_rows)
            Removing training row ``i`` changes the target quantity of test row
            ``j`` by about ``-influence[j, i]``.
        """
        check_is_fitted(self, "solver_")
        if self._chunked is not None:
            return self._chunked.influence(self, X_test, y_test, target, rows)
        xp = self.xp_
        train = self._training_rows(rows)
        query = self._prepare_test(X_test, y_test, target)
        n_rows = self.n_train_ if isinstance(train, slice) else train.size
        # filled transposed, so that each block of training rows is contiguous
        out = xp.empty((n_rows, query.n_samples), dtype=self._work_dtype)
        for test_rows, block, positions, factors in self._blocks(query, train, output_held=True):
            view = out[positions, test_rows]
            written = self.removal_.training_block(factors, block, out=view)
            if written is not view:
                view[...] = written
        return self._output(out.T)

    @_with_memory_advice
    def most_influential(
        self,
        X_test: ArrayLike,
        y_test: ArrayLike | None = None,
        k: int = 10,
        *,
        target: Target = "loss",
    ) -> Bunch:
        """The ``k`` most harmful and most helpful training rows per test row,
        without holding the ``n_test x n_train`` matrix.

        Parameters
        ----------
        X_test : array-like of shape (n_test, n_features)
            Test rows, in the estimator's input space.
        y_test : array-like of shape (n_test,), default=None
            Required for ``target="loss"``.
        k : int, default=10
            Rows to return per test row and direction (at most ``n_train``).
        target : {"loss", "prediction"}, default="loss"
            As in :meth:`influence`.

        Returns
        -------
        Bunch
            ``harmful_indices``, ``harmful_values`` (largest influence first)
            and ``helpful_indices``, ``helpful_values`` (most negative
            first), each of shape (n_test, k); indices are row positions.
            When the training rows were a DataFrame, ``harmful_labels`` and
            ``helpful_labels`` hold its index labels of those rows.
        """
        check_is_fitted(self, "solver_")
        if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        k = int(min(k, self.n_train_))
        if self._chunked is not None:
            return self._chunked.most_influential(self, X_test, y_test, k, target)
        results = {}
        query = self._prepare_test(X_test, y_test, target)
        for test_rows, train_rows, _, factors in self._blocks(query):
            B = to_numpy(self.removal_.training_block(factors, train_rows)).T
            idx = np.broadcast_to(np.arange(train_rows.start, train_rows.stop), B.shape)
            key = (test_rows.start, test_rows.stop)
            best = results.setdefault(key, {"hi": None, "lo": None})
            best["hi"] = keep_top(best["hi"], idx, B, k)
            best["lo"] = keep_top(best["lo"], idx, -B, k)
        hi, lo = (
            tuple(
                np.concatenate([results[key][name][i] for key in sorted(results)]) for i in (0, 1)
            )
            for name in ("hi", "lo")
        )
        return ranked_bunch(hi, lo, self.training_index_)

    def _groups(self, groups):
        """``(list of index arrays, labels)`` from masks / index arrays, or
        from one label per training row (a DataFrame column's values)."""
        n = self.n_train_
        if groups is None:
            raise ValueError(
                "groups is required: a list of row masks or index arrays, or one "
                "group label per training row (e.g. X_train['source'])."
            )
        scalars = isinstance(groups, (list, tuple)) and all(np.ndim(g) == 0 for g in groups)
        if (
            scalars
            or hasattr(groups, "to_numpy")
            or (isinstance(groups, np.ndarray) and groups.ndim == 1 and groups.dtype != bool)
        ):
            values = np.asarray(groups.to_numpy() if hasattr(groups, "to_numpy") else groups)
            if values.shape != (n,):
                raise ValueError(
                    f"group labels need one value per training row ({n}); got shape "
                    f"{values.shape}. Pass e.g. X_train['source'] for the rows fitted on."
                )
            if pd_isna(values).any():
                raise ValueError("group labels contain missing values; fill them first.")
            labels, inverse = np.unique(values, return_inverse=True)
            members = [np.flatnonzero(inverse == g) for g in range(labels.size)]
            labels = list(labels)
        else:
            members = [self._training_rows(g) for g in groups]
            members = [np.arange(n) if isinstance(m, slice) else np.unique(m) for m in members]
            labels = list(range(len(members)))
        for label, rows in zip(labels, members, strict=True):
            if rows.size == 0:
                raise ValueError(f"group {label!r} has no rows; removing it changes nothing.")
            if rows.size == n:
                raise ValueError(
                    f"group {label!r} holds every training row; without it there is nothing "
                    "left to fit."
                )
            if self.spec_.is_classifier and np.unique(np.delete(self._y, rows)).size < 2:
                raise ValueError(
                    f"group {label!r}: the other rows hold a single class, so the model "
                    "cannot be refitted without it."
                )
        return members, labels

    @_with_memory_advice
    def group_influence(
        self,
        X_test: ArrayLike,
        y_test: ArrayLike | None = None,
        groups=None,
        *,
        target: Target = "loss",
    ) -> Array:
        """Influence of removing whole groups of training rows at once.

        ``group_influence[j, g]`` is such that removing every row of group
        ``g`` and refitting changes test row ``j``'s loss (or prediction) by
        about ``-group_influence[j, g]``. How, follows ``approximation``:

        * ``"influence"`` -- the sum of the rows' influences (first order);
          it understates large groups' effects (Koh, Ang, Teo & Liang 2019).
        * ``"newton"`` -- one Newton step on the objective ``F_{-G}`` without
          the group, ``d_G = (H - H_G)^{-1} g_G`` (class weights, penalty
          shares and ``1/n`` recomputed), its length set by an exact line
          search, ``Delta_G = t* d_G`` with ``t* = argmin_t F_{-G}(theta +
          t d_G)`` (``t* = 1`` for least squares, where the step is exact);
          the test function is evaluated at the shifted outputs.
        * ``"refit"`` -- Newton iterations to the optimum without the group.

        Parameters
        ----------
        X_test : array-like of shape (n_test, n_features)
            Test rows, in the estimator's input space.
        y_test : array-like of shape (n_test,), default=None
            Required for ``target="loss"``.
        groups : list of array-like, or array-like of shape (n_train,)
            Either a list of groups, each a boolean mask over the training
            rows or their positions (groups may overlap), or one group label
            per training row (e.g. ``X_train["source"]``), grouped by value.
        target : {"loss", "prediction"}, default="loss"
            The test quantity, as in :meth:`influence`.

        Returns
        -------
        ndarray of shape (n_test, n_groups)
            Groups in the order given, or of the sorted unique labels.
        """
        check_is_fitted(self, "solver_")
        self._in_memory_only("group_influence")
        members, _ = self._groups(groups)
        return self._output(self._group_effects(X_test, y_test, members, target).T)

    def _group_effects(self, X_test, y_test, members, target):
        """``-(change of L)`` per group and test row, (n_groups, n_test)."""
        query = self._prepare_test(X_test, y_test, target)
        return self._effects(query, self.removal_.group_shifts(members))

    def _effects(self, query, shifts):
        """``-(change of L)`` of the parameter changes ``shifts`` (n_params,
        r) on every test row of ``query``, (r, n_test); the test function at
        the shifted outputs where the removal model evaluates groups so."""
        factors = query.evaluated(slice(0, query.n_samples), self.state_.theta)
        return effect_of_shifts(factors, shifts, self.removal_.group_exact)

    @_with_memory_advice
    def relabel_influence(
        self,
        X_test: ArrayLike,
        y_test: ArrayLike | None = None,
        rows: ArrayLike | None = None,
        labels: ArrayLike | None = None,
        *,
        target: Target = "loss",
    ) -> Array:
        """Influence of changing training labels, one row at a time.

        ``relabel_influence[j, k]`` is such that giving training row
        ``rows[k]`` the target ``labels[k]`` and refitting changes test row
        ``j``'s loss (or prediction) by about ``-relabel_influence[j, k]``.
        With ``approximation="influence"``: ``-H^{-1}`` times the change of
        the objective's gradient, linear in the test function;
        ``"newton"``: one Newton step on the relabelled objective (class
        weights recomputed), the test function at the shifted outputs;
        ``"refit"``: Newton iterations to the relabelled optimum. Pass the
        rows themselves as ``X_test`` (with ``target="prediction"``) for the
        effect on their own prediction.

        Parameters
        ----------
        X_test : array-like of shape (n_test, n_features)
            Test rows, in the estimator's input space.
        y_test : array-like of shape (n_test,), default=None
            Required for ``target="loss"``.
        rows : array-like of int or bool
            Training rows to relabel (positions, or a boolean mask).
        labels : array-like of shape (n_rows,) or scalar
            The new target of each row: a class of the classifier, or a
            regression target.
        target : {"loss", "prediction"}, default="loss"
            The test quantity, as in :meth:`influence`.

        Returns
        -------
        ndarray of shape (n_test, n_rows)
            One column per relabelled row, in the order of ``rows``.
        """
        check_is_fitted(self, "solver_")
        self._in_memory_only("relabel_influence")
        if rows is None:
            raise ValueError("rows is required: the training rows to relabel.")
        rows = self._training_rows(rows)
        rows = np.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows
        labels = np.asarray(labels)
        labels = np.broadcast_to(labels, rows.shape) if labels.ndim == 0 else labels
        if labels.shape[0] != rows.size:
            raise ValueError(
                f"labels has {labels.shape[0]} entries for {rows.size} rows; pass one new "
                "label per row (or one for all)."
            )
        labels = self._check_targets(labels, rows.size, self.spec_, name="labels")
        query = self._prepare_test(X_test, y_test, target)
        effect = self._effects(query, self.removal_.relabel_shifts(rows, labels))
        return self._output(effect.T)

    def most_influential_groups(
        self,
        X_test: ArrayLike,
        y_test: ArrayLike | None = None,
        groups=None,
        *,
        target: Target = "loss",
    ):
        """Groups of training rows ranked by their effect on a test set.

        "Which data source hurts accuracy on these rows most?": each group is
        removed at once (see :meth:`group_influence`) and its influence is
        summed over the test rows.

        Parameters
        ----------
        X_test : array-like of shape (n_test, n_features)
            Test rows, in the estimator's input space.
        y_test : array-like of shape (n_test,), default=None
            Required for ``target="loss"``.
        groups : list of array-like, or array-like of shape (n_train,)
            As in :meth:`group_influence`.
        target : {"loss", "prediction"}, default="loss"
            The test quantity, as in :meth:`influence`.

        Returns
        -------
        pandas.DataFrame
            One row per group, most harmful first: ``group`` (label or
            position in ``groups``), ``n_rows``, ``influence`` (summed over
            the test rows; removing the group changes the summed test loss by
            about ``-influence``) and ``mean_influence`` (per test row).
        """
        import pandas as pd

        check_is_fitted(self, "solver_")
        self._in_memory_only("most_influential_groups")
        members, labels = self._groups(groups)
        effects = to_numpy(self._group_effects(X_test, y_test, members, target))
        frame = pd.DataFrame(
            {
                "group": labels,
                "n_rows": [rows.size for rows in members],
                "influence": effects.sum(axis=1),
                "mean_influence": effects.mean(axis=1),
            }
        )
        return frame.sort_values("influence", ascending=False, kind="stable").reset_index(
            drop=True
        )

    @_with_memory_advice
    def self_influence(self) -> Array:
        """Predicted increase of each training row's own loss when it is removed.

        ``self_influence()[i] == -influence(X_train, y_train)[i, i]``. Large
        values mark rows the model can only fit by bending towards them:
        candidates for label review.

        With ``approximation="influence"`` it is the quadratic form
        ``g_i^T H^{-1} g_i / w_i >= 0`` where the test loss is the row's own
        training loss and the row's gradient is that loss's alone. It can be
        slightly negative where removing the row changes more than its loss
        term: penalty shares of mean-loss objectives (``SGD*``,
        ``PoissonRegressor``), ``class_weight="balanced"``, or a test loss
        other than the training loss (``HuberRegressor``'s squared error).

        Returns
        -------
        ndarray of shape (n_train,)
            Own-loss increase of each training row.
        """
        check_is_fitted(self, "solver_")
        if self._chunked is not None:
            return self._chunked.per_row("self_influence")
        return self._output(self.removal_.self_influence(self.spec_.test_loss))

    @_with_memory_advice
    def training_loss(self) -> Array:
        """Each training row's loss at the fitted model (the test loss of
        :meth:`influence`, e.g. log-loss of the predicted probability).

        Returns
        -------
        ndarray of shape (n_train,)
            Loss of each training row at the fitted model.
        """
        check_is_fitted(self, "solver_")
        if self._chunked is not None:
            return self._chunked.per_row("training_loss")
        state = self.state_
        return self._output(self.spec_.test_loss.value(self.objective_.targets, state.z))

    @_with_memory_advice
    def leave_one_out_loss(self) -> Array:
        """Approximate out-of-sample loss of each training row: its loss at
        :meth:`leave_one_out_decision`, the outputs of the model refitted
        without it (Newton-corrected with ``approximation="newton"``).

        To first order this is ``training_loss() + self_influence()``; keeping
        the loss itself non-linear matters for the badly fitted rows whose
        removal moves their outputs most (exact for least squares with
        ``approximation="newton"``: the squared PRESS residual).

        Returns
        -------
        ndarray of shape (n_train,)
            Loss of each training row at its leave-one-out outputs.
        """
        check_is_fitted(self, "solver_")
        if self._chunked is not None:
            return self._chunked.per_row("leave_one_out_loss")
        Z = self._leave_one_out_outputs()
        return self._output(self.spec_.test_loss.value(self.objective_.targets, Z))

    @_with_memory_advice
    def leave_one_out_decision(self) -> Array:
        """Raw outputs of each training row under the model refitted without it.

        ``z_i + A_i H^{-1} g_i`` (decision function, or linear predictor of a
        regressor): the row's prediction by the approximate leave-one-out
        model (Newton-corrected with ``approximation="newton"``), e.g. the
        label a model that never saw row ``i`` would give it. With the
        leverages ``M_i = A_i H^{-1} A_i^T`` this costs no extra solve per row.

        Returns
        -------
        ndarray of shape (n_train, n_outputs)
            Raw outputs of each training row without it.
        """
        check_is_fitted(self, "solver_")
        if self._chunked is not None:
            return self._chunked.leave_one_out_decision()
        return self._output(self._leave_one_out_outputs())

    def _leave_one_out_outputs(self):
        """``z_i + A_i Delta_i`` for every training row, (n_train, K)."""
        return self.removal_.leave_one_out_outputs()

    @_with_memory_advice
    def influence_params(self, rows: ArrayLike | None = None) -> Array:
        """Influence of training rows on the fitted parameters.

        Parameters
        ----------
        rows : array-like of int or bool, default=None
            Training rows (positions, or a boolean mask of length
            ``n_train``); all by default.

        Returns
        -------
        ndarray of shape (n_rows, n_params)
            Removing row ``i`` changes the parameter vector (``spec_.theta()``
            layout: per output, coefficients then intercept; for hinge kernel
            models in row space, the dual coefficients over all training rows
            then the intercept) by about ``-influence_params[i]``.
        """
        check_is_fitted(self, "solver_")
        self._in_memory_only("influence_params")
        rows = self._training_rows(rows)
        return self._output(-self.removal_.parameter_shifts(rows).T)

    @_with_memory_advice
    def influence_features(
        self,
        X_test: ArrayLike,
        y_test: ArrayLike | None = None,
        rows: ArrayLike | None = None,
        *,
        target: Target = "loss",
    ) -> Array:
        r"""Perturbation influence ``I_pert`` (Koh & Liang, Eq. 5).

        ``influence_features[j, i, f]`` is the derivative of test row ``j``'s
        loss with respect to feature ``f`` of training row ``i`` (in the
        estimator's input space, after a pipeline's transformers): moving row
        ``i`` by ``delta`` and refitting changes the test loss by about
        ``influence_features[j, i] @ delta``.

        Parameters
        ----------
        X_test : array-like of shape (n_test, n_features)
            Test rows, in the estimator's input space.
        y_test : array-like of shape (n_test,), default=None
            Required for ``target="loss"``.
        rows : array-like of int or bool, default=None
            Training rows (positions, or a boolean mask of length
            ``n_train``); all by default.
        target : {"loss", "prediction"}, default="loss"
            The test quantity, as in :meth:`influence`.

        Returns
        -------
        ndarray of shape (n_test, n_rows, n_features)
            ``-d L(z_j) / d x_i`` through the refitted parameters.
        """
        check_is_fitted(self, "solver_")
        self._in_memory_only("influence_features")
        spec = self.spec_
        outputs = spec.feature_outputs or list(range(self.state_.design.n_outputs))
        rows = self._training_rows(rows)
        if isinstance(rows, slice):
            rows = np.arange(rows.start, rows.stop)
        query = self._prepare_test(X_test, y_test, target)
        influence = self.removal_.feature_influence(query, rows, outputs, spec.n_features)
        return self._output(influence)

    def retrainer(
        self,
        X_test: ArrayLike,
        y_test: ArrayLike | None = None,
        *,
        target: Target = "loss",
        refit_params: dict | None = None,
    ):
        """What real leave-one-out retraining needs, as one picklable callable.

        ``retrainer(X_test, y_test)(drop)`` refits a clone of the final
        estimator on the training rows without ``drop`` (the pipeline's
        earlier steps stay fixed, as in the influence estimate) and returns
        the test quantity of each test row; ``drop=None`` refits on all rows.
        :func:`skinfluence.retraining.leave_one_out` is built on it.

        Parameters
        ----------
        X_test : array-like of shape (n_test, n_features)
            Test rows, in the estimator's input space.
        y_test : array-like of shape (n_test,), default=None
            Required for ``target="loss"``.
        target : {"loss", "prediction"}, default="loss"
            The test quantity, as in :meth:`influence`.
        refit_params : dict, default=None
            Parameters set on the clone before refitting (e.g. a tighter
            ``tol``: estimates assume exact optima, so refits should converge
            tightly). A libsvm estimator with ``max_iter=-1`` is refitted with
            upstream libsvm's bound ``max(10^7, 100 n)`` unless this sets
            ``max_iter``: its solver can cycle for ever at a degenerate vertex
            (:func:`~skinfluence.retraining.bounded_refit_iterations`).

        Returns
        -------
        retrainer : skinfluence.retraining.Retrainer
            ``retrainer(drop)`` refits without ``drop`` and evaluates.
        """
        from .retraining import Retrainer, bounded_refit_iterations

        check_is_fitted(self, "solver_")
        self._in_memory_only("retrainer")
        _, final = split_pipeline(self.estimator)
        final = clone(final)
        final.set_params(**bounded_refit_iterations(final, self.n_train_))
        if refit_params:
            final.set_params(**refit_params)
        Xt = self._features(X_test, self.feature_map_, final)
        if y_test is not None:
            y_test = self._check_targets(y_test, Xt.shape[0], self.spec_, name="y_test")
        function, targets = self._test_function(target, y_test, Xt.shape[0])
        X, y, sw = self._X_features, self._y, self._sample_weight
        return Retrainer(final, self.spec_, X, y, sw, Xt, function, targets)

    # ------------------------------------------------------- newton step
    @_with_memory_advice
    def leverages(self) -> Array:
        """The leverages ``M_i = A_i H^{-1} A_i^T`` of the training rows.

        Returns
        -------
        ndarray of shape (n_train, K, K)
            ``K`` outputs per row; ``1 / (1 - M_i)`` is the Newton step's
            correction for single-output models.
        """
        check_is_fitted(self, "solver_")
        self._in_memory_only("leverages")
        return self._output(self.removal_.leverages())

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
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import HasMethods, Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted
from sklearn_compat.utils.validation import check_array, validate_data

from ._backend import (
    asarray,
    astype,
    block_slices,
    dense_rows,
    float_dtype,
    get_namespace,
    is_cupy,
    is_numpy,
    is_sparse,
    rows_per_block,
    to_numpy,
)
from .objectives import RowGradients
from .objectives._registry import spec_for
from .solvers import SOLVERS, HessianOperator, RowSpaceInverse
from .solvers._active_set import ActiveSetInverse, hinge_kkt
from .solvers._decremental import DecrementalPath


class NotAtOptimumWarning(UserWarning):
    """The fitted parameters are not a stationary point of the training objective."""


#: parameter count up to which solver="auto" factors the dense Hessian
EXACT_MAX_PARAMS = 4000


#: a result array: NumPy for NumPy, pandas or SciPy input, else the input's
#: array-API namespace (CuPy stays on the GPU)
Array = Any
Target = Literal["loss", "prediction"]


def split_pipeline(estimator):
    """``(feature map or None, final estimator)``; earlier pipeline steps are a
    fixed feature map."""
    if isinstance(estimator, Pipeline):
        if len(estimator.steps) == 1:
            return None, estimator.steps[-1][1]
        return estimator[:-1], estimator.steps[-1][1]
    return None, estimator


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
    n_train_ : int

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
        "approximation": [StrOptions({"influence", "newton", "path"})],
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

    # ------------------------------------------------------------------ fit
    @_with_memory_advice
    def fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> InfluenceExplainer:
        """Build the objective at the fitted parameters and factor its Hessian.

        Parameters
        ----------
        X : array-like, sparse matrix or DataFrame of shape (n_train, n_features)
            The data the estimator was fitted on.
        y : array-like of shape (n_train,) or (n_train, n_targets)
        sample_weight : array-like of shape (n_train,), default=None
            The weights the estimator was fitted with.

        Returns
        -------
        self
        """
        self._validate_params()
        feature_map, final = split_pipeline(self.estimator)
        check_is_fitted(self.estimator)
        validate_data(self, X, reset=True, skip_check_array=True)
        spec = spec_for(final, temperature=self.temperature)
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
        self._X_features = Xf
        self._y = y
        self._sample_weight = sample_weight
        self._build()
        return self

    def _build(self):
        """Objective, solver and row gradients from the stored training features."""
        _, final = split_pipeline(self.estimator)
        Xf, y, sample_weight = self._X_features, self._y, self._sample_weight
        spec = spec_for(final, temperature=self.temperature)
        xp = _resolve_namespace(self.device, Xf)
        self.spec_ = spec
        self.xp_ = xp
        self._work_dtype = float_dtype(np.dtype(self.dtype).name, xp)
        self.n_train_ = Xf.shape[0]
        spec.row_space = self._uses_row_space(spec, Xf.shape[0], xp)
        spec.kernel_block_bytes = max(1, self.max_block_bytes // 8)
        spec.prepare(Xf)
        theta = asarray(spec.theta(), xp, self._work_dtype)
        self.objective_ = spec.objective(self._to_xp(Xf), y, sample_weight, xp)
        self.state_ = self.objective_.at(theta)
        kkt = None if spec.row_space else self._hinge_kkt()
        self._check_dtype_applies(kkt)
        # hinge kernel models in row space: the decremental path is the solver
        path = self._row_space_path() if spec.row_space and not spec.smooth else None
        if path is not None:
            self.stationarity_ = path.kkt_residual
        else:
            self.stationarity_ = self._stationarity(kkt)
        self._warn_if_not_optimal(final)
        self.solver_ = path if path is not None else self._make_solver(kkt)
        self._row_gradients = self.state_.row_gradients()
        self._leverage_cache = None
        self._removal_shifts = None
        # "path": the test function at the refitted outputs; else linearised
        self._removal_exact = self.approximation == "path"
        if path is not None:
            self._removal_shifts = path.shifts()
        elif self.approximation == "path":
            path = DecrementalPath.on_design(self.state_, kkt, damping=self.damping)
            self._removal_shifts = path.shifts()
            self.solver_.report.details["path_events"] = int(path.events_.sum())
        if isinstance(self.solver_, ActiveSetInverse):
            # bound rows keep their full hinge gradient; margin rows are handled
            # exactly by the KKT system (see _row_block)
            bound = self.solver_.bound_gradient[:, None]
            self._row_gradients = RowGradients(self.state_.design, bound)
        if self.approximation == "newton":
            self._row_gradients = self._newton_row_gradients(self._row_gradients)
        if self._materialize_gradients():
            self._row_gradients = self._row_gradients.materialized()

    def _materialize_gradients(self) -> bool:
        """Hold the training gradients ``G`` (n_train x n_params) when they fit
        in one memory block: influence is then a single GEMM per block, with
        no per-row scaling pass."""
        design = self.state_.design
        if self.spec_.row_space:
            return False  # influence comes from output responses or removal shifts
        size = self.n_train_ * design.n_params * self._itemsize
        return design.dense and size <= self.max_block_bytes

    @property
    def _itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize

    def _check_dtype_applies(self, kkt):
        """Refuse float32 where the work is a small, badly conditioned system
        rather than passes over the rows."""
        if self._itemsize == 8:
            return
        if self.spec_.row_space:
            what = "a kernel model explained in row space (solver='cg' or beyond 3000 rows)"
            fix = "or solver='exact' with at most 3000 training rows"
        elif self.approximation == "path":
            what, fix = "approximation='path'", "or approximation='influence'"
        elif self._uses_active_set(kkt):
            what, fix = "hinge='active_set'", "or hinge='smoothed'"
        else:
            return
        raise ValueError(
            f"dtype='float32' does not apply to {what}: its small KKT or row-space "
            f"systems need float64. Pass dtype='float64', {fix}."
        )

    def _uses_row_space(self, spec, n_train, xp) -> bool:
        """Kernel ridge with CG, or beyond ``exact_max`` rows with
        ``solver="auto"``, is explained in row space: no feature map and
        nothing ``n x n`` in memory (kernel values are evaluated on demand)."""
        if not (getattr(spec, "supports_row_space", False) and is_numpy(xp)):
            return False
        if not spec.smooth and self.hinge != "active_set":
            return False  # the smoothed hinge keeps the kernel features
        return self.solver == "cg" or (self.solver == "auto" and n_train > spec.exact_max)

    def _refuse_newton_for_hinge(self):
        if self.approximation == "newton":
            raise ValueError(
                "approximation='newton' does not apply to hinge='active_set' (its "
                "margin rows are removed exactly); use approximation='path' for the "
                "exact effect of removals, or approximation='influence'."
            )

    def _row_space_path(self):
        """The decremental path of a hinge kernel model in row space: first
        order (stopped before the first event) or exact (``"path"``)."""
        self._refuse_newton_for_hinge()
        fitted = self._kernel_penalty_strength()
        return DecrementalPath.in_row_space(
            self.state_,
            self.spec_.training_kernel(),
            fitted + self.damping,
            fitted,
            damping=self.damping,
            max_events=None if self.approximation == "path" else 0,
        )

    def _row_space_solver(self):
        state, spec = self.state_, self.spec_
        D = to_numpy(state.D)
        d = D[:, 0, 0]
        K = D.shape[1]
        # the outputs share one Hessian block only with curvature d_i I per row
        if not np.allclose(D, d[:, None, None] * np.eye(K)[None], rtol=1e-12, atol=0):
            raise ValueError("row-space influence needs the same curvature for every output")
        options = dict(self.solver_options or {})
        options.setdefault("verbose", self.verbose)
        # the preconditioner's n x r factor (and its growth copy) within the budget
        n = self.n_train_
        options.setdefault("preconditioner_rank", min(500, self.max_block_bytes // (16 * n)))
        return RowSpaceInverse(
            spec.training_kernel(),
            spec.kernel_diagonal,
            d,
            self._kernel_penalty_strength() + self.damping,
            **options,
        )

    def _kernel_penalty_strength(self) -> float:
        """``lambda`` of a kernel model in row space: the penalty ``lambda
        beta^T K beta / 2`` it was fitted with (one for every output)."""
        penalty = float(np.ravel(self.spec_.coef_penalty)[0])
        return self.objective_.total_strength * penalty

    #: fitted attributes rebuilt from the training features on unpickling
    #: (they hold array namespaces, which are modules and cannot be pickled)
    _REBUILT = ("spec_", "xp_", "_work_dtype", "n_train_", "objective_", "state_")
    _REBUILT += ("stationarity_",)
    _REBUILT += ("solver_", "_row_gradients", "_leverage_cache", "_removal_shifts")

    def __getstate__(self):
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
                self._build()

    def _features(self, X, feature_map, final):
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
        if y.shape[0] != n:
            raise ValueError(
                f"{name} has {y.shape[0]} rows but X has {n}; pass the targets of the same rows."
            )
        if not spec.is_classifier:
            y = y.astype(np.float64)
            if not np.all(np.isfinite(y)):
                raise ValueError(f"{name} contains NaN or infinity.")
        else:
            spec.class_index(y)  # raises on unknown labels
        return y

    def _hinge_kkt(self):
        """The hinge's KKT split of a single-output hinge-type fit, or None.

        Shared by the stationarity check and the active-set solver."""
        state = self.state_
        if self.spec_.smooth or state.design.n_outputs != 1:
            return None
        if not hasattr(state.objective.loss, "kink_distance"):
            return None
        return hinge_kkt(state)

    def _stationarity(self, kkt):
        """How far the fitted parameters are from an optimum of the objective."""
        if self.spec_.smooth:
            return self.state_.stationarity()
        # hinge-type losses: the smoothed loss is not stationary at the hinge
        # optimum by construction; check the hinge's KKT conditions instead
        return kkt["residual"] if kkt is not None else float("nan")

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
                stacklevel=3,
            )

    def _solver_name(self):
        if self.solver != "auto":
            return self.solver
        return "exact" if self.state_.n_params <= EXACT_MAX_PARAMS else "cg"

    def _uses_active_set(self, kkt):
        return (
            self.hinge == "active_set" and kkt is not None and self.state_.objective.shares is None
        )

    def _make_solver(self, kkt):
        if self._uses_active_set(kkt):
            self._refuse_newton_for_hinge()
            return ActiveSetInverse(HessianOperator(self.state_, self.damping), kkt=kkt)
        if self.approximation == "path":
            raise ValueError(
                "approximation='path' follows the solution path of a hinge-type model "
                "(LinearSVC(loss='hinge'), SVC, SVR, LinearSVR(loss='epsilon_insensitive')) "
                f"with hinge='active_set'; {type(self.spec_.estimator).__name__} with "
                f"hinge={self.hinge!r} is not one. Use approximation='newton' for smooth "
                "objectives."
            )
        if self.spec_.row_space:
            return self._row_space_solver()
        operator = HessianOperator(self.state_, self.damping)
        name = self._solver_name()
        options = dict(self.solver_options or {})
        if name in ("cg", "lissa"):
            options.setdefault("verbose", self.verbose)
        return SOLVERS[name](operator, **options)

    # ------------------------------------------------------------ internals
    def _rows_budget(self, n_cols):
        return rows_per_block(n_cols, self.max_block_bytes, self._itemsize)

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

    def _prepare_test(self, X_test, y_test, target):
        check_is_fitted(self, "solver_")
        _, final = split_pipeline(self.estimator)
        Xf = self._features(X_test, self.feature_map_, final)
        if y_test is not None:
            y_test = self._check_targets(y_test, Xf.shape[0], self.spec_, name="y_test")
        func, Y = self._test_function(target, y_test, Xf.shape[0])
        design = self.spec_.make_design(self._to_xp(Xf), self.xp_)
        return design, func, asarray(Y, self.xp_, self._work_dtype)

    def _test_gradients(self, design, func, Y, rows):
        """Test-function gradients ``[grad L(z_j)]`` for a slice ``rows``: (n_params, b)."""
        sub = design.take(rows)
        return sub.expand(func.gradient(Y[rows, ...], sub.predict(self.state_.theta)))

    def _factors(self, test, rows):
        """The test side of the influence for test rows ``rows``, solved once
        per test block: ``-H^{-1} G`` and, for the active-set hinge, the margin
        rows' part ``-T^T G``. With ``approximation="path"``: the test rows'
        design columns and what evaluating the test function there needs."""
        design, func, Y = test
        if self._removal_shifts is not None:
            sub = design.take(rows)
            xp = self.xp_
            columns = sub.expand(xp.ones((sub.n_samples, 1), dtype=self._work_dtype))
            return columns, (func, Y[rows, ...], sub.predict(self.state_.theta))
        if isinstance(self.solver_, RowSpaceInverse):
            # the training rows' outputs respond to -H^{-1} g_j, g_j = phi(x_j) t_j
            # per output: (n_train, K, m), from the test rows' kernel columns
            sub = design.take(rows)
            T = func.gradient(Y[rows, ...], sub.predict(self.state_.theta))
            E = self.solver_.responses(sub.blocks[0].T.dense())
            return -E[:, None, :] * T.T[None, :, :], None
        G = self._test_gradients(design, func, Y, rows)
        F = -self.solver_.solve(G)
        if isinstance(self.solver_, ActiveSetInverse):
            return F, -self.solver_.margin_solve(G)
        return F, None

    def _row_block(self, factors, rows, out=None):
        """Influence of training rows ``rows`` (a slice) on the test rows behind
        ``factors``, transposed: (n_rows, m); written into ``out`` if given."""
        xp = self.xp_
        F, margin = factors
        if self._removal_shifts is not None:
            block = self._removal_effect(rows, F, *margin)
        elif isinstance(self.solver_, RowSpaceInverse):
            # F holds the training outputs' responses A_i H^{-1} g_j: pair them with u_i
            grads = self._row_gradients.take(rows)
            block = xp.sum(grads.U[:, :, None] * F[rows, ...], axis=1)
        else:
            block = self._gradient_block(rows, F, margin, out)
        if out is not None and block is not out:
            out[...] = block
        return block

    def _gradient_block(self, rows, F, margin, out):
        """``G_rows F`` plus, for the active-set hinge, the margin rows' part;
        one in-place GEMM into ``out`` where it can be."""
        xp = self.xp_
        grads = self._row_gradients.take(rows)
        if out is not None and is_numpy(xp) and self._gemm_into_output(grads, F):
            # one GEMM written in place; the block's gradients, if formed here,
            # are no larger than its output
            block = np.matmul(grads.dense(), F, out=out)
        else:
            block = grads.dot(F)
        if margin is not None:
            margin_rows = self.solver_.margin_rows
            hit = np.flatnonzero((margin_rows >= rows.start) & (margin_rows < rows.stop))
            if hit.size:
                n_rows = rows.stop - rows.start
                select = np.zeros((n_rows, hit.size))
                select[margin_rows[hit] - rows.start, np.arange(hit.size)] = 1.0
                scale = xp.take(self.solver_._margin_scale, xp.asarray(hit), axis=0)
                part = xp.take(margin, xp.asarray(hit), axis=0) * scale[:, None]
                block = block + asarray(select, xp) @ part
        return block

    def _removal_effect(self, rows, columns, func, Y, z):
        """``-(L(z_j + dz_ji) - L(z_j))`` for training rows ``rows`` (a slice):
        the test function at the outputs of the model refitted without row
        ``i``, found by the decremental path, (n_rows, m)."""
        xp = self.xp_
        dZ = self._removal_shifts.take(rows).T @ columns  # (r, m) output changes
        if not self._removal_exact:  # first order: the test function's gradient
            return -dZ * func.gradient(Y, z)[:, 0][None, :]
        r, m = dZ.shape
        Z = xp.reshape(z[:, 0][None, :] + dZ, (r * m, 1))
        Yr = xp.reshape(xp.broadcast_to(Y[None, ...], (r, *Y.shape)), (r * m, *Y.shape[1:]))
        after = xp.reshape(func.value(Yr, Z), (r, m))
        return -(after - func.value(Y, z)[None, :])

    def _gemm_into_output(self, grads, F) -> bool:
        if grads.matrix is not None:
            return True
        return grads.design.dense and self.state_.n_params <= F.shape[1]

    def _blocks(self, test, *, output_held=False):
        """Yield ``(test_rows, train_rows, factors)`` covering the influence
        matrix in blocks of bounded memory; factors are solved once per test
        block. ``test`` is what :meth:`_prepare_test` returns.

        Unless the caller already holds the whole ``n_test x n_train`` output
        (``output_held``), a test block is also small enough for its row of
        ``n_train`` results to fit the budget."""
        design, func, Y = test
        n_test, n_train = design.n_samples, self.n_train_
        P = self.state_.n_params
        # factors and test gradients: 2 P numbers per test row
        per_test_row = 2 * P if output_held else max(2 * P, n_train)
        test_block = max(1, min(n_test, self._rows_budget(per_test_row)))
        for test_rows in block_slices(n_test, test_block):
            factors = self._factors(test, test_rows)
            width = (test_rows.stop - test_rows.start) * max(1, design.n_outputs)
            if self._removal_shifts is not None:
                width = max(width, P)  # a block of removals forms its parameter changes
            for train_rows in block_slices(n_train, max(1, self._rows_budget(width))):
                yield test_rows, train_rows, factors

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
        self, X_test: ArrayLike, y_test: ArrayLike | None = None, *, target: Target = "loss"
    ) -> Array:
        """Influence of every training row on each test row.

        Parameters
        ----------
        X_test : array-like of shape (n_test, n_features)
        y_test : array-like of shape (n_test,), default=None
            Required for ``target="loss"``.
        target : {"loss", "prediction"}, default="loss"
            ``"loss"``: the test loss (log-loss of the predicted probability for
            probabilistic classifiers, the model's own loss for other
            classifiers, squared error for regressors). ``"prediction"``: the
            predicted probability of class ``y_test`` (or of the positive class)
            for probabilistic classifiers, the decision function otherwise, the
            prediction for regressors.

        Returns
        -------
        ndarray of shape (n_test, n_train)
            Removing training row ``i`` changes the target quantity of test row
            ``j`` by about ``-influence[j, i]``.
        """
        check_is_fitted(self, "solver_")
        xp = self.xp_
        test = self._prepare_test(X_test, y_test, target)
        # filled transposed, so that each block of training rows is contiguous
        out = xp.empty((self.n_train_, test[0].n_samples), dtype=self._work_dtype)
        for test_rows, train_rows, factors in self._blocks(test, output_held=True):
            self._row_block(factors, train_rows, out=out[train_rows, test_rows])
        return self._output(out.T)

    @_with_memory_advice
    def most_influential(
        self,
        X_test: ArrayLike,
        y_test: ArrayLike | None = None,
        k: int = 10,
        *,
        target: Target = "loss",
    ) -> dict[str, np.ndarray]:
        """The ``k`` most harmful and most helpful training rows per test row,
        without holding the ``n_test x n_train`` matrix.

        Returns
        -------
        dict with ``harmful_indices``, ``harmful_values`` (largest influence
        first) and ``helpful_indices``, ``helpful_values`` (most negative
        first), each of shape (n_test, k).
        """
        check_is_fitted(self, "solver_")
        k = int(min(k, self.n_train_))
        results = {}
        test = self._prepare_test(X_test, y_test, target)
        for test_rows, train_rows, factors in self._blocks(test):
            B = to_numpy(self._row_block(factors, train_rows)).T
            idx = np.arange(train_rows.start, train_rows.stop)
            key = (test_rows.start, test_rows.stop)
            best = results.setdefault(key, {"hi": None, "lo": None})
            for name, sign in (("hi", 1.0), ("lo", -1.0)):
                vals = np.broadcast_to(idx, B.shape), sign * B
                if best[name] is not None:
                    vals = (
                        np.concatenate([best[name][0], vals[0]], axis=1),
                        np.concatenate([best[name][1], vals[1]], axis=1),
                    )
                kk = min(k, vals[1].shape[1])
                part = np.argpartition(-vals[1], kk - 1, axis=1)[:, :kk]
                best[name] = (
                    np.take_along_axis(vals[0], part, 1),
                    np.take_along_axis(vals[1], part, 1),
                )
        out = {}
        for name, label, sign in (("hi", "harmful", 1.0), ("lo", "helpful", -1.0)):
            idx = np.concatenate([results[key][name][0] for key in sorted(results)], axis=0)
            val = np.concatenate([results[key][name][1] for key in sorted(results)], axis=0)
            order = np.argsort(-val, axis=1, kind="stable")
            out[f"{label}_indices"] = np.take_along_axis(idx, order, 1)
            out[f"{label}_values"] = sign * np.take_along_axis(val, order, 1)
        return out

    @_with_memory_advice
    def self_influence(self) -> Array:
        """Predicted increase of each training row's own loss when it is removed.

        ``self_influence()[i] == -influence(X_train, y_train)[i, i]``; >= 0 for
        convex objectives. Large values mark rows the model can only fit by
        bending towards them: candidates for label review.

        Returns
        -------
        ndarray of shape (n_train,)
        """
        check_is_fitted(self, "solver_")
        xp = self.xp_
        if self._removal_exact:  # the loss itself at the removal's outputs
            loss = self.spec_.test_loss
            Y, z = self.objective_.targets, self.state_.z
            return self._output(loss.value(Y, self._leave_one_out_outputs()) - loss.value(Y, z))
        # the test-loss gradient of row i is A_i^T t_i, so
        # -influence[i, i] = t_i . (A_i H^{-1} g_i)
        T = self.spec_.test_loss.gradient(self.objective_.targets, self.state_.z)
        return self._output(xp.sum(T * self._own_output_shifts(), axis=1))

    @_with_memory_advice
    def training_loss(self) -> Array:
        """Each training row's loss at the fitted model (the test loss of
        :meth:`influence`, e.g. log-loss of the predicted probability).

        Returns
        -------
        ndarray of shape (n_train,)
        """
        check_is_fitted(self, "solver_")
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
        """
        check_is_fitted(self, "solver_")
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
        """
        check_is_fitted(self, "solver_")
        return self._output(self._leave_one_out_outputs())

    def _leave_one_out_outputs(self):
        """``z_i + A_i H^{-1} g_i`` for every training row, (n_train, K)."""
        return self.state_.z + self._own_output_shifts()

    @_with_memory_advice
    def influence_params(self, rows: ArrayLike | None = None) -> Array:
        """Influence of training rows on the fitted parameters.

        Returns
        -------
        ndarray of shape (n_rows, n_params)
            Removing row ``i`` changes the parameter vector (``spec_.theta()``
            layout: per output, coefficients then intercept; for hinge kernel
            models in row space, the dual coefficients over all training rows
            then the intercept) by about ``-influence_params[i]``.
        """
        check_is_fitted(self, "solver_")
        rows = np.arange(self.n_train_) if rows is None else np.asarray(rows)
        return self._output(-self._parameter_shifts(rows).T)

    def _parameter_shifts(self, rows):
        """``H^{-1} g_i``: the parameter change of removing each of ``rows``
        (indices or a slice), (n_params, n_rows); margin rows of the
        active-set hinge move through the KKT system."""
        xp = self.xp_
        if self._removal_shifts is not None:
            return asarray(self._removal_shifts.take(rows), xp)
        G = self._row_gradients.take(rows).dense().T
        shift = self.solver_.solve(G)
        if isinstance(self.solver_, ActiveSetInverse):
            if isinstance(rows, slice):
                rows = np.arange(rows.start, rows.stop)
            margin = self.solver_.margin_rows
            pos = {int(r): k for k, r in enumerate(margin)}
            hit = [(c, pos[int(r)]) for c, r in enumerate(rows) if int(r) in pos]
            if hit:
                cols, ks = (np.asarray(v) for v in zip(*hit, strict=True))
                select = np.zeros((len(margin), len(rows)))
                select[ks, cols] = 1.0
                shift = shift + self.solver_.margin_shifts() @ asarray(select, xp)
        return shift

    def _own_output_shifts(self):
        """``A_i H^{-1} g_i``: how removing row ``i`` moves its own raw
        outputs, (n_train, K). From the leverages ``M_i`` where they are cheap
        (``M_i u_i`` plus the low-rank part), else from parameter shifts."""
        xp = self.xp_
        state = self.state_
        design = state.design
        grads = self._row_gradients
        cheap = self._leverage_cache is not None or self.solver_.name == "exact"
        cheap = cheap or isinstance(self.solver_, RowSpaceInverse)
        by_leverage = not isinstance(self.solver_, ActiveSetInverse)
        by_leverage = by_leverage and self._removal_shifts is None
        if by_leverage and (cheap or design.n_outputs == 1):
            M = self._leverage_cache if self._leverage_cache is not None else self._leverages()
            shift = xp.matmul(M, grads.U[:, :, None])[:, :, 0]
            if grads.coef is not None:
                shift = shift + self._low_rank_output_shifts(grads)
            return shift
        out = []
        for rows in block_slices(self.n_train_, self._rows_budget(2 * state.n_params)):
            out.append(design.take(rows).rowwise(self._parameter_shifts(rows).T))
        return xp.concat(out, axis=0)

    def _low_rank_output_shifts(self, grads):
        """``A_i H^{-1} V c_i``: the low-rank part of the row gradients (penalty
        shares, balanced class weights) carried to each row's outputs, (n, K)."""
        AHV = self.state_.design.forward(self.solver_.solve(grads.vecs))  # (n, K, q)
        return self.xp_.sum(AHV * grads.coef[:, None, :], axis=2)

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

        Returns
        -------
        ndarray of shape (n_test, n_rows, n_features)
        """
        check_is_fitted(self, "solver_")
        xp = self.xp_
        spec, state = self.spec_, self.state_
        if self.approximation != "influence":
            raise ValueError("influence_features supports approximation='influence' only")
        outputs = spec.feature_outputs or list(range(state.design.n_outputs))
        rows = np.arange(self.n_train_) if rows is None else np.asarray(rows)
        design, func, Y = self._prepare_test(X_test, y_test, target)
        if isinstance(self.solver_, (ActiveSetInverse, DecrementalPath)):
            raise ValueError("influence_features needs a smooth objective; pass hinge='smoothed'")
        F = self.solver_.solve(self._test_gradients(design, func, Y, slice(0, design.n_samples)))
        sub = state.design.take(rows)
        idx = xp.asarray(rows)
        U = xp.take(state.U, idx, axis=0)
        D = xp.take(state.D, idx, axis=0)
        AF = sub.forward(F)  # (r, K, m): A_i f_j
        p = spec.n_features
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
        return self._output(-xp.permute_dims(result, (1, 0, 2)))

    # ------------------------------------------------------- newton step
    @_with_memory_advice
    def leverages(self) -> Array:
        """``M_i = A_i H^{-1} A_i^T`` per training row: (n_train, K, K)."""
        check_is_fitted(self, "solver_")
        return self._leverages()

    def _leverages(self):
        xp = self.xp_
        design = self.state_.design
        K = design.n_outputs
        if isinstance(self.solver_, RowSpaceInverse):
            return self._row_space_leverages()
        if isinstance(self.solver_, DecrementalPath):
            raise ValueError(
                "leverages of a hinge kernel model explained in row space are not "
                "available; use solver='exact' (kernel features)."
            )
        if K > 1 and design.shared and self.solver_.name == "exact":
            if design.n_params <= self.n_train_:
                return self._shared_leverages()
        out = []
        for rows in block_slices(self.n_train_, self._rows_budget(2 * K * design.n_params)):
            sub = design.take(rows)
            eye = xp.eye(K, dtype=self._work_dtype)
            ones = xp.ones((rows.stop - rows.start, 1), dtype=self._work_dtype)
            cols = [sub.expand(ones * eye[k : k + 1, :]) for k in range(K)]
            half = [self.solver_.half_solve(C) for C in cols]
            if half[0] is not None:
                M = [[xp.sum(half[a] * half[b], axis=0) for b in range(K)] for a in range(K)]
            else:
                sol = [self.solver_.solve(C) for C in cols]
                M = [[xp.sum(cols[a] * sol[b], axis=0) for b in range(K)] for a in range(K)]
            out.append(xp.stack([xp.stack(r, axis=1) for r in M], axis=1))
        return xp.concat(out, axis=0)

    def _row_space_leverages(self):
        """``M_i = h_i I`` with ``h_i = phi_i^T H^{-1} phi_i``: the responses to
        the training rows' own kernel columns, a bounded block at a time (one
        row-space solve per training row: ``O(n)`` solves in all)."""
        xp = self.xp_
        n, K = self.n_train_, self.state_.design.n_outputs
        train = self.state_.design.blocks[0]
        h = np.empty(n)
        # conjugate gradients hold about five n x b arrays per block of b rows
        for rows in block_slices(n, self._rows_budget(6 * n)):
            E = self.solver_.responses(train.take_rows(rows).T.dense())
            h[rows] = E[np.arange(rows.start, rows.stop), np.arange(rows.stop - rows.start)]
        return asarray(h, xp)[:, None, None] * xp.eye(K, dtype=xp.float64)[None, :, :]

    def _shared_leverages(self):
        """``M_i[a, b] = x_i^T (H^{-1})_{ab} x_i`` for a design shared by all
        ``K`` outputs: from the explicit inverse (``P^3`` once) instead of ``K``
        solves with ``n`` right-hand sides each (``K n P^2``)."""
        xp = self.xp_
        design = self.state_.design
        K, p = design.n_outputs, design.sizes[0]
        Hinv = self.solver_.solve(xp.eye(design.n_params, dtype=self._work_dtype))
        X = design.blocks[0]
        out = []
        for rows in block_slices(self.n_train_, self._rows_budget(2 * K * p)):
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
        return xp.concat(out, axis=0)

    def _newton_row_gradients(self, base):
        r"""Row gradients ``g~_i`` with ``H^{-1} g~_i = (H - H_i)^{-1} g_i``.

        Woodbury with ``H_i = A_i^T D_i A_i`` and ``g_i = A_i^T u_i + V c_i``:
        ``g~_i = A_i^T u~_i + V c_i`` with
        ``u~_i = (I - D_i M_i)^{-1} (u_i + D_i A_i H^{-1} V c_i)``. The low-rank
        part (penalty shares, balanced class weights: O(1/n) of ``H``) stays
        first order. ``base`` holds the plain ``g_i``.
        """
        xp = self.xp_
        state = self.state_
        M = self._leverages()
        self._leverage_cache = M
        D = state.D
        K = state.design.n_outputs
        U = base.U
        if base.coef is not None:
            AHVc = self._low_rank_output_shifts(base)
            U = U + xp.matmul(D, AHVc[:, :, None])[:, :, 0]
        eye = xp.eye(K, dtype=U.dtype)
        Amat = eye[None, :, :] - xp.matmul(D, M)
        det = to_numpy(xp.linalg.det(Amat))
        bad = ~(det > 1e-10)
        if np.any(bad):
            warnings.warn(
                f"{int(bad.sum())} training row(s) have leverage 1 (the model is "
                "undetermined without them); their Newton estimate is replaced by the "
                "plain influence function.",
                RuntimeWarning,
                stacklevel=3,
            )
            Amat = xp.where(xp.asarray(bad)[:, None, None], eye[None, :, :], Amat)
        return base.with_U(xp.linalg.solve(Amat, U[:, :, None])[:, :, 0])

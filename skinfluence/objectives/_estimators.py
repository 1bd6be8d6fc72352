"""From a fitted scikit-learn estimator to its training objective.

Each supported estimator family gets a :class:`ModelSpec` that states, in one
place, how scikit-learn defines its objective: which pointwise loss, which row
weights (``C``, sample and class weights), which penalty and whether the
penalty is shared per row (mean-loss objectives), and how to read the fitted
parameters. Everything numerical downstream works from that spec.

=========================  ===================================================
estimator                  objective minimised by scikit-learn
=========================  ===================================================
LogisticRegression         ``C sum_i s_i c_{y_i} l_log(y_i, z_i) + ||W||^2/2``
                           (liblinear also penalises ``b / intercept_scaling``)
LinearRegression           ``sum_i s_i (y_i - z_i)^2``
Ridge, RidgeClassifier     ``sum_i s_i (y_i - z_i)^2 + alpha ||W||^2``
SGDClassifier/Regressor    ``(1/n) sum_i s_i c_{y_i} l(y_i, z_i) + alpha ||W||^2/2``
PoissonRegressor           ``(1/sum s) sum_i s_i (exp z_i - y_i z_i) + alpha ||W||^2/2``
HuberRegressor             ``sum_i s_i (sigma + H_eps(r_i/sigma) sigma) + alpha ||w||^2``
=========================  ===================================================
"""

from __future__ import annotations

import copy
import inspect

import numpy as np
from sklearn.linear_model import (
    HuberRegressor,
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.utils.class_weight import compute_class_weight

from .._backend import asarray, get_namespace
from .._compat import SKLEARN_VERSION
from ._design import BlockDesign, with_intercept
from ._losses import (
    BinomialLogLoss,
    HalfPoissonDeviance,
    Huber,
    HuberWithScale,
    ModifiedHuber,
    MultinomialLogLoss,
    OvRClassWeighted,
    OvRNormalizedLogLoss,
    PointwiseLoss,
    Prediction,
    SmoothedEpsilonInsensitive,
    SmoothedHinge,
    SquaredError,
    SquaredErrorExpLink,
    SquaredHinge,
)
from ._objective import ClassReweighting, Objective, Regularizer

#: solvers whose multiclass LogisticRegression is one-vs-rest: newton-cholesky
#: became multinomial in scikit-learn 1.6
OVR_SOLVERS = ("liblinear",) if SKLEARN_VERSION >= (1, 6) else ("liblinear", "newton-cholesky")

#: scikit-learn >= 1.6 lets "balanced" class weights count sample weights
#: (LogisticRegression, LinearSVC); 1.5 counts rows
BALANCE_WITH_SAMPLE_WEIGHT = "sample_weight" in inspect.signature(compute_class_weight).parameters


class FirstOutputs(PointwiseLoss):
    """A loss of the first ``k`` outputs only (the prediction of
    ``HuberRegressor``, whose second output is the scale)."""

    def __init__(self, loss, k=1):
        self.loss = loss
        self.k = k

    def value(self, y, z):
        return self.loss.value(y, z[:, : self.k])

    def gradient(self, y, z):
        xp = get_namespace(z)
        g = self.loss.gradient(y, z[:, : self.k])
        pad = xp.zeros((z.shape[0], z.shape[1] - self.k), dtype=z.dtype)
        return xp.concat([g, pad], axis=1)


class ModelSpec:
    """How one fitted estimator defines its objective.

    Subclasses set the attributes below in ``__init__`` and may override the
    design, the parameter layout or the target encoding.

    Attributes
    ----------
    train_loss, test_loss : PointwiseLoss
    prediction : Prediction
        What ``target="prediction"`` differentiates.
    n_outputs : int
    fit_intercept : bool
    row_scale : float
        ``C`` for logistic regression, 1 otherwise.
    coef_penalty : array of shape (n_outputs,)
        Diagonal of ``R`` on coefficients, per output.
    intercept_penalty : float
    strength : float
        ``lambda_0``: fixed multiplier of the penalty.
    share : {None, "count", "weight"}
        Per-row penalty shares of mean-loss objectives: ``share_scale`` per
        row (``SGD*``) or ``share_scale * s_i`` (GLMs fitted by L-BFGS).
    """

    is_classifier = False
    smooth = True
    share = None
    share_scale = 0.0
    strength = 1.0
    row_scale = 1.0
    intercept_penalty = 0.0

    #: outputs whose raw prediction is linear in the row's features (for
    #: perturbation influence); None means all of them
    feature_outputs = None

    def __init__(self, estimator, *, temperature=None):
        self.estimator = estimator
        self.temperature = temperature
        self.classes_ = getattr(estimator, "classes_", None) if self.is_classifier else None
        self.fit_intercept = bool(getattr(estimator, "fit_intercept", True))
        coef = getattr(estimator, "coef_", None)  # kernel models have none
        if coef is not None:
            coef = np.asarray(coef, dtype=float)
            self.n_features = coef.shape[-1]
            self.n_outputs = 1 if coef.ndim == 1 else coef.shape[0]

    #: whether each row's design depends on that row alone (not on the other
    #: training rows, as kernel features do): the objective can then be built
    #: one chunk of rows at a time (:mod:`skinfluence._dask`)
    row_local = True

    #: whether the parameters are a kernel model's dual coefficients (row space)
    row_space = False
    #: memory of one block of kernel values evaluated in row space
    kernel_block_bytes = 32 * 2**20

    def prepared(self, X_train, *, row_space: bool = False, kernel_block_bytes=None) -> ModelSpec:
        """A copy of this spec made ready for the training features ``X_train``.

        Specs are not modified once prepared: the explainer holds the copy.
        ``row_space`` and ``kernel_block_bytes`` apply to kernel models (see
        :class:`~skinfluence.objectives._kernel.KernelModelSpec`).
        """
        spec = copy.copy(self)
        spec.row_space = bool(row_space)
        if kernel_block_bytes is not None:
            spec.kernel_block_bytes = int(kernel_block_bytes)
        spec.prepare(X_train)
        return spec

    def prepare(self, X_train) -> None:
        """Hook for specs whose features depend on the training rows (kernels);
        called on the copy :meth:`prepared` returns."""

    def raw_prediction(self, estimator, X, keep=None):
        """Raw outputs ``z`` of a (re)fitted ``estimator`` on features ``X``
        (NumPy), as the objective sees them; ``keep`` is the mask of training
        rows it was fitted on (used by precomputed kernels)."""
        xp = get_namespace(np.empty(0))
        design = self.make_design(X, xp)
        return np.asarray(design.predict(asarray(self.theta(estimator), xp)))

    # --- targets -------------------------------------------------------
    def encode(self, y) -> np.ndarray:
        """Encoded float targets, shape (n, n_targets)."""
        if self.is_classifier:
            return self._encode_classes(y)
        y = np.asarray(y, dtype=float)
        return y.reshape(len(y), -1)

    def class_index(self, y) -> np.ndarray:
        classes = self.classes_
        y = np.asarray(y)
        if (y.dtype.kind in "OUS") != (np.asarray(classes).dtype.kind in "OUS"):
            raise ValueError(
                f"y has labels of dtype {y.dtype} (e.g. {y[:3].tolist()}), but the "
                f"estimator was fitted on classes {np.asarray(classes).tolist()[:10]} of "
                f"dtype {np.asarray(classes).dtype}. Pass labels of the same type as "
                "those the model was fitted on."
            )
        try:
            idx = np.searchsorted(classes, y)
        except TypeError as exc:  # mixed label types (object arrays)
            raise ValueError(
                f"y's labels cannot be compared with the estimator's classes_ "
                f"{np.asarray(classes).tolist()[:10]} ({exc}); pass labels of the same "
                "type as those the model was fitted on."
            ) from None
        idx = np.clip(idx, 0, len(classes) - 1)
        bad = classes[idx] != y
        if np.any(bad):
            raise ValueError(
                f"y contains labels {np.unique(y[bad])[:5].tolist()} the estimator "
                f"was not fitted on; its classes_ are {classes.tolist()}."
            )
        return idx

    def _encode_classes(self, y) -> np.ndarray:
        idx = self.class_index(y)
        if self.n_outputs == 1:
            return (idx == 1).astype(float)[:, None]
        return np.eye(len(self.classes_))[idx]

    def prediction_targets(self, y, n) -> np.ndarray:
        """Selector for ``target="prediction"``: one-hot for the output of
        class ``y``; for a single output a column of ones, or of ``+1 / -1``
        for the probability of class ``y`` of a binary probabilistic model."""
        if self.n_outputs == 1 or y is None:
            if self.n_outputs > 1:
                raise ValueError("pass y_test to choose the class whose prediction to explain")
            if y is not None and getattr(self.prediction, "kind", None) == "sigmoid":
                return (2.0 * self.class_index(y) - 1.0)[:, None]  # P(class y)
            return np.ones((n, 1))
        return np.eye(self.n_outputs)[self.class_index(y)]

    #: whether "balanced" class weights count sample weights (LogisticRegression,
    #: LinearSVC) or rows (Ridge*, SGD*, libsvm)
    class_weight_with_sample_weight = False
    #: whether class weights scale one-vs-rest outputs rather than rows (SGD)
    per_output_class_weight = False

    def class_weights(self, y, sample_weight) -> np.ndarray | None:
        """``c_k`` as the estimator computed them at fit time, or None."""
        cw = getattr(self.estimator, "class_weight", None) if self.is_classifier else None
        if cw is None:
            return None
        kwargs = {}
        if self._balance_with_sample_weight():
            kwargs["sample_weight"] = sample_weight
        return compute_class_weight(cw, classes=self.classes_, y=np.asarray(y), **kwargs).astype(
            float
        )

    def _balance_with_sample_weight(self) -> bool:
        return self.class_weight_with_sample_weight and BALANCE_WITH_SAMPLE_WEIGHT

    def _per_output(self) -> bool:
        return self.per_output_class_weight and self.n_outputs > 1

    def row_weights(self, y, sample_weight) -> np.ndarray:
        """``w_i``: sample weight times class weight times ``row_scale``."""
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        cw = self.class_weights(y, sample_weight)
        if cw is not None and not self._per_output():
            w = w * cw[self.class_index(y)]
        return self.row_scale * w

    def class_reweighting(self, y, sample_weight, xp, dtype) -> ClassReweighting | None:
        """How removing each row changes ``class_weight="balanced"`` weights."""
        if getattr(self.estimator, "class_weight", None) != "balanced":
            return None
        idx = self.class_index(y)
        n, K = len(idx), len(self.classes_)
        use_sw = self._balance_with_sample_weight() and sample_weight is not None
        s = np.asarray(sample_weight, dtype=float) if use_sw else np.ones(n)
        onehot = np.eye(K)[idx]
        S, S_k = s.sum(), onehot.T @ s
        cw = S / (K * S_k)
        remaining = S_k[None, :] - s[:, None] * onehot  # class totals without row i
        with np.errstate(divide="ignore", invalid="ignore"):
            cw_without = (S - s)[:, None] / (K * remaining)
        # a class emptied by the removal has no rows left for its weight to scale
        delta = np.where(remaining > 0, cw[None, :] - cw_without, 0.0)
        return ClassReweighting(
            asarray(onehot, xp, dtype),
            asarray(cw, xp, dtype),
            asarray(delta, xp, dtype),
            self._per_output(),
        )

    # --- parameters and design ----------------------------------------
    def theta(self, estimator=None) -> np.ndarray:
        """Fitted parameters as one flat vector, output by output:
        ``[coef_0, intercept_0, coef_1, intercept_1, ...]``."""
        est = self.estimator if estimator is None else estimator
        coef = np.asarray(est.coef_, dtype=float).reshape(self.n_outputs, -1)
        if not self.fit_intercept:
            return coef.ravel()
        b = np.broadcast_to(np.asarray(est.intercept_, dtype=float), (self.n_outputs,))
        return np.concatenate([coef, b[:, None]], axis=1).ravel()

    def make_design(self, X, xp) -> BlockDesign:
        """The design on features ``X``, at the dtype of ``X``."""
        Xt = with_intercept(X, xp) if self.fit_intercept else X
        return BlockDesign([Xt] * self.n_outputs, xp)

    def regularizer(self, xp, dtype) -> Regularizer:
        pen = np.broadcast_to(np.asarray(self.coef_penalty, dtype=float), (self.n_outputs,))
        blocks = []
        for k in range(self.n_outputs):
            blocks.append(np.full(self.n_features, pen[k]))
            if self.fit_intercept:
                blocks.append([self.intercept_penalty])
        return Regularizer(asarray(np.concatenate(blocks), xp, dtype), xp=xp)

    def shares(self, sample_weight, n) -> np.ndarray | None:
        if self.share is None or self.share_scale == 0.0:
            return None
        if self.share == "count":
            return np.full(n, self.share_scale)
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        return self.share_scale * w

    def objective(self, X, y, sample_weight, xp) -> Objective:
        """The training objective on (already transformed) ``X``, at the dtype
        of ``X``."""
        terms = self.objective_terms(y, sample_weight, X.shape[0], xp, X.dtype)
        return Objective(design=self.make_design(X, xp), **terms)

    def objective_terms(self, y, sample_weight, n, xp, dtype) -> dict:
        """Everything of the objective but its design: the loss, the encoded
        targets, row weights, penalty and shares of the ``n`` training rows
        (keyword arguments of :class:`Objective`). They need the labels and
        weights only, so a table held in chunks gets the full data's scaling
        (class weights, penalty total) from them."""
        shares = self.shares(sample_weight, n)
        loss = self.train_loss
        if self._per_output():
            cw = self.class_weights(y, sample_weight)
            if cw is not None:
                loss = OvRClassWeighted(loss, asarray(cw, xp, dtype))
        return dict(
            loss=loss,
            targets=asarray(self.encode(y), xp, dtype),
            weights=asarray(self.row_weights(y, sample_weight), xp, dtype),
            regularizer=self.regularizer(xp, dtype),
            strength=self.strength,
            shares=None if shares is None else asarray(shares, xp, dtype),
            reweighting=self.class_reweighting(y, sample_weight, xp, dtype),
        )


def liblinear_intercept_penalty(est) -> float:
    """The penalty liblinear puts on the intercept, in ``R``.

    liblinear appends a constant feature ``intercept_scaling`` whose weight is
    penalised like the others: ``intercept_ = intercept_scaling * w_last``, so
    ``w_last^2 = intercept_^2 / intercept_scaling^2``.
    """
    return 1.0 / float(est.intercept_scaling) ** 2 if est.fit_intercept else 0.0


def _logistic_penalty(est):
    """``(penalty, C)`` across scikit-learn 1.5 - 1.9+ (1.8 deprecates
    ``penalty`` in favour of ``l1_ratio`` and ``C=np.inf``)."""
    penalty = getattr(est, "penalty", "l2")
    C = float(est.C)
    l1_ratio = getattr(est, "l1_ratio", None)
    if penalty == "deprecated":
        if l1_ratio in (None, 0, 0.0):
            penalty = "l2"
        elif l1_ratio == 1:
            penalty = "l1"
        else:
            penalty = "elasticnet"
        if np.isinf(C):
            penalty = None
    elif penalty == "l2" and np.isinf(C):
        penalty = None
    return penalty, C


def _reject_sparse_penalty(name, penalty):
    if penalty in ("l1", "elasticnet"):
        raise ValueError(
            f"{name} with an {penalty} penalty is not supported: its objective is not "
            "differentiable where coefficients are zero, so influence functions are "
            "undefined there. Refit with an L2 penalty (l1_ratio=0) or none, or "
            "select features first and explain a model fitted on them."
        )


class LogisticRegressionSpec(ModelSpec):
    is_classifier = True
    class_weight_with_sample_weight = True

    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        penalty, C = _logistic_penalty(est)
        _reject_sparse_penalty("LogisticRegression", penalty)
        multi = getattr(est, "multi_class", "auto")
        ovr = self.n_outputs > 1 and (
            multi == "ovr" or (multi in ("auto", "deprecated") and est.solver in OVR_SOLVERS)
        )
        if penalty is None:
            self.row_scale, self.coef_penalty = 1.0, 0.0
        else:
            self.row_scale, self.coef_penalty = C, 1.0
        if est.solver == "liblinear" and penalty is not None:
            self.intercept_penalty = liblinear_intercept_penalty(est)
        if self.n_outputs == 1:
            self.train_loss = self.test_loss = BinomialLogLoss()
            self.prediction = Prediction("sigmoid")
        elif ovr:
            self.train_loss = BinomialLogLoss()
            self.test_loss = OvRNormalizedLogLoss()
            self.prediction = Prediction("ovr")
        else:
            self.train_loss = self.test_loss = MultinomialLogLoss()
            self.prediction = Prediction("softmax")


class LeastSquaresSpec(ModelSpec):
    """``LinearRegression`` and ``Ridge``: ``sum s_i ||y_i - z_i||^2 + alpha ||W||^2``."""

    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        if getattr(est, "positive", False):
            raise ValueError(
                f"{type(est).__name__}(positive=True) has active constraints; influence "
                "functions of constrained fits are not supported. Refit with positive=False."
            )
        alpha = np.asarray(getattr(est, "alpha", 0.0), dtype=float)
        self.coef_penalty = 2.0 * alpha  # alpha ||w||^2 = (1/2) (2 alpha) ||w||^2
        self.train_loss = self.test_loss = SquaredError(1.0)
        self.prediction = Prediction("raw")


class RidgeClassifierSpec(LeastSquaresSpec):
    """``RidgeClassifier``: ridge regression on {-1, +1} class indicators."""

    is_classifier = True

    def _encode_classes(self, y):
        return 2.0 * super()._encode_classes(y) - 1.0


class SGDClassifierSpec(ModelSpec):
    is_classifier = True
    per_output_class_weight = True
    share = "count"
    strength = 0.0

    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        _reject_sparse_penalty("SGDClassifier", est.penalty)
        self.share_scale = float(est.alpha) if est.penalty == "l2" else 0.0
        self.coef_penalty = 1.0
        loss = est.loss
        self.prediction = Prediction("raw")
        if loss == "log_loss":
            self.train_loss = BinomialLogLoss()
            if self.n_outputs == 1:
                self.test_loss, self.prediction = self.train_loss, Prediction("sigmoid")
            else:
                self.test_loss, self.prediction = OvRNormalizedLogLoss(), Prediction("ovr")
        elif loss == "modified_huber":
            self.train_loss = self.test_loss = ModifiedHuber()
        elif loss == "squared_hinge":
            self.train_loss = self.test_loss = SquaredHinge()
        elif loss == "hinge":
            self.smooth = False
            self.train_loss = self.test_loss = SmoothedHinge(self.temperature)
        else:
            raise ValueError(
                f"SGDClassifier(loss={loss!r}) is not supported; use one of "
                "'log_loss', 'modified_huber', 'squared_hinge', 'hinge'."
            )


class SGDRegressorSpec(ModelSpec):
    share = "count"
    strength = 0.0

    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        _reject_sparse_penalty("SGDRegressor", est.penalty)
        self.share_scale = float(est.alpha) if est.penalty == "l2" else 0.0
        self.coef_penalty = 1.0
        loss = est.loss
        self.test_loss = SquaredError(1.0)
        self.prediction = Prediction("raw")
        if loss == "squared_error":
            self.train_loss = SquaredError(0.5)
        elif loss == "huber":
            self.train_loss = Huber(float(est.epsilon))
        elif loss == "epsilon_insensitive":
            self.smooth = False
            self.train_loss = SmoothedEpsilonInsensitive(float(est.epsilon), self.temperature)
        else:
            raise ValueError(
                f"SGDRegressor(loss={loss!r}) is not supported; use 'squared_error', "
                "'huber' or 'epsilon_insensitive'."
            )


class PoissonRegressorSpec(ModelSpec):
    share = "weight"
    strength = 0.0

    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        self.share_scale = float(est.alpha)
        self.coef_penalty = 1.0
        self.train_loss = HalfPoissonDeviance()
        self.test_loss = SquaredErrorExpLink()
        self.prediction = Prediction("exp")


class HuberRegressorSpec(ModelSpec):
    """Parameters ``[coef, intercept, scale]``; the scale is a second output
    whose "feature" is a column of ones."""

    feature_outputs = [0]

    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        self.n_outputs = 1
        self.coef_penalty = 2.0 * float(est.alpha)
        self.train_loss = HuberWithScale(float(est.epsilon))
        self.test_loss = FirstOutputs(SquaredError(1.0))
        self.prediction = FirstOutputs(Prediction("raw"))

    def theta(self, estimator=None):
        est = self.estimator if estimator is None else estimator
        return np.concatenate([super().theta(est), [float(est.scale_)]])

    def make_design(self, X, xp):
        Xt = with_intercept(X, xp) if self.fit_intercept else X
        return BlockDesign([Xt, xp.ones((X.shape[0], 1), dtype=X.dtype)], xp)

    def regularizer(self, xp, dtype):
        base = super().regularizer(xp, dtype)
        return Regularizer(xp.concat([base.diagonal, xp.zeros(1, dtype=dtype)]), xp=xp)


#: estimator class -> spec class; subclasses of these estimators are accepted.
LINEAR_SPECS = {
    LogisticRegression: LogisticRegressionSpec,
    LinearRegression: LeastSquaresSpec,
    Ridge: LeastSquaresSpec,
    RidgeClassifier: RidgeClassifierSpec,
    SGDClassifier: SGDClassifierSpec,
    SGDRegressor: SGDRegressorSpec,
    PoissonRegressor: PoissonRegressorSpec,
    HuberRegressor: HuberRegressorSpec,
}

"""Linear support vector machines, through a smoothed hinge.

The hinge ``max(0, 1 - m)`` has no curvature off the margin and no derivative
on it, so influence uses Koh & Liang's smoothed hinge
``t log(1 + exp((1 - m) / t))`` (and its epsilon-insensitive analogue for
regression) at temperature ``t``, evaluated at the fitted hinge optimum.

=============  ===========================================================
estimator      objective minimised by scikit-learn
=============  ===========================================================
LinearSVC      ``C sum_i s_i c_{y_i} l(y_i, z_i) + (||w||^2 + (b / s_b)^2) / 2``
               with ``l`` the (squared) hinge, one-vs-rest for multiclass,
               ``s_b = intercept_scaling`` (liblinear penalises the intercept)
LinearSVR      ``C sum_i s_i l(y_i - z_i) + (||w||^2 + (b / s_b)^2) / 2``
SVC (linear)   ``C sum_i s_i c_{y_i} hinge(y_i, z_i) + ||w||^2 / 2`` (binary)
=============  ===========================================================
"""

from __future__ import annotations

from sklearn.svm import LinearSVC, LinearSVR

from ._estimators import ModelSpec, liblinear_intercept_penalty
from ._losses import (
    Prediction,
    SmoothedEpsilonInsensitive,
    SmoothedHinge,
    SquaredEpsilonInsensitive,
    SquaredError,
    SquaredHinge,
)


class LinearSVCSpec(ModelSpec):
    is_classifier = True
    # liblinear: "balanced" counts sample weights; one-vs-rest problem k
    # weights its positive rows by c_k and the rest by 1
    class_weight_with_sample_weight = True
    per_output_class_weight = True

    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        if est.penalty != "l2":
            raise ValueError(
                "LinearSVC(penalty='l1') is not supported: the L1 penalty is not "
                "differentiable at zero. Use penalty='l2'."
            )
        if est.multi_class == "crammer_singer":
            raise ValueError(
                "LinearSVC(multi_class='crammer_singer') is not supported; use the "
                "default one-vs-rest scheme."
            )
        self.row_scale = float(est.C)
        self.coef_penalty = 1.0
        self.intercept_penalty = liblinear_intercept_penalty(est)
        self.prediction = Prediction("raw")
        if est.loss == "hinge":
            self.smooth = False
            self.train_loss = self.test_loss = SmoothedHinge(self.temperature)
        else:
            self.train_loss = self.test_loss = SquaredHinge()


class LinearSVRSpec(ModelSpec):
    def __init__(self, est, *, temperature=None):
        super().__init__(est, temperature=temperature)
        self.row_scale = float(est.C)
        self.coef_penalty = 1.0
        self.intercept_penalty = liblinear_intercept_penalty(est)
        self.prediction = Prediction("raw")
        self.test_loss = SquaredError(1.0)
        eps = float(est.epsilon)
        if est.loss == "epsilon_insensitive":
            self.smooth = False
            self.train_loss = SmoothedEpsilonInsensitive(eps, self.temperature)
        else:
            self.train_loss = SquaredEpsilonInsensitive(eps)


def check_binary_svc(est):
    if len(est.classes_) != 2:
        raise ValueError(
            f"{type(est).__name__} with {len(est.classes_)} classes is not supported: its "
            "one-vs-one scheme fits a separate SVM per pair of classes on different "
            "rows, so no single objective defines it. Explain each pair with a binary "
            "SVC, or use LinearSVC / LogisticRegression (one-vs-rest / multinomial)."
        )


class LinearKernelSVCSpec(ModelSpec):
    """``SVC(kernel="linear")``: its ``coef_`` are the primal weights."""

    is_classifier = True
    smooth = False

    def __init__(self, est, *, temperature=None):
        check_binary_svc(est)
        super().__init__(est, temperature=temperature)
        self.row_scale = float(est.C)
        self.coef_penalty = 1.0
        self.train_loss = self.test_loss = SmoothedHinge(self.temperature)
        self.prediction = Prediction("raw")


LINEAR_SVM_SPECS = {LinearSVC: LinearSVCSpec, LinearSVR: LinearSVRSpec}

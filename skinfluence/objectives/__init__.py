"""Training objectives of scikit-learn estimators: losses, designs, derivatives,
and the public extension point :func:`register_estimator`."""

from ._design import BlockDesign, with_intercept
from ._estimators import ModelSpec
from ._losses import BinomialLogLoss, MultinomialLogLoss, PointwiseLoss, Prediction, SquaredError
from ._objective import Objective, ObjectiveState, Regularizer, RowGradients
from ._registry import register_estimator, spec_for, supported_estimators

__all__ = [
    "BinomialLogLoss",
    "BlockDesign",
    "ModelSpec",
    "MultinomialLogLoss",
    "Objective",
    "ObjectiveState",
    "PointwiseLoss",
    "Prediction",
    "Regularizer",
    "RowGradients",
    "SquaredError",
    "register_estimator",
    "spec_for",
    "supported_estimators",
    "with_intercept",
]

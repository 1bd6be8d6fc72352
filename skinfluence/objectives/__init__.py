"""Training objectives of scikit-learn estimators: losses, designs, derivatives."""

from ._design import BlockDesign, with_intercept
from ._objective import Objective, ObjectiveState, Regularizer, RowGradients

__all__ = [
    "BlockDesign",
    "Objective",
    "ObjectiveState",
    "Regularizer",
    "RowGradients",
    "with_intercept",
]

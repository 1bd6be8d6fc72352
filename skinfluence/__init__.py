"""skinfluence: influence functions for fitted scikit-learn models.

Which training rows made a model predict this, and what would happen without
them? See :class:`InfluenceExplainer`.
"""

from ._explainer import InfluenceExplainer, NotAtOptimumWarning
from .cleaning import CleanLabelsClassifier, InfluenceLabelCleaner
from .objectives import register_estimator, supported_estimators
from .solvers import ConvergenceError

__version__ = "0.1.0"

__all__ = [
    "CleanLabelsClassifier",
    "ConvergenceError",
    "InfluenceExplainer",
    "InfluenceLabelCleaner",
    "NotAtOptimumWarning",
    "register_estimator",
    "supported_estimators",
    "__version__",
]

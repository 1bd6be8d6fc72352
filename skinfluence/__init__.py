"""skinfluence: influence functions for fitted scikit-learn models.

Which training rows made a model predict this, and what would happen without
them? See :class:`InfluenceExplainer`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# The public names are imported on first use (PEP 562), so that ``import
# skinfluence`` -- and with it ``skinfluence --help`` -- does not pay for
# importing scikit-learn and SciPy.
_LAZY = {
    "CleanLabelsClassifier": ".cleaning",
    "ConvergenceError": ".solvers",
    "InfluenceExplainer": "._explainer",
    "InfluenceLabelCleaner": ".cleaning",
    "NotAtOptimumWarning": "._explainer",
    "TabularPreprocessor": ".preprocessing",
    "register_estimator": ".objectives._registry",
    "supported_estimators": ".objectives._registry",
}

__all__ = [
    "CleanLabelsClassifier",
    "ConvergenceError",
    "InfluenceExplainer",
    "InfluenceLabelCleaner",
    "NotAtOptimumWarning",
    "TabularPreprocessor",
    "register_estimator",
    "supported_estimators",
    "__version__",
]

if TYPE_CHECKING:  # pragma: no cover - for static analysers only
    from ._explainer import InfluenceExplainer, NotAtOptimumWarning
    from .cleaning import CleanLabelsClassifier, InfluenceLabelCleaner
    from .objectives._registry import register_estimator, supported_estimators
    from .preprocessing import TabularPreprocessor
    from .solvers import ConvergenceError


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))

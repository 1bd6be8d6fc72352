"""Label cleaning with influence functions.

:class:`InfluenceLabelCleaner` scores every training row of a classifier
(higher = more likely mislabeled) and drops or relabels the suspicious ones;
it follows imbalanced-learn's sampler protocol (``fit_resample``).
:class:`CleanLabelsClassifier` cleans, then fits, as one scikit-learn
classifier. :func:`simulate_review` replays a label review on data with known
flips (Koh & Liang 2017, Figure 6).
"""

from ._classifier import CleanLabelsClassifier
from ._cleaner import DEFAULT_METHOD, InfluenceLabelCleaner
from ._review import ReviewResult, simulate_review
from ._scoring import METHODS

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "CleanLabelsClassifier",
    "InfluenceLabelCleaner",
    "ReviewResult",
    "simulate_review",
]

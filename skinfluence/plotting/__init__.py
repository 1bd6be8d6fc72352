"""Displays in scikit-learn's style (matplotlib is imported when plotting)."""

from ._agreement import AgreementDisplay
from ._review import ReviewCurveDisplay

__all__ = ["AgreementDisplay", "ReviewCurveDisplay"]

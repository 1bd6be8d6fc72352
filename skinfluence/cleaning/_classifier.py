"""A classifier that cleans its training labels with influence functions
before fitting."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d
from sklearn_compat.utils import get_tags

from .._compat import HasMethods, Interval, StrOptions
from ..preprocessing import check_table
from ._cleaner import DEFAULT_METHOD, InfluenceLabelCleaner, default_estimator
from ._scoring import METHODS


def _check_input(estimator, X, *, reset):
    """Check shape and emptiness (and set ``n_features_in_``) without
    converting ``X``: a pipeline of column transformers needs its DataFrame.
    Array-likes without a shape become arrays."""
    return check_table(estimator, X, reset=reset)


def _final_has(attr):
    def check(self):
        est = self.estimator_ if hasattr(self, "estimator_") else self._estimator()
        return hasattr(est, attr)

    return check


class CleanLabelsClassifier(ClassifierMixin, BaseEstimator):
    """Clean the training labels with influence functions, then fit.

    ``fit(X, y)`` runs :class:`InfluenceLabelCleaner` on ``(X, y)`` (a clone
    of ``estimator`` fitted on all rows, every row scored, the suspicious ones
    dropped or relabelled) and fits a fresh clone of ``estimator`` on the
    cleaned data. Prediction methods delegate to that final estimator, so the
    classifier works in :class:`~sklearn.pipeline.Pipeline`,
    :func:`~sklearn.model_selection.cross_val_score` and
    :class:`~sklearn.model_selection.GridSearchCV` like any other (only the
    training folds are cleaned; test folds are scored on their given labels).

    Parameters
    ----------
    estimator : classifier or Pipeline, default=None
        Supported by :class:`~skinfluence.InfluenceExplainer`; used both to
        score the rows and as the final model. ``None`` uses
        ``make_pipeline(TabularPreprocessor(), LogisticRegression(
        solver="newton-cg", tol=1e-8))``: numeric columns imputed and
        standardised, string, categorical and boolean columns imputed and
        one-hot encoded (:class:`~skinfluence.preprocessing.TabularPreprocessor`),
        so that a mixed-type DataFrame works as it is.
    method, fraction, n_flag, threshold, action, explainer_params
        As in :class:`InfluenceLabelCleaner`.

    Attributes
    ----------
    cleaner_ : InfluenceLabelCleaner
        The fitted cleaner (``label_issues_``, ``scores_``, ``flagged_``).
    estimator_ : estimator
        The final estimator, fitted on the cleaned data.
    classes_ : ndarray
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has string column names.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.model_selection import cross_val_score
    >>> from skinfluence.cleaning import CleanLabelsClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = CleanLabelsClassifier(fraction=0.02)
    >>> bool(cross_val_score(clf, X, y, cv=3).mean() > 0.9)
    True
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict"]), None],
        "method": [StrOptions(set(METHODS))],
        "fraction": [Interval(Real, 0, 1, closed="both"), None],
        "n_flag": [Interval(Integral, 0, None, closed="left"), None],
        "threshold": [Real, None],
        "action": [StrOptions({"drop", "relabel"})],
        "explainer_params": [dict, None],
    }

    def __init__(
        self,
        estimator=None,
        *,
        method: str = DEFAULT_METHOD,
        fraction: float | None = None,
        n_flag: int | None = None,
        threshold: float | None = None,
        action: str = "drop",
        explainer_params: dict | None = None,
    ):
        self.estimator = estimator
        self.method = method
        self.fraction = fraction
        self.n_flag = n_flag
        self.threshold = threshold
        self.action = action
        self.explainer_params = explainer_params

    def _estimator(self):
        return default_estimator() if self.estimator is None else self.estimator

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        X_val: ArrayLike | None = None,
        y_val: ArrayLike | None = None,
    ) -> CleanLabelsClassifier:
        """Clean ``(X, y)`` and fit the final estimator on the cleaned rows.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            Training rows.
        y : array-like of shape (n_samples,)
            Their labels, some possibly wrong.
        X_val : {array-like, sparse matrix, DataFrame}, default=None
            Trusted validation rows, for ``method="validation_influence"``.
        y_val : array-like, default=None
            Their labels.

        Returns
        -------
        self : CleanLabelsClassifier
            Fitted on the cleaned rows.
        """
        self._validate_params()
        X = _check_input(self, X, reset=True)
        y_arr = column_or_1d(np.asarray(y), warn=True)
        check_classification_targets(y_arr)
        cleaner = InfluenceLabelCleaner(
            self._estimator(),
            method=self.method,
            fraction=self.fraction,
            n_flag=self.n_flag,
            threshold=self.threshold,
            action=self.action,
            explainer_params=self.explainer_params,
        )
        X_clean, y_clean = cleaner.fit_resample(X, y_arr, X_val=X_val, y_val=y_val)
        self.cleaner_ = cleaner
        self.estimator_ = clone(self._estimator()).fit(X_clean, y_clean)
        self.classes_ = self.estimator_.classes_
        return self

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted class of each row (the final estimator's ``predict``).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows to predict, as passed to ``fit``.

        Returns
        -------
        ndarray of shape (n_samples,)
            The predicted class labels.
        """
        check_is_fitted(self, "estimator_")
        X = _check_input(self, X, reset=False)
        return self.estimator_.predict(X)

    @available_if(_final_has("predict_proba"))
    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities (the final estimator's ``predict_proba``).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows to predict, as passed to ``fit``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probability of each class, in ``classes_`` order.
        """
        check_is_fitted(self, "estimator_")
        X = _check_input(self, X, reset=False)
        return self.estimator_.predict_proba(X)

    @available_if(_final_has("predict_log_proba"))
    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """Log class probabilities (the final estimator's ``predict_log_proba``).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows to predict, as passed to ``fit``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Log-probability of each class, in ``classes_`` order.
        """
        check_is_fitted(self, "estimator_")
        X = _check_input(self, X, reset=False)
        return self.estimator_.predict_log_proba(X)

    @available_if(_final_has("decision_function"))
    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Decision function (the final estimator's ``decision_function``).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Rows to predict, as passed to ``fit``.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
            The final estimator's decision values.
        """
        check_is_fitted(self, "estimator_")
        X = _check_input(self, X, reset=False)
        return self.estimator_.decision_function(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self._estimator())
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        tags.input_tags.string = inner.input_tags.string
        tags.input_tags.categorical = inner.input_tags.categorical
        return tags

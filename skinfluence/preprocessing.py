"""Preprocessing for mixed-type tables: what the command line and the label
cleaner's default model put in front of the classifier.

:class:`TabularPreprocessor` turns a DataFrame with numeric, string,
categorical and boolean columns (and missing values) into the numeric matrix a
linear model needs. :func:`find_id_like_columns` names the columns that look
like row identifiers rather than features.
"""

from __future__ import annotations

import warnings
from numbers import Integral
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted
from sklearn_compat.utils.validation import validate_data

from ._compat import Interval

__all__ = [
    "IdLikeColumnWarning",
    "TabularPreprocessor",
    "find_id_like_columns",
    "split_columns",
]

#: below this many rows no column is called ID-like: a handful of distinct
#: values says nothing
MIN_ROWS_FOR_ID = 10


class IdLikeColumnWarning(UserWarning):
    """A feature column looks like a row identifier (unique strings, or
    integers numbering the rows); as a feature it lets the model memorise
    rows."""


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def split_columns(X: pd.DataFrame) -> tuple[list, list]:
    """Names of the numeric and of the other (categorical) columns of ``X``.

    Booleans count as categorical; so do strings, ``category`` and object
    columns.

    Parameters
    ----------
    X : pandas.DataFrame

    Returns
    -------
    numeric, categorical : list
        Column names, in the order of ``X``.
    """
    numeric, categorical = [], []
    for col in X.columns:
        (numeric if _is_numeric(X[col]) else categorical).append(col)
    return numeric, categorical


def find_id_like_columns(X: pd.DataFrame) -> dict[Any, str]:
    """Columns of ``X`` that look like row identifiers rather than features.

    A column is ID-like when the table has at least 10 rows, the column has no
    missing value and every value is distinct, and either

    * it is not numeric (strings, categories): one-hot encoded, it gives every
      row a feature of its own; or
    * it holds integers that fill most of their range (``max - min + 1 <=
      2 n``), like a row number (``0, 1, ..., n - 1``, a ``rownames`` or
      ``Unnamed: 0`` column written by R or pandas), also after shuffling or
      splitting the rows.

    Parameters
    ----------
    X : pandas.DataFrame

    Returns
    -------
    dict
        Column name to the reason, in words; empty when none looks like an ID.
    """
    found = {}
    n = X.shape[0]
    if n < MIN_ROWS_FOR_ID:
        return found
    for col in X.columns:
        s = X[col]
        if s.isna().any() or s.nunique() != n:
            continue
        if not _is_numeric(s):
            found[col] = f"all {n} values are distinct"
        elif pd.api.types.is_integer_dtype(s):
            lo, hi = int(s.min()), int(s.max())
            if hi - lo + 1 <= 2 * n:
                found[col] = f"distinct integers numbering the rows ({lo} to {hi})"
    return found


def check_table(estimator, X, *, reset: bool):
    """Set or check ``n_features_in_`` / ``feature_names_in_`` without
    converting ``X``; returns ``X`` (array-likes without a shape as arrays).

    A DataFrame is not passed through ``check_array``: older scikit-learn
    releases try to turn pandas' string columns into floats there.

    Parameters
    ----------
    estimator : estimator
        Receives ``n_features_in_`` (and ``feature_names_in_``).
    X : {DataFrame, array-like, sparse matrix} of shape (n_samples, n_features)
    reset : bool
        Set the attributes (``fit``) or check ``X`` against them.

    Returns
    -------
    X : DataFrame, ndarray or sparse matrix
    """
    if isinstance(X, pd.DataFrame):
        if X.shape[0] == 0:
            raise ValueError("Found array with 0 sample(s) (shape=(0, ...)); need at least 1.")
        if X.shape[1] == 0:
            raise ValueError("Found array with 0 feature(s); need at least 1.")
        validate_data(estimator, X, reset=reset, skip_check_array=True)
        return X
    checked = validate_data(
        estimator,
        X,
        reset=reset,
        accept_sparse=("csr", "csc"),
        dtype=None,
        ensure_all_finite=False,
    )
    return X if hasattr(X, "shape") and not sp.issparse(X) else checked


class TabularPreprocessor(TransformerMixin, BaseEstimator):
    """Impute, scale and one-hot encode a mixed-type table for a linear model.

    Numeric columns are median-imputed and standardised; every other column
    (strings, ``category``, booleans, objects) is imputed with its most
    frequent value and one-hot encoded, with at most ``max_categories``
    categories per column (rarer ones grouped) and categories unseen in
    ``fit`` encoded as all zeros. Columns entirely missing in ``fit`` are
    dropped. NumPy arrays are read column by column the same way (an array
    of numbers is all numeric); sparse matrices are only scaled (no
    centring, which would densify them) and must not contain NaN.

    This is the preprocessing of ``skinfluence clean`` and of
    :class:`~skinfluence.cleaning.InfluenceLabelCleaner`'s default model; in
    a :class:`~sklearn.pipeline.Pipeline` before a supported model,
    :class:`~skinfluence.InfluenceExplainer` treats it as a fixed feature
    map.

    ``fit`` warns (:class:`IdLikeColumnWarning`) about columns that look like
    row identifiers (:func:`find_id_like_columns`): drop them before fitting,
    or make them the index.

    Parameters
    ----------
    max_categories : int or None, default=50
        Largest number of one-hot columns per categorical column
        (``OneHotEncoder(max_categories=...)``); ``None`` for no limit.

    Attributes
    ----------
    numeric_columns_ : list
        Columns treated as numeric.
    categorical_columns_ : list
        Columns one-hot encoded.
    id_like_columns_ : dict
        Columns that look like row identifiers, with the reason.
    transformer_ : sklearn.compose.ColumnTransformer or StandardScaler
        The fitted preprocessing (a scaler for sparse input).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has string column names.

    Examples
    --------
    >>> import pandas as pd
    >>> from skinfluence.preprocessing import TabularPreprocessor
    >>> X = pd.DataFrame({"age": [30, None, 50], "smoker": ["no", "yes", None]})
    >>> prep = TabularPreprocessor().fit(X)
    >>> prep.numeric_columns_, prep.categorical_columns_
    (['age'], ['smoker'])
    >>> prep.transform(X).shape
    (3, 3)
    >>> list(prep.get_feature_names_out())
    ['num__age', 'cat__smoker_no', 'cat__smoker_yes']
    """

    _parameter_constraints: dict = {
        "max_categories": [Interval(Integral, 1, None, closed="left"), None]
    }

    def __init__(self, max_categories: int | None = 50):
        self.max_categories = max_categories

    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> TabularPreprocessor:
        """Choose the columns' treatment and fit the imputers, scaler and encoder.

        Parameters
        ----------
        X : {DataFrame, array-like, sparse matrix} of shape (n_samples, n_features)
            The table to learn the columns' treatment from.
        y : None
            Ignored; present for pipeline compatibility.

        Returns
        -------
        self : TabularPreprocessor
            The fitted preprocessor.
        """
        self._validate_params()
        X = check_table(self, X, reset=True)
        if sp.issparse(X):
            self.numeric_columns_ = list(range(X.shape[1]))
            self.categorical_columns_ = []
            self.id_like_columns_ = {}
            self.transformer_ = StandardScaler(with_mean=False).fit(X)
            return self
        frame = self._frame(X)
        frame = frame.loc[:, frame.notna().any(axis=0)]  # entirely empty columns carry nothing
        self._kept_columns = list(frame.columns)
        self.numeric_columns_, self.categorical_columns_ = split_columns(frame)
        self.id_like_columns_ = find_id_like_columns(frame)
        if self.id_like_columns_:
            described = "; ".join(f"{c!r}: {why}" for c, why in self.id_like_columns_.items())
            names = list(self.id_like_columns_)
            warnings.warn(
                f"column(s) that look like row identifiers are used as features ({described}). "
                "A model can memorise rows through them; drop them before fitting "
                f"(X.drop(columns={names!r})) or make them the index "
                f"(X.set_index({names[0]!r})).",
                IdLikeColumnWarning,
                stacklevel=2,
            )
        parts = []
        if self.numeric_columns_:
            parts.append(
                (
                    "num",
                    make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                    self._positions(self.numeric_columns_),
                )
            )
        if self.categorical_columns_:
            parts.append(
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="ignore", max_categories=self.max_categories),
                    ),
                    self._positions(self.categorical_columns_),
                )
            )
        self.transformer_ = ColumnTransformer(parts).fit(self._coerce(frame))
        return self

    def transform(self, X: ArrayLike) -> Any:
        """Encode ``X`` with the fitted preprocessing.

        Parameters
        ----------
        X : {DataFrame, array-like, sparse matrix} of shape (n_samples, n_features)
            The columns seen in ``fit``.

        Returns
        -------
        ndarray or sparse matrix of shape (n_samples, n_features_out)
            Numeric columns standardised, the others one-hot encoded.
        """
        check_is_fitted(self, "transformer_")
        X = check_table(self, X, reset=False)
        if sp.issparse(X):
            return self.transformer_.transform(X)
        return self.transformer_.transform(self._coerce(self._frame(X)))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Names of the encoded columns (``num__<column>``, ``cat__<column>_<value>``).

        Parameters
        ----------
        input_features : None
            Ignored; the names come from the columns seen in ``fit``.

        Returns
        -------
        ndarray of str
            One name per encoded column.
        """
        check_is_fitted(self, "transformer_")
        if isinstance(self.transformer_, StandardScaler):
            return np.asarray([f"x{i}" for i in range(self.n_features_in_)], dtype=object)
        return self.transformer_.get_feature_names_out()

    @staticmethod
    def _frame(X):
        if isinstance(X, pd.DataFrame):
            return X
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(f"X must be 2-D, got an array of shape {arr.shape}.")
        # an object array may hold numbers in some columns and strings in others
        return pd.DataFrame(arr).infer_objects()

    def _positions(self, columns):
        # positions, not names: the names of an array's columns are integers,
        # which ColumnTransformer would read as positions anyway
        return [self._kept_columns.index(c) for c in columns]

    def _coerce(self, frame):
        """The kept columns in their order: numeric ones as float (nullable
        ``Int64`` / ``pd.NA`` become NaN), the others as plain objects with NaN
        for missing, which is what the imputers expect."""
        numeric = set(self.numeric_columns_)
        out = {}
        for col in self._kept_columns:
            s = frame[col]
            if col in numeric:
                out[col] = pd.to_numeric(s, errors="raise").astype("float64")
            else:
                out[col] = s.astype(object).where(s.notna(), np.nan)
        return pd.DataFrame(out, index=frame.index, columns=self._kept_columns)

    def _more_tags(self):  # scikit-learn < 1.6 reads tags here
        return {"allow_nan": True, "X_types": ["2darray", "sparse", "string", "categorical"]}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        return tags

"""Find likely mislabeled training rows with influence functions, and drop or
relabel them (an imbalanced-learn style sampler)."""

from __future__ import annotations

import sys
import time
import warnings
from dataclasses import fields
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d
from sklearn_compat.utils._indexing import _safe_indexing

from .._backend import is_dask_collection
from .._compat import HasMethods, Interval, StrOptions
from ..preprocessing import TabularPreprocessor, check_table
from ..removal import NotAvailableError
from ._scoring import METHODS, RowScorer

#: the scoring method that found the most flipped labels in
#: benchmarks/bench_cleaning.py (see doc/cleaning.md)
DEFAULT_METHOD = "iterative"


def default_estimator():
    """:class:`~skinfluence.preprocessing.TabularPreprocessor` +
    ``LogisticRegression(solver="newton-cg", tol=1e-8)``.

    The preprocessor standardises numeric columns and one-hot encodes the
    others, imputing missing values, so that mixed-type DataFrames work as
    they are; on an array of numbers it is a ``StandardScaler``. The model is
    fitted to the optimum, as influence functions assume (Newton-CG gets there
    in a few iterations).
    """
    return make_pipeline(
        TabularPreprocessor(),
        LogisticRegression(solver="newton-cg", tol=1e-8, max_iter=10_000),
    )


def _validate_flag_rule(fraction, n_flag, threshold):
    given = [
        name
        for name, value in (("fraction", fraction), ("n_flag", n_flag), ("threshold", threshold))
        if value is not None
    ]
    if len(given) > 1:
        raise ValueError(
            f"Set at most one of fraction, n_flag and threshold (got {', '.join(given)}); "
            "with none set the number of flagged rows is chosen automatically."
        )
    return given[0] if given else "auto"


def flag_rows(scores, *, rule, value=None, n_auto=None):
    """Boolean mask of flagged rows.

    Rows are ranked by decreasing score (ties keep row order). ``rule`` is
    ``"fraction"`` (the top ``ceil(value * n)`` rows), ``"n_flag"`` (the top
    ``value`` rows), ``"threshold"`` (rows with ``score >= value``) or
    ``"auto"`` (the top ``n_auto`` rows).
    """
    if rule == "threshold":
        return np.asarray(scores >= value)
    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    mask = np.zeros(n, dtype=bool)
    mask[order[: flag_count(n, rule=rule, value=value, n_auto=n_auto)]] = True
    return mask


def flag_count(n, *, rule, value=None, n_auto=None) -> int:
    """How many of ``n`` rows a ranking rule (``"fraction"``, ``"n_flag"``
    or ``"auto"``; see :func:`flag_rows`) flags."""
    if rule == "fraction":
        k = int(np.ceil(value * n - 1e-9))
    elif rule == "n_flag":
        k = int(value)
    else:
        k = int(n_auto)
    return min(k, n)


def protect_classes(flagged, y, suggested, scores, action):
    """Unflag the least suspicious rows of any class that cleaning would empty.

    With ``action="drop"`` a class loses its flagged rows; with
    ``"relabel"`` it loses those relabelled to another class. Either way a
    class never disappears from the cleaned labels: its lowest-scoring row
    stays as it is.
    """
    flagged = flagged.copy()
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        leaving = flagged[rows] if action == "drop" else flagged[rows] & (suggested[rows] != c)
        if leaving.all():
            keep = rows[np.argmin(scores[rows])]
            flagged[keep] = False
    return flagged


class InfluenceLabelCleaner(BaseEstimator):
    r"""Flag training rows whose labels look wrong, and drop or relabel them.

    ``fit`` fits a clone of ``estimator`` and scores every training row with
    influence functions (Koh & Liang, ICML 2017); **higher scores mean more
    likely mislabeled**. ``fit_resample`` returns the cleaned data, so the
    cleaner works as a step of :class:`imblearn.pipeline.Pipeline` (it only
    cleans the data the pipeline is fitted on, never the data it predicts).

    Scoring methods, with ``l_i`` the loss of row ``i``'s given label at the
    fitted parameters (log-loss for logistic regression), ``F_i`` its term in
    the training objective and ``H`` the objective's Hessian:

    ``"iterative"`` (default)
        ``"loo_newton"`` in rounds: drop the most suspicious rows (at most
        5 % of the rows per round, and only rows the approximate
        leave-one-out model misclassifies), refit the estimator's final step
        on the rest (warm-started; earlier pipeline steps stay as fitted),
        re-score, at most 3 rounds. Kept rows are scored by their approximate
        leave-one-out loss under the last refit, dropped rows by their loss
        under it (a model that never saw them): every score is the loss of
        the given label under a model that did not train on the row, fitted
        on the cleanest rows found. Costs up to 3 more fits and explainers
        than ``"loo_newton"``.
    ``"loo_newton"``
        The approximate leave-one-out loss, the loss of the given label under
        a model refitted without the row, with one Newton step on the
        leave-one-out objective (``H`` replaced by ``H - \nabla^2 F_i``; for
        binary models a ``1 / (1 - h_{ii})`` leverage correction), to first
        order in the row's outputs:

        .. math:: s_i = l_i + \nabla_\theta l_i^T (H - \nabla^2_\theta F_i)^{-1}
                  \nabla_\theta F_i

        (``training_loss() + self_influence()`` of the Newton explainer). This
        linearisation ranks flipped labels better than the loss at the
        leave-one-out outputs (:meth:`InfluenceExplainer.leave_one_out_loss`),
        although the latter estimates the loss itself more accurately.
    ``"loo_loss"``
        The same with the plain influence function (``H`` instead of the
        leave-one-out Hessian): ``training_loss + self_influence``.
    ``"training_loss"``
        ``s_i = l_i``, the baseline.
    ``"self_influence"``
        ``s_i = \nabla_\theta l_i^T H^{-1} \nabla_\theta F_i``, Koh & Liang's
        score for label review (section 5.4): the predicted increase of the
        row's own loss when it is removed.
    ``"noise_aware"``
        ``s_i = P(\text{flipped} \mid x_i, \tilde y_i)``, the posterior
        probability that the given label was flipped under a class-conditional
        flip matrix ``T[k, l] = P(given = l | true = k)`` fitted by maximum
        likelihood (EM) to the leave-one-out class probabilities ``p_i`` of
        the Newton step: ``1 - p_{i y_i} T[y_i, y_i] / \sum_k p_{ik} T[k, y_i]``.
        Needs a log-loss model (``LogisticRegression``, binary
        ``SGDClassifier(loss="log_loss")``).
    ``"validation_influence"``
        ``s_i = \frac1m \sum_{j=1}^m \mathcal{I}[j, i]``, the mean predicted
        drop of the loss on ``m`` trusted validation rows (``fit(...,
        X_val=, y_val=)``) when row ``i`` is removed.

    The default is the method that found the most flipped labels at 10 % of
    the rows checked in ``benchmarks/bench_cleaning.py`` (six data sets,
    three noise models); the user guide (``doc/cleaning.md``) has the numbers,
    including where it is not better. One-shot scores (``"loo_newton"``,
    ``"training_loss"``, cleanlab's cross-validated self-confidence) come from
    a model pulled towards the flipped rows; dropping the worst rows and
    refitting removes that pull, which matters most where the model can
    memorise single rows (many parameters per row).

    How many rows are flagged: at most one of ``fraction``, ``n_flag`` and
    ``threshold`` may be set. With none, the number is chosen automatically:
    **as many rows as the approximate leave-one-out model misclassifies**,
    i.e. rows whose given label differs from the label a model refitted
    without them would predict (estimated with the method's approximation:
    the Newton step for ``"loo_newton"``, ``"noise_aware"`` and the last round
    of ``"iterative"``, one influence step otherwise),
    taking the highest-scoring ones. The count estimates the label errors
    plus the model's own leave-one-out errors, so it errs towards flagging
    more than were flipped (high recall; see the benchmark's precision and
    recall of this rule).

    Cleaning never removes a class: if every row of a class would be dropped
    (or relabelled away), its least suspicious row is kept as it is.

    Parameters
    ----------
    estimator : classifier or Pipeline, default=None
        A classifier supported by :class:`~skinfluence.InfluenceExplainer`
        (``LogisticRegression``, ``SGDClassifier``, ``RidgeClassifier``, ...),
        or a ``Pipeline`` ending in one. It is cloned and fitted; fit it to
        convergence (a tight ``tol``) for accurate influence. ``None`` uses
        ``make_pipeline(TabularPreprocessor(), LogisticRegression(
        solver="newton-cg", tol=1e-8))``: numeric columns imputed and
        standardised, string, categorical and boolean columns imputed and
        one-hot encoded (:class:`~skinfluence.preprocessing.TabularPreprocessor`),
        so that a mixed-type DataFrame works as it is.
    method : str, default="iterative"
        How rows are scored, see above: ``"iterative"``, ``"loo_newton"``,
        ``"loo_loss"``, ``"training_loss"``, ``"self_influence"``,
        ``"noise_aware"`` or ``"validation_influence"``.
    fraction : float in [0, 1], default=None
        Flag the ``ceil(fraction * n_samples)`` highest-scoring rows.
    n_flag : int, default=None
        Flag the ``n_flag`` highest-scoring rows.
    threshold : float, default=None
        Flag rows whose score is at least ``threshold``.
    action : {"drop", "relabel"}, default="drop"
        What ``fit_resample`` does with flagged rows: remove them, or replace
        their label by ``suggested_label``: the class with the highest
        probability (decision) under the model the method refers to, for
        the influence methods the model refitted without the row (a no-op
        where it equals the given label). With ``"relabel"``, ``fit`` also
        predicts what each fix is worth: ``fix_effects_``, see
        ``fix_approximation``.
    fix_approximation : {"refit", "newton", "influence"}, default="refit"
        With ``action="relabel"``, how ``fix_effects_`` is computed
        (:meth:`~skinfluence.InfluenceExplainer.relabel_influence` of an
        explainer of ``estimator_``, one flagged row at a time): ``"refit"``
        runs Newton iterations to the optimum with the row's label changed
        (the refitted effect, with the pipeline's earlier steps kept as
        fitted), ``"newton"`` one Newton step, ``"influence"`` the
        first-order estimate. A flipped label the model is sure of is a
        large change: one Newton step can be worse than first order there,
        while ``"refit"`` costs a few Newton iterations per flagged row
        (measured in ``tests/test_cleaning.py``).
    explainer_params : dict, default=None
        Extra parameters of :class:`~skinfluence.InfluenceExplainer`
        (``solver``, ``damping``, ``solver_options``, ``device``).
    verbose : int, default=0
        Print progress to stderr.

    Attributes
    ----------
    estimator_ : estimator
        The clone of ``estimator`` fitted on all rows (noisy labels).
    scores_ : ndarray of shape (n_samples,)
        Score of each training row, in input order; higher = more suspicious.
        For Dask input this, ``suggested_labels_``, ``flagged_`` and
        ``sample_indices_`` are Dask arrays and ``label_issues_`` a Dask
        DataFrame (see ``fit``).
    suggested_labels_ : ndarray of shape (n_samples,)
    flagged_ : ndarray of bool of shape (n_samples,)
    n_flagged_ : int
    threshold_ : float
        The lowest score among flagged rows (``inf`` if none), or the given
        ``threshold``.
    n_auto_ : int
        Rows misclassified by the approximate leave-one-out model (the
        automatic count, computed whatever the rule).
    fix_effects_ : ndarray of shape (n_samples,)
        Only with ``action="relabel"``: for each flagged row, the predicted
        change of the summed loss of the judging rows if the row's label were
        set to ``suggested_label`` and the model refitted (negative: the fix
        makes the model fit them better; ``0`` where the suggestion is the
        given label); ``nan`` for rows not flagged. The judging rows are the
        validation rows when ``fit`` gets ``X_val`` and ``y_val``, the rows
        not flagged otherwise (their given labels). How: ``fix_approximation``.
    label_issues_ : pandas.DataFrame
        One row per training row, indexed like the input (a DataFrame's or
        Series' own index is kept), with columns ``score``, ``rank`` (1 = most
        suspicious), ``given_label``, ``suggested_label`` and ``flagged``,
        and with ``action="relabel"`` ``fix_effect`` (``fix_effects_``).
    sample_indices_ : ndarray of int
        Positions of the rows ``fit_resample`` returns (imbalanced-learn
        convention).
    classes_ : ndarray
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_breast_cancer
    >>> from skinfluence.cleaning import InfluenceLabelCleaner
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> rng = np.random.default_rng(0)
    >>> flipped = rng.choice(len(y), 30, replace=False)
    >>> y_noisy = y.copy()
    >>> y_noisy[flipped] = 1 - y_noisy[flipped]
    >>> cleaner = InfluenceLabelCleaner(fraction=0.1).fit(X, y_noisy)
    >>> found = np.intersect1d(np.flatnonzero(cleaner.flagged_), flipped).size
    >>> found >= 25
    True
    >>> X_clean, y_clean = cleaner.fit_resample(X, y_noisy)
    >>> X_clean.shape
    (512, 30)
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit"]), None],
        "method": [StrOptions(set(METHODS))],
        "fraction": [Interval(Real, 0, 1, closed="both"), None],
        "n_flag": [Interval(Integral, 0, None, closed="left"), None],
        "threshold": [Real, None],
        "action": [StrOptions({"drop", "relabel"})],
        "fix_approximation": [StrOptions({"refit", "newton", "influence"})],
        "explainer_params": [dict, None],
        "verbose": ["verbose"],
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
        fix_approximation: str = "refit",
        explainer_params: dict | None = None,
        verbose: int = 0,
    ):
        self.estimator = estimator
        self.method = method
        self.fraction = fraction
        self.n_flag = n_flag
        self.threshold = threshold
        self.action = action
        self.fix_approximation = fix_approximation
        self.explainer_params = explainer_params
        self.verbose = verbose

    def _log(self, message):
        if self.verbose:
            print(f"[InfluenceLabelCleaner] {message}", file=sys.stderr, flush=True)

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        X_val: ArrayLike | None = None,
        y_val: ArrayLike | None = None,
    ) -> InfluenceLabelCleaner:
        """Fit the estimator on ``(X, y)`` and score every row.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            The rows whose labels to check. A row-chunked ``dask.array`` or
            ``dask.dataframe`` stays on the Dask workers: ``estimator`` must be
            fitted already (or be a dask-ml model, fitted here on the Dask
            rows), ``method`` one of ``"loo_newton"``, ``"loo_loss"``,
            ``"training_loss"``, ``"self_influence"``,
            ``"validation_influence"``, ``action="drop"``; ``scores_``,
            ``suggested_labels_`` and ``flagged_`` are then Dask arrays
            chunked like the rows and ``label_issues_`` a Dask DataFrame
            without ``rank`` (``doc/cleaning.md``, "Cleaning a Dask table").
        y : array-like of shape (n_samples,)
            The labels to check (a Dask collection is gathered).
        X_val : {array-like, sparse matrix, DataFrame}, default=None
            Trusted validation rows; required by ``method="validation_influence"``;
            with ``action="relabel"`` they judge the fixes (``fix_effects_``).
        y_val : array-like, default=None
            Their labels.

        Returns
        -------
        self : InfluenceLabelCleaner
            With ``scores_``, ``label_issues_`` and the flagged rows.
        """
        self._validate_params()
        rule = _validate_flag_rule(self.fraction, self.n_flag, self.threshold)
        if is_dask_collection(X):
            from . import _dask

            return _dask.fit(self, X, y, X_val, y_val, rule)
        X = _check_input(self, X)
        index = _row_index(X, y)
        y_arr = column_or_1d(np.asarray(y), warn=True)
        check_classification_targets(y_arr)
        if X.shape[0] != y_arr.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y_arr.shape[0]}.")
        self._set_classes(y_arr, X_val, y_val)
        estimator = default_estimator() if self.estimator is None else self.estimator
        t0 = time.perf_counter()
        self._log(f"fitting {type(estimator).__name__} on {len(y_arr)} rows")
        self.estimator_ = clone(estimator).fit(X, y_arr)
        self._log(f"fitted in {time.perf_counter() - t0:.2f} s; scoring with {self.method!r}")
        t0 = time.perf_counter()
        scorer = RowScorer(self.estimator_, X, y_arr, self.explainer_params)
        scores = scorer.score(self.method, X_val=X_val, y_val=y_val)
        suggested = scorer.suggested_labels(self.method)
        # the automatic count: rows the approximate leave-one-out model misclassifies
        auto_labels = suggested if self.method != "training_loss" else None
        if auto_labels is None:
            auto_labels = scorer.suggested_labels("loo_loss")
        self.n_auto_ = int(np.sum(auto_labels != y_arr))
        self._log(f"scored in {time.perf_counter() - t0:.2f} s")

        value = {"fraction": self.fraction, "n_flag": self.n_flag, "threshold": self.threshold}
        flagged = flag_rows(scores, rule=rule, value=value.get(rule), n_auto=self.n_auto_)
        flagged = protect_classes(flagged, y_arr, suggested, scores, self.action)

        self.scores_ = scores
        self.suggested_labels_ = suggested
        self.flagged_ = flagged
        self.n_flagged_ = int(flagged.sum())
        if rule == "threshold":
            self.threshold_ = float(self.threshold)
        else:
            self.threshold_ = float(scores[flagged].min()) if flagged.any() else float("inf")
        order = np.argsort(-scores, kind="stable")
        rank = np.empty(len(scores), dtype=int)
        rank[order] = np.arange(1, len(scores) + 1)
        self.label_issues_ = pd.DataFrame(
            {
                "score": scores,
                "rank": rank,
                "given_label": y_arr,
                "suggested_label": suggested,
                "flagged": flagged,
            },
            index=index,
        )
        if self.action == "drop":
            self.sample_indices_ = np.flatnonzero(~flagged)
            self.__dict__.pop("fix_effects_", None)  # from an earlier fit with "relabel"
        else:
            self.sample_indices_ = np.arange(len(y_arr))
            t0 = time.perf_counter()
            self.fix_effects_ = self._fix_effects(scorer, X, y_arr, X_val, y_val)
            self.label_issues_["fix_effect"] = self.fix_effects_
            self._log(
                f"predicted the effect of {self.n_flagged_} fixes in "
                f"{time.perf_counter() - t0:.2f} s ({self.fix_approximation!r})"
            )
        self._log(f"flagged {self.n_flagged_} of {len(y_arr)} rows ({rule})")
        return self

    def _set_classes(self, y, X_val, y_val):
        """``classes_`` of the labels ``y``; at least two, and the trusted rows
        that ``method="validation_influence"`` needs (in memory and on Dask)."""
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has only one class ({self.classes_[0]!r}); label cleaning needs at "
                "least two classes."
            )
        if self.method == "validation_influence" and (X_val is None or y_val is None):
            raise ValueError(
                "method='validation_influence' needs trusted validation data: pass X_val "
                "and y_val to fit (rows whose labels you have checked)."
            )

    def _fix_effects(self, scorer, X, y, X_val, y_val):
        """Predicted change of the judging rows' summed loss of giving each
        flagged row its suggested label (``nan`` for rows not flagged)."""
        effects = np.full(len(y), np.nan)
        flagged = np.flatnonzero(self.flagged_)
        effects[flagged] = 0.0  # where the suggestion is the given label
        change = flagged[self.suggested_labels_[flagged] != y[flagged]]
        if change.size == 0:
            return effects
        if X_val is not None and y_val is not None:
            X_judge, y_judge = X_val, column_or_1d(np.asarray(y_val))
        else:
            kept = np.flatnonzero(~self.flagged_)
            X_judge, y_judge = _safe_indexing(X, kept), y[kept]
        try:
            explainer = scorer.explainer(self.fix_approximation)
            influence = explainer.relabel_influence(
                X_judge, y_judge, change, self.suggested_labels_[change]
            )
        except NotAvailableError as exc:
            warnings.warn(
                f"fix_effects_ is not available for this estimator ({exc}); it is left nan.",
                UserWarning,
                stacklevel=3,
            )
            effects[change] = np.nan
            return effects
        effects[change] = -np.asarray(influence).sum(axis=0)
        return effects

    def fit_resample(
        self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        X_val: ArrayLike | None = None,
        y_val: ArrayLike | None = None,
    ) -> tuple[Any, Any]:
        """Fit, then return the cleaned data.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame} of shape (n_samples, n_features)
            The rows whose labels to check.
        y : array-like of shape (n_samples,)
            The labels to check.
        X_val : {array-like, sparse matrix, DataFrame}, default=None
            Trusted validation rows, for ``method="validation_influence"``.
        y_val : array-like, default=None
            Their labels.

        Returns
        -------
        X_resampled : same type as X
            Without the flagged rows (``action="drop"``), or all rows.
        y_resampled : same type as y
            The kept labels, flagged ones replaced by ``suggested_labels_``
            with ``action="relabel"``.
        """
        self.fit(X, y, X_val=X_val, y_val=y_val)
        return self._resample(X, y)

    def _resample(self, X, y):
        check_is_fitted(self, "flagged_")
        if is_dask_collection(self.flagged_):
            from . import _dask

            return _dask.resample(self, X, y)
        if self.action == "relabel":
            y_new = _replace_labels(y, self.flagged_, self.suggested_labels_)
            return X, y_new
        keep = self.sample_indices_
        return _safe_indexing(X, keep), _safe_indexing(y, keep)

    def flagged_frame(self, X: ArrayLike) -> Any:
        """The flagged rows of ``X`` with their ``score``, ``given_label`` and
        ``suggested_label``, in row order.

        Parameters
        ----------
        X : {array-like, sparse matrix, DataFrame, dask.array.Array, dask.dataframe.DataFrame}
            The rows ``fit`` was given (an array's columns are named 0, 1, ...).

        Returns
        -------
        flagged : pandas.DataFrame or dask.dataframe.DataFrame
            ``X``'s flagged rows and their labels, indexed like
            ``label_issues_``. For Dask input a lazy Dask DataFrame with ``X``'s
            partitions (each filtered to its flagged rows, in row order).
        """
        check_is_fitted(self, "flagged_")
        if is_dask_collection(self.flagged_):
            from . import _dask

            return _dask.flagged_frame(self, X)
        issues = self.label_issues_
        if isinstance(X, pd.DataFrame):
            features = X
        elif sp.issparse(X):
            features = pd.DataFrame.sparse.from_spmatrix(X)
        else:
            features = pd.DataFrame(np.asarray(X))
        features = features.set_axis(issues.index, axis=0)
        columns = ["score", "given_label", "suggested_label"]
        frame = pd.concat([features, issues[columns]], axis=1)
        return frame[issues["flagged"].to_numpy()]

    def _more_tags(self):
        # scikit-learn < 1.6 reads these (through sklearn_compat's get_tags);
        # it has no estimator-type tag, so there only imbalanced-learn's
        # pipeline (which looks for fit_resample) knows the cleaner as a sampler
        return {"requires_y": True, "X_types": ["2darray", "sparse"]}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "sampler"
        tags.target_tags.required = True
        tags.input_tags.sparse = True
        return _with_sampler_tags(tags)


def _with_sampler_tags(tags):
    """``tags`` as imbalanced-learn's sampler tags when it is installed.

    imbalanced-learn recognises samplers by ``tags.sampler_tags``
    (``imblearn.base.is_sampler``), a field of its own ``Tags`` dataclass that
    scikit-learn's lacks; its ``BaseSampler`` builds that class the same way.
    ``sample_indices=True``: ``sample_indices_`` holds the rows returned.
    """
    try:
        from imblearn.utils._tags import SamplerTags, Tags
    except ImportError:  # imbalanced-learn is optional
        return tags
    names = [f.name for f in fields(Tags) if f.name != "sampler_tags" and hasattr(tags, f.name)]
    return Tags(
        **{name: getattr(tags, name) for name in names},
        sampler_tags=SamplerTags(sample_indices=True),
    )


def _check_input(estimator, X):
    """Check shape and emptiness and set ``n_features_in_`` (and
    ``feature_names_in_``) without converting ``X``; array-likes without a
    shape become arrays."""
    return check_table(estimator, X, reset=True)


def _row_index(X, y):
    """The index label_issues_ uses: X's, else y's, else 0..n-1."""
    if isinstance(X, pd.DataFrame):
        return X.index
    if isinstance(y, (pd.Series, pd.DataFrame)):
        return y.index
    return pd.RangeIndex(X.shape[0])


def _replace_labels(y, mask, new):
    """``y`` with positions ``mask`` set to ``new[mask]``, keeping its type."""
    if isinstance(y, pd.Series):
        out = y.copy()
        values = out.to_numpy(copy=True)
        values = values.astype(np.result_type(values.dtype, np.asarray(new).dtype))
        values[mask] = np.asarray(new)[mask]
        return pd.Series(values, index=y.index, name=y.name)
    arr = np.asarray(y)
    out = arr.astype(np.result_type(arr.dtype, np.asarray(new).dtype), copy=True)
    out[mask] = np.asarray(new)[mask]
    if isinstance(y, list):
        return out.tolist()
    return out

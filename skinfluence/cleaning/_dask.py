r"""Label cleaning of a table held by Dask: the scores are the Dask explainer's
per-row quantities, flagging is a top-``k`` (or threshold) reduction on the
workers, and the flagged rows come back as a Dask DataFrame.

Only the methods whose score is a function of one row's lazy quantities run
here (``DASK_METHODS``): with ``l_i`` the row's loss at the fitted model and
``F_i`` its term in the objective,

* ``"loo_newton"`` -- ``l_i + \nabla l_i^T (H - \nabla^2 F_i)^{-1} \nabla F_i``,
* ``"loo_loss"`` -- ``l_i + \nabla l_i^T H^{-1} \nabla F_i``,
* ``"training_loss"`` -- ``l_i``,
* ``"self_influence"`` -- ``\nabla l_i^T H^{-1} \nabla F_i``,
* ``"validation_influence"`` -- ``\frac1m \sum_j \mathcal I[j, i]`` over
  ``m`` trusted rows (a column sum of each chunk's ``m x chunk`` block).

``"iterative"`` refits on a subset of the rows between rounds and
``"noise_aware"`` runs EM over all rows' class probabilities; neither is a
per-row map, so both are refused with the list above.

Flagging keeps :func:`~skinfluence.cleaning._cleaner.flag_rows`'s order (by
decreasing score, ties in row order): the ``k``-th largest score ``t`` comes
from :func:`dask.array.topk`, rows above ``t`` are flagged, and of the rows
equal to ``t`` the first ``k - #\{s > t\}`` in row order (a cumulative sum).
"""

from __future__ import annotations

import copy

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .._dask import _gather, _is_frame
from ._cleaner import flag_count
from ._scoring import _APPROXIMATION, ExplainerCache, _final_step, _labels_from_decision

#: the scoring methods a Dask table supports (a lazy per-row map each)
DASK_METHODS = (
    "loo_newton",
    "loo_loss",
    "training_loss",
    "self_influence",
    "validation_influence",
)


def check_method(method: str) -> None:
    if method not in DASK_METHODS:
        raise ValueError(
            f"method={method!r} is not available on Dask input: it needs all rows at once "
            "('iterative' refits on a subset of them between rounds, 'noise_aware' fits a "
            f"flip model to all of them). On Dask use one of {', '.join(map(repr, DASK_METHODS))}"
            " (method='loo_newton' is the one-shot method 'iterative' starts from), or clean "
            "in-memory rows."
        )


def fitted_estimator(estimator, X, y):
    """The estimator to explain over the Dask rows ``X``: a copy of a fitted
    one (used as fitted), or a clone of one whose ``fit`` reads Dask
    collections (dask-ml's models) fitted on ``X, y``."""
    final = None if estimator is None else _final_step(estimator)
    try:
        if final is not None:
            check_is_fitted(final)
            # a copy: the cleaner's estimator_ must not be the caller's object
            return copy.deepcopy(estimator)
    except NotFittedError:
        pass
    # dask-ml's estimators fit out of core on Dask collections; scikit-learn's
    # would load every row into the client's memory (or fail on the Dask types)
    if type(final).__module__.split(".")[0] == "dask_ml":
        from sklearn.base import clone

        return clone(estimator).fit(X, y)
    given = "None (the default pipeline)" if estimator is None else type(estimator).__name__
    raise ValueError(
        f"On Dask input the cleaner's estimator must be fitted already or fit out of core; "
        f"got an unfitted {given}. Fit it first and pass the fitted estimator (e.g. "
        "skinfluence.cleaning.default_estimator().fit(X.compute(), y.compute()) where the "
        "rows fit in memory; influence assumes it is at the optimum on all rows), or pass "
        "a dask_ml.linear_model.LogisticRegression, which the cleaner fits on the Dask rows."
    )


def _row_labels(y, n):
    """``y`` in memory (the explainer gathers it too), checked against the
    row count ``n`` where it is known without a pass over ``X``."""
    y_arr = column_or_1d(np.asarray(_gather(y)), warn=True)
    check_classification_targets(y_arr)
    if not np.isnan(n) and y_arr.shape[0] != n:
        raise ValueError(f"X has {n} rows but y has {y_arr.shape[0]}.")
    return y_arr


def _feature_names(X):
    cols = np.asarray(list(X.columns), dtype=object) if _is_frame(X) else None
    if cols is not None and all(isinstance(c, str) for c in cols):
        return cols
    return None


class DaskScores(ExplainerCache):
    """Lazy per-row scores and suggested labels of one fitted classifier over
    the rows of a Dask collection (the Dask counterpart of ``RowScorer``)."""

    def __init__(self, estimator, X, y, explainer_params=None):
        self.estimator = estimator
        self.X = X
        self.y = y
        self.explainer_params = dict(explainer_params or {})
        self._explainers = {}

    def score(self, method, X_val=None, y_val=None):
        """Lazy scores (a Dask array chunked like the rows); higher = more suspicious."""
        if method == "training_loss":
            return self.explainer().training_loss()
        if method == "self_influence":
            return self.explainer().self_influence()
        if method in ("loo_loss", "loo_newton"):
            # as in memory (RowScorer.score): the linearised leave-one-out loss
            exp = self.explainer("newton" if method == "loo_newton" else "influence")
            return exp.training_loss() + exp.self_influence()
        if method == "validation_influence":
            n_val = X_val.shape[0]
            if n_val == 0:
                raise ValueError("X_val has no rows")
            return self.explainer().influence(X_val, y_val).sum(axis=0) / n_val
        check_method(method)  # raises

    def suggested_labels(self, method):
        """Lazy labels predicted by the model the method refers to."""
        approximation = _APPROXIMATION[method]
        if approximation is None:  # the fitted model's own outputs
            Z = self.explainer()._chunked.training_decision()
        else:
            Z = self.explainer(approximation).leave_one_out_decision()
        classes = self.classes
        return Z.map_blocks(_labels_from_decision, classes, drop_axis=1, dtype=classes.dtype)


def flag_lazy(scores, *, rule, value=None, n_auto=None):
    """Lazy boolean mask of flagged rows, the rule of
    :func:`~skinfluence.cleaning._cleaner.flag_rows` (ties in row order)."""
    if rule == "threshold":
        return scores >= value
    k = flag_count(scores.shape[0], rule=rule, value=value, n_auto=n_auto)
    if k == 0:
        return da.zeros_like(scores, dtype=bool)
    top = da.topk(scores, k).compute()
    kth = top.min()
    n_above = int(np.sum(top > kth))  # every row above the k-th score is in the top k
    ties = scores == kth
    return (scores > kth) | (ties & (da.cumsum(ties.astype(np.int64)) <= k - n_above))


def protect_classes_lazy(flagged, y, y_lazy, suggested, scores, action):
    """:func:`~skinfluence.cleaning._cleaner.protect_classes` on lazy arrays:
    one count per class, and a lowest-score search only for a class that
    cleaning would empty."""
    classes, counts = np.unique(y, return_counts=True)
    leaving = flagged if action == "drop" else flagged & (suggested != y_lazy)
    per_class = dask.compute(*[(leaving & (y_lazy == c)).sum() for c in classes])
    positions = da.arange(flagged.shape[0], chunks=flagged.chunks)
    for c, count, left in zip(classes, counts, per_class, strict=True):
        if int(left) == int(count):
            keep = int(da.argmin(da.where(y_lazy == c, scores, np.inf)).compute())
            flagged = flagged & (positions != keep)
    return flagged


def _frame_part(x, start, mask, names, frame, features, *cols):
    """One partition of :func:`row_frame` (a task)."""
    index = x.index if frame else pd.RangeIndex(start, start + len(cols[0]))
    out = pd.DataFrame(dict(zip(names, cols, strict=True)), index=index)
    if features:
        x = x if frame else pd.DataFrame(np.asarray(x), index=index)
        out = pd.concat([x, out], axis=1)
    return out if mask is None else out[np.asarray(mask)]


def _filter_part(part, mask):
    return part[np.asarray(mask)]


def row_frame(X, columns: dict, *, rows=None, features: bool = False):
    """A Dask DataFrame of the lazy per-row arrays ``columns`` (chunked like
    ``X``'s rows), indexed like ``X`` (a DataFrame's index, else the rows'
    positions), after ``X``'s own columns if ``features``, and restricted to
    the rows where the lazy bool array ``rows`` holds. One task per chunk:
    the partitions are ``X``'s, filtered, so ``X``'s divisions still hold."""
    frame = _is_frame(X)
    x_parts = X.to_delayed() if frame else list(X.to_delayed()[:, 0])
    # one chunk per partition of X: element-wise results can come back
    # chunked otherwise (older Dask releases merge chunks in some reductions)
    chunks = next(iter(columns.values())).chunks[0] if frame else X.chunks[0]
    columns = {name: a.rechunk({0: chunks}) for name, a in columns.items()}
    rows = None if rows is None else rows.rechunk({0: chunks})
    starts = np.concatenate([[0], np.cumsum(chunks)])
    names = list(columns)
    col_parts = [list(a.to_delayed()) for a in columns.values()]
    mask_parts = [None] * len(x_parts) if rows is None else list(rows.to_delayed())

    parts = [
        dask.delayed(_frame_part, pure=True)(
            x_parts[i],
            int(starts[i]),
            mask_parts[i],
            names,
            frame,
            features,
            *[c[i] for c in col_parts],
        )  # fmt: skip
        for i in range(len(x_parts))
    ]
    empty = X._meta if frame else np.empty((0, X.shape[1]), dtype=X.dtype)
    meta = _frame_part(empty, 0, None, names, frame, features,
                       *[np.empty(0, dtype=a.dtype) for a in columns.values()])  # fmt: skip
    if frame:
        divisions = X.divisions
    else:
        divisions = (*(int(s) for s in starts[:-1]), max(int(starts[-1]) - 1, 0))
    return dd.from_delayed(parts, meta=meta, divisions=divisions, verify_meta=False)


def fit(cleaner, X, y, X_val, y_val, rule):
    """``cleaner.fit`` on the Dask rows ``X`` (labels ``y`` in memory or Dask):
    every per-row result stays a Dask array chunked like ``X``'s rows,
    persisted (``O(n)``, on the workers under a distributed client)."""
    check_method(cleaner.method)
    if cleaner.action != "drop":
        raise ValueError(
            "action='relabel' is not available on Dask input (its fix_effects_ refit each "
            "flagged row on all rows); use action='drop' and read the suggested labels in "
            "label_issues_ (or flagged_frame(X))."
        )
    if X.ndim != 2:
        raise ValueError(f"X must be 2-dimensional; got a Dask collection of shape {X.shape}.")
    # a DataFrame's row count is a pass over it: the explainer counts and
    # checks it against y
    y_arr = _row_labels(y, X.shape[0] if not _is_frame(X) else np.nan)
    n = len(y_arr)
    cleaner._set_classes(y_arr, X_val, y_val)
    cleaner.n_features_in_ = int(X.shape[1])
    names = _feature_names(X)
    if names is not None:
        cleaner.feature_names_in_ = names
    else:
        cleaner.__dict__.pop("feature_names_in_", None)
    cleaner._log(f"preparing {type(cleaner.estimator).__name__} for {n} Dask rows")
    cleaner.estimator_ = fitted_estimator(cleaner.estimator, X, y)
    scorer = DaskScores(cleaner.estimator_, X, y_arr, cleaner.explainer_params)
    scores = scorer.score(cleaner.method, X_val=X_val, y_val=y_val)
    suggested = scorer.suggested_labels(cleaner.method)
    # the automatic count: rows the approximate leave-one-out model misclassifies
    auto = suggested if cleaner.method != "training_loss" else scorer.suggested_labels("loo_loss")
    y_lazy = da.from_array(y_arr, chunks=scores.chunks)
    scores, suggested, auto_wrong = dask.persist(scores, suggested, auto != y_lazy)
    cleaner.n_auto_ = int(auto_wrong.sum().compute())
    value = {
        "fraction": cleaner.fraction,
        "n_flag": cleaner.n_flag,
        "threshold": cleaner.threshold,
    }
    flagged = flag_lazy(scores, rule=rule, value=value.get(rule), n_auto=cleaner.n_auto_)
    flagged = protect_classes_lazy(flagged, y_arr, y_lazy, suggested, scores, cleaner.action)
    (flagged,) = dask.persist(flagged)
    n_flagged, lowest = dask.compute(flagged.sum(), da.where(flagged, scores, np.inf).min())
    # chunked like the rows (older Dask releases merge chunks in cumsum)
    suggested, flagged = (a.rechunk({0: scores.chunks[0]}) for a in (suggested, flagged))
    cleaner.scores_ = scores
    cleaner.suggested_labels_ = suggested
    cleaner.flagged_ = flagged
    cleaner.n_flagged_ = int(n_flagged)
    cleaner.threshold_ = float(cleaner.threshold) if rule == "threshold" else float(lowest)
    cleaner.label_issues_ = row_frame(
        X,
        {"score": scores, "given_label": y_lazy, "suggested_label": suggested, "flagged": flagged},
    )
    cleaner.sample_indices_ = da.flatnonzero(~flagged)
    cleaner._given_labels = y_lazy  # y, chunked like the rows
    cleaner.__dict__.pop("fix_effects_", None)  # from an earlier in-memory fit with "relabel"
    cleaner._log(f"flagged {cleaner.n_flagged_} of {n} rows ({rule})")
    return cleaner


def resample(cleaner, X, y):
    """``X`` and ``y`` without the flagged rows, as Dask collections: ``X``'s
    own partitions filtered; ``y`` as a Dask array for array labels, else as a
    Dask Series indexed like ``X``."""
    keep = ~cleaner.flagged_
    if _is_frame(X):
        X_kept = dd.from_delayed(
            [
                dask.delayed(_filter_part, pure=True)(p, m)
                for p, m in zip(X.to_delayed(), keep.to_delayed(), strict=True)
            ],
            meta=X._meta,
            divisions=X.divisions,
            verify_meta=False,
        )
    else:
        X_kept = X[keep]
    issues = cleaner.label_issues_
    if isinstance(y, (pd.Series, dd.Series)):
        y_kept = issues["given_label"][~issues["flagged"]].rename(y.name)
    else:
        y_kept = cleaner._given_labels[keep]
    return X_kept, y_kept


def flagged_frame(cleaner, X):
    """The flagged rows of ``X`` with their score and labels (Dask DataFrame)."""
    return row_frame(
        X,
        {
            "score": cleaner.scores_,
            "given_label": cleaner._given_labels,
            "suggested_label": cleaner.suggested_labels_,
        },
        rows=cleaner.flagged_,
        features=True,
    )


def top_suspects(cleaner, k: int) -> pd.DataFrame:
    """The ``k`` highest-scoring rows of ``label_issues_`` in memory, with
    ``rank`` (ties in row order, as in memory), from a top-``k`` reduction."""
    scores = cleaner.scores_
    k = min(int(k), scores.shape[0])
    if k == 0:
        return cleaner.label_issues_.head(0).assign(rank=np.empty(0, dtype=int))
    kth = float(da.topk(scores, k).min().compute())
    issues = cleaner.label_issues_
    top = issues[issues["score"] >= kth].compute()
    order = np.argsort(-top["score"].to_numpy(), kind="stable")[:k]
    top = top.iloc[order]
    top.insert(1, "rank", np.arange(1, len(top) + 1))
    return top

r"""Per-row label-issue scores of a fitted classifier, from influence functions.

Every score is oriented so that **higher means more likely mislabeled**.
With ``l_i = l(y_i, \hat\theta)`` the row's loss at the fitted parameters and
``H`` the Hessian of the training objective:

``"training_loss"``
    ``s_i = l_i``: the loss of the given label at the fitted model (log-loss of
    the predicted probability for logistic regression). The baseline.
``"self_influence"``
    ``s_i = \nabla l_i^T H^{-1} \nabla F_i``: the predicted increase of the
    row's own loss when it is removed (Koh & Liang 2017, section 5.4).
``"loo_loss"``
    ``s_i = l_i + \nabla l_i^T H^{-1} \nabla F_i``: the approximate
    leave-one-out loss, the row's loss under a model refitted without it
    (first-order influence estimate).
``"loo_newton"``
    The same with the leave-one-out Hessian ``H - H_i`` (one Newton step on the
    leave-one-out objective; a ``1 / (1 - h_ii)`` leverage correction).
``"validation_influence"``
    ``s_i = (1/m) \sum_j \mathcal{I}[j, i]``: the mean influence of the row on
    the loss of ``m`` trusted validation rows, i.e. how much removing it is
    predicted to *lower* the validation loss.
``"iterative"``
    ``"loo_newton"`` in rounds: drop the most suspicious rows, refit the final
    step on the rest (warm-started), re-score every row against the refitted
    model (kept rows: approximate leave-one-out loss; dropped rows: their loss
    under the model that no longer sees them), repeat.
``"noise_aware"``
    The posterior probability that the given label was flipped, under a
    class-conditional flip model ``P(given = l | true = k) = T[k, l]`` fitted
    by maximum likelihood (EM) to the leave-one-out class probabilities.
"""

from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp
from sklearn.pipeline import Pipeline

from .._backend import block_slices, to_numpy
from .._explainer import InfluenceExplainer

#: scoring methods, most to least recommended (see doc/cleaning.md)
METHODS = (
    "iterative",
    "loo_newton",
    "loo_loss",
    "training_loss",
    "self_influence",
    "noise_aware",
    "validation_influence",
)

#: schedule of ``method="iterative"``: at most this many rounds, each dropping
#: at most this share of the rows (fewer when fewer kept rows are still
#: misclassified by their leave-one-out model; none left ends the rounds)
ITERATIVE_ROUNDS = 3
ITERATIVE_STEP = 0.05

#: which leave-one-out approximation provides a method's suggested labels
_APPROXIMATION = {
    "loo_loss": "influence",
    "loo_newton": "newton",
    "self_influence": "influence",
    "validation_influence": "influence",
    "training_loss": None,  # in-sample predictions
    "iterative": "newton",  # of the last round's model (see RowScorer._iterative)
    "noise_aware": "newton",
}

#: memory budget of one block of per-row parameter changes
_BLOCK_BYTES = 64 * 2**20


def _labels_from_decision(Z, classes):
    """Class labels from raw decisions ``Z`` (n, n_outputs), as ``predict``
    of a linear classifier: the sign of a single output, else the argmax."""
    Z = np.asarray(Z, dtype=float)
    if Z.shape[1] == 1:
        return classes[(Z[:, 0] > 0).astype(int)]
    return classes[np.argmax(Z, axis=1)]


class ExplainerCache:
    """One explainer per approximation, fitted on first use over the rows
    ``X``, ``y`` of ``estimator`` (attributes of the class using it)."""

    def explainer(self, approximation="influence") -> InfluenceExplainer:
        if approximation not in self._explainers:
            params = {**self.explainer_params, "approximation": approximation}
            exp = InfluenceExplainer(self.estimator, **params).fit(self.X, self.y)
            self._explainers[approximation] = exp
        return self._explainers[approximation]

    @property
    def classes(self):
        # any fitted explainer knows them: no second fit for them
        exp = next(iter(self._explainers.values()), None) or self.explainer()
        return np.asarray(exp.spec_.classes_)


class RowScorer(ExplainerCache):
    """Scores of one fitted classifier's training rows, sharing the explainers.

    Parameters
    ----------
    estimator : fitted classifier or Pipeline
        Supported by :class:`~skinfluence.InfluenceExplainer`.
    X, y : the data ``estimator`` was fitted on.
    explainer_params : dict, default=None
        Extra parameters of the explainers (``solver``, ``damping``, ...).
    """

    def __init__(self, estimator, X, y, explainer_params=None):
        self.estimator = estimator
        self.X = X
        self.y = np.asarray(y)
        self.explainer_params = dict(explainer_params or {})
        self._explainers = {}
        self._cache = {}

    def score(self, method, X_val=None, y_val=None) -> np.ndarray:
        """Scores of every training row for ``method``; higher = more suspicious."""
        key = method if method != "validation_influence" else (method, id(X_val), id(y_val))
        if key in self._cache:
            return self._cache[key]
        if method == "training_loss":
            s = self.explainer().training_loss()
        elif method == "self_influence":
            s = self.explainer().self_influence()
        elif method in ("loo_loss", "loo_newton"):
            # the linearised leave-one-out loss: it ranks flipped labels better
            # than the loss at the leave-one-out outputs (leave_one_out_loss),
            # although the latter is the more accurate loss estimate
            # (doc/cleaning.md, "Scoring methods")
            exp = self.explainer("newton" if method == "loo_newton" else "influence")
            s = exp.training_loss() + exp.self_influence()
        elif method == "validation_influence":
            s = self._validation_influence(X_val, y_val)
        elif method == "iterative":
            s = self._iterative()
        elif method == "noise_aware":
            s = self._noise_aware()
        else:
            raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
        s = np.asarray(to_numpy(s), dtype=float)
        self._cache[key] = s
        return s

    def _validation_influence(self, X_val, y_val):
        if X_val is None or y_val is None:
            raise ValueError(
                "method='validation_influence' needs trusted validation data: pass "
                "X_val and y_val to fit (rows whose labels you have checked)."
            )
        exp = self.explainer()
        n_val = X_val.shape[0]
        if n_val == 0:
            raise ValueError("X_val has no rows")
        total = np.zeros(exp.n_train_)
        step = max(1, _BLOCK_BYTES // (8 * max(1, exp.n_train_)))
        for rows in block_slices(n_val, step):
            Xb = X_val.iloc[rows] if hasattr(X_val, "iloc") else X_val[rows]
            yb = y_val.iloc[rows] if hasattr(y_val, "iloc") else np.asarray(y_val)[rows]
            total += np.asarray(to_numpy(exp.influence(Xb, yb))).sum(axis=0)
        return total / n_val

    def decisions(self, approximation):
        """Raw decisions ``(n, n_outputs)`` at the fitted model (``None``) or
        of the approximate leave-one-out models (``"influence"``, ``"newton"``).

        See :meth:`InfluenceExplainer.leave_one_out_decision`.
        """
        key = ("decisions", approximation)
        if key in self._cache:
            return self._cache[key]
        if approximation == "iterative":
            exp = self._iterative_explainer()
            approximation = "newton"
        else:
            exp = self.explainer(approximation or "influence")
        if approximation is None:
            Z = exp.state_.z
        else:
            Z = exp.leave_one_out_decision()
        Z = np.asarray(to_numpy(Z), dtype=float)
        self._cache[key] = Z
        return Z

    def suggested_labels(self, method) -> np.ndarray:
        """Labels predicted for each row by the model the method refers to:
        the approximate leave-one-out model (influence methods) or the fitted
        model (``"training_loss"``)."""
        approx = "iterative" if method == "iterative" else _APPROXIMATION[method]
        try:
            Z = self.decisions(approx)
        except (AttributeError, NotImplementedError, TypeError):  # pragma: no cover
            Z = self.decisions(None)
        return _labels_from_decision(Z, self.classes)

    # ------------------------------------------------------------- iterative
    def _iterative_explainer(self):
        if "iterative_explainer" not in self._cache:
            self._iterative()
        return self._cache["iterative_explainer"]

    def _iterative(self):
        """Scores of ``method="iterative"``: ``loo_newton`` re-computed after
        dropping the most suspicious rows and refitting, in rounds.

        The refit changes only the estimator's final step (earlier pipeline
        steps are the fixed feature map the explainer assumes), warm-started
        from the previous round where the estimator supports ``warm_start``.
        Each round's explainer sees *all* rows with weight 0 for the dropped
        ones: the objective is then that of the refitted model, kept rows get
        their approximate leave-one-out loss and dropped rows (whose
        self-influence is 0) their loss under a model that never saw them, so
        every score is a loss under a model that did not train on the row.
        """
        if "iterative" in self._cache:
            return self._cache["iterative"]
        exp = self.explainer("newton")
        y = self.y
        n = len(y)
        classes, y_idx = np.unique(y, return_inverse=True)
        counts = np.bincount(y_idx, minlength=len(classes))
        # a class keeps at least half of its rows (and 2): the refit needs every
        # class, and no flip process turns most of a class's labels
        floor = np.maximum(2, np.ceil(0.5 * counts)).astype(int)
        step = max(1, int(round(ITERATIVE_STEP * n)))
        scores = _numpy(exp.training_loss()) + _numpy(exp.self_influence())
        suggested = _labels_from_decision(_numpy(exp.leave_one_out_decision()), self.classes)
        dropped = np.zeros(n, dtype=bool)
        est = self.estimator
        Xf = None
        for _ in range(ITERATIVE_ROUNDS):
            wrong = ~dropped & (suggested != y)
            kept = counts - np.bincount(y_idx[dropped], minlength=len(classes))
            order = np.argsort(-scores, kind="stable")
            new = []
            for i in order[wrong[order]]:
                if len(new) == step:
                    break
                if kept[y_idx[i]] > floor[y_idx[i]]:
                    new.append(i)
                    kept[y_idx[i]] -= 1
            if not new:
                break
            dropped[new] = True
            if Xf is None:
                Xf = _feature_map(self.estimator, self.X)
            est = _refit_final(est, Xf, y, ~dropped)
            exp = InfluenceExplainer(
                est, **{**self.explainer_params, "approximation": "newton"}
            ).fit(self.X, y, sample_weight=(~dropped).astype(float))
            scores = _numpy(exp.training_loss()) + _numpy(exp.self_influence())
            suggested = _labels_from_decision(_numpy(exp.leave_one_out_decision()), self.classes)
        self._cache["iterative_explainer"] = exp
        self._cache["iterative_dropped"] = dropped
        self._cache["iterative"] = scores
        return scores

    # ----------------------------------------------------------- noise aware
    def _noise_aware(self):
        """Posterior probability that each given label was flipped.

        With ``p_i`` the leave-one-out class probabilities (Newton step) and a
        class-conditional flip model ``P(given = l | true = k) = T[k, l]``,
        the given label's likelihood is ``sum_k p_ik T[k, y_i]``. ``T`` is the
        maximum-likelihood estimate, by EM over the rows (E-step: the
        posterior of the true class ``r_ik ~ p_ik T[k, y_i]``; M-step:
        ``T[k, l] = sum_{i: y_i = l} r_ik / sum_i r_ik``); the score is
        ``1 - r_{i, y_i}``.
        """
        _check_probabilistic(self.estimator, "noise_aware")
        P = _probabilities(self.decisions("newton"))
        _, y_idx = np.unique(self.y, return_inverse=True)
        T, R = noise_posterior(P, y_idx)
        self._cache["noise_transition"] = T
        return 1.0 - R[np.arange(len(y_idx)), y_idx]


def noise_posterior(P, y_idx, *, max_iter=200, tol=1e-10):
    """Class-conditional flip matrix by maximum likelihood, and posteriors.

    Parameters
    ----------
    P : ndarray of shape (n, K)
        Class probabilities of each row under a model of the true labels.
    y_idx : ndarray of int of shape (n,)
        Index of each row's given label.

    Returns
    -------
    T : ndarray of shape (K, K)
        ``T[k, l]``, estimated ``P(given = l | true = k)``; rows sum to 1.
    R : ndarray of shape (n, K)
        Posterior probability of each true class given the row and its label.
    """
    n, K = P.shape
    P = np.clip(P, 1e-12, None)
    onehot = np.zeros((n, K))
    onehot[np.arange(n), y_idx] = 1.0
    # start near "no flips": EM climbs the likelihood from there
    T = np.full((K, K), 0.1 / max(1, K - 1))
    np.fill_diagonal(T, 0.9)
    for _ in range(max_iter):
        num = P * T[:, y_idx].T  # p_ik T[k, y_i]
        R = num / num.sum(axis=1, keepdims=True)
        T_new = R.T @ onehot
        T_new /= np.maximum(T_new.sum(axis=1, keepdims=True), 1e-300)
        done = np.max(np.abs(T_new - T)) < tol
        T = T_new
        if done:
            break
    num = P * T[:, y_idx].T
    return T, num / num.sum(axis=1, keepdims=True)


def _numpy(a):
    return np.asarray(to_numpy(a), dtype=float)


def _probabilities(Z):
    """Class probabilities from the raw outputs of a log-loss model: the
    sigmoid of a single output, else the softmax."""
    Z = np.asarray(Z, dtype=float)
    if Z.shape[1] == 1:
        p = 1.0 / (1.0 + np.exp(-Z[:, 0]))
        return np.column_stack([1.0 - p, p])
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def _final_step(estimator):
    return estimator[-1] if isinstance(estimator, Pipeline) else estimator


def _check_probabilistic(estimator, method):
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    final = _final_step(estimator)
    ok = isinstance(final, LogisticRegression) or (
        isinstance(final, SGDClassifier) and final.loss == "log_loss"
    )
    multi_ovr = isinstance(final, SGDClassifier) and len(final.classes_) > 2
    if not ok or multi_ovr:
        raise ValueError(
            f"method={method!r} needs class probabilities from a log-loss model "
            "(LogisticRegression, or a binary SGDClassifier(loss='log_loss')); got "
            f"{type(final).__name__}. Use method='iterative' or 'loo_newton' instead."
        )


def _feature_map(estimator, X):
    """Rows as the final step sees them (the fixed feature map)."""
    if isinstance(estimator, Pipeline) and len(estimator.steps) > 1:
        return estimator[:-1].transform(X)
    return X


def _refit_final(estimator, Xf, y, keep):
    """A copy of ``estimator`` whose final step is refitted on rows ``keep``
    of the mapped features ``Xf``, warm-started when the step supports it;
    the fitted earlier steps are shared, not refitted."""
    final = copy.deepcopy(_final_step(estimator))
    if "warm_start" in final.get_params():
        final.set_params(warm_start=True)
    rows = np.flatnonzero(keep)
    Xk = Xf[rows] if not hasattr(Xf, "iloc") else Xf.iloc[rows]
    final.fit(Xk, y[rows])
    if isinstance(estimator, Pipeline):
        return Pipeline(estimator.steps[:-1] + [(estimator.steps[-1][0], final)])
    return final


def _as_dense_rows(X):
    """Row-indexable view of ``X`` (arrays, sparse matrices, DataFrames)."""
    if sp.issparse(X):
        return X.tocsr()
    return X

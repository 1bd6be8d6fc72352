"""Simulated label review (Koh & Liang 2017, Figure 6).

A reviewer checks training rows in the order a scoring method ranks them,
fixing every flipped label found. For each fraction of rows checked we record
the fraction of all flips found and, with test data, the test accuracy of the
model refitted on the fixed labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state

from ._cleaner import default_estimator
from ._scoring import METHODS, RowScorer

DEFAULT_FRACTIONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)


@dataclass
class ReviewResult:
    """Curves of a simulated label review.

    Attributes
    ----------
    fractions : ndarray of shape (n_points,)
        Fractions of the training rows checked.
    found : dict of str to ndarray of shape (n_points,)
        Per method, the fraction of all flipped labels found.
    accuracy : dict of str to ndarray, or None
        Per method, test accuracy after fixing the flips found (``None``
        without test data).
    seconds : dict of str to float
        Per method, the time to score the rows (excluding the shared fit).
    n_samples, n_flipped : int
    accuracy_noisy, accuracy_clean : float or None
        Test accuracy with no label fixed and with every label fixed.
    """

    fractions: np.ndarray
    found: dict = field(default_factory=dict)
    accuracy: dict | None = None
    seconds: dict = field(default_factory=dict)
    n_samples: int = 0
    n_flipped: int = 0
    accuracy_noisy: float | None = None
    accuracy_clean: float | None = None

    @property
    def methods(self) -> list[str]:
        return list(self.found)

    def to_frame(self):
        """Long-format :class:`pandas.DataFrame`: method, fraction_checked,
        fraction_found, accuracy."""
        import pandas as pd

        rows = []
        for m in self.found:
            for k, f in enumerate(self.fractions):
                acc = None if self.accuracy is None else float(self.accuracy[m][k])
                rows.append((m, float(f), float(self.found[m][k]), acc))
        return pd.DataFrame(
            rows, columns=["method", "fraction_checked", "fraction_found", "accuracy"]
        )


def simulate_review(
    estimator,
    X,
    y_noisy,
    y_true,
    *,
    X_test=None,
    y_test=None,
    methods=None,
    fractions=DEFAULT_FRACTIONS,
    X_val=None,
    y_val=None,
    explainer_params: dict | None = None,
    random_state=None,
) -> ReviewResult:
    r"""Replay a label review with each scoring method.

    The estimator is fitted once on ``(X, y_noisy)``; each method ranks the
    rows (highest score first, ``"random"`` in a random order). Checking the
    top ``k = round(f * n)`` rows fixes the flips among them:

    .. math::

        \mathrm{found}(f) = \frac{|\{i \in \mathrm{top}_k : \tilde y_i \ne y_i\}|}
                                 {|\{i : \tilde y_i \ne y_i\}|}

    With ``X_test``, ``y_test`` the estimator is refitted on the fixed labels
    at every point and its test accuracy recorded.

    Parameters
    ----------
    estimator : classifier or Pipeline, or None
        Unfitted; cloned. ``None``: the cleaner's default.
    X : array-like of shape (n_samples, n_features)
    y_noisy : array-like of shape (n_samples,)
        The labels as given (with flips).
    y_true : array-like of shape (n_samples,)
        The correct labels.
    X_test, y_test : clean test data, default=None
    methods : list of str, default=None
        Among ``"random"`` and the cleaner's methods; ``None`` uses
        ``"random"``, ``"training_loss"``, ``"self_influence"``,
        ``"loo_loss"``, ``"loo_newton"`` and ``"iterative"`` (and
        ``"validation_influence"`` when ``X_val`` is given).
    fractions : sequence of float, default=(0, 0.05, ..., 0.3)
    X_val, y_val : trusted validation data for ``"validation_influence"``.
    explainer_params : dict, default=None
    random_state : int, RandomState or None
        For the ``"random"`` order.

    Returns
    -------
    ReviewResult
    """
    y_noisy = np.asarray(y_noisy)
    y_true = np.asarray(y_true)
    if y_noisy.shape != y_true.shape:
        raise ValueError("y_noisy and y_true must have the same shape")
    if methods is None:
        methods = [
            "random",
            "training_loss",
            "self_influence",
            "loo_loss",
            "loo_newton",
            "iterative",
        ]
        if X_val is not None:
            methods.append("validation_influence")
    unknown = set(methods) - {"random", *METHODS}
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; use 'random' or {METHODS}")
    fractions = np.asarray(fractions, dtype=float)
    rng = check_random_state(random_state)
    base = default_estimator() if estimator is None else estimator
    fitted = clone(base).fit(X, y_noisy)
    scorer = RowScorer(fitted, X, y_noisy, explainer_params)
    is_flip = y_noisy != y_true
    n = len(y_noisy)
    n_flipped = int(is_flip.sum())

    def accuracy(labels):
        est = clone(base).fit(X, labels)
        return float(est.score(X_test, y_test))

    with_test = X_test is not None and y_test is not None
    result = ReviewResult(fractions=fractions, n_samples=n, n_flipped=n_flipped)
    result.accuracy = {} if with_test else None
    if with_test:
        result.accuracy_noisy = float(fitted.score(X_test, y_test))
        result.accuracy_clean = accuracy(y_true)
    for method in methods:
        t0 = time.perf_counter()
        if method == "random":
            scores = rng.random_sample(n)
        else:
            scores = scorer.score(method, X_val=X_val, y_val=y_val)
        result.seconds[method] = time.perf_counter() - t0
        order = np.argsort(-scores, kind="stable")
        found, acc = [], []
        for f in fractions:
            checked = order[: int(round(f * n))]
            found.append(is_flip[checked].sum() / max(1, n_flipped))
            if with_test:
                fixed = y_noisy.copy()
                fixed[checked] = y_true[checked]
                acc.append(accuracy(fixed))
        result.found[method] = np.asarray(found, dtype=float)
        if with_test:
            result.accuracy[method] = np.asarray(acc)
    return result

"""Synthetic tables shaped like real ones, for the tests and benchmarks.

Not public API: the structure that puts hinge fits at degenerate vertices
(one-hot categoricals, a binned column, values rounded to one decimal,
duplicated rows) in one place, so tests and benchmarks build the same
tables.
"""

from __future__ import annotations

import numpy as np


def tied_table(n: int, seed: int = 0, duplicated: float = 0.25, levels=(5, 6, 7, 5)):
    """``(X, labels, target)``: one-hot categoricals of ``levels`` levels, a
    numeric column binned into 4 (one-hot), three numeric columns rounded to
    one decimal; ``duplicated`` of the rows copy others.

    ``labels`` are 0/1 from a logistic model of the columns, ``target`` a
    continuous response with the same signal. With the default levels there
    are 30 features.
    """
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(seed)
    cats = np.column_stack([rng.integers(0, k, n) for k in levels])
    num = rng.normal(size=(n, 4))
    binned = np.digitize(num[:, 0], [-1.0, 0.0, 1.0])
    signal = 0.8 * (cats[:, 0] == 1) - 0.6 * (cats[:, 1] == 2)
    if len(levels) > 2:
        signal = signal + 0.4 * (cats[:, 2] > 3)
    signal = signal + num[:, 1] - 0.5 * num[:, 2] + 0.5 * binned
    labels = (signal + rng.logistic(size=n) > 0.3).astype(int)
    target = signal + 0.5 * rng.normal(size=n)
    encoded = OneHotEncoder(sparse_output=False).fit_transform(np.column_stack([cats, binned]))
    X = np.column_stack([encoded, np.round(num[:, 1:], 1)])
    k = int(duplicated * n)
    if k:
        copies = rng.integers(0, n - k, k)
        X[-k:], labels[-k:], target[-k:] = X[copies], labels[copies], target[copies]
    return X, labels, target

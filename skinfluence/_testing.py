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


def mixed_frame(n: int = 600, seed: int = 0, duplicated: float = 0.25):
    """``(frame, labels)``: a pandas table as users bring it -- string
    categoricals with missing values, an integer-coded count, a 1-5 rating
    with missing values, a rounded income -- with ``duplicated`` of the rows
    copying others, and string labels ``"approve"`` / ``"deny"``."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "region": rng.choice(["north", "south", "east", "west"], n).astype(object),
            "product": rng.choice(["a", "b", "c"], n),
            "n_children": rng.integers(0, 4, n),
            "rating": rng.integers(1, 6, n).astype(float),
            "income": np.round(rng.lognormal(3, 0.5, n), 0),
        }
    )
    frame.loc[rng.random(n) < 0.05, "rating"] = np.nan
    frame.loc[rng.random(n) < 0.03, "region"] = np.nan
    signal = (
        0.8 * (frame["region"] == "north")
        - 0.6 * (frame["product"] == "c")
        + 0.3 * frame["n_children"]
        + 0.02 * (frame["income"] - 20)
    )
    labels = np.where(signal + rng.logistic(size=n) > 0.5, "deny", "approve")
    k = int(duplicated * n)
    if k:
        copies = rng.integers(0, n - k, k)
        frame.iloc[-k:] = frame.iloc[copies].to_numpy()
        labels[-k:] = labels[copies]
    return frame, labels

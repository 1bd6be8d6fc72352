"""``skinfluence demo``: the main job on data that ships with scikit-learn.

Fits a pipeline on the breast-cancer data, picks a misclassified test row,
prints the training rows that pushed the model towards the mistake and those
that pulled against it, then checks the estimates against real leave-one-out
retraining.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._explainer import InfluenceExplainer
from .retraining import leave_one_out


def _table(rows, header):
    widths = [max(len(str(r[c])) for r in [header, *rows]) for c in range(len(header))]
    line = "  ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(f"{v:>{w}}" for v, w in zip(r, widths, strict=True)))


def main(n_rows: int = 5, n_check: int = 30, n_jobs: int | None = None) -> dict:
    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target
    names = np.asarray(data.target_names)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000))
    model.fit(X_tr, y_tr)
    wrong = np.flatnonzero(model.predict(X_te) != y_te.to_numpy())
    proba = model.predict_proba(X_te)
    j = int(wrong[0]) if wrong.size else int(np.argmin(proba[np.arange(len(y_te)), y_te]))
    x_j, y_j = X_te.iloc[[j]], y_te.iloc[[j]]

    t0 = time.perf_counter()
    explainer = InfluenceExplainer(model).fit(X_tr, y_tr)
    influence = explainer.influence(x_j, y_j)[0]
    seconds = time.perf_counter() - t0

    print(f"Breast cancer: {len(X_tr)} training rows, {X.shape[1]} features.")
    print(
        f"Test row {X_te.index[j]}: true '{names[y_j.iloc[0]]}', predicted "
        f"'{names[model.predict(x_j)[0]]}' (p={proba[j].max():.3f}); influence of all "
        f"training rows computed in {seconds * 1e3:.0f} ms.\n"
    )
    order = np.argsort(influence)
    for title, idx in (
        ("Most harmful training rows (removing them lowers this row's loss)", order[::-1]),
        ("Most helpful training rows (removing them raises this row's loss)", order),
    ):
        print(title)
        rows = [
            (X_tr.index[i], names[y_tr.iloc[i]], f"{influence[i]:+.4f}", f"{-influence[i]:+.4f}")
            for i in idx[:n_rows]
        ]
        _table(rows, ("row", "label", "influence", "predicted change of test loss"))
        print()

    print(f"Checking against real leave-one-out retraining of the {n_check} most influential")
    print("rows (each refit from scratch):")
    results = {}
    for approx in ("influence", "newton"):
        exp = InfluenceExplainer(model, approximation=approx).fit(X_tr, y_tr)
        check = leave_one_out(exp, x_j, y_j, rows=n_check, n_jobs=n_jobs)
        results[approx] = check.agreement
    _table(
        [
            (name, f"{a.pearson:.4f}", f"{a.spearman:.4f}", f"{a.slope:.3f}")
            for name, a in results.items()
        ],
        ("approximation", "Pearson", "Spearman", "slope (actual on predicted)"),
    )
    return {"test_row": j, "influence": influence, "agreement": results}


if __name__ == "__main__":
    main()

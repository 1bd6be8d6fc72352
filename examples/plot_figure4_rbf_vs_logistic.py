"""
Figure 4: an RBF SVM and a logistic regression explain a prediction differently
===============================================================================

Koh & Liang contrast an RBF-kernel SVM with a network on the same test image:
the SVM's influential training images are simply the nearby ones, while the
network's are not. Here the two models are an ``SVC(kernel="rbf")`` and a
``LogisticRegression`` on digits 1 vs 7, explaining the same test digit:

* top: each training row's *helpfulness* (``-influence``: how much removing it
  would raise the test loss) against its Euclidean distance to the test
  digit, coloured by label. Only the SVM's support vectors have any
  influence; with this local kernel (``gamma=0.5``) its largest effects come
  from the nearest digits, while the logistic regression also gives weight to
  distant rows (its parameters are global).
* bottom: the test digit and the most helpful / most harmful training digits
  of each model.

The script also prints a locality measure over all test digits: the share of
the total ``|influence|`` on each test digit's decision value that comes from
its 10% nearest training rows. Measured: RBF SVM 0.45 (median), logistic
regression 0.29. The contrast depends on the kernel width: with
``gamma=0.05`` (the benchmark's setting, a wide kernel on these pixels) the
SVM's share drops to 0.21, less local than the logistic regression.

Run ``python examples/plot_figure4_rbf_vs_logistic.py [--quick] [--out fig4.png]``.
No refits are needed, so it is fast either way (``--quick`` is accepted for
uniformity with the other examples).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from skinfluence import InfluenceExplainer

#: a local kernel: k(x, x') = exp(-GAMMA |x - x'|^2) is below 0.01 beyond distance 3
GAMMA = 0.5
NON_INTERACTIVE = {"agg", "pdf", "ps", "svg", "pgf", "cairo", "template"}


def _finish(fig, out):
    """Save to ``out`` if given, else show on an interactive backend."""
    import matplotlib
    import matplotlib.pyplot as plt

    if out:
        fig.savefig(out, dpi=120, bbox_inches="tight")
        plt.close(fig)
        print(f"wrote {out}")
    elif matplotlib.get_backend().lower() not in NON_INTERACTIVE:
        plt.show()


def main(quick: bool | None = None, out: str | None = None, n_images: int = 5) -> dict:
    """Draw the figure; returns each model's influence on the test digit."""
    import matplotlib.pyplot as plt

    if quick is None:
        quick = bool(os.environ.get("SKINFLUENCE_QUICK"))
    X, y = load_digits(return_X_y=True)
    keep = (y == 1) | (y == 7)
    X, y = X[keep] / 16.0, y[keep]
    X_train, y_train, X_test, y_test = X[:300], y[:300], X[300:], y[300:]

    models = {
        "RBF SVM": SVC(kernel="rbf", gamma=GAMMA, C=1.0, tol=1e-10),
        "Logistic regression": LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000),
    }
    for model in models.values():
        model.fit(X_train, y_train)
    # the test digit closest to the SVM's decision boundary: a hard case for both
    j = int(np.argmin(np.abs(models["RBF SVM"].decision_function(X_test))))
    x_j, y_j = X_test[[j]], y_test[[j]]
    distance = np.linalg.norm(X_train - x_j, axis=1)

    explainers = {name: InfluenceExplainer(m).fit(X_train, y_train) for name, m in models.items()}
    influence = {name: exp.influence(x_j, y_j)[0] for name, exp in explainers.items()}
    helpful = {name: -v for name, v in influence.items()}  # > 0: removing it hurts

    fig = plt.figure(figsize=(12, 8.5))
    grid = fig.add_gridspec(
        3, 2 * n_images + 1, height_ratios=[3, 1, 1], hspace=0.6, top=0.9, bottom=0.02
    )
    same = y_train == y_j[0]
    for col, (name, h) in enumerate(helpful.items()):
        ax = fig.add_subplot(grid[0, col * (n_images + 1) : col * (n_images + 1) + n_images])
        ax.scatter(distance[same], h[same], s=12, alpha=0.7, label=f"label {y_j[0]} (same)")
        ax.scatter(distance[~same], h[~same], s=12, alpha=0.7, label="other label")
        ax.axhline(0.0, color="black", linewidth=0.5)
        ax.set(xlabel="Euclidean distance to the test digit", title=name)
        if col == 0:
            ax.set_ylabel("helpfulness (-influence)")
        ax.legend(fontsize="small")
        n_nonzero = int(np.sum(np.abs(h) > 1e-12))
        print(f"{name:20s} training rows with nonzero influence: {n_nonzero} / {len(h)}")

    ax = fig.add_subplot(grid[1:, n_images])
    ax.imshow(x_j.reshape(8, 8), cmap="gray_r")
    ax.set_title(f"test digit\nlabel {y_j[0]}", fontsize="small")
    ax.axis("off")
    for col, h in enumerate(helpful.values()):
        order = np.argsort(-h)
        for row, (kind, idx) in enumerate((("helpful", order), ("harmful", order[::-1]))):
            for k, i in enumerate(idx[:n_images]):
                ax = fig.add_subplot(grid[1 + row, col * (n_images + 1) + k])
                ax.imshow(X_train[i].reshape(8, 8), cmap="gray_r")
                ax.set_title(f"{kind}\n#{i} ({y_train[i]})", fontsize="x-small")
                ax.axis("off")
    # locality over all test digits, on the decision value (nonzero for every row)
    near = np.argsort(np.linalg.norm(X_test[:, None] - X_train[None], axis=2), axis=1)
    near = near[:, : len(y_train) // 10]
    share = {}
    print(
        "Koh & Liang (Figure 4): the RBF SVM's influential training images are the nearby "
        "ones,\nthe other model's are not. Measured here:"
    )
    for name, exp in explainers.items():
        A = np.abs(exp.influence(X_test, y_test, target="prediction"))
        share[name] = float(np.median(np.take_along_axis(A, near, 1).sum(1) / A.sum(1)))
        print(f"{name:20s} share of |influence| from the 10% nearest rows: {share[name]:.2f}")
    fig.suptitle(
        "Which training digits support this prediction? RBF SVM vs logistic regression "
        "(digits 1 vs 7)"
    )
    _finish(fig, out)
    return {
        "test_row": j,
        "influence": influence,
        "distance": distance,
        "locality": share,
        "figure": fig,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--quick", action="store_true", default=None)
    parser.add_argument("--out", default=None, help="save the figure here instead of showing it")
    args = parser.parse_args()
    main(quick=args.quick, out=args.out)

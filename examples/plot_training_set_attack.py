"""
Section 5.2: a training-set attack with ``influence_features``
==============================================================

Koh & Liang (2017, section 5.2) turn the perturbation influence
``I_pert,loss`` (their Eq. 5) into an attack: change a few *training* rows a
little, in the direction that raises the loss on one chosen test row, refit,
and the test prediction flips. On a dog-vs-fish classifier (a logistic
regression on Inception features) they flip many test predictions by
perturbing one or two training images imperceptibly.

Here the model is a logistic regression on a synthetic 200-feature problem
with 300 training rows (a regime like theirs: about as many features as
rows, so single rows matter). For each correctly classified test row:

1. ``InfluenceExplainer.influence_features`` gives, for every training row,
   the derivative of that test row's loss with respect to the row's features;
2. the ``k`` training rows with the largest gradients move by ``eps`` (a
   fifth of a feature's standard deviation) in the gradient's sign direction,
   their labels untouched;
3. the model is refitted from scratch on the perturbed data, and we count
   the test predictions that flipped.

As a control, ``k`` random training rows get a random-sign perturbation of
the same size. The script prints the paper's claim next to the measured
counts, and plots the fraction flipped against ``k``.

Run ``python examples/plot_training_set_attack.py [--quick] [--out attack.png]``
(``SKINFLUENCE_QUICK=1`` also selects the quick mode: fewer test rows).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from skinfluence import InfluenceExplainer

NON_INTERACTIVE = {"agg", "pdf", "ps", "svg", "pgf", "cairo", "template"}
EPS = 0.2  # per feature, in units of the features' standard deviation (1 here)


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


def main(quick: bool | None = None, out: str | None = None) -> dict:
    """Run the attack; returns the flip counts per ``k``."""
    import matplotlib.pyplot as plt

    if quick is None:
        quick = bool(os.environ.get("SKINFLUENCE_QUICK"))
    n_targets, ks = (12, (1, 5)) if quick else (30, (1, 2, 5))

    X, y = make_classification(
        n_samples=500,
        n_features=200,
        n_informative=10,
        n_redundant=0,
        class_sep=1.5,
        random_state=0,
    )
    X_train, y_train, X_test, y_test = X[:300], y[:300], X[300:], y[300:]
    model = LogisticRegression(C=0.05, tol=1e-10, max_iter=10_000).fit(X_train, y_train)
    targets = np.flatnonzero(model.predict(X_test) == y_test)[:n_targets]
    print(
        f"Logistic regression, {X_train.shape[0]} training rows, {X_train.shape[1]} features; "
        f"test accuracy {model.score(X_test, y_test):.3f}; attacking {len(targets)} correctly "
        f"classified test rows, eps = {EPS} per feature."
    )

    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    rng = np.random.default_rng(0)

    def flipped_after(rows, delta, j):
        X_att = X_train.copy()
        X_att[rows] += delta
        refit = clone(model).fit(X_att, y_train)  # from scratch, labels untouched
        return bool(refit.predict(X_test[[j]])[0] != y_test[j])

    flips = {("attack", k): 0 for k in ks} | {("random", ks[-1]): 0}
    for j in targets:
        # d loss_j / d x_i for every training row i: (n_train, n_features)
        grad = explainer.influence_features(X_test[[j]], y_test[[j]])[0]
        order = np.argsort(-np.abs(grad).sum(axis=1))
        for k in ks:
            rows = order[:k]
            flips[("attack", k)] += flipped_after(rows, EPS * np.sign(grad[rows]), j)
        rows = rng.choice(len(y_train), ks[-1], replace=False)
        sign = rng.choice([-1.0, 1.0], size=(ks[-1], X_train.shape[1]))
        flips[("random", ks[-1])] += flipped_after(rows, EPS * sign, j)

    print(
        "\nKoh & Liang (section 5.2): perturbing one or two training images of a dog-vs-fish "
        "classifier\nimperceptibly flips the prediction on many test images.\nMeasured here "
        "(refits from scratch):"
    )
    for (kind, k), n in flips.items():
        print(f"{kind:6s} k={k}  flipped {n} / {len(targets)} test predictions")

    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    ax.plot(ks, [flips[("attack", k)] / len(targets) for k in ks], "o-", label="influence attack")
    ax.plot([ks[-1]], [flips[("random", ks[-1])] / len(targets)], "s", label="random perturbation")
    ax.set(
        xlabel="training rows perturbed (k)",
        ylabel="test predictions flipped",
        xticks=ks,
        ylim=(-0.05, 1.05),
        title=f"eps = {EPS} per feature, {len(targets)} target rows",
    )
    ax.legend(loc="upper left")
    _finish(fig, out)
    return {"flips": flips, "n_targets": len(targets), "figure": fig}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--quick", action="store_true", default=None)
    parser.add_argument("--out", default=None, help="save the figure here instead of showing it")
    args = parser.parse_args()
    main(quick=args.quick, out=args.out)

"""
Figure 3: influence for a hinge-loss SVM
========================================

The hinge ``max(0, 1 - m)`` has no second derivative, so Koh & Liang
differentiate the smoothed hinge ``t log(1 + exp((1 - m) / t))`` at the fitted
SVM (``hinge="smoothed"``). skinfluence's default, ``hinge="active_set"``, is
the exact ``t -> 0`` limit: a KKT system over the margin support vectors.
``approximation="path"`` goes further and follows the decremental solution
path through the active-set changes a removal causes: the exact effect.

A linear SVM (``LinearSVC(loss="hinge")``) on digits 1 vs 7, as in the paper.
For the three test rows of highest loss, the 30 most influential training
rows are removed one at a time and the SVM refitted; the test loss is the
smoothed hinge at the same temperature. Panels:

1. the smoothed hinge for several temperatures;
2. predicted vs actual change for the smoothed hinge at two temperatures,
   for the active-set method and for the decremental path;
3. Pearson R against ``t`` (the paper's right panel), with the active-set
   method's and the path's R as reference lines.

On this linear SVM the active-set method correlates best and gets the scale
roughly right; the smoothed Hessian at small ``t`` underestimates every
change by a large factor (look at the axes), because a margin row's curvature
``1 / (4 t)`` pins it in place even when it is the row being removed.

Run ``python examples/plot_figure3_smooth_hinge.py [--quick] [--out fig3.png]``
(``SKINFLUENCE_QUICK=1`` also selects the quick mode).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.svm import LinearSVC

from skinfluence import InfluenceExplainer
from skinfluence.plotting import AgreementDisplay
from skinfluence.retraining import leave_one_out

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


def load_digits17():
    """Digits 1 vs 7, pixels in [0, 1]; the first 300 rows train."""
    X, y = load_digits(return_X_y=True)
    keep = (y == 1) | (y == 7)
    X, y = X[keep] / 16.0, y[keep]
    return X[:300], y[:300], X[300:], y[300:]


def main(quick: bool | None = None, out: str | None = None) -> dict:
    """Draw the figure; returns ``{"active_set": Agreement, "path": Agreement,
    "smoothed": {t: Agreement}}``."""
    import matplotlib.pyplot as plt

    if quick is None:
        quick = bool(os.environ.get("SKINFLUENCE_QUICK"))
    temperatures = [1e-3, 1e-1] if quick else [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    n_rows = 15 if quick else 30
    shown = (1e-3, 1e-1)  # temperatures drawn in the scatter panels

    X_train, y_train, X_test, y_test = load_digits17()
    svm = LinearSVC(loss="hinge", C=1.0, tol=1e-10, max_iter=1_000_000).fit(X_train, y_train)
    margin = np.where(y_test == svm.classes_[1], 1.0, -1.0) * svm.decision_function(X_test)
    test = np.argsort(margin)[:3]  # highest hinge loss
    X_t, y_t = X_test[test], y_test[test]

    results = {"smoothed": {}}
    for t in temperatures:
        exp = InfluenceExplainer(svm, hinge="smoothed", temperature=t).fit(X_train, y_train)
        results["smoothed"][t] = leave_one_out(exp, X_t, y_t, rows=n_rows)
    exp = InfluenceExplainer(svm, temperature=1e-3).fit(X_train, y_train)  # active set
    results["active_set"] = leave_one_out(exp, X_t, y_t, rows=n_rows)
    exp = InfluenceExplainer(svm, temperature=1e-3, approximation="path").fit(X_train, y_train)
    results["path"] = leave_one_out(exp, X_t, y_t, rows=n_rows)

    fig, axes = plt.subplots(1, 6, figsize=(26, 4.2))
    m = np.linspace(-1, 3, 400)
    axes[0].plot(m, np.maximum(0.0, 1.0 - m), color="black", label="hinge (t = 0)")
    for t in (1e-3, 1e-2, 1e-1, 0.5):
        axes[0].plot(m, t * np.logaddexp(0.0, (1.0 - m) / t), label=f"t = {t:g}")
    axes[0].set(xlabel="margin m = y f(x)", ylabel="loss", title="Smoothed hinge")
    axes[0].legend(fontsize="small")
    for ax, t in zip(axes[1:3], shown, strict=True):
        AgreementDisplay.from_result(results["smoothed"][t], ax=ax, name="smoothed")
        ax.set_title(f'hinge="smoothed", t = {t:g}')
    AgreementDisplay.from_result(results["active_set"], ax=axes[3], name="active set")
    axes[3].set_title('hinge="active_set" (t -> 0), test loss at t = 0.001')
    AgreementDisplay.from_result(results["path"], ax=axes[4], name="path")
    axes[4].set_title('approximation="path", test loss at t = 0.001')
    ts = sorted(results["smoothed"])
    axes[5].semilogx(
        ts, [results["smoothed"][t].agreement.pearson for t in ts], "o-", label="smoothed"
    )
    for name, color in (("active_set", "C3"), ("path", "C2")):
        axes[5].axhline(results[name].agreement.pearson, color=color, linestyle="--", label=name)
    axes[5].set(xlabel="temperature t", ylabel="Pearson R", title="R against t")
    axes[5].legend()
    fig.suptitle(f"Linear SVM on digits 1 vs 7: {n_rows} most influential rows, 3 test rows")
    fig.tight_layout()

    print(
        "Koh & Liang (Figure 3): the hinge has no curvature, so they differentiate a smoothed "
        "hinge;\nits influence estimates correlate with the actual changes of the SVM. "
        "Measured here\n(28x28 MNIST there, 8x8 digits here: the numbers are not directly "
        "comparable):"
    )
    print(f"{'method':24s} {'Pearson':>8s} {'slope':>8s}")
    for t in ts:
        a = results["smoothed"][t].agreement
        print(f"{f'smoothed t={t:g}':24s} {a.pearson:8.3f} {a.slope:8.2f}")
    for name in ("active_set", "path"):
        a = results[name].agreement
        print(f"{name:24s} {a.pearson:8.3f} {a.slope:8.2f}")
    _finish(fig, out)
    return {
        "active_set": results["active_set"].agreement,
        "path": results["path"].agreement,
        "smoothed": {t: r.agreement for t, r in results["smoothed"].items()},
        "figure": fig,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--quick", action="store_true", default=None)
    parser.add_argument("--out", default=None, help="save the figure here instead of showing it")
    args = parser.parse_args()
    main(quick=args.quick, out=args.out)

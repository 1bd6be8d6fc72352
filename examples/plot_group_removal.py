"""
Removing a whole segment: predicted against refitted
====================================================

Users of tabular models rarely ask about one row. They ask what the model
would do without all patients of one age band, one sex, or one range of blood
pressure. This example drops each such segment of the diabetes data (shipped
with scikit-learn; a logistic regression predicts whether disease progression
after one year is above the median), predicts the change of the held-out
patients' summed log-loss three ways, and compares each with the model
refitted without the segment:

* ``approximation="influence"``: the sum of the segment's single-row
  influences (first order). Segments are a quarter or half of the training
  rows here; Koh, Ang, Teo & Liang (NeurIPS 2019) found that such sums
  understate group effects. Here they are barely correlated with them: the
  largest effects come from segments that take a feature's whole range out
  (all patients of one sex), which first order cannot see.
* ``approximation="newton"``: one Newton step on the objective without the
  segment (its rows taken out of the Hessian); it warns about the segments
  it cannot reach in one step.
* ``approximation="refit"``: Newton iterations to the optimum without the
  segment: the refitted effect, without calling scikit-learn.

The refits come from ``explainer.retrainer(X_test, y_test)``: a clone of
the pipeline's final step fitted without the segment's rows (the scaler kept
as fitted, as the estimates assume).

Run ``python examples/plot_group_removal.py [--quick] [--out groups.png]``;
``SKINFLUENCE_QUICK=1`` also selects the quick mode (segments of three
columns, not five).
"""

from __future__ import annotations

import argparse
import os
import warnings

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.plotting import AgreementDisplay

NON_INTERACTIVE = {"agg", "pdf", "ps", "svg", "pgf", "cairo", "template"}
APPROXIMATIONS = ("influence", "newton", "refit")


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


def segments(X, columns):
    """Boolean masks of the segments: each sex, and the quartiles of each
    other column (segments of different columns overlap; each is dropped on
    its own)."""
    masks = {}
    for col in columns:
        if col == "sex":
            for v in sorted(X[col].unique()):
                masks[f"sex={v:g}"] = (X[col] == v).to_numpy()
        else:
            quartile = pd.qcut(X[col], 4, labels=False).to_numpy()
            for k in range(4):
                masks[f"{col} Q{k + 1}"] = quartile == k
    return masks


def main(quick: bool | None = None, out: str | None = None) -> dict:
    """Print the comparison and draw it; returns the table of changes."""
    import matplotlib.pyplot as plt

    if quick is None:
        quick = bool(os.environ.get("SKINFLUENCE_QUICK"))
    columns = ["sex", "age", "bp"] if quick else ["sex", "age", "bmi", "bp", "s5"]

    data = load_diabetes(as_frame=True, scaled=False)
    X = data.data
    y = (data.target > data.target.median()).astype(int)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    y_train, y_test = y_train.to_numpy(), y_test.to_numpy()
    # Influence functions assume an exact optimum: fit tightly.
    model = make_pipeline(StandardScaler(), LogisticRegression(tol=1e-10, max_iter=10_000))
    model.fit(X_train, y_train)
    masks = segments(X_train, columns)
    groups = list(masks.values())
    print(
        f"{len(groups)} segments of {len(y_train)} training patients "
        f"({min(m.sum() for m in groups)}-{max(m.sum() for m in groups)} rows each); "
        f"change of the summed log-loss of {len(y_test)} held-out patients."
    )

    predicted = {}
    for approximation in APPROXIMATIONS:
        explainer = InfluenceExplainer(model, approximation=approximation)
        explainer.fit(X_train, y_train)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # group_influence[j, g]: removing group g changes test row j's
            # loss by about -group_influence[j, g]
            effect = explainer.group_influence(X_test, y_test, groups)
        predicted[approximation] = -np.asarray(effect).sum(axis=0)
        for w in caught:
            print(f"{approximation} warns: {w.message}")

    # the refitted effect of dropping each segment
    refit = explainer.retrainer(X_test, y_test)
    base = refit(None).sum()
    actual = np.array([refit(np.flatnonzero(m)).sum() - base for m in groups])

    table = pd.DataFrame(predicted, index=list(masks))
    table.insert(0, "rows", [int(m.sum()) for m in groups])
    table["actual"] = actual
    print("\nPredicted and refitted change of the summed test loss, most harmful segment first:")
    print(table.sort_values("actual").to_string(float_format=lambda v: f"{v:+.3f}"))

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
    print("\nAgreement with the refits (actual on predicted):")
    agreement = {}
    for ax, approximation in zip(axes, APPROXIMATIONS, strict=True):
        display = AgreementDisplay(
            predicted=predicted[approximation][None, :],
            actual=actual[None, :],
            name=approximation,
        ).plot(ax=ax)
        ax.set_title(f'approximation="{approximation}"')
        ax.legend(loc="lower right", fontsize="small")  # the large effects sit top left
        a = display.agreement
        agreement[approximation] = a
        print(f"{approximation:10s} Pearson R = {a.pearson:.4f}  slope = {a.slope:.3f}")
    fig.suptitle("Dropping a segment of the diabetes patients: change of the held-out log-loss")

    # the same ranking for one column of labels, as most_influential_groups gives it
    age_band = pd.cut(X_train["age"], [0, 35, 50, 65, 100]).astype(str)
    exact = InfluenceExplainer(model, approximation="refit").fit(X_train, y_train)
    ranking = exact.most_influential_groups(X_test, y_test, age_band)
    print("\nmost_influential_groups by age band (refit; loss change = -influence):")
    print(ranking.to_string(index=False, float_format=lambda v: f"{v:+.4f}"))
    _finish(fig, out)
    return {"table": table, "agreement": agreement, "figure": fig}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--quick", action="store_true", default=None)
    parser.add_argument("--out", default=None, help="save the figure here instead of showing it")
    args = parser.parse_args()
    main(quick=args.quick, out=args.out)

"""
Explaining a ColumnTransformer pipeline fitted on a DataFrame
=============================================================

The diabetes data as a DataFrame in original units, with ``sex`` and an age
group as categorical columns, predicting whether disease progression after
one year is above the median. The pipeline one-hot encodes the categories,
standardises the numbers and fits a logistic regression; skinfluence treats
the transformers as a fixed feature map and the logistic regression as the
model to explain.

1. Which training patients pushed the model towards its prediction for one
   test patient (influence on the predicted probability), listed with their
   DataFrame index and columns.
2. How the test patient's loss would react to *moving* the most influential
   training patient (``influence_features``, Koh & Liang's ``I_pert``): the
   derivative of the test loss with respect to each of that patient's
   features, in the encoded feature space and, for numeric columns, per unit
   of the original column.
3. A leave-one-out check of the estimates (real refits of the pipeline's
   final step).

Run ``python examples/plot_pipeline_dataframe.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skinfluence import InfluenceExplainer
from skinfluence.retraining import leave_one_out


def load_frame():
    """Diabetes patients in original units, with categorical sex and age group."""
    data = load_diabetes(as_frame=True, scaled=False)
    X = data.data.copy()
    X["sex"] = X["sex"].map({1.0: "F", 2.0: "M"}).astype("category")
    X["age_group"] = pd.cut(
        X.pop("age"), [0, 35, 50, 65, 100], labels=["<35", "35-50", "50-65", "65+"]
    )
    y = (data.target > data.target.median()).astype(int).rename("progression_above_median")
    return X, y


def main(quick: bool | None = None, n_show: int = 5) -> dict:
    """Print the explanation; returns the influence of the training rows."""
    if quick is None:
        quick = bool(os.environ.get("SKINFLUENCE_QUICK"))
    X, y = load_frame()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    categorical = ["sex", "age_group"]
    numeric = [c for c in X.columns if c not in categorical]
    model = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), numeric),
                        ("cat", OneHotEncoder(drop="first"), categorical),
                    ]
                ),
            ),
            ("classify", LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000)),
        ]
    ).fit(X_train, y_train)
    print(f"Test accuracy {model.score(X_test, y_test):.3f} on {len(X_test)} patients.\n")

    # the test patient the model gets most confidently wrong
    proba = model.predict_proba(X_test)[np.arange(len(y_test)), y_test.to_numpy()]
    j = int(np.argmin(proba))
    x_j, y_j = X_test.iloc[[j]], y_test.iloc[[j]]
    print(f"Test patient {X_test.index[j]} (true label {y_j.iloc[0]}, p(true) = {proba[j]:.3f}):")
    print(x_j.to_string(), "\n")

    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    # influence on the predicted probability of the true class
    infl = explainer.influence(x_j, y_j, target="prediction")[0]
    table = X_train.assign(label=y_train, **{"change of p(true) if removed": -infl})
    order = np.argsort(infl)
    print(
        "Training patients whose removal would raise p(true) most (they push towards the error):"
    )
    print(table.iloc[order[:n_show]].to_string(), "\n")
    print("Training patients whose removal would lower p(true) most (they support the truth):")
    print(table.iloc[order[::-1][:n_show]].to_string(), "\n")

    # I_pert: how the test loss reacts to moving the most harmful training patient
    i = int(order[0])
    grad = explainer.influence_features(x_j, y_j, rows=[i])[0, 0]
    encoder = model.named_steps["encode"]
    names = encoder.get_feature_names_out()
    per_encoded = pd.Series(grad, index=names, name="d test loss / d feature")
    scale = encoder.named_transformers_["num"].scale_
    per_unit = pd.Series(grad[: len(numeric)] / scale, index=numeric, name="per original unit")
    print(
        f"Moving training patient {X_train.index[i]} by delta changes the test loss by about "
        "gradient . delta; gradient per encoded feature:"
    )
    print(per_encoded.round(5).to_string(), "\n")
    print("the same for the numeric columns, per unit of the original column:")
    print(per_unit.to_string(float_format=lambda v: f"{v:.2e}"), "\n")

    # check the estimates against real refits
    n_rows = 10 if quick else 30
    check = leave_one_out(explainer, x_j, y_j, rows=n_rows, target="prediction")
    a = check.agreement
    print(
        f"Leave-one-out check on the {n_rows} most influential patients: Pearson R = "
        f"{a.pearson:.4f}, slope = {a.slope:.3f}"
    )
    return {"test_row": j, "influence": infl, "influence_features": per_encoded, "agreement": a}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n")[0])
    parser.add_argument("--quick", action="store_true", default=None)
    args = parser.parse_args()
    main(quick=args.quick)

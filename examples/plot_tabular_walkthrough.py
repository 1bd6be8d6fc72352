"""
A tabular walk-through: explain a wrong prediction, clean the labels, use the CLI
=================================================================================

A table as it comes: numbers in original units, categorical and string
columns, missing values and string labels, some of them wrong. The diabetes
data (442 patients) predicts whether disease progression after one year is
``"high"`` or ``"low"``; ``sex`` and an age group are categorical, a few
values are missing, and 8% of the training labels are flipped (we know which,
so we can check what influence finds).

1. **Fit** ``make_pipeline(TabularPreprocessor(), LogisticRegression())``:
   :class:`~skinfluence.preprocessing.TabularPreprocessor` imputes and
   standardises the numbers and one-hot encodes the rest.
2. **Explain a wrong prediction**: the training rows that pushed the model
   towards its most confident mistake (``most_influential``), and how many
   of them carry a flipped label.
3. **Clean**: :class:`~skinfluence.cleaning.InfluenceLabelCleaner` with its
   default model works on the DataFrame as it is; how many flips it finds,
   and the test accuracy of a model refitted on the cleaned rows.
4. **The same from the command line**: ``skinfluence clean`` and
   ``skinfluence explain`` on the table saved as CSV.

Run ``python examples/plot_tabular_walkthrough.py``.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skinfluence import InfluenceExplainer
from skinfluence.cleaning import InfluenceLabelCleaner
from skinfluence.cli import main as skinfluence_cli
from skinfluence.preprocessing import TabularPreprocessor


def load_table(seed=0):
    """Diabetes patients with categorical columns, missing values, string
    labels; returns the table and the positions of the flipped labels."""
    data = load_diabetes(as_frame=True, scaled=False)
    df = data.data.copy()
    df["sex"] = df["sex"].map({1.0: "F", 2.0: "M"})
    df["age_group"] = pd.cut(
        df.pop("age"), [0, 35, 50, 65, 100], labels=["<35", "35-50", "50-65", "65+"]
    ).astype(object)
    rng = np.random.default_rng(seed)
    df.loc[rng.choice(len(df), 20, replace=False), "bp"] = np.nan
    df.loc[rng.choice(len(df), 15, replace=False), "age_group"] = None
    df["progression"] = np.where(data.target > data.target.median(), "high", "low")
    return df


def main() -> dict:
    df = load_table()
    train, test = train_test_split(df, test_size=0.25, random_state=0, stratify=df["progression"])
    rng = np.random.default_rng(1)
    flipped = rng.choice(len(train), int(0.08 * len(train)), replace=False)
    train = train.copy()
    col = train.columns.get_loc("progression")
    train.iloc[flipped, col] = np.where(train.iloc[flipped, col] == "high", "low", "high")
    is_flipped = pd.Series(False, index=train.index)
    is_flipped.iloc[flipped] = True
    X_train, y_train = train.drop(columns="progression"), train["progression"]
    X_test, y_test = test.drop(columns="progression"), test["progression"]
    print(
        f"{len(train)} training patients ({len(flipped)} labels flipped), {len(test)} test "
        f"patients; columns: {', '.join(X_train.columns)}\n"
    )

    # 1. fit
    model = make_pipeline(TabularPreprocessor(), LogisticRegression(tol=1e-10, max_iter=10_000))
    model.fit(X_train, y_train)
    print(f"Test accuracy with the noisy labels: {model.score(X_test, y_test):.3f}")

    # 2. explain the most confident mistake
    proba = model.predict_proba(X_test)
    p_true = proba[np.arange(len(y_test)), np.searchsorted(model.classes_, y_test)]
    j = int(np.argmin(p_true))
    explainer = InfluenceExplainer(model).fit(X_train, y_train)
    top = explainer.most_influential(X_test.iloc[[j]], y_test.iloc[[j]], k=10)
    harmful = np.asarray(top["harmful_indices"][0])
    rows = train.iloc[harmful].assign(
        flipped=is_flipped.iloc[harmful].to_numpy(),
        **{"loss change if removed": -np.asarray(top["harmful_values"][0])},
    )
    print(
        f"\nTest patient {X_test.index[j]}: label {y_test.iloc[j]!r}, p(label) = "
        f"{p_true[j]:.3f}. The 10 training patients pushing hardest towards the mistake:"
    )
    print(rows.to_string(float_format=lambda v: f"{v:.4g}"))
    n_flip_top = int(rows["flipped"].sum())
    print(
        f"harmful rows with a flipped label: {n_flip_top} / 10 "
        f"(8% of all training rows are flipped)"
    )

    # 3. clean with the default model, on the DataFrame as it is
    cleaner = InfluenceLabelCleaner(fraction=0.1).fit(X_train, y_train)
    found = int((cleaner.flagged_ & is_flipped.to_numpy()).sum())
    chance = cleaner.n_flagged_ * len(flipped) / len(train)
    print(
        f"\nInfluenceLabelCleaner(fraction=0.1): flipped labels among the "
        f"{cleaner.n_flagged_} flagged rows: {found} / {len(flipped)} "
        f"(flagging at random: {chance:.1f} expected)"
    )
    X_clean, y_clean = cleaner.fit_resample(X_train, y_train)
    cleaned = clone(model).fit(X_clean, y_clean)
    print(
        f"test accuracy: noisy labels {model.score(X_test, y_test):.3f}, after cleaning "
        f"{cleaned.score(X_test, y_test):.3f}"
    )

    # 4. the command line on the same table
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # short file names in the printed commands
        path = "patients.csv"
        train.to_csv(path, index=False)
        print("\n$ skinfluence clean patients.csv --target progression --fraction 0.1 --top 5")
        skinfluence_cli(
            [
                "clean",
                path,
                "--target",
                "progression",
                "--fraction",
                "0.1",
                "--top",
                "5",
                "--quiet",
            ]
        )
        line = 2 + flipped[0]  # the file line of a flipped row (header = line 1)
        print(f"\n$ skinfluence explain patients.csv --target progression --rows {line} --k 3")
        skinfluence_cli(
            ["explain", path, "--target", "progression", "--rows", str(line), "--k", "3",
             "--quiet"]
        )  # fmt: skip
        os.chdir(here)
    return {"found": found, "harmful_flipped": n_flip_top, "model": model}


if __name__ == "__main__":
    main()

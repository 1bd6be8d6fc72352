"""Command line: ``skinfluence clean`` finds likely mislabeled rows of a table;
``skinfluence demo`` runs the guided demo.

Examples::

    skinfluence clean data.csv --target label --out issues.csv
    skinfluence clean data.parquet --target y --fraction 0.05 --method loo_newton
    python -m skinfluence demo
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

MODELS = ("logistic", "ridge", "sgd")
PARQUET_SUFFIXES = (".parquet", ".pq")


class CLIError(Exception):
    """A problem with the user's input: printed as ``error: ...``, exit code 2."""


class _Progress:
    def __init__(self, quiet):
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, message):
        if not self.quiet:
            elapsed = time.perf_counter() - self.t0
            print(f"[{elapsed:7.2f} s] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------- data
def read_table(path):
    """A DataFrame from a CSV/TSV or Parquet file (by suffix; CSV otherwise)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise CLIError(f"cannot read {path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        sep = "\t" if suffix == ".tsv" else ","
        return pd.read_csv(path, sep=sep)
    except ImportError as exc:
        raise CLIError(f"cannot read {path}: {exc} (install pyarrow for Parquet)") from exc
    except Exception as exc:  # pandas raises many types on malformed input
        raise CLIError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc


def write_table(df, path):
    path = Path(path)
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            df.to_parquet(path)
        else:
            df.to_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except Exception as exc:
        raise CLIError(f"cannot write {path}: {type(exc).__name__}: {exc}") from exc


def split_columns(X):
    """``(numeric, categorical)`` column names; booleans count as categorical."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    numeric, categorical = [], []
    for col in X.columns:
        s = X[col]
        if is_numeric_dtype(s) and not is_bool_dtype(s):
            numeric.append(col)
        else:
            categorical.append(col)
    return numeric, categorical


def build_model(numeric, categorical, model="logistic", C=1.0):
    """Imputation, scaling and one-hot encoding, then the classifier.

    Numeric columns: median imputation, standard scaling. Other columns:
    most-frequent imputation, one-hot encoding (at most 50 categories per
    column, rarer ones grouped; unseen ones ignored).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if numeric:
        parts.append(
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric)
        )
    if categorical:
        parts.append(
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", max_categories=50),
                ),
                categorical,
            )
        )
    if model == "logistic":
        clf = LogisticRegression(C=C, solver="newton-cg", tol=1e-8, max_iter=10_000)
    elif model == "ridge":
        clf = RidgeClassifier(alpha=1.0 / C)
    elif model == "sgd":
        clf = SGDClassifier(loss="log_loss", alpha=1e-4 / C, tol=1e-6, max_iter=5_000)
    else:  # pragma: no cover - argparse restricts the choices
        raise CLIError(f"unknown model {model!r}")
    return make_pipeline(ColumnTransformer(parts), clf)


def _prepare(df, target, id_column, progress):
    import numpy as np
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if target not in df.columns:
        shown = ", ".join(map(str, list(df.columns)[:20]))
        more = "" if df.shape[1] <= 20 else f", ... ({df.shape[1]} columns)"
        raise CLIError(f"target column {target!r} not found; columns are: {shown}{more}")
    if id_column is not None:
        if id_column not in df.columns:
            raise CLIError(f"id column {id_column!r} not found")
        df = df.set_index(id_column)
    missing = df[target].isna()
    if missing.any():
        progress(f"dropping {int(missing.sum())} rows with a missing target")
        df = df.loc[~missing]
    y = df[target]
    X = df.drop(columns=[target])
    X = X.loc[:, X.notna().any(axis=0)]  # entirely empty columns carry nothing
    if X.shape[1] == 0:
        raise CLIError("no feature columns besides the target")
    n_classes = y.nunique()
    if n_classes < 2:
        value = y.iloc[0] if len(y) else None
        raise CLIError(
            f"target column {target!r} has a single class ({value!r}) in {len(y)} rows; "
            "label cleaning needs at least two classes"
        )
    numeric, categorical = split_columns(X)
    X = X.copy()
    for col in categorical:  # plain objects with NaN for missing: what the imputer expects
        s = X[col]
        X[col] = s.astype(object).where(s.notna(), np.nan)
    if not is_numeric_dtype(y) or is_bool_dtype(y):
        y = y.astype(str)
    return X, y, numeric, categorical


def _summary(issues, top, method, n_rows, out=None):
    out = sys.stdout if out is None else out
    flagged = int(issues["flagged"].sum())
    print(f"{flagged} of {n_rows} rows flagged as likely mislabeled (method: {method}).", file=out)
    head = issues.sort_values("rank").head(top)
    if head.empty:
        return
    rows = [
        (
            str(r["rank"]),
            str(idx),
            str(r["given_label"]),
            str(r["suggested_label"]),
            f"{r['score']:.4g}",
            "yes" if r["flagged"] else "",
        )
        for idx, r in zip(head.index, head.to_dict("records"), strict=True)
    ]
    header = ("rank", "row", "given", "suggested", "score", "flagged")
    widths = [max(len(x[c]) for x in [header, *rows]) for c in range(len(header))]
    print(f"Top {len(rows)} suspects:", file=out)
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)), file=out)
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)), file=out)


def run_clean(args):
    from .cleaning import InfluenceLabelCleaner

    progress = _Progress(args.quiet)
    if args.out is not None:
        src, dst = Path(args.data).resolve(), Path(args.out).resolve()
        if src == dst:
            raise CLIError("--out must differ from the input file (the input is never modified)")
    progress(f"reading {args.data}")
    df = read_table(args.data)
    X, y, numeric, categorical = _prepare(df, args.target, args.id_column, progress)
    progress(
        f"{X.shape[0]} rows, {X.shape[1]} feature columns ({len(numeric)} numeric, "
        f"{len(categorical)} categorical), {y.nunique()} classes"
    )
    model = build_model(numeric, categorical, args.model, args.C)
    rule = {
        "fraction": args.fraction,
        "n_flag": args.n_flag,
        "threshold": args.threshold,
    }
    cleaner = InfluenceLabelCleaner(
        model, method=args.method, verbose=0 if args.quiet else 1, **rule
    )
    progress(f"fitting {type(model[-1]).__name__} and scoring rows with {args.method!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        cleaner.fit(X, y.to_numpy())
    issues = cleaner.label_issues_.copy()
    issues.index = X.index
    issues.index.name = args.id_column or "row"
    issues = issues.sort_values("rank")
    _summary(issues, args.top, args.method, len(y))
    if args.out is not None:
        write_table(issues, args.out)
        progress(f"wrote {len(issues)} rows to {args.out}")
    return EXIT_OK


def run_demo(args):
    from . import _demo  # written separately; imported only when asked for

    _demo.main()
    return EXIT_OK


def build_parser():
    from .cleaning import DEFAULT_METHOD, METHODS

    parser = argparse.ArgumentParser(
        prog="skinfluence",
        description="Influence functions for fitted scikit-learn models.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    clean = sub.add_parser(
        "clean",
        help="rank the rows of a table by how likely their label is wrong",
        description=(
            "Fit a classifier on a CSV or Parquet table and score every row with "
            "influence functions; higher scores mean more likely mislabeled. Numeric "
            "columns are median-imputed and standardised, the others most-frequent-"
            "imputed and one-hot encoded. The input file is never modified."
        ),
    )
    clean.add_argument("data", help="CSV/TSV or Parquet (.parquet, .pq) file")
    clean.add_argument("--target", required=True, help="name of the label column")
    clean.add_argument(
        "--model",
        choices=MODELS,
        default="logistic",
        help="logistic (default), ridge (RidgeClassifier) or sgd (SGDClassifier, log-loss; "
        "it stops near, not at, the optimum, so its scores are rougher)",
    )
    clean.add_argument(
        "--C", type=float, default=1.0, help="inverse regularisation strength (default 1)"
    )
    clean.add_argument(
        "--method",
        choices=[m for m in METHODS if m != "validation_influence"],
        default=DEFAULT_METHOD,
        help=f"scoring method (default: {DEFAULT_METHOD})",
    )
    how = clean.add_mutually_exclusive_group()
    how.add_argument("--fraction", type=float, help="flag this fraction of the rows")
    how.add_argument("--n-flag", type=int, help="flag this many rows")
    how.add_argument("--threshold", type=float, help="flag rows scoring at least this")
    clean.add_argument("--out", help="write all rows' scores here (.csv, .tsv or .parquet)")
    clean.add_argument("--id-column", help="column identifying rows (default: row number)")
    clean.add_argument("--top", type=int, default=10, help="suspects to print (default 10)")
    clean.add_argument("--quiet", action="store_true", help="no progress on stderr")
    clean.set_defaults(func=run_clean)
    demo = sub.add_parser("demo", help="explain a model's mistake on bundled data")
    demo.set_defaults(func=run_demo)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "fraction", None) is not None and not 0 <= args.fraction <= 1:
        parser.error("--fraction must be between 0 and 1")
    if getattr(args, "n_flag", None) is not None and args.n_flag < 0:
        parser.error("--n-flag must be non-negative")
    try:
        return args.func(args)
    except CLIError as exc:
        print(f"skinfluence: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError) as exc:
        print(f"skinfluence: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # pragma: no cover
        print("skinfluence: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

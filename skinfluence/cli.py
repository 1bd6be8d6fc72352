"""Command line: ``skinfluence clean`` finds likely mislabeled rows of a table;
``skinfluence explain`` lists the training rows behind predictions;
``skinfluence demo`` runs the guided demo.

Examples::

    skinfluence clean data.csv --target label --out issues.csv
    skinfluence clean data.parquet --target y --fraction 0.05 --method loo_newton
    skinfluence explain data.csv --target label --rows 17 42 --k 5
    skinfluence explain train.csv --target label --test new.csv --out why.csv
    skinfluence clean data.csv --target label --group-by source
    python -m skinfluence demo

Nothing heavy is imported at module level: ``skinfluence --help`` and
argument errors answer without loading scikit-learn.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import re
import shlex
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

MODELS = ("logistic", "ridge", "sgd")
MODEL_NAMES = {
    "logistic": "LogisticRegression",
    "ridge": "RidgeClassifier",
    "sgd": "SGDClassifier",
}
PARQUET_SUFFIXES = (".parquet", ".pq")
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
#: the scoring methods of :mod:`skinfluence.cleaning` the command line offers
#: (``validation_influence`` needs trusted rows); kept here so that the parser
#: is built without importing scikit-learn, and checked against the package in
#: the tests
CLEAN_METHODS = (
    "iterative",
    "loo_newton",
    "loo_loss",
    "training_loss",
    "self_influence",
    "noise_aware",
)
DEFAULT_METHOD = "iterative"
#: the methods a Dask table supports (``skinfluence.cleaning._dask.DASK_METHODS``
#: less validation_influence), and the default there
DASK_METHODS = ("loo_newton", "loo_loss", "training_loss", "self_influence")
DASK_DEFAULT_METHOD = "loo_newton"


class CLIError(Exception):
    """A problem with the user's input: printed as ``error: ...``, exit code 2."""


def _error(message):
    print(f"skinfluence: error: {message}", file=sys.stderr)


def _warn(message):
    print(f"skinfluence: warning: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------- progress
class _Progress:
    """Progress lines on stderr, all in one format: ``[  12.34 s] message``
    (seconds since the command started).

    :meth:`stage` wraps long work: on a terminal the stage's line keeps
    updating its running time until the stage ends; elsewhere (a pipe, a log
    file, a test) only the line itself is printed.
    """

    def __init__(self, quiet=False, stream=None, interval=0.25):
        self.quiet = quiet
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.t0 = time.perf_counter()

    def _stamp(self):
        return f"[{time.perf_counter() - self.t0:7.2f} s]"

    def __call__(self, message):
        if not self.quiet:
            print(f"{self._stamp()} {message}", file=self.stream, flush=True)

    def _tty(self):
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    @contextmanager
    def stage(self, message):
        if self.quiet or not self._tty():
            self(message)
            yield
            return
        head = f"{self._stamp()} {message}"
        start = time.perf_counter()
        done = threading.Event()

        def tick():
            spinner = "|/-\\"
            k = 0
            while not done.wait(self.interval):
                elapsed = time.perf_counter() - start
                self.stream.write(f"\r{head} {spinner[k % 4]} {elapsed:.1f} s")
                self.stream.flush()
                k += 1

        self.stream.write(head)
        self.stream.flush()
        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            elapsed = time.perf_counter() - start
            # overwrite the spinner with the stage's final time, padded so no
            # spinner characters are left over
            self.stream.write(f"\r{head} done in {elapsed:.1f} s   \n")
            self.stream.flush()


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


def write_table(df, path, *, index=True):
    path = Path(path)
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            df.to_parquet(path, index=index)
        else:
            df.to_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", index=index)
    except Exception as exc:
        raise CLIError(f"cannot write {path}: {type(exc).__name__}: {exc}") from exc


def row_label_name(path):
    """What identifies a row without ``--id-column``: its line in a text file
    (the header is line 1), its 1-based position in a Parquet file."""
    return "row" if Path(path).suffix.lower() in PARQUET_SUFFIXES else "line"


def label_rows(df, path, id_column):
    """``df`` indexed by what the user sees: the ``--id-column`` values, or
    the row's line in the file (header = line 1; assumes one line per
    record), or its 1-based position in a Parquet file."""
    import pandas as pd

    if id_column is not None:
        if id_column not in df.columns:
            raise CLIError(f"id column {id_column!r} not found in {path}; {_columns(df)}")
        ids = df[id_column]
        # rows are looked up and reported by id: it must name exactly one row
        if ids.isna().any():
            raise CLIError(
                f"id column {id_column!r} of {path} is empty on {int(ids.isna().sum())} rows; "
                "choose a column that names every row"
            )
        repeated = ids[ids.duplicated()]
        if len(repeated):
            raise CLIError(
                f"id column {id_column!r} of {path} repeats {repeated.nunique()} value(s), "
                f"e.g. {repeated.iloc[0]!r}; choose a column that names each row once"
            )
        return df.set_index(id_column)
    name = row_label_name(path)
    start = 1 if name == "row" else 2
    return df.set_axis(pd.RangeIndex(start, start + len(df), name=name), axis=0)


def _columns(df):
    shown = ", ".join(map(str, list(df.columns)[:20]))
    more = "" if df.shape[1] <= 20 else f", ... ({df.shape[1]} columns)"
    return f"columns are: {shown}{more}"


def build_model(model="logistic", C=1.0):
    """:class:`~skinfluence.preprocessing.TabularPreprocessor`, then the classifier.

    Numeric columns: median imputation, standard scaling. Other columns:
    most-frequent imputation, one-hot encoding (at most 50 categories per
    column, rarer ones grouped; unseen ones ignored).
    """
    from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
    from sklearn.pipeline import make_pipeline

    from .preprocessing import TabularPreprocessor

    if model == "logistic":
        clf = LogisticRegression(C=C, solver="newton-cg", tol=1e-8, max_iter=10_000)
    elif model == "ridge":
        clf = RidgeClassifier(alpha=1.0 / C)
    elif model == "sgd":
        clf = SGDClassifier(loss="log_loss", alpha=1e-4 / C, tol=1e-6, max_iter=5_000)
    else:  # pragma: no cover - argparse restricts the choices
        raise CLIError(f"unknown model {model!r}")
    return make_pipeline(TabularPreprocessor(), clf)


def _prepare(df, args, progress):
    """Features and labels of the training table (``df`` already indexed by
    :func:`label_rows`)."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    from .preprocessing import find_id_like_columns, split_columns

    target = args.target
    if target not in df.columns:
        raise CLIError(f"target column {target!r} not found in {args.data}; {_columns(df)}")
    drop = list(args.drop or [])
    unknown = [c for c in drop if c not in df.columns]
    if unknown:
        raise CLIError(f"--drop column(s) {unknown} not found in {args.data}; {_columns(df)}")
    if target in drop:
        raise CLIError(f"--drop {target!r} would drop the target column")
    group_by = getattr(args, "group_by", None)
    if group_by is not None:
        if group_by not in df.columns:
            raise CLIError(
                f"--group-by column {group_by!r} not found in {args.data}; {_columns(df)}"
            )
        # the grouping column names where rows come from: it is not a feature
        drop = [*drop, group_by] if group_by not in drop else drop
    missing = df[target].isna()
    if missing.any():
        progress(f"dropping {int(missing.sum())} rows with a missing target")
        df = df.loc[~missing]
    y = df[target]
    X = df.drop(columns=[target, *drop])
    X = X.loc[:, X.notna().any(axis=0)]  # entirely empty columns carry nothing
    if X.shape[1] == 0:
        raise CLIError("no feature columns besides the target")
    n_classes = y.nunique()
    if n_classes < 2:
        value = y.iloc[0] if len(y) else None
        raise CLIError(
            f"target column {target!r} has a single class ({value!r}) in {len(y)} rows; "
            "a classifier needs at least two classes"
        )
    for col, why in find_id_like_columns(X).items():
        quoted = shlex.quote(str(col))
        _warn(
            f"column {col!r} looks like a row identifier ({why}) and is used as a feature, "
            f"which lets the model memorise rows; pass --id-column {quoted} to use it as the "
            f"row identifier, or --drop {quoted} to leave it out"
        )
    numeric, categorical = split_columns(X)
    if not is_numeric_dtype(y) or is_bool_dtype(y):
        y = y.astype(str)
    progress(
        f"{X.shape[0]} rows, {X.shape[1]} feature columns ({len(numeric)} numeric, "
        f"{len(categorical)} categorical), {n_classes} classes"
    )
    return X, y


@contextmanager
def _fit_warnings(model):
    """Turn the warnings of fitting and explaining into advice that names the
    command line's own options (the raw ones say ``tol`` and ``max_iter``)."""
    from sklearn.exceptions import ConvergenceWarning

    from ._explainer import NotAtOptimumWarning
    from .preprocessing import IdLikeColumnWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", IdLikeColumnWarning)  # said by _prepare
        yield
    said = set()
    for w in caught:
        if issubclass(w.category, (NotAtOptimumWarning, ConvergenceWarning)):
            found = re.search(r"gradient norm is (\S+) of", str(w.message))
            how_far = f" (its gradient is {found.group(1)} of the per-row norm)" if found else ""
            advice = (
                "for exact scores use --model logistic"
                if model != "logistic"
                else "a smaller --C (stronger regularisation) helps it converge"
            )
            text = (
                f"the {MODEL_NAMES[model]} stopped short of the optimum of its training "
                f"objective{how_far}, so the influence scores are approximate; {advice}"
            )
        else:
            text = f"{w.category.__name__}: {w.message}"
        if text not in said:
            said.add(text)
            _warn(text)


# ----------------------------------------------------------------- groups
#: how many groups the printed ranking shows at most (the most harmful and the
#: most helpful half each)
MAX_GROUPS_SHOWN = 20


def _group_labels(df, X, args):
    """The ``--group-by`` value of each row of ``X`` (a numpy array), checked
    before any fitting: no missing values, at least two groups, and values
    shared by several rows (a category, not an identifier)."""
    column = df.loc[X.index, args.group_by]
    name = X.index.name
    missing = column.isna()
    if missing.any():
        first = column.index[missing.to_numpy()][0]
        raise CLIError(
            f"--group-by column {args.group_by!r} is empty on {int(missing.sum())} rows "
            f"(e.g. {name} {first}); fill them in (e.g. with 'unknown') or drop those rows"
        )
    n_groups = column.nunique()
    if n_groups < 2:
        raise CLIError(
            f"--group-by column {args.group_by!r} has a single value ({column.iloc[0]!r}); "
            "there is nothing to compare: choose a column with at least two values"
        )
    if n_groups > len(column) / 2:
        raise CLIError(
            f"--group-by column {args.group_by!r} has {n_groups} distinct values in "
            f"{len(column)} rows; it needs a categorical column whose values are shared "
            "by many rows (a source, a date range, a segment)"
        )
    return column.to_numpy()


@contextmanager
def _newton_warnings(labels, rough):
    """Say the library's warning about groups a single Newton step cannot
    reach as one line that names the groups, and add them to ``rough``; other
    warnings pass on (to :func:`_fit_warnings`)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        text = str(w.message)
        found = re.search(
            r"one Newton step leaves .*?numbers \[([\d, ]*)\].*?up to (\S+?)\)", text
        )
        if found is None:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        named = [labels[int(k)] for k in found.group(1).split(",") if k.strip()]
        rough.update(named)
        shown = ", ".join(repr(g) for g in named)
        _warn(
            f"for group(s) {shown} one Newton step stays far from the refitted model "
            f"(relative gradient up to {found.group(2)}): their predicted change, marked "
            "'rough' below, can be off by a large factor; refit without them to be sure"
        )


def _print_groups(frame, out, extra=()):
    """The group ranking as a table, most harmful (removal lowers the loss
    most) first. ``frame`` has ``group``, ``n_rows``, ``loss_change``,
    ``per_row`` and ``rough``; ``extra`` names further columns to show. Past
    :data:`MAX_GROUPS_SHOWN` groups only both ends are printed."""
    header = ("group", "rows", *extra, "loss change", "per row", "note")
    rows = [
        (
            str(r["group"]),
            str(r["n_rows"]),
            *(str(r[c]) for c in extra),
            f"{r['loss_change']:+.4g}",
            f"{r['per_row']:+.3g}",
            "rough" if r["rough"] else "",
        )
        for r in frame.to_dict("records")
    ]
    half = MAX_GROUPS_SHOWN // 2
    skipped = len(rows) - MAX_GROUPS_SHOWN
    if skipped > 0:
        rows = [*rows[:half], None, *rows[-half:]]
    shown = [r for r in rows if r is not None]
    widths = [max(len(x[c]) for x in [header, *shown]) for c in range(len(header))]
    for r in [header, *rows]:
        if r is None:
            print(f"  ... {skipped} more groups ...", file=out)
        else:
            print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)), file=out)


# ------------------------------------------------------------------ clean
def _summary(head, flagged, args, n_rows, rule, saved=None, rows_are=None):
    """The flagged count, the ``head`` of the ranking (``rank`` column) and
    what to do next; ``saved`` says what ``--out`` holds, ``rows_are`` what
    the row labels are (by default from the index name)."""
    out = sys.stdout
    print(
        f"{flagged} of {n_rows} rows flagged as likely mislabeled "
        f"(method: {args.method}, rule: {rule}).",
        file=out,
    )
    name = head.index.name
    if not head.empty:
        rows = [
            (
                str(r["rank"]),
                str(idx),
                str(r["given_label"]),
                str(r["suggested_label"]),
                f"{r['score']:.4f}",
                "yes" if r["flagged"] else "",
            )
            for idx, r in zip(head.index, head.to_dict("records"), strict=True)
        ]
        where = rows_are or {
            "line": f"line = line in {args.data}, the header being line 1",
            "row": f"row = row of {args.data}, counting from 1",
        }.get(name, f"{name} = value of --id-column")
        print(f"Top {len(rows)} suspects ({where}):", file=out)
        _print_table(("rank", name, "given", "suggested", "score", "flagged"), rows, out)
    print("\nNext:", file=out)
    if flagged:
        print(
            f"  * check the {flagged} flagged rows by hand, most suspicious (rank 1) first;",
            file=out,
        )
    if args.out is not None:
        saved = saved or (
            f"all {n_rows} rows with score, rank, given_label, suggested_label and flagged, "
            "sorted by rank"
        )
        print(f"  * {args.out} has {saved};", file=out)
    else:
        print(f"  * --out FILE.csv saves the scores of all {n_rows} rows;", file=out)
    if n_rows > args.top:
        print("  * --top N prints more suspects here;", file=out)
    print(
        "  * --fraction, --n-flag or --threshold sets how many rows are flagged "
        "(default: as many as a model refitted without each row would misclassify).",
        file=out,
    )


def _print_table(header, rows, out):
    widths = [max(len(x[c]) for x in [header, *rows]) for c in range(len(header))]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)), file=out)
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)), file=out)


def run_clean(args):
    from .cleaning import InfluenceLabelCleaner

    if args.dask:
        from ._cli_dask import run_clean_dask

        return run_clean_dask(args)
    args.method = args.method or DEFAULT_METHOD
    progress = _Progress(args.quiet)
    progress(f"reading {args.data}")
    df = label_rows(read_table(args.data), args.data, args.id_column)
    X, y = _prepare(df, args, progress)
    groups = None if args.group_by is None else _group_labels(df, X, args)
    model = build_model(model=args.model, C=args.C)
    rule = {"fraction": args.fraction, "n_flag": args.n_flag, "threshold": args.threshold}
    given = [f"--{k.replace('_', '-')} {v:g}" for k, v in rule.items() if v is not None]
    cleaner = InfluenceLabelCleaner(model, method=args.method, **rule)
    with progress.stage(
        f"fitting {MODEL_NAMES[args.model]} and scoring {len(y)} rows with {args.method!r}"
    ):
        with _fit_warnings(args.model):
            cleaner.fit(X, y.to_numpy())
    issues = cleaner.label_issues_.sort_values("rank")
    issues.index.name = df.index.name
    n_flagged = int(issues["flagged"].sum())
    _summary(issues.head(args.top), n_flagged, args, len(y), given[0] if given else "automatic")
    if groups is not None:
        _clean_groups(cleaner, X, y.to_numpy(), groups, args, progress)
    if args.out is not None:
        write_table(issues, args.out)
        progress(f"wrote {len(issues)} rows to {args.out}")
    return EXIT_OK


def _clean_groups(cleaner, X, y, groups, args, progress):
    """Rank the ``--group-by`` groups by the predicted change of the summed
    loss of the *other* groups' unflagged rows if the group were removed:
    the rows the cleaner trusts judge each group, and a group's own rows
    (whose loss rises when they leave the training set) do not judge it."""
    import numpy as np
    import pandas as pd

    from ._explainer import InfluenceExplainer

    labels = np.unique(groups)  # the explainer's order of the groups
    kept = np.flatnonzero(~cleaner.flagged_)
    rough = set()
    with progress.stage(
        f"predicting the effect of removing each of the {len(labels)} {args.group_by!r} "
        "groups (one Newton step)"
    ):
        with _fit_warnings(args.model), _newton_warnings(list(labels), rough):
            explainer = InfluenceExplainer(cleaner.estimator_, approximation="newton")
            explainer.fit(X, y)
            effects = np.asarray(explainer.group_influence(X.iloc[kept], y[kept], groups))
    judges = groups[kept][:, None] != labels[None, :]  # (kept rows, groups)
    change = -(effects * judges).sum(axis=0)
    n_judges = judges.sum(axis=0)
    frame = pd.DataFrame(
        {
            "group": labels,
            "n_rows": [int(np.sum(groups == g)) for g in labels],
            "flagged": [int(np.sum(cleaner.flagged_[groups == g])) for g in labels],
            "loss_change": change,
            "per_row": change / np.maximum(n_judges, 1),
            "rough": [g in rough for g in labels],
        }
    ).sort_values("loss_change", kind="stable")
    out = sys.stdout
    print(
        f"\nGroups of {args.group_by!r}, most harmful first: the predicted change of the "
        "summed loss of the unflagged rows of the other groups if the model were refitted "
        "without the group (one Newton step; per row: divided by those rows). Negative: "
        "removing the group would fit the trusted rows better, its labels or features "
        "disagree with theirs.",
        file=out,
    )
    _print_groups(frame, out, extra=("flagged",))


# ---------------------------------------------------------------- explain
def _test_rows(args, train, X, y, progress):
    """``(X_test, y_test or None, label name)`` for ``explain``."""
    import pandas as pd

    if args.rows is not None:
        index = X.index
        wanted = []
        for value in args.rows:
            key = value
            if pd.api.types.is_integer_dtype(index.dtype):
                try:
                    key = int(value)
                except ValueError:
                    raise CLIError(f"--rows {value!r} is not a {index.name} number") from None
            if key not in index:
                what = index.name if index.name in ("line", "row") else "id"
                extra = " (rows with a missing target are left out)" if key in train.index else ""
                raise CLIError(f"--rows: no training row with {what} {value}{extra}")
            wanted.append(key)
        return X.loc[wanted], y.loc[wanted], index.name
    progress(f"reading {args.test}")
    test = label_rows(read_table(args.test), args.test, args.id_column)
    missing = [c for c in X.columns if c not in test.columns]
    if missing:
        raise CLIError(f"{args.test} lacks the feature column(s) {missing} of {args.data}")
    y_test = None
    if args.target in test.columns:
        labels = test[args.target]
        if labels.notna().all():
            y_test = labels.astype(str) if y.dtype == object else labels
    return test[list(X.columns)], y_test, test.index.name


def run_explain(args):
    import numpy as np
    import pandas as pd

    from ._explainer import InfluenceExplainer

    progress = _Progress(args.quiet)
    progress(f"reading {args.data}")
    train = label_rows(read_table(args.data), args.data, args.id_column)
    X, y = _prepare(train, args, progress)
    groups = None if args.group_by is None else _group_labels(train, X, args)
    X_test, y_test, test_name = _test_rows(args, train, X, y, progress)
    model = build_model(model=args.model, C=args.C)
    # positions as the index: the explainer's answers are then positions and
    # labels alike, and are mapped back to lines / ids below
    X_pos = X.reset_index(drop=True)
    with progress.stage(f"fitting {MODEL_NAMES[args.model]} on {len(y)} rows"):
        with _fit_warnings(args.model):
            model.fit(X_pos, y.to_numpy())
            explainer = InfluenceExplainer(model).fit(X_pos, y.to_numpy())
    predicted = model.predict(X_test)
    explained = "given label"
    shown_labels = None if y_test is None else np.asarray(y_test)
    if y_test is None:
        y_test = pd.Series(predicted, index=X_test.index)
        explained = "predicted label"
    with progress.stage(f"finding the {args.k} most influential training rows per test row"):
        with _fit_warnings(args.model):
            top = explainer.most_influential(
                X_test.reset_index(drop=True), np.asarray(y_test), k=args.k
            )
    train_name = X.index.name
    records = []
    for j, test_label in enumerate(X_test.index):
        for kind in ("harmful", "helpful"):
            idx = np.asarray(top[f"{kind}_indices"][j])
            vals = np.asarray(top[f"{kind}_values"][j])
            for rank, (i, v) in enumerate(zip(idx, vals, strict=True), start=1):
                records.append(
                    {
                        f"test_{test_name}": test_label,
                        "test_label": None if shown_labels is None else shown_labels[j],
                        "test_predicted": predicted[j],
                        "kind": kind,
                        "rank": rank,
                        f"train_{train_name}": X.index[int(i)],
                        "train_label": y.iloc[int(i)],
                        "influence": float(v),
                        "loss_change_if_removed": -float(v),
                    }
                )
    table = pd.DataFrame.from_records(records)
    _explain_summary(table, args, test_name, train_name, explained)
    if groups is not None:
        _explain_groups(model, X_pos, y.to_numpy(), X_test, np.asarray(y_test), groups, args,
                        progress, explained)  # fmt: skip
    if args.out is not None:
        write_table(table, args.out, index=False)
        progress(f"wrote {len(table)} rows to {args.out}")
    return EXIT_OK


def _explain_groups(model, X, y, X_test, y_test, groups, args, progress, explained):
    """Rank the ``--group-by`` groups by the predicted change of the test
    rows' summed loss if the model were refitted without the group."""
    import numpy as np

    from ._explainer import InfluenceExplainer

    labels = list(np.unique(groups))  # the explainer's order of the groups
    rough = set()
    with progress.stage(
        f"predicting the effect of removing each of the {len(labels)} {args.group_by!r} "
        "groups (one Newton step)"
    ):
        with _fit_warnings(args.model), _newton_warnings(labels, rough):
            explainer = InfluenceExplainer(model, approximation="newton").fit(X, y)
            frame = explainer.most_influential_groups(
                X_test.reset_index(drop=True), y_test, groups
            )
    frame["loss_change"] = -frame["influence"]
    frame["per_row"] = -frame["mean_influence"]
    frame["rough"] = [g in rough for g in frame["group"]]
    out = sys.stdout
    print(
        f"\nGroups of {args.group_by!r}, most harmful first: the predicted change of the "
        f"summed loss of the {len(y_test)} test row(s) ({explained}s) if the model were "
        "refitted without the group (one Newton step; per row: divided by the test rows). "
        "Negative: removing the group would lower that loss.",
        file=out,
    )
    _print_groups(frame, out)


def _explain_summary(table, args, test_name, train_name, explained):
    out = sys.stdout
    source = args.test or args.data
    print(
        f"The {args.k} most influential training rows of {args.data} for each test row "
        f"of {source}, on the test row's loss for its {explained}.\n"
        "harmful: removing the row would lower that loss (it pushes towards a wrong "
        "answer);\nhelpful: removing it would raise the loss. loss change = -influence.",
        file=out,
    )
    header = ("", "rank", f"train {train_name}", "label", "influence", "loss change")
    for (test_label, label, pred), group in table.groupby(
        [f"test_{test_name}", "test_label", "test_predicted"], sort=False, dropna=False
    ):
        given = "" if label is None or label != label else f"label {label}, "
        print(f"\nTest {test_name} {test_label}: {given}predicted {pred}", file=out)
        rows = [
            (
                r["kind"] if r["rank"] == 1 else "",
                str(r["rank"]),
                str(r[f"train_{train_name}"]),
                str(r["train_label"]),
                f"{r['influence']:+.4e}",
                f"{r['loss_change_if_removed']:+.4e}",
            )
            for r in group.to_dict("records")
        ]
        _print_table(header, rows, out)
    if args.out is None:
        print("\nNext: --out FILE.csv saves this table; --k N lists more rows.", file=out)


def run_demo(args):
    from . import _demo  # written separately; imported only when asked for

    _demo.main()
    return EXIT_OK


# ----------------------------------------------------------------- parser
def _add_table_arguments(cmd):
    cmd.add_argument("data", help="CSV/TSV or Parquet (.parquet, .pq) file")
    cmd.add_argument("--target", required=True, help="name of the label column")
    cmd.add_argument(
        "--model",
        choices=MODELS,
        default="logistic",
        help="logistic (default), ridge (RidgeClassifier) or sgd (SGDClassifier, log-loss; "
        "it stops near, not at, the optimum, so its scores are rougher)",
    )
    cmd.add_argument(
        "--C", type=float, default=1.0, help="inverse regularisation strength (default 1)"
    )
    cmd.add_argument(
        "--id-column",
        help="column identifying rows (default: the line in the file, header = line 1; "
        "for Parquet the row number from 1)",
    )
    cmd.add_argument(
        "--drop",
        action="append",
        metavar="COLUMN",
        help="leave this column out of the features (repeat for several)",
    )
    cmd.add_argument("--quiet", action="store_true", help="no progress on stderr")


def build_parser():
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="skinfluence",
        description="Influence functions for fitted scikit-learn models.",
    )
    parser.add_argument("--version", action="version", version=f"skinfluence {__version__}")
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
    _add_table_arguments(clean)
    clean.add_argument(
        "--method",
        choices=CLEAN_METHODS,
        help=f"scoring method (default: {DEFAULT_METHOD}; with --dask {DASK_DEFAULT_METHOD}, "
        f"and only {', '.join(DASK_METHODS)})",
    )
    how = clean.add_mutually_exclusive_group()
    how.add_argument("--fraction", type=float, help="flag this fraction of the rows")
    how.add_argument("--n-flag", type=int, help="flag this many rows")
    how.add_argument("--threshold", type=float, help="flag rows scoring at least this")
    clean.add_argument("--out", help="write all rows' scores here (.csv, .tsv or .parquet)")
    clean.add_argument("--top", type=int, default=10, help="suspects to print (default 10)")
    clean.add_argument(
        "--group-by",
        metavar="COLUMN",
        help="a categorical column (data source, date range, segment; not used as a "
        "feature): also rank its groups by the predicted change of the summed loss of "
        "the other groups' unflagged rows if the group were removed (one Newton step "
        "per group)",
    )
    clean.add_argument(
        "--dask",
        action="store_true",
        help="DATA is a directory of Parquet files or a glob, read with dask.dataframe "
        "(rows numbered from 1 across the files in name order); the model is fitted by "
        "scikit-learn on the rows gathered in this process, the scores are computed chunk "
        "by chunk (a file or row group each) by Dask, and --out without a file suffix is a "
        "Parquet directory written chunk by chunk. Needs pip install skinfluence[dask]",
    )
    clean.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --dask: the address of a running Dask scheduler (tcp://host:8786), or "
        "'local' to start a distributed.LocalCluster on this machine; default: Dask's "
        "threaded scheduler in this process (no cluster)",
    )
    clean.set_defaults(func=run_clean)

    explain = sub.add_parser(
        "explain",
        help="list the training rows that most influenced predictions",
        description=(
            "Fit a classifier on a training table and, for each test row, list the "
            "training rows whose removal would change the test row's loss most: harmful "
            "ones (removing them lowers it) and helpful ones (removing them raises it). "
            "Test rows come from a second file (--test; its labels are used where the "
            "target column is present, the predicted labels otherwise) or are training "
            "rows chosen by line number or id (--rows)."
        ),
    )
    _add_table_arguments(explain)
    which = explain.add_mutually_exclusive_group(required=True)
    which.add_argument("--test", help="CSV/TSV or Parquet file of rows to explain")
    which.add_argument(
        "--rows",
        nargs="+",
        metavar="ROW",
        help="training rows to explain: line numbers of the file (header = line 1), "
        "Parquet row numbers from 1, or values of --id-column",
    )
    explain.add_argument(
        "--k", type=int, default=5, help="harmful and helpful rows per test row (default 5)"
    )
    explain.add_argument("--out", help="write the table here (.csv, .tsv or .parquet)")
    explain.add_argument(
        "--group-by",
        metavar="COLUMN",
        help="a categorical column of the training table (data source, date range, "
        "segment; not used as a feature): also rank its groups by the predicted change of "
        "the test rows' summed loss if the group were removed (one Newton step per group)",
    )
    explain.set_defaults(func=run_explain)

    demo = sub.add_parser("demo", help="explain a model's mistake on bundled data")
    demo.set_defaults(func=run_demo)
    return parser


def _check_output(args, out):
    """Refuse an output path that cannot be written, before any work."""
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (*PARQUET_SUFFIXES, *TEXT_SUFFIXES):
        raise CLIError(f"--out {out}: unknown file type {suffix!r}; use .csv, .tsv or .parquet")
    if suffix in PARQUET_SUFFIXES and importlib.util.find_spec("pyarrow") is None:
        raise CLIError(f"--out {out}: writing Parquet needs pyarrow (pip install pyarrow)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CLIError(f"--out {out}: directory {parent} does not exist")
    if path.is_dir():
        raise CLIError(f"--out {out} is a directory; give a file name")
    for name in ("data", "test"):
        src = getattr(args, name, None)
        # by identity, not by name: a hard link or symbolic link to the input
        # is the input, and writing to it would destroy it
        if src is not None and path.exists() and Path(src).exists():
            if os.path.samefile(src, path):
                raise CLIError(
                    f"--out {out} is the input file {src} (the same file on disk); "
                    "the input is never modified, choose another name"
                )


def _validate(args):
    """Every check that needs no data, before any work."""
    if args.command not in ("clean", "explain"):
        return
    on_dask = getattr(args, "dask", False)
    if on_dask:
        from ._cli_dask import validate_dask

        validate_dask(args)  # the input, --out, --method and --scheduler
    elif getattr(args, "scheduler", None) is not None:
        raise CLIError("--scheduler is an option of --dask; add --dask")
    for name in () if on_dask else ("data", "test"):
        src = getattr(args, name, None)
        if src is not None and not Path(src).is_file():
            kind = "no such file" if not Path(src).exists() else "not a file"
            raise CLIError(f"cannot read {src}: {kind}")
    if not (math.isfinite(args.C) and args.C > 0):
        raise CLIError(f"--C must be a positive number, got {args.C}")
    if args.id_column is not None and args.id_column == args.target:
        raise CLIError(
            f"--id-column and --target are both {args.target!r}; the id column names rows, "
            "the target holds their labels"
        )
    if args.drop and args.id_column in args.drop:
        raise CLIError(f"--drop {args.id_column!r} is the --id-column")
    group_by = getattr(args, "group_by", None)
    if group_by is not None and group_by in (args.target, args.id_column):
        what = "--target" if group_by == args.target else "--id-column"
        raise CLIError(
            f"--group-by {group_by!r} is the {what} column; group by a categorical column "
            "such as a data source"
        )
    if args.out is not None and not on_dask:
        _check_output(args, args.out)
    if args.command == "clean":
        if args.fraction is not None and not 0 <= args.fraction <= 1:  # False for nan
            raise CLIError(f"--fraction must be between 0 and 1, got {args.fraction}")
        if args.n_flag is not None and args.n_flag < 0:
            raise CLIError(f"--n-flag must be non-negative, got {args.n_flag}")
        if args.threshold is not None and not math.isfinite(args.threshold):
            raise CLIError(f"--threshold must be a finite number, got {args.threshold}")
        if args.top < 0:
            raise CLIError(f"--top must be non-negative, got {args.top}")
    else:
        if args.k < 1:
            raise CLIError(f"--k must be at least 1, got {args.k}")


def main(argv=None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _validate(args)  # every check that needs no data, before any work
        return args.func(args)
    except CLIError as exc:
        _error(exc)
        return EXIT_USAGE
    except (ValueError, TypeError) as exc:
        _error(exc)
        return EXIT_ERROR
    except KeyboardInterrupt:  # pragma: no cover
        print("skinfluence: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # pragma: no cover - e.g. piped into `head`
        # Python's advice: point stdout at devnull so the exit flush stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

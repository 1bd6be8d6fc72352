"""``skinfluence clean --dask``: a directory (or glob) of Parquet files read
with ``dask.dataframe`` and cleaned by :class:`InfluenceLabelCleaner` on Dask.

The model is fitted as the in-memory command fits it (the same preprocessing
and classifier, by scikit-learn, on the rows gathered in this process: a
scikit-learn fit needs them in memory); the scores, the flagging and a
Parquet-directory ``--out`` run chunk by chunk on Dask. Imported only with
``--dask``.
"""

from __future__ import annotations

import glob
import importlib.util
import warnings
from contextlib import contextmanager
from pathlib import Path

from .cli import (
    DASK_DEFAULT_METHOD,
    DASK_METHODS,
    EXIT_OK,
    MODEL_NAMES,
    PARQUET_SUFFIXES,
    TEXT_SUFFIXES,
    CLIError,
    _check_output,
    _fit_warnings,
    _prepare,
    _Progress,
    _summary,
    build_model,
    label_rows,
    write_table,
)

INSTALL = "pip install skinfluence[dask]"


def _require(module, why):
    if importlib.util.find_spec(module) is None:
        raise CLIError(f"{why} needs the {module} package, which is not installed: {INSTALL}")


def parquet_files(data) -> list[str]:
    """The Parquet files of ``data`` (a directory, a glob or one file), in
    name order: the order rows are numbered in."""
    path = Path(data)
    if path.is_dir():
        files = [p for p in path.iterdir() if p.suffix.lower() in PARQUET_SUFFIXES]
        if not files:
            raise CLIError(f"{data} has no Parquet files (*.parquet, *.pq)")
    elif path.is_file():
        files = [path]
    else:
        files = [Path(p) for p in glob.glob(str(data))]
        if not files:
            raise CLIError(f"cannot read {data}: no such directory, file or matching files")
    other = [str(p) for p in files if p.suffix.lower() not in PARQUET_SUFFIXES]
    if other:
        raise CLIError(
            f"--dask reads Parquet files (*.parquet, *.pq); {other[0]} is not one "
            "(convert CSV files to Parquet, or run without --dask)"
        )
    return sorted(str(p) for p in files)


def validate_dask(args) -> None:
    """The checks of ``--dask`` that need no data."""
    _require("dask", "--dask")
    _require("pyarrow", "--dask (reading Parquet)")
    if args.command != "clean":  # pragma: no cover - only clean has --dask
        raise CLIError("--dask is an option of clean")
    if args.scheduler is not None:
        _require("distributed", "--scheduler")
    if args.group_by is not None:
        raise CLIError("--group-by is not available with --dask; run without --dask")
    if args.method is None:
        args.method = DASK_DEFAULT_METHOD
    elif args.method not in DASK_METHODS:
        raise CLIError(
            f"--method {args.method} is not available with --dask (it needs all rows at "
            f"once); use one of {', '.join(DASK_METHODS)}"
        )
    args.files = parquet_files(args.data)
    if args.out is not None:
        _check_dask_output(args)


def _check_dask_output(args):
    out = Path(args.out)
    if out.suffix.lower() in (*PARQUET_SUFFIXES, *TEXT_SUFFIXES):
        _check_output(args, args.out)  # one file, as without --dask
        return
    if out.suffix:
        raise CLIError(
            f"--out {args.out}: unknown file type {out.suffix!r}; use .csv, .tsv or .parquet "
            "for one file, or a name without a suffix for a directory of Parquet files"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CLIError(f"--out {args.out} exists and is not an empty directory; choose another")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise CLIError(f"--out {args.out}: directory {parent} does not exist")
    sources = {Path(f).resolve().parent for f in args.files}
    if any(src == out.resolve() or src in out.resolve().parents for src in sources):
        raise CLIError(
            f"--out {args.out} is inside the input directory; the input is never modified, "
            "choose a directory elsewhere"
        )


@contextmanager
def _scheduler(address, progress):
    """Dask's threaded scheduler (no address), a new ``LocalCluster``
    (``"local"``) or the scheduler at ``address``."""
    import dask

    if address is None:
        with dask.config.set(scheduler="threads"):
            yield
        return
    from distributed import Client, LocalCluster

    cluster = None
    try:
        if address == "local":
            cluster = LocalCluster(dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(address, timeout="10s")
    except OSError as exc:
        if cluster is not None:
            cluster.close()
        raise CLIError(f"--scheduler {address}: cannot connect ({exc})") from exc
    progress(f"Dask scheduler at {client.scheduler.address}")
    try:
        yield
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _numbered(ddf, id_column):
    """``ddf`` indexed by ``id_column`` or by the row number from 1 across
    its partitions (the files in name order), partition by partition."""
    import dask
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd

    if id_column is not None:
        return ddf.map_partitions(lambda part: part.set_index(id_column))
    lengths = [int(v) for v in ddf.map_partitions(len).compute()]
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int) + 1

    def number(part, start):
        return part.set_axis(pd.RangeIndex(start, start + len(part), name="row"), axis=0)

    parts = [
        dask.delayed(number, pure=True)(p, int(a))
        for p, a in zip(ddf.to_delayed(), starts[:-1], strict=True)
    ]
    divisions = (*starts[:-1], starts[-1] - 1) if all(lengths) else None
    return dd.from_delayed(parts, meta=number(ddf._meta, 1), divisions=divisions)


def run_clean_dask(args):
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd

    from .cleaning import InfluenceLabelCleaner
    from .cleaning._dask import top_suspects

    progress = _Progress(args.quiet)
    with _scheduler(args.scheduler, progress):
        progress(f"reading {len(args.files)} Parquet file(s) of {args.data} with Dask")
        try:
            raw = dd.read_parquet(args.files)
        except Exception as exc:  # pyarrow and dask raise many types on bad input
            raise CLIError(f"cannot read {args.data}: {type(exc).__name__}: {exc}") from exc
        # the scikit-learn fit needs the rows in memory: gathered once, and
        # checked and prepared exactly as without --dask
        with progress.stage("gathering the rows to fit the model"):
            table = raw.compute()
        if args.id_column is None:
            table = table.set_axis(pd.RangeIndex(1, len(table) + 1, name="row"), axis=0)
        else:
            table = label_rows(table, args.data, args.id_column)  # checks the ids
        X, y = _prepare(table, args, progress)
        ddf = _numbered(raw, args.id_column)  # the same index, partition by partition
        Xd = ddf[~ddf[args.target].isna()][list(X.columns)]
        model = build_model(model=args.model, C=args.C)
        rule = {"fraction": args.fraction, "n_flag": args.n_flag, "threshold": args.threshold}
        given = [f"--{k.replace('_', '-')} {v:g}" for k, v in rule.items() if v is not None]
        with progress.stage(
            f"fitting {MODEL_NAMES[args.model]} on {len(y)} rows and scoring them with "
            f"{args.method!r} on Dask ({Xd.npartitions} chunks)"
        ):
            with _fit_warnings(args.model), warnings.catch_warnings():
                # Dask's own notices (deprecations of the pandas it reads
                # Parquet with) say nothing about the user's data or model
                warnings.filterwarnings("ignore", module=r"dask\.")
                model.fit(X, y.to_numpy())
                cleaner = InfluenceLabelCleaner(model, method=args.method, **rule)
                cleaner.fit(Xd, y.to_numpy())
        head = top_suspects(cleaner, args.top)
        head.index.name = table.index.name
        name = table.index.name
        rows_are = (
            f"row = row of the {len(args.files)} Parquet file(s) of {args.data} in name "
            "order, counting from 1"
            if name == "row"
            else None
        )
        one_file = args.out is not None and Path(args.out).suffix
        saved = None
        if args.out is not None and not one_file:
            saved = (
                f"all {len(y)} rows with score, given_label, suggested_label and flagged, "
                "in the input's row order (no rank: it would need a sort of all rows), one "
                "Parquet file per chunk"
            )
        _summary(
            head,
            cleaner.n_flagged_,
            args,
            len(y),
            given[0] if given else "automatic",
            saved=saved,
            rows_are=rows_are,
        )
        if args.out is not None:
            issues = cleaner.label_issues_
            if one_file:
                issues = issues.compute()
                order = np.argsort(-issues["score"].to_numpy(), kind="stable")
                rank = np.empty(len(order), dtype=int)
                rank[order] = np.arange(1, len(order) + 1)
                issues.insert(1, "rank", rank)
                issues = issues.iloc[order]
                issues.index.name = name
                write_table(issues, args.out)
            else:
                issues.to_parquet(args.out)
            progress(f"wrote {len(y)} rows to {args.out}")
    return EXIT_OK

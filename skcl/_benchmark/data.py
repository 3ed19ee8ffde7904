"""The stream ``skcl-benchmark`` runs on: a built-in one (``--stream``) or ``--data``.

Every function takes the argparse ``parser`` and refuses bad input with
``parser.error`` (one line naming the value and the fix, exit status 2)
before anything trains.
"""

from pathlib import Path

import numpy as np

from .._hashing import hash_columns
from ..datasets import load_sparse_stream, make_detection_stream, make_drifting_stream
from ..evaluation import _split_months
from ..scoring import get_metric_scorer
from ..utils._arrays import plain
from ..utils._months import check_months
from ..utils._stream_checks import check_loaded_stream

TEST_SIZE = 0.3
_FLOAT32_MAX = float(np.finfo(np.float32).max)

#: ``--stream`` name -> generator ``(n_months, n_samples_per_month, random_state)``.
STREAMS = {
    "drifting": make_drifting_stream,
    "detection": make_detection_stream,
}


def load_data(parser, args):
    """Return ``X, y, months, description`` from --data or the built-in --stream."""
    if args.data is None:
        return _builtin_stream(parser, args)
    for option, value in (("--stream", args.stream), ("--rows", args.rows)):
        if value is not None:
            parser.error(f"{option} {value!r} sets a built-in stream, and --data "
                         f"{args.data!r} and {option} exclude each other: drop one")
    path = Path(args.data)
    if not path.is_file():
        parser.error(f"--data {args.data!r}: no such file")
    if path.suffix.lower() == ".npz":
        if args.hash_features:
            parser.error(f"--hash-features hashes the columns of a CSV or parquet --data; "
                         f"{args.data!r} is a sparse matrix already: drop --hash-features")
        return _load_sparse_data(parser, args)
    frame = _read_frame(parser, path, args.data)
    features, not_numeric, values = _feature_values(parser, args, frame)
    months = frame[args.month_column].to_numpy()
    _check_loaded(parser, args, values, frame[args.label_column].to_numpy(), months)
    if np.issubdtype(months.dtype, np.datetime64):
        months = np.datetime_as_string(months, unit="D")
    try:
        # the one month check: a warning names the order of date-like strings
        _, month_order = check_months(months, len(months))
    except ValueError:
        parser.error(f"--month-column {args.month_column!r} mixes types that cannot be "
                     "sorted; use one type, e.g. 'YYYY-MM' strings")
    month_order = _first_months(parser, args, month_order, args.data)
    keep = np.isin(months, month_order)
    y = frame[args.label_column].to_numpy()[keep]
    description = f"{args.data} ({len(month_order)} months)"
    if args.hash_features:
        # stateless: hashing the file once equals a FeatureHasher step per month
        X = hash_columns(features[keep], not_numeric, args.hash_features)
        return X, y, months[keep], f"{description}, hashed to {args.hash_features} features"
    X = values[keep].astype(np.float32)
    return X, y, months[keep], description


def _builtin_stream(parser, args):
    if args.hash_features:
        parser.error("--hash-features hashes the columns of --data; pass --data PATH "
                     "(the built-in streams are numeric)")
    n_months = args.months or (4 if args.quick else 12)
    n_rows = args.rows or (150 if args.quick else 1000)
    make = STREAMS[args.stream or "drifting"]
    # --new-classes: each family its own label (the drifting stream only)
    labels = {"labels": "family"} if args.new_classes else {}
    X, y, months = make(n_months=n_months, n_samples_per_month=n_rows,
                        random_state=args.random_state, **labels)
    text = "".join(f", {key}={value!r}" for key, value in labels.items())
    return X, y, months, (f"{make.__name__}(n_months={n_months}, "
                          f"n_samples_per_month={n_rows}{text}, "
                          f"random_state={args.random_state})")


def _feature_values(parser, args, frame):
    """``(features, not_numeric, values)`` of a ``--data`` frame, every column checked.

    ``values`` holds the numeric feature columns as float64; ``not_numeric``
    names the others (allowed with ``--hash-features`` only).
    """
    import pandas as pd

    if len(frame) == 0:
        parser.error(f"--data {args.data!r} has a header but no rows; pass a file with "
                     "at least two months of rows")
    for option, column in (("--month-column", args.month_column),
                           ("--label-column", args.label_column)):
        if column not in frame.columns:
            parser.error(
                f"{option} {column!r} is not a column of {args.data!r}; its columns are "
                f"{', '.join(map(str, frame.columns))}; pass {option} NAME")
    if args.month_column == args.label_column:
        parser.error(f"--month-column and --label-column are both {args.month_column!r}; "
                     "they must name different columns")
    features = frame.drop(columns=[args.month_column, args.label_column])
    if features.shape[1] == 0:
        parser.error(f"--data {args.data!r} has no feature columns besides "
                     f"{args.month_column!r} and {args.label_column!r}")
    not_numeric = [str(c) for c in features.columns
                   if not pd.api.types.is_numeric_dtype(features[c])
                   or pd.api.types.is_bool_dtype(features[c])]
    if not_numeric and not args.hash_features:
        parser.error(f"--data {args.data!r}: feature columns must be numeric; "
                     f"{', '.join(not_numeric)} are not (encode or drop them, or hash them "
                     "with --hash-features N)")
    missing = [str(c) for c in features.columns if features[c].isna().any()]
    missing += [c for c in (args.month_column, args.label_column) if frame[c].isna().any()]
    if missing:
        parser.error(f"--data {args.data!r} has missing values in {', '.join(missing)}; "
                     "impute or drop those rows")
    numeric = features[[c for c in features.columns if str(c) not in not_numeric]]
    values = numeric.to_numpy(dtype=np.float64)
    # float32 is what the networks compute in: a larger value would become inf
    too_large = ~(np.abs(values) <= _FLOAT32_MAX)
    if too_large.any():
        columns = [str(numeric.columns[j]) for j in np.flatnonzero(too_large.any(axis=0))]
        row = int(np.flatnonzero(too_large.any(axis=1))[0])
        parser.error(
            f"--data {args.data!r}: feature column(s) {', '.join(columns)} hold infinite "
            f"values or values beyond float32's range (+-{_FLOAT32_MAX:.3g}), e.g. "
            f"{values[row, np.flatnonzero(too_large[row])[0]]!r} in row {row}; rescale, "
            "clip or drop them")
    return features, not_numeric, values


def _read_frame(parser, path, text):
    try:
        import pandas as pd
    except ImportError:
        parser.error(f"--data {text!r} needs pandas to read it; pip install pandas")
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if ".csv" in suffixes:
            return pd.read_csv(path)
    except (ValueError, ImportError, OSError) as exc:
        parser.error(f"--data {text!r} could not be read: {exc}")
    parser.error(f"--data {text!r}: unknown file type {path.suffix!r}; pass "
                 "a .csv (optionally compressed, e.g. .csv.gz) or .parquet file")


def _check_loaded(parser, args, X, y, months):
    """A usage error for missing months or labels, non-class labels, NaN features."""
    try:
        check_loaded_stream(X, y, months, month_name=f"--month-column {args.month_column!r}",
                            label_name=f"--label-column {args.label_column!r}")
    except ValueError as exc:
        source = args.data if args.labels is None else f"{args.data} + {args.labels}"
        parser.error(f"--data {source!r}: {exc}")


def _first_months(parser, args, month_order, source):
    """The months a run uses: the first ``--months`` (3 with ``--quick``), or all.

    Both loaders (dense and sparse) go through it, so both refuse a stream of
    fewer than two months before anything trains.
    """
    if args.months is not None:
        if args.months > len(month_order):
            parser.error(
                f"--months {args.months} exceeds the {len(month_order)} months in "
                f"{source!r}; pass --months {len(month_order)} or fewer")
        month_order = month_order[:args.months]
    elif args.quick:
        month_order = month_order[:3]
    if len(month_order) < 2:
        parser.error(f"--data {args.data!r} holds {len(month_order)} month "
                     f"({', '.join(map(str, month_order))}); a continual benchmark needs "
                     "at least 2")
    return month_order


def _load_sparse_data(parser, args):
    """``--data X.npz --labels labels.csv``: a sparse stream, never densified."""
    if args.labels is None:
        parser.error(f"--data {args.data!r} is a sparse matrix: pass --labels PATH with "
                     "its month and label columns")
    try:
        X, y, months = load_sparse_stream(args.data, args.labels,
                                          month_column=args.month_column,
                                          label_column=args.label_column)
    except (OSError, ValueError, ImportError) as exc:
        parser.error(f"--data {args.data!r} --labels {args.labels!r}: {exc}")
    _check_loaded(parser, args, X, y, months)
    month_order = _first_months(parser, args, np.unique(months), args.labels)
    keep = np.flatnonzero(np.isin(months, month_order))
    return (X[keep], y[keep], months[keep],
            f"{args.data} + {args.labels} ({len(month_order)} months, sparse)")


def check_stream(parser, args, y, months, split_seeds, tune_folds):
    """Refuse, before anything trains, a stream the benchmark cannot score."""
    classes = np.unique(y)
    source = f"--data {args.data!r}" if args.data else "the stream"
    if len(classes) < 2:
        parser.error(
            f"--label-column {args.label_column!r} of {source} holds a single class "
            f"({plain(classes[0])!r}): every model would score a meaningless {args.metric} of "
            "1.0 or none at all; pass a label column with at least two classes")
    if args.metric.startswith("tpr_at_fpr"):
        if len(classes) != 2:
            parser.error(f"--metric {args.metric} scores a detector of two classes, but "
                         f"{source} has {len(classes)}; use --metric accuracy or roc_auc")
        pos_label = get_metric_scorer(args.metric)._kwargs.get("pos_label")
        if pos_label is not None and pos_label not in classes.tolist():
            parser.error(f"--metric {args.metric}: the positive label {pos_label!r} is not "
                         f"a class of {source} ({[plain(c) for c in classes]}); name one")
    months, month_order = check_months(months, len(y))
    for split_seed in split_seeds:
        try:
            splits = _split_months(y, months, month_order, TEST_SIZE, split_seed)
        except ValueError as exc:
            parser.error(f"{source}: {exc}")
        for month, (train, test) in zip(month_order, splits):
            if args.metric != "accuracy" and len(np.unique(y[test])) < 2:
                parser.error(
                    f"{source}: month {plain(month)!r} holds one class "
                    f"({plain(np.unique(y[test])[0])!r}), "
                    f"where {args.metric} is undefined; use --metric accuracy, or drop or "
                    "merge the month")
            if args.tune and len(train) < tune_folds:
                parser.error(
                    f"{source}: month {plain(month)!r} has {len(train)} training rows, too few "
                    f"for --tune's {tune_folds} folds; drop --tune or merge the month")

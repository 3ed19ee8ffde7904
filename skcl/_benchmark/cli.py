"""``skcl-benchmark``'s command line: the options, their checks, and the run's plan.

:func:`build_parser` declares every option, grouped by what it decides (the
stream, the strategies, training, budgets, outputs, parallel work): a new
option is one ``add_argument`` in its group, plus, if it needs a check
against other options or the data, one line in :func:`make_plan`. Every
refusal goes through ``parser.error`` (one line naming the value and the
fix, exit status 2) before anything trains.
"""

import argparse
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..scoring import get_metric_scorer
from .data import STREAMS, TEST_SIZE, check_stream, load_data
from .strategies import BUFFER_SHARE, LR, strategies

_HIDDEN_UNITS = (64, 64)
_QUICK_HIDDEN_UNITS = (16,)
_SEED_MAX = 2**32 - 1
_DASK_TIMEOUT = "10s"
REFERENCE = "retrain"


def build_parser():
    """Return the ``skcl-benchmark`` argument parser, options grouped by what they decide."""
    parser = argparse.ArgumentParser(
        prog="skcl-benchmark",
        description=(
            "Compare continual-learning strategies against full retraining, month by "
            "month, over several seeds: prints a summary table with 95%% intervals "
            "(past-months mean, next-month score, costs) and the original study's "
            "findings judged, and writes results.csv, summary.json, findings.md and "
            "forgetting.png; with --budget, every strategy at a fraction of retrain's "
            "training rows, the strategy to use per budget and frontier.png."
        ),
    )
    stream = parser.add_argument_group("the stream")
    stream.add_argument(
        "--stream", choices=tuple(STREAMS),
        help="built-in stream: drifting (balanced, regular: make_drifting_stream) or "
             "detection (5%% positives, families that come back, a sudden shift, months "
             "of unequal size: make_detection_stream); default: drifting")
    stream.add_argument(
        "--data", metavar="PATH",
        help="CSV or parquet file with a month column, a label column and numeric "
             "feature columns, or a scipy.sparse .npz matrix with --labels "
             "(instead of a built-in --stream)")
    stream.add_argument(
        "--labels", metavar="PATH",
        help="with a sparse --data .npz: CSV or .npz file holding the month and label "
             "columns, one row per matrix row (see skcl.datasets.load_sparse_stream)")
    stream.add_argument("--month-column", default="month", metavar="NAME",
                        help="month column of --data (default: %(default)s)")
    stream.add_argument("--label-column", default="label", metavar="NAME",
                        help="label column of --data (default: %(default)s)")
    stream.add_argument(
        "--months", type=_positive_int(2), metavar="N",
        help="number of months: the first N of --data, or an N-month built-in stream "
             "(default: all of --data; 12 built-in, 4 with --quick)")
    stream.add_argument(
        "--rows", type=_positive_int(20), metavar="N",
        help="rows per month of a built-in stream (its mean with --stream detection; "
             "default: 1000, 150 with --quick)")
    stream.add_argument(
        "--hash-features", type=_positive_int(2), metavar="N",
        help="hash the --data feature columns into N sparse features: each token "
             "(whitespace-separated) of a text column is one feature, each numeric "
             "column one more (scikit-learn's FeatureHasher)")
    stream.add_argument(
        "--metric", type=_metric, default="accuracy",
        help="score of each month's test part: accuracy, roc_auc (one-vs-rest for more "
             "than two classes) or tpr_at_fpr[=MAX_FPR][@POSITIVE_LABEL], the detection "
             "rate at a false-positive budget (default 0.01; positive label: the greater "
             "label), e.g. tpr_at_fpr=0.001@malicious (default: %(default)s)")

    chosen = parser.add_argument_group("the strategies")
    chosen.add_argument(
        "--strategies", metavar="A,B,...",
        help="comma-separated strategy names (default: all; see --list-strategies)")
    chosen.add_argument("--list-strategies", action="store_true",
                        help="print the strategy names, families, settings and tuning "
                             "grids, and exit")
    chosen.add_argument("--new-classes", action="store_true",
                        help="class-incremental run: every label is a family that may "
                             "arrive mid-stream (the drifting stream with "
                             "labels='family'), every strategy grows its classes "
                             "(new_classes='grow'), and a class-incremental table is "
                             "printed and written to class_incremental.md")
    chosen.add_argument("--tune", action="store_true",
                        help="grid-search every strategy's key knobs on the training "
                             "parts (MonthlyKFold, ForgettingScorer) before training it")

    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=_positive_int(1), metavar="N",
                          help="training epochs per month (default: 5, 2 with --quick)")
    training.add_argument("--seeds", type=_positive_int(1), metavar="N",
                          help="repetitions of every strategy with different model seeds "
                               "(--random-state, +1, ...); default: 3, 1 with --quick")
    training.add_argument("--vary-split", action="store_true",
                          help="also draw each seed's held-out parts anew (default: one "
                               "split, seeded by --random-state, for every seed)")
    training.add_argument("--random-state", type=_positive_int(0, _SEED_MAX), default=0,
                          metavar="SEED",
                          help="seed of the data, the splits and the first model seed "
                               "(default: %(default)s)")
    training.add_argument("--device", default="cpu",
                          help="torch device, e.g. cpu or cuda (default: %(default)s)")
    training.add_argument("--quick", action="store_true",
                          help="tiny run for smoke tests (seconds): 4 months of 150 rows "
                               "(the first 3 months of --data), 2 epochs, a 16-unit "
                               "network, 1 seed, grids cut to their end values and 2 "
                               "tuning folds")

    budget = parser.add_argument_group("budgets")
    budget.add_argument(
        "--budget", type=_budgets, metavar="F[,F...]",
        help="run every strategy at F times retrain's rows through forward+backward "
             "(each spends it as its registry entry says: epochs, epoch size, replay); "
             "several comma-separated budgets run side by side; retrain runs once at "
             "full cost. Adds the strategy to use per budget and frontier.png")

    output = parser.add_argument_group("outputs")
    output.add_argument("--out", default="skcl-benchmark-results", metavar="DIR",
                        help="output directory, created if needed (default: %(default)s)")

    parallel = parser.add_argument_group("parallel work")
    parallel.add_argument("--jobs", type=_positive_int(1), default=1, metavar="N",
                          help="(strategy, seed) tasks run in parallel worker processes "
                               "(default: %(default)s)")
    parallel.add_argument("--threads", type=_positive_int(1), default=1, metavar="N",
                          help="torch threads of each task (default: %(default)s; the same "
                               "value gives the same results at any --jobs)")
    parallel.add_argument("--dask-scheduler", metavar="ADDRESS",
                          help="run the tasks on this dask.distributed scheduler, e.g. "
                               "tcp://10.0.0.5:8786 (needs the dask extra)")
    return parser


def _metric(text):
    """``--metric``: accuracy, roc_auc, or a checked ``tpr_at_fpr`` form."""
    if text in ("accuracy", "roc_auc"):
        return text
    if text.startswith("tpr_at_fpr"):
        try:
            get_metric_scorer(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a metric; pass accuracy, roc_auc or tpr_at_fpr=0.01")


def _budgets(text):
    """``--budget 0.1,0.25``: positive fractions of retrain's rows, each once."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not a number; pass fractions of retrain's rows, e.g. "
                "0.25 or 0.1,0.25,0.5") from None
        if not (math.isfinite(value) and 0 < value <= 10):
            raise argparse.ArgumentTypeError(
                f"{part!r} is outside (0, 10]; pass fractions of retrain's rows, e.g. 0.25")
        if value in values:
            raise argparse.ArgumentTypeError(f"{text!r} repeats {part}; name each budget once")
        values.append(value)
    return sorted(values)


@dataclass
class Plan:
    """Everything a run needs, checked: what to train, on what, and where to write.

    ``tasks`` are ``(strategy, seed, split_seed, budget)`` tuples, ``budget``
    None for a strategy run at its own settings (every strategy without
    ``--budget``; the reference with it).
    """

    args: argparse.Namespace
    registry: dict
    names: list
    budgets: list
    seeds: list
    split_seeds: list
    X: object
    y: np.ndarray
    months: np.ndarray
    description: str
    out: Path
    client: object
    config: dict

    @property
    def tasks(self):
        tasks = []
        for seed, split_seed in zip(self.seeds, self.split_seeds):
            for name in self.names:
                spends = self.budgets and self.registry[name].spend is not None
                for budget in (self.budgets if spends else [None]):
                    tasks.append((name, seed, split_seed, budget))
        return tasks

    @property
    def reference(self):
        return REFERENCE if REFERENCE in self.names else None


def make_plan(parser, args, argv):
    """Check the options and the data against each other and return the run's :class:`Plan`."""
    registry = strategies()
    names = _select_strategies(parser, args.strategies, registry)
    _check_device(parser, args.device)
    n_seeds = args.seeds or (1 if args.quick else 3)
    if args.random_state + n_seeds - 1 > _SEED_MAX:
        parser.error(f"--random-state {args.random_state} with --seeds {n_seeds} needs "
                     f"seeds up to {args.random_state + n_seeds - 1}, beyond {_SEED_MAX}; "
                     "pass a smaller --random-state")
    if args.dask_scheduler is not None and args.jobs != 1:
        parser.error("--jobs and --dask-scheduler exclude each other: under dask every "
                     "worker of the cluster runs tasks; drop --jobs")
    if args.new_classes and (args.tune or args.metric != "accuracy"):
        parser.error("--new-classes scores accuracy without tuning (a model cannot be "
                     "scored by roc_auc on classes it has not met yet); drop --tune and "
                     "--metric roc_auc")
    if args.new_classes and args.stream not in (None, "drifting"):
        parser.error(f"--new-classes needs family labels, which --stream {args.stream!r} "
                     "does not have; use --stream drifting")
    budgets = _check_budgets(parser, args.budget, names, registry)
    seeds = [args.random_state + index for index in range(n_seeds)]
    split_seeds = seeds if args.vary_split else [args.random_state] * n_seeds
    tune_folds = 2 if args.quick else 3
    X, y, months, description = load_data(parser, args)
    check_stream(parser, args, y, months, sorted(set(split_seeds)), tune_folds)
    out = _check_out(parser, args.out)
    client = None if args.dask_scheduler is None else _dask_client(parser, args.dask_scheduler)
    config = _config(args, X, y, months, description, seeds, split_seeds, tune_folds, argv)
    return Plan(args=args, registry=registry, names=names, budgets=budgets, seeds=seeds,
                split_seeds=split_seeds, X=X, y=y, months=months, description=description,
                out=out, client=client, config=config)


def _check_budgets(parser, budgets, names, registry):
    if not budgets:
        return []
    if REFERENCE not in names:
        parser.error(f"--budget is a fraction of {REFERENCE}'s rows at the same seed; "
                     f"add {REFERENCE} to --strategies")
    unbudgeted = [n for n in names if n != REFERENCE and registry[n].spend is None]
    if unbudgeted:
        parser.error(f"strategy {unbudgeted[0]!r} states no way to spend a budget (its "
                     "registry entry has no spend); drop it from --strategies or run "
                     "without --budget")
    return budgets


def _config(args, X, y, months, description, seeds, split_seeds, tune_folds, argv):
    """The settings every task reads (``summary.json``'s ``config``)."""
    n_train_rows = sum(len(y[months == month]) - math.ceil(TEST_SIZE * np.sum(months == month))
                       for month in np.unique(months))
    classes = np.unique(y)
    metric = "roc_auc_ovr" if args.metric == "roc_auc" and len(classes) > 2 else args.metric
    return {
        "data": description,
        "n_rows": int(len(y)),
        "n_features": int(X.shape[1]),
        "classes": [c.item() if isinstance(c, np.generic) else c for c in classes],
        "test_size": TEST_SIZE,
        "epochs": args.epochs or (2 if args.quick else 5),
        "hidden_units": list(_QUICK_HIDDEN_UNITS if args.quick else _HIDDEN_UNITS),
        "lr": LR,
        "batch_size": 32 if args.quick else 128,
        "buffer_capacity": max(1, int(BUFFER_SHARE * n_train_rows)),
        "device": args.device,
        "random_state": args.random_state,
        "seeds": seeds,
        "split_seeds": split_seeds,
        "metric": metric,
        "tune": args.tune,
        "quick": args.quick,
        "tune_folds": tune_folds,
        "budgets": args.budget or [],
        "threads": args.threads,
        "jobs": args.jobs,
        "dask_scheduler": args.dask_scheduler,
        "argv": list(sys.argv[1:] if argv is None else argv),
        "new_classes": args.new_classes,
    }


def _positive_int(minimum, maximum=None):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an integer; pass a whole number >= {minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is too small; pass a whole number >= {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is too large; pass a whole number <= {maximum}")
        return value
    return parse


def _select_strategies(parser, text, registry):
    if text is None:
        return list(registry)
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        parser.error(f"--strategies {text!r} names no strategy; see --list-strategies")
    unknown = [name for name in names if name not in registry]
    if unknown:
        parser.error(
            f"unknown strategy {unknown[0]!r} in --strategies {text!r}; choose from "
            f"{', '.join(registry)} (see --list-strategies)")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        parser.error(f"--strategies {text!r} repeats {', '.join(duplicates)}; name each once")
    return names


def _check_device(parser, device):
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        parser.error(f"--device {device!r} is not a torch device; use e.g. cpu or cuda")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {device!r}: CUDA is not available on this machine; "
                     "use --device cpu")


def _check_out(parser, text):
    """Refuse an --out that is a file, lies under a file, or cannot be written."""
    out = Path(text)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {text!r} is an existing file; pass a directory "
                     "(created if needed)")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        parser.error(f"--out {text!r} lies under {str(existing)!r}, which is a file; "
                     "pass a directory path")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        parser.error(f"--out {text!r} is not writable ({exc.strerror or exc}); pass a "
                     "directory you can write to")
    return out


def _dask_client(parser, address):
    try:
        from dask.distributed import Client
    except ImportError:
        parser.error("--dask-scheduler needs dask.distributed; pip install 'skcl[dask]'")
    try:
        return Client(address, timeout=_DASK_TIMEOUT)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        parser.error(f"--dask-scheduler {address!r}: cannot connect ({exc}); pass the "
                     "address a dask scheduler prints, e.g. tcp://127.0.0.1:8786")


def list_strategies(registry):
    """Print every strategy's name, family, description and tuning grid."""
    width = max(map(len, registry))
    for name, strategy in registry.items():
        grid = "; ".join(f"{key} in {list(values)}" for key, values in strategy.grid.items())
        print(f"{name.ljust(width)}  [{strategy.family}] {strategy.description}"
              + (f"\n{' ' * width}  --tune: {grid}" if grid else ""))

"""One benchmark task per (strategy, seed): tune on the training parts, train, score, cost.

A task is a plain function of picklable arguments (the strategy is looked up
by name in the worker), so the same list of tasks runs in this process
(``--jobs 1``), in joblib's worker processes (``--jobs N``) or on a dask
cluster (``--dask-scheduler``), with identical results for the same seeds
when every worker uses the same number of torch threads.
"""

import ctypes
import ctypes.util
import os
import sys
import threading
import time
import warnings

import numpy as np
import sklearn
import torch
from joblib import Parallel, delayed
from sklearn.model_selection import GridSearchCV

from ..classifier import ContinualClassifier
from ..evaluation import _split_months, evaluate_stream
from ..model_selection import MonthlyKFold
from ..scoring import ForgettingScorer
from ..utils._arrays import plain as _plain
from ..utils._months import check_months
from .strategies import StreamShape, strategies

#: Seconds between two samples of the resident set size.
_MEMORY_INTERVAL = 0.005


def task_label(name, budget):
    """The name of a strategy run at a budget in every output: ``"naive@0.25"``."""
    return name if budget is None else f"{name}@{budget:g}"


def run_task(name, seed, split_seed, config, X, y, months, budget=None):
    """Tune (optionally), budget (optionally), train and score one strategy at one seed.

    Parameters
    ----------
    name : str
        A strategy name of :func:`~skcl._benchmark.strategies.strategies`.
    seed : int
        Seeds the model (initialization, shuffling, replay draws) and the
        tuning folds.
    split_seed : int
        Seeds each month's held-out part, as :func:`~skcl.evaluate_stream`'s
        ``random_state``; tuning sees only the other, training rows.
    config : dict
        The run's settings: the strategy settings of ``strategies``, plus
        ``metric``, ``test_size``, ``tune`` (bool), ``quick`` (smaller grids),
        ``tune_folds`` and ``threads`` (torch threads of this task).
    X, y, months : ndarray
        The stream.
    budget : float or None, default=None
        Run the strategy at ``budget`` times retrain's training rows on this
        stream, with the settings its ``spend`` returns (applied after
        tuning); ``None`` or a strategy without ``spend`` (the reference):
        its own settings.

    Returns
    -------
    result : dict
        ``strategy`` (:func:`task_label`), ``base`` (the registry name),
        ``budget``, ``budget_params`` (what ``spend`` set), ``seed``,
        ``records`` (the evaluation's rows),
        ``best_params`` and ``cv_results`` (empty when not tuned),
        ``tune_seconds``, ``peak_host_bytes`` (growth of the resident set
        during the final training and scoring; None where it cannot be read),
        ``peak_device_bytes`` (CUDA only, else None) and
        ``negative_fractions`` (per month, for regularizers that report them).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(config["threads"])
    _warm_up()
    try:
        strategy = strategies()[name]
        estimator = strategy.build(dict(config, random_state=seed))
        best_params, cv_results, tune_seconds = {}, [], 0.0
        grid = strategy.quick_grid() if config["quick"] else strategy.grid
        if config["tune"] and grid:
            start = time.perf_counter()
            train = training_rows(y, months, config["test_size"], split_seed)
            best_params, cv_results = _tune(estimator, grid, seed, config,
                                            X[train], y[train], months[train])
            tune_seconds = time.perf_counter() - start
            estimator.set_params(**best_params)
        budget_params = {}
        if budget is not None and strategy.spend is not None:
            shape = stream_shape(y, months, config, split_seed)
            budget_params = strategy.spend(budget * shape.retrain_rows, shape)
            estimator.set_params(**budget_params)
        else:
            budget = None
        label = task_label(name, budget)
        class_incremental = bool(config.get("new_classes"))
        if class_incremental and "new_classes" in estimator.get_params():
            estimator.set_params(new_classes="grow")
        cuda = str(config["device"]).startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        with _PeakMemory() as memory:
            evaluation = evaluate_stream(
                {label: estimator}, X, y, months, test_size=config["test_size"],
                metric=config["metric"], reference=None, random_state=split_seed,
                class_incremental=class_incremental)
        fitted = evaluation.estimators[label]
        regularizer = getattr(fitted, "regularizer_", None)
        return {
            "strategy": label, "base": name, "budget": budget,
            "budget_params": budget_params, "seed": seed, "split_seed": split_seed,
            "records": evaluation.records,
            "best_params": best_params, "cv_results": cv_results,
            "tune_seconds": tune_seconds, "peak_host_bytes": memory.peak,
            "peak_device_bytes": torch.cuda.max_memory_allocated() if cuda else None,
            "negative_fractions": [float(v) for v in
                                   getattr(regularizer, "negative_fractions_", None) or []],
            # --new-classes only: the class-incremental scores
            "class_records": evaluation.class_records,
            "seen_accuracy": (None if evaluation.seen_accuracy is None
                              else evaluation.seen_accuracy[label]),
        }
    finally:
        torch.set_num_threads(threads)


def _warm_up():
    """Pay one-time costs in this process before anything is timed or measured.

    A process's first fit imports torch's compiler stack with Adam, fills
    skorch's and torch's lazy caches and grows the allocator's pools (about a
    second and tens of MB): without this, the first task of every worker
    process would be charged for it in ``train s`` and ``peak MB``.
    """
    global _WARM
    if not _WARM:
        rows = np.arange(16, dtype=np.float32).reshape(8, 2)
        ContinualClassifier(module__hidden_units=(2,), max_epochs=1, batch_size=4,
                            random_state=0).partial_fit(rows, np.arange(8) % 2)
        _WARM = True


_WARM = False


def stream_shape(y, months, config, split_seed):
    """The :class:`~skcl._benchmark.strategies.StreamShape` a budget is spent on."""
    _, month_order = check_months(months, len(y))
    splits = _split_months(y, months, month_order, config["test_size"], split_seed)
    return StreamShape(month_rows=tuple(len(train) for train, _ in splits),
                       epochs=config["epochs"], batch_size=config["batch_size"],
                       buffer_capacity=config["buffer_capacity"])


def training_rows(y, months, test_size, split_seed):
    """Return the rows :func:`~skcl.evaluate_stream` trains on (never its held-out ones).

    Parameters
    ----------
    y, months : ndarray
        Labels and month labels of the stream.
    test_size : float
        Held-out share of each month.
    split_seed : int
        ``evaluate_stream``'s ``random_state``.

    Returns
    -------
    rows : ndarray of int
        Sorted indices of every month's training part.
    """
    _, month_order = check_months(months, len(y))
    splits = _split_months(y, months, month_order, test_size, split_seed)
    return np.sort(np.concatenate([train for train, _ in splits]))


def _tune(estimator, grid, seed, config, X, y, months):
    """Grid-search ``estimator`` on the training parts, scored month by month."""
    search = GridSearchCV(
        estimator, {key: list(values) for key, values in grid.items()},
        scoring=ForgettingScorer(metric=config["metric"], aggregate="mean"),
        cv=MonthlyKFold(n_splits=config["tune_folds"], shuffle=True, random_state=seed,
                        stratify_by_class=True),
        refit=False, n_jobs=1, error_score="raise")
    with sklearn.config_context(enable_metadata_routing=True), warnings.catch_warnings():
        # a fold month with one class leaves roc_auc undefined there; the scorer
        # drops that month from the mean and says so, once per candidate
        warnings.simplefilter("ignore", sklearn.exceptions.UndefinedMetricWarning)
        search.fit(X, y, months=months)
    results = search.cv_results_
    cv_results = [{"params": {k: _plain(v) for k, v in params.items()},
                   "mean_score": float(mean), "std_score": float(std)}
                  for params, mean, std in zip(results["params"],
                                               results["mean_test_score"],
                                               results["std_test_score"])]
    return {k: _plain(v) for k, v in search.best_params_.items()}, cv_results


def run_tasks(tasks, *, config, X, y, months, n_jobs, on_done):
    """Run ``(name, seed)`` tasks, calling ``on_done(result)`` as each finishes.

    Parameters
    ----------
    tasks : list of (str, int, int, float or None)
        Strategy name, seed, split seed and budget of each task.
    config, X, y, months
        As :func:`run_task` takes them.
    n_jobs : int
        joblib's ``n_jobs``: 1 runs in this process; more use the active
        backend (loky processes by default, dask under
        ``joblib.parallel_config(backend="dask")``).
    on_done : callable
        Called in this process with each result, in completion order.

    Returns
    -------
    results : list of dict
        :func:`run_task`'s results, in the order of ``tasks``.
    """
    jobs = (delayed(run_task)(name, seed, split_seed, config, X, y, months, budget)
            for name, seed, split_seed, budget in tasks)
    by_task = {}
    for result in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs):
        by_task[result["strategy"], result["seed"]] = result
        on_done(result)
    return [by_task[task_label(name, budget), seed] for name, seed, _, budget in tasks]


def execute(plan):
    """Run a :class:`~skcl._benchmark.cli.Plan`'s tasks here, in processes or on dask.

    Prints one line describing the run first and the progress while it runs.

    Returns
    -------
    results : list of dict
        :func:`run_task`'s results, in the order of ``plan.tasks``.
    wall_seconds : float
        The wall time of all tasks.
    """
    args, config = plan.args, plan.config
    tasks = plan.tasks
    budgets = (f", budgets {', '.join(f'{b:g}' for b in plan.budgets)} of retrain's rows"
               if plan.budgets else "")
    print(f"skcl-benchmark: {len(plan.names)} strategies x {len(plan.seeds)} seed(s) on "
          f"{plan.description}, {config['epochs']} epoch(s) per month"
          f"{', tuned' if args.tune else ''}{budgets}, device {args.device}, "
          + (f"dask scheduler {args.dask_scheduler}" if plan.client is not None
             else f"{args.jobs} job(s) x {args.threads} thread(s)"), flush=True)
    progress = TaskProgress(len(tasks))
    start = time.perf_counter()
    data = dict(config=config, X=plan.X, y=plan.y, months=plan.months, on_done=progress.done)
    try:
        if plan.client is None:
            results = run_tasks(tasks, n_jobs=args.jobs, **data)
        else:
            from joblib import parallel_config

            with plan.client, parallel_config(backend="dask"):
                results = run_tasks(tasks, n_jobs=-1, **data)
    finally:
        progress.close()
    return results, time.perf_counter() - start


def _release_freed_memory():
    """Hand memory freed by earlier tasks back to the OS (glibc), so growth is visible."""
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass  # not glibc: the peak stays a lower bound, as documented


def _resident_bytes():
    """This process's resident set size, from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class _PeakMemory:
    """Peak growth of the resident set inside a ``with`` block, sampled by a thread.

    ``peak`` is the highest sample minus the level at entry, in bytes (None
    where the resident set cannot be read). Memory that earlier work freed is
    first returned to the OS (glibc's ``malloc_trim``) so that the block's
    use shows as growth; memory the allocator still holds is reused without
    growth, so the figure is a lower bound on what the block needs.
    """

    def __enter__(self):
        _release_freed_memory()
        self.start = _resident_bytes()
        self.highest = self.start
        self.peak = None
        if self.start is not None:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(_MEMORY_INTERVAL):
            self.highest = max(self.highest, _resident_bytes() or 0)

    def __exit__(self, *exc_info):
        if self.start is not None:
            self._stop.set()
            self._thread.join()
            self.highest = max(self.highest, _resident_bytes() or 0)
            self.peak = self.highest - self.start
        return False


class TaskProgress:
    """Progress over tasks: a tqdm bar on a terminal, else one line per finished task.

    Parameters
    ----------
    total : int
        Number of tasks.
    stream : file object, default=None
        Where to write; ``sys.stderr`` by default.
    """

    def __init__(self, total, stream=None):
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.count = 0
        self.bar = None
        self.start = time.perf_counter()
        if getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, unit="fit", dynamic_ncols=True,
                                file=self.stream)

    def done(self, result):
        """Report one finished task's result (a :func:`run_task` dict)."""
        self.count += 1
        final = [row["score"] for row in result["records"]
                 if row["n_months_trained"] == max(r["n_months_trained"]
                                                   for r in result["records"])]
        seconds = result["records"][-1]["fit_seconds"] + result["tune_seconds"]
        text = (f"{result['strategy']} seed {result['seed']}: mean "
                f"{np.mean(final):.4f}, {seconds:.1f} s")
        if result["best_params"]:
            text += " (tuned: " + ", ".join(
                f"{k.split('__')[-1]}={v}" for k, v in result["best_params"].items()) + ")"
        if self.bar is not None:
            self.bar.set_description(text)
            self.bar.update()
        else:
            # a log has no bar: each line says how long the rest should take
            elapsed = time.perf_counter() - self.start
            left = elapsed / self.count * (self.total - self.count)
            print(f"[{self.count}/{self.total}] {text}; about {left:.0f} s left",
                  file=self.stream, flush=True)

    def close(self):
        """Close the bar, if any."""
        if self.bar is not None:
            self.bar.close()

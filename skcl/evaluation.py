"""Month-by-month evaluation of continual-learning strategies against retraining.

:func:`evaluate_stream` trains every strategy on a stream one month at a time
and scores each intermediate model on every month's held-out part, which gives
the full "accuracy matrix" of continual learning (trained-up-to month x
evaluated month) for each strategy, plus the training cost that produced it.
:class:`StreamEvaluation` holds the result as plain records, so pandas is not
needed to use it.
"""

import csv
import inspect
import math
import sys
import time
from numbers import Real

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from ._class_incremental import CLASS_SUMMARY_KEYS, ClassIncrementalTracker, class_summary
from .scoring import get_metric_scorer, next_month_score
from .utils._arrays import n_rows, plain, plain_list, sample_rows
from .utils._months import check_months
from .utils._months import month_labels as labels_as_given
from .utils._text import text_table

__all__ = ["StreamEvaluation", "evaluate_stream"]

#: Columns of :attr:`StreamEvaluation.records`, in order.
RECORD_COLUMNS = (
    "strategy", "n_months_trained", "train_month", "eval_month", "metric", "score",
    "samples_processed", "train_rows", "forward_rows", "fit_seconds",
)

#: Columns of :attr:`StreamEvaluation.summary`, in order.
SUMMARY_COLUMNS = (
    "strategy", "mean_score", "worst_score", "worst_month", "first_month_score",
    "first_month_forgetting", "last_month_score", "next_month_score", "gap_to_reference",
    "samples_processed", "train_rows", "forward_rows", "relative_cost", "fit_seconds",
    "relative_time",
)


def evaluate_stream(
    strategies,
    X,
    y,
    months,
    *,
    test_size=0.3,
    metric="accuracy",
    reference="retrain",
    random_state=None,
    progress=False,
    class_incremental=False,
):
    """Train strategies month by month and score them on every month's test part.

    Every month of the stream is split once into a stratified training part and
    a held-out test part (the same split for every strategy). Each strategy is
    cloned, then trained with one ``partial_fit(X_train_m, y_train_m,
    classes=all_classes, month=m)`` per month in sorted month order; after each
    month the current model is scored on the test part of *every* month (past,
    current and future ones).

    **Samples processed**, the cost column, counts training rows the way the
    optimizer sees them: every row of every training epoch, cumulated over the
    months. Rows replayed from a rehearsal buffer count, and full retraining
    counts all past months again at every month, for every epoch. For a
    :class:`~skcl.ContinualClassifier` it is its ``n_samples_processed_``; for
    another skorch-based estimator it is read from the training history (the
    sum of ``train_batch_size`` over all batches, accumulated month by month);
    for an estimator holding fitted
    sub-estimators in ``estimators_`` (such as the model-averaging baseline)
    it is the sum over those; for any other estimator, each ``partial_fit``
    call is taken to be one pass over the month's rows (as scikit-learn's
    ``SGDClassifier`` does).
    Forward passes that do not train (predictions, scoring) are not counted;
    ``fit_seconds``, the wall time spent inside ``partial_fit``, includes them.

    **Train rows**, the cost that strategies are compared by
    (``relative_cost``), are the rows through forward *and* backward: the
    samples processed plus the rows a strategy runs through the network with
    gradients besides its optimizer's batches (DER++'s and A-GEM's memory
    rows, the rows of EWC's or MAS's importance estimate): a
    :class:`~skcl.ContinualClassifier`'s ``n_train_rows_``, summed over
    ``estimators_`` members, and the samples processed for other
    estimators. **Forward rows** (``forward_rows``) count the forward-only
    passes of training, such as LwF's teacher (``n_forward_rows_``; 0 for
    other estimators). See :ref:`cost`.

    Parameters
    ----------
    strategies : dict or list of (str, estimator) tuples
        The strategies to compare, by name. Each estimator needs
        ``partial_fit(X, y, classes=...)``, as :class:`~skcl.ContinualClassifier`
        and scikit-learn's incremental classifiers have; ``month=`` is passed
        too when ``partial_fit`` accepts it. Estimators are cloned, so the
        objects passed stay unfitted.
    X : array-like of shape (n_samples, n_features)
        Features of the whole stream (numpy array or DataFrame).
    y : array-like of shape (n_samples,)
        Labels.
    months : array-like of shape (n_samples,)
        Month label of each row; any sortable labels (ints, ``'YYYY-MM'``
        strings, dates).
    test_size : float, default=0.3
        Fraction of each month held out for evaluation, stratified by label.
    metric : str or callable, default="accuracy"
        A scikit-learn scorer name (``"accuracy"``, ``"roc_auc"``,
        ``"balanced_accuracy"``, ...), a detection rate at a false-positive
        budget (``"tpr_at_fpr=0.001@malicious"``, see
        :func:`~skcl.scoring.get_metric_scorer`) or a callable
        ``scorer(estimator, X, y)`` returning a float where higher is better.
    reference : str or None, default="retrain"
        Name of the strategy that ``gap_to_reference``, ``relative_cost`` and
        ``relative_time`` compare against. The default is used only if a
        strategy of that name exists; a name given explicitly must exist.
        ``None`` leaves those columns empty.
    random_state : int, RandomState instance or None, default=None
        Seeds the train/test split of every month. The strategies' own
        randomness is theirs to set.
    progress : bool, default=False
        Report progress on stderr. On a terminal: a bar over strategies and
        months (tqdm, from the ``progress`` extra; one line per month without
        it). When stderr is not a terminal (a log file, a CI job): one line
        per finished strategy.
    class_incremental : bool, default=False
        Evaluate a stream whose months bring new classes (new malware
        families): ``partial_fit`` gets no ``classes=``, so each strategy
        learns the classes as they arrive (a
        :class:`~skcl.ContinualClassifier` needs ``new_classes="grow"``), and
        the result gains the class-incremental scores: ``class_records``
        (each class's accuracy after each month), ``seen_accuracy`` and the
        summary keys ``average_incremental_accuracy``,
        ``final_seen_accuracy``, ``mean_class_forgetting``,
        ``max_class_forgetting`` and ``class_forgetting`` (see
        :ref:`new_classes`). The first month must hold two classes.

    Returns
    -------
    result : StreamEvaluation
        ``result.records``: one dict per (strategy, training month, evaluated
        month); ``result.summary``: one dict per strategy; ``result.to_frame()``
        and ``result.summary_frame()`` give pandas DataFrames;
        ``result.estimators``: each strategy's final fitted model.

    See Also
    --------
    skcl.evaluation.StreamEvaluation : The returned result and its columns.
    skcl.ContinualClassifier : The estimator whose strategies this compares.

    Examples
    --------
    >>> from skcl import ContinualClassifier
    >>> from skcl.datasets import make_drifting_stream
    >>> from skcl.evaluation import evaluate_stream
    >>> X, y, months = make_drifting_stream(n_months=3, n_samples_per_month=100,
    ...                                     random_state=0)
    >>> base = ContinualClassifier(module__hidden_units=(8,), max_epochs=1,
    ...                            random_state=0)
    >>> result = evaluate_stream(
    ...     {"retrain": base.set_params(update="retrain"),
    ...      "naive": ContinualClassifier(module__hidden_units=(8,), max_epochs=1,
    ...                                   random_state=0)},
    ...     X, y, months, random_state=0)
    >>> len(result.records)  # 2 strategies x 3 training months x 3 evaluated months
    18
    >>> [row["strategy"] for row in result.summary]
    ['retrain', 'naive']
    >>> result.summary[1]["samples_processed"] < result.summary[0]["samples_processed"]
    True
    """
    named = _check_strategies(strategies)
    reference = _check_reference(reference, [name for name, _ in named])
    if not (isinstance(test_size, Real) and not isinstance(test_size, bool)
            and 0 < test_size < 1):
        raise ValueError(
            f"test_size must be a float in (0, 1), got {test_size!r}; e.g. test_size=0.3"
        )
    scorer = _check_metric(metric)
    metric_name = metric if isinstance(metric, str) else getattr(
        metric, "__name__", type(metric).__name__)
    y = np.asarray(y)
    n_samples = n_rows(X)
    if y.ndim != 1 or len(y) != n_samples:
        raise ValueError(
            f"X, y and months must have one entry per row, got {n_samples} rows in X "
            f"and y of shape {y.shape}"
        )
    if n_samples == 0:
        raise ValueError("the stream is empty; pass at least one month of rows")
    months, month_order = check_months(months, n_samples)
    classes = np.unique(y)
    splits = _split_months(y, months, month_order, test_size, random_state)
    month_labels = labels_as_given(month_order)

    records = []
    fitted = {}
    class_records, seen_accuracy = [], {}
    fit_classes = {} if class_incremental else {"classes": classes}
    bar = _Progress(len(named) * len(month_order), enabled=progress)
    try:
        for name, estimator in named:
            estimator = clone(estimator)
            counter = _SampleCounter()
            month_kwarg = _month_kwarg(estimator)
            rows_passed = 0
            fit_seconds = 0.0
            tracker = ClassIncrementalTracker(y, splits) if class_incremental else None
            for step, (month, (train_rows, _)) in enumerate(zip(month_labels, splits), 1):
                bar.describe(f"{name}: month {month}")
                start = time.perf_counter()
                estimator.partial_fit(sample_rows(X, train_rows), y[train_rows],
                                      **fit_classes, **month_kwarg(month))
                fit_seconds += time.perf_counter() - start
                rows_passed += len(train_rows)
                samples = counter.update(estimator)
                samples = rows_passed if samples is None else samples
                train_rows = _counted(estimator, "n_train_rows_")
                forward_rows = _counted(estimator, "n_forward_rows_")
                for eval_month, (_, test_rows) in zip(month_labels, splits):
                    score = float(scorer(estimator, sample_rows(X, test_rows), y[test_rows]))
                    records.append({
                        "strategy": name, "n_months_trained": step, "train_month": month,
                        "eval_month": eval_month, "metric": metric_name,
                        "score": score, "samples_processed": int(samples),
                        "train_rows": int(samples if train_rows is None else train_rows),
                        "forward_rows": int(forward_rows or 0),
                        "fit_seconds": fit_seconds,
                    })
                if tracker is not None:
                    seen, rows = tracker.records(estimator, sample_rows(X, tracker.test_rows),
                                                 name, step, month)
                    seen_accuracy.setdefault(name, []).append(seen)
                    class_records.extend(rows)
                bar.update()
            bar.finish_strategy(name, fit_seconds)
            fitted[name] = estimator
    finally:
        bar.close()
    return StreamEvaluation(records, metric=metric_name, reference=reference,
                            months=month_labels, estimators=fitted,
                            class_records=class_records if class_incremental else None,
                            seen_accuracy=seen_accuracy if class_incremental else None)


class StreamEvaluation:
    """Result of :func:`~skcl.evaluate_stream`: per-month scores and costs of strategies.

    Plain Python records, usable without pandas; ``to_frame`` and
    ``summary_frame`` convert them when pandas is installed.

    Read more in the :ref:`User Guide <per_month_table>`.

    Parameters
    ----------
    records : list of dict
        One dict per (strategy, training month, evaluated month), with the keys
        described under Attributes.
    metric : str
        Name of the metric in the ``score`` column.
    reference : str or None
        Strategy the summary's relative columns compare against.
    months : list
        Month labels in training order.
    estimators : dict or None, default=None
        Each strategy's fitted model after the last month, by name.
    class_records : list of dict or None, default=None
        With a class-incremental evaluation: one dict per (strategy, month
        trained, class seen so far), keys ``strategy``, ``n_months_trained``,
        ``train_month``, ``class``, ``class_accuracy`` (the class's recall on
        its held-out rows of the whole stream) and ``n_test_rows``.
    seen_accuracy : dict of str to list of float or None, default=None
        With a class-incremental evaluation: per strategy, the accuracy after
        each month on the held-out rows of the months trained so far.

    Attributes
    ----------
    records : list of dict
        The tidy table. Keys: ``strategy``; ``n_months_trained`` (1 for the first
        month trained on); ``train_month`` (the last month the model was
        trained on); ``eval_month`` (the month whose test part was scored);
        ``metric``; ``score``; ``samples_processed`` (cumulative training rows
        up to and including ``train_month``, every epoch and replayed row
        counted, see :func:`~skcl.evaluate_stream`); ``train_rows`` and
        ``forward_rows`` (cumulative rows through forward+backward and through
        a forward only, see :func:`~skcl.evaluate_stream`); ``fit_seconds`` (cumulative wall
        time inside ``partial_fit``).
    summary : list of dict
        One dict per strategy, in the order given, describing the model after
        the last month. Keys: ``strategy``; ``mean_score`` (mean over evaluated
        months: the area under the per-month curve); ``worst_score`` and
        ``worst_month``; ``first_month_score`` (the first month, after the
        last); ``first_month_forgetting`` (first-month score right after
        training on it, minus ``first_month_score``); ``last_month_score`` (the
        newest month); ``next_month_score`` (the deployed model's score: the
        model after each month ``t`` on month ``t + 1``'s test part, averaged
        over ``t``, see :func:`~skcl.scoring.next_month_score`; ``None`` for a
        one-month stream); ``gap_to_reference`` (``mean_score`` minus the
        reference's, negative when worse); ``samples_processed``,
        ``train_rows`` and ``forward_rows`` (totals); ``relative_cost``
        (``train_rows`` over the reference's);
        ``fit_seconds`` (total) and ``relative_time`` (over the reference's).
        Relative columns are ``None`` without a reference. A class-incremental
        evaluation adds ``average_incremental_accuracy`` (mean of
        ``seen_accuracy``), ``final_seen_accuracy``, ``mean_class_forgetting``
        and ``max_class_forgetting`` (over the classes seen before the last
        month: best class accuracy before the last month minus the final
        one) and ``class_forgetting`` ({class: forgetting}).
    class_records, seen_accuracy
        As passed (``None`` for a per-month evaluation).
    estimators : dict of str to estimator
        Each strategy's fitted model after the last month (the clone that
        :func:`~skcl.evaluate_stream` trained), for inspection; empty when the
        result was built from records alone.
    metric, reference, months
        As passed.
    strategies : list of str
        Strategy names in the order given.

    See Also
    --------
    skcl.evaluate_stream : Produces this result.

    Examples
    --------
    >>> from skcl.evaluation import StreamEvaluation
    >>> records = [
    ...     {"strategy": "a", "n_months_trained": step, "train_month": train,
    ...      "eval_month": ev, "metric": "accuracy", "score": score,
    ...      "samples_processed": 10 * step, "fit_seconds": 0.1 * step}
    ...     for step, train, ev, score in [(1, 0, 0, 0.9), (1, 0, 1, 0.5),
    ...                                    (2, 1, 0, 0.7), (2, 1, 1, 0.8)]]
    >>> result = StreamEvaluation(records, metric="accuracy", reference=None,
    ...                           months=[0, 1])
    >>> result.matrix("a")
    array([[0.9, 0.5],
           [0.7, 0.8]])
    >>> row = result.summary[0]
    >>> round(row["mean_score"], 3), round(row["first_month_forgetting"], 3)
    (0.75, 0.2)
    """

    def __init__(self, records, *, metric, reference, months, estimators=None,
                 class_records=None, seen_accuracy=None):
        self.records = list(records)
        self.class_records = None if class_records is None else list(class_records)
        self.seen_accuracy = None if seen_accuracy is None else dict(seen_accuracy)
        self.estimators = dict(estimators or {})
        self.metric = metric
        self.reference = reference
        self.months = list(months)
        self.strategies = list(dict.fromkeys(row["strategy"] for row in self.records))
        self.summary = self._summarize()

    def __repr__(self):
        return (f"{type(self).__name__}(strategies={self.strategies!r}, "
                f"months={len(self.months)}, metric={self.metric!r}, "
                f"reference={self.reference!r})")

    def matrix(self, strategy):
        """Return one strategy's scores as a (training month x evaluated month) array.

        Parameters
        ----------
        strategy : str
            A name from ``strategies``.

        Returns
        -------
        scores : ndarray of shape (n_months, n_months)
            ``scores[i, j]``: the score on month ``j``'s test part of the model
            trained up to month ``i`` (both in ``months`` order).
        """
        if strategy not in self.strategies:
            raise KeyError(
                f"no strategy {strategy!r} in this result; choose from {self.strategies!r}"
            )
        position = {month: index for index, month in enumerate(self.months)}
        scores = np.full((len(self.months), len(self.months)), np.nan)
        for row in self.records:
            if row["strategy"] == strategy:
                scores[row["n_months_trained"] - 1, position[row["eval_month"]]] = row["score"]
        return scores

    def to_frame(self):
        """Return ``records`` as a pandas DataFrame (needs pandas).

        Returns
        -------
        frame : pandas.DataFrame
            One row per record, with the columns of ``records`` in their
            documented order.
        """
        return _frame(self.records, RECORD_COLUMNS)

    def summary_frame(self):
        """Return ``summary`` as a pandas DataFrame indexed by strategy (needs pandas).

        Returns
        -------
        frame : pandas.DataFrame
            One row per strategy, in the order given, indexed by ``strategy``;
            the other columns of ``summary`` in their documented order (the
            class-incremental ones last, without ``class_forgetting``).
        """
        columns = SUMMARY_COLUMNS
        if self.seen_accuracy is not None:   # the class-incremental scores too
            columns += CLASS_SUMMARY_KEYS[:-1]
        return _frame(self.summary, columns).set_index("strategy")

    def to_csv(self, path):
        """Write ``records`` to a CSV file (no pandas needed).

        Parameters
        ----------
        path : str or path-like
            File to write (UTF-8, overwritten if it exists): a header row, then
            one row per record, with the columns of ``records`` in order.
        """
        with open(path, "w", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=RECORD_COLUMNS)
            writer.writeheader()
            writer.writerows(self.records)

    def format_summary(self, sort_by="mean_score"):
        """Return the summary as an aligned text table, best first.

        Parameters
        ----------
        sort_by : str, default="mean_score"
            A numeric summary column; rows are sorted by it, highest first.

        Returns
        -------
        table : str
            A header, one line per strategy (mean, worst and first-month
            scores, forgetting, last-month and next-month scores, gap to the
            reference, rows through forward+backward, relative cost, seconds),
            and a note naming the metric and the reference.
        """
        if sort_by not in SUMMARY_COLUMNS or sort_by in ("strategy", "worst_month"):
            raise ValueError(
                f"sort_by={sort_by!r} is not a numeric summary column; choose from "
                f"{[c for c in SUMMARY_COLUMNS if c not in ('strategy', 'worst_month')]!r}"
            )
        rows = sorted(self.summary, key=lambda row: _sort_key(row[sort_by]), reverse=True)
        header = ["strategy", "mean", "worst (month)", "first month", "forgot",
                  "last month", "next month", "gap", "train rows", "cost", "seconds"]
        lines = [header]
        for row in rows:
            lines.append([
                row["strategy"], f"{row['mean_score']:.4f}",
                f"{row['worst_score']:.4f} ({row['worst_month']})",
                f"{row['first_month_score']:.4f}", f"{row['first_month_forgetting']:+.4f}",
                f"{row['last_month_score']:.4f}", _score(row["next_month_score"]),
                _signed(row["gap_to_reference"]),
                f"{row['train_rows']:,}", _ratio(row["relative_cost"]),
                f"{row['fit_seconds']:.1f}",
            ])
        text = text_table(lines)
        note = (f"metric: {self.metric}; scores of each final model on every month's "
                "test part")
        if self.reference is not None:
            note += (f"; gap and cost relative to {self.reference!r} "
                     "(cost = rows through forward+backward / reference's)")
        return "\n".join(text + [note])

    def _summarize(self):
        by_reference = None
        summary = []
        for strategy in self.strategies:
            scores = self.matrix(strategy)
            final = scores[-1]
            worst = int(np.nanargmin(final))
            last_rows = [row for row in self.records
                         if row["strategy"] == strategy
                         and row["n_months_trained"] == len(self.months)]
            summary.append({
                "strategy": strategy,
                "mean_score": float(np.nanmean(final)),
                "worst_score": float(final[worst]),
                "worst_month": self.months[worst],
                "first_month_score": float(final[0]),
                "first_month_forgetting": float(scores[0, 0] - final[0]),
                "last_month_score": float(final[-1]),
                "next_month_score": (_next_month(scores) if len(self.months) > 1
                                     else None),
                "gap_to_reference": None,
                "samples_processed": int(last_rows[0]["samples_processed"]),
                # records written before these columns existed: the optimizer's rows
                "train_rows": int(last_rows[0].get("train_rows",
                                                   last_rows[0]["samples_processed"])),
                "forward_rows": int(last_rows[0].get("forward_rows", 0)),
                "relative_cost": None,
                "fit_seconds": float(last_rows[0]["fit_seconds"]),
                "relative_time": None,
            })
            if self.seen_accuracy is not None and strategy in self.seen_accuracy:
                summary[-1].update(class_summary(
                    [row for row in self.class_records if row["strategy"] == strategy],
                    self.seen_accuracy[strategy]))
            if strategy == self.reference:
                by_reference = summary[-1]
        if by_reference is not None:
            for row in summary:
                row["gap_to_reference"] = row["mean_score"] - by_reference["mean_score"]
                row["relative_cost"] = _divide(row["train_rows"],
                                               by_reference["train_rows"])
                row["relative_time"] = _divide(row["fit_seconds"],
                                               by_reference["fit_seconds"])
        return summary


# ----------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------
def _check_strategies(strategies):
    if isinstance(strategies, dict):
        named = list(strategies.items())
    else:
        try:
            named = [tuple(item) for item in strategies]
        except TypeError:
            named = None
        if named is None or any(len(item) != 2 for item in named):
            raise TypeError(
                f"strategies must be a dict or a list of (name, estimator) pairs, got "
                f"{strategies!r}"
            )
    if not named:
        raise ValueError("strategies is empty; pass at least one (name, estimator)")
    names = [name for name, _ in named]
    for name, estimator in named:
        if not isinstance(name, str) or not name:
            raise TypeError(f"strategy names must be non-empty strings, got {name!r}")
        if not hasattr(estimator, "partial_fit"):
            raise TypeError(
                f"strategy {name!r} is {estimator!r}, which has no partial_fit; pass an "
                "incremental estimator such as skcl.ContinualClassifier"
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"strategy names must be unique; {duplicates!r} repeat")
    return named


def _check_reference(reference, names):
    if reference is None:
        return None
    if reference in names:
        return reference
    if reference == "retrain":  # the default: optional
        return None
    raise ValueError(
        f"reference={reference!r} is not one of the strategies {names!r}; pass one of "
        "them or reference=None"
    )


def _check_metric(metric):
    if callable(metric):
        return metric
    if isinstance(metric, str):
        try:
            return get_metric_scorer(metric)  # sklearn's names and 'tpr_at_fpr=...'
        except ValueError:
            if metric.startswith("tpr_at_fpr"):
                raise
    raise ValueError(
        f"metric={metric!r} is not a scikit-learn scorer name; use e.g. 'accuracy', "
        "'roc_auc' (sklearn.metrics.get_scorer_names() lists all) or "
        "'tpr_at_fpr=0.001@malicious', or pass a callable scorer(estimator, X, y)"
    )


def _split_months(y, months, month_order, test_size, random_state):
    rng = check_random_state(random_state)
    splits = []
    for month in month_order:
        rows = np.flatnonzero(months == month)
        labels, counts = np.unique(y[rows], return_counts=True)
        n_test = math.ceil(test_size * len(rows))
        if counts.min() < 2 or n_test < len(labels) or len(rows) - n_test < len(labels):
            raise ValueError(
                f"month {plain(month)!r} has {len(rows)} rows with label counts "
                f"{dict(zip(plain_list(labels), counts.tolist()))!r}, too few for a "
                f"stratified hold-out of test_size={test_size!r}; every label needs at "
                "least 2 rows per month: merge or drop the month"
            )
        train, test = train_test_split(rows, test_size=test_size, stratify=y[rows],
                                       random_state=rng)
        splits.append((np.sort(train), np.sort(test)))
    return splits


class _SampleCounter:
    """Cumulative training rows of an estimator, after each of its ``partial_fit``.

    An estimator that counts its own rows says so: ``n_samples_processed_`` (a
    ``ContinualClassifier``), summed over the members of ``estimators_`` (model
    averaging). Any other skorch net is counted from ``history_``, where skorch
    records each training batch's size: the epochs added since the previous
    call are summed, so a history that keeps per-batch records of its latest
    epochs only is still counted whole. Other estimators give ``None``.
    """

    def __init__(self):
        self.total = 0
        self.epochs_counted = {}

    def update(self, estimator):
        """Add the epochs trained since the last call; None if nothing is known."""
        processed = _counted(estimator, "n_samples_processed_")
        if processed is not None:
            return processed
        nets = list(self._nets(estimator, ()))
        if not nets:
            return None
        for path, history in nets:
            counted = self.epochs_counted.get(path, 0)
            if len(history) < counted:  # a fresh history: count it from the start
                counted = 0
            for epoch in history[counted:]:
                self.total += sum(batch.get("train_batch_size", 0)
                                  for batch in epoch["batches"])
            self.epochs_counted[path] = len(history)
        return self.total

    def _nets(self, estimator, path):
        history = getattr(estimator, "history_", None)
        if history is not None:
            yield path, history
            return
        members = getattr(estimator, "estimators_", None)
        if isinstance(members, (list, tuple)):
            for index, member in enumerate(members):
                yield from self._nets(member, path + (index,))


def _counted(estimator, name):
    """A ContinualClassifier's cost counter ``name``, or summed over members; else None."""
    if hasattr(estimator, name):
        return int(getattr(estimator, name))
    members = getattr(estimator, "estimators_", None)
    if isinstance(members, (list, tuple)) and members:
        counts = [_counted(member, name) for member in members]
        if all(count is not None for count in counts):
            return sum(counts)
    return None


def _month_kwarg(estimator):
    """``partial_fit``'s month keyword, for estimators that take one."""
    try:
        parameters = inspect.signature(estimator.partial_fit).parameters.values()
    except (TypeError, ValueError):
        parameters = ()
    if any(p.name == "month" or p.kind is p.VAR_KEYWORD for p in parameters):
        return lambda month: {"month": month}
    return lambda month: {}


def _divide(numerator, denominator):
    return None if not denominator else numerator / denominator


def _sort_key(value):
    return -math.inf if value is None or value != value else value


def _next_month(scores):
    """The deployed model's score, or None where no next month has a score."""
    try:
        return next_month_score(scores)
    except ValueError:
        return None


def _score(value):
    return "" if value is None else f"{value:.4f}"


def _signed(value):
    return "" if value is None else f"{value:+.4f}"


def _ratio(value):
    return "" if value is None else f"{value:.2f}x"


def _frame(rows, columns):
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(
            "converting to a DataFrame needs pandas, which skcl does not require; "
            "pip install pandas, or use the .records / .summary lists"
        ) from exc
    return pd.DataFrame(list(rows), columns=list(columns))


class _Progress:
    """Progress over strategies and months, on stderr.

    On a terminal: a tqdm bar updated every month (one plain line per month
    without tqdm). Otherwise (a log file, a CI job): one line per finished
    strategy, instead of a carriage-return refresh per month that a log keeps
    in full.
    """

    def __init__(self, total, enabled, stream=None):
        self.total = total
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.interactive = getattr(self.stream, "isatty", lambda: False)()
        self.count = 0
        self.label = ""
        self.bar = None
        if enabled and self.interactive:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, unit="month", dynamic_ncols=True,
                                file=self.stream)

    def describe(self, label):
        self.label = label
        if self.bar is not None:
            self.bar.set_description(label)

    def update(self):
        self.count += 1
        if self.bar is not None:
            self.bar.update()
        elif self.enabled and self.interactive:
            print(f"[{self.count}/{self.total}] {self.label}", file=self.stream, flush=True)

    def finish_strategy(self, name, seconds):
        """Report a finished strategy: one line when stderr is not a terminal."""
        if self.enabled and not self.interactive:
            print(f"[{self.count}/{self.total}] {name}: done in {seconds:.1f} s",
                  file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()

"""Class-incremental scores of :func:`~skcl.evaluate_stream` (``class_incremental=True``).

When every month may bring classes never seen before (new malware families),
the usual scores of the class-incremental literature complement the
per-month matrix:

* **seen accuracy** after month ``t``: accuracy on the held-out rows of months
  ``1 .. t``, whose labels are the classes seen so far;
* **average incremental accuracy** (Rebuffi et al., 2017, iCaRL): the mean of
  the seen accuracy over the months;
* **per-class accuracy** after each month, for every class seen so far: the
  recall of that class on its held-out rows of the whole stream (a fixed set
  per class, so its changes measure learning and forgetting, not a changing
  test set);
* **forgetting per class** (Chaudhry et al., 2018, after the last month): the
  best per-class accuracy the class reached before the last month minus its
  final one; the mean over classes seen before the last month summarizes it.

All are accuracies of ``predict`` (whatever the ``metric`` of the per-month
matrix), because they are about which class a row is given.
"""

import numpy as np

from .utils._arrays import plain

#: Columns of ``StreamEvaluation.class_records``, in order.
CLASS_RECORD_COLUMNS = ("strategy", "n_months_trained", "train_month", "class",
                        "class_accuracy", "n_test_rows")

#: Summary keys added under ``class_incremental=True``.
CLASS_SUMMARY_KEYS = ("average_incremental_accuracy", "final_seen_accuracy",
                      "mean_class_forgetting", "max_class_forgetting", "class_forgetting")


class ClassIncrementalTracker:
    """Score one strategy after each month on the pooled held-out rows.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Labels of the stream.
    splits : list of (train_rows, test_rows)
        Per month, in stream order.
    """

    def __init__(self, y, splits):
        self.test_rows = np.concatenate([test for _, test in splits])
        self.test_month = np.concatenate([np.full(len(test), position)
                                          for position, (_, test) in enumerate(splits)])
        self.y_test = y[self.test_rows]
        self.y = y
        self.splits = splits
        self.seen = np.array([], dtype=y.dtype)

    def records(self, estimator, X_test, name, step, month):
        """Per-class rows and the seen accuracy after training month ``step``.

        Parameters
        ----------
        estimator : classifier
            The model after month ``step`` (1-based).
        X_test : array-like
            The features of ``test_rows``, in that order.
        name : str
            The strategy's name.
        step : int
            Months trained (1 for the first).
        month : object
            The month just trained.

        Returns
        -------
        seen_accuracy : float
            Accuracy on the held-out rows of months ``1 .. step``.
        rows : list of dict
            One per class seen so far (columns ``CLASS_RECORD_COLUMNS``).
        """
        train_rows = self.splits[step - 1][0]
        self.seen = np.union1d(self.seen, np.unique(self.y[train_rows]))
        y_pred = np.asarray(estimator.predict(X_test))
        correct = y_pred == self.y_test
        seen_accuracy = float(correct[self.test_month < step].mean())
        rows = []
        for label in self.seen:
            mask = self.y_test == label
            if not mask.any():
                continue
            rows.append({
                "strategy": name, "n_months_trained": step, "train_month": month,
                "class": plain(label), "class_accuracy": float(correct[mask].mean()),
                "n_test_rows": int(mask.sum()),
            })
        return seen_accuracy, rows


def class_summary(class_records, seen_accuracies):
    """The class-incremental summary of one strategy.

    Parameters
    ----------
    class_records : list of dict
        The strategy's per-class rows, every month.
    seen_accuracies : list of float
        Its seen accuracy after each month, in order.

    Returns
    -------
    summary : dict
        ``average_incremental_accuracy``, ``final_seen_accuracy``,
        ``mean_class_forgetting`` and ``max_class_forgetting`` (``None`` when
        no class was seen before the last month), and ``class_forgetting``
        ({class: forgetting}, for classes seen before the last month).
    """
    last = max(row["n_months_trained"] for row in class_records)
    history = {}
    for row in class_records:
        history.setdefault(row["class"], {})[row["n_months_trained"]] = row["class_accuracy"]
    forgetting = {}
    for label, by_step in history.items():
        earlier = [score for step, score in by_step.items() if step < last]
        if earlier and last in by_step:
            forgetting[label] = float(max(earlier) - by_step[last])
    values = list(forgetting.values())
    return {
        "average_incremental_accuracy": float(np.mean(seen_accuracies)),
        "final_seen_accuracy": float(seen_accuracies[-1]),
        "mean_class_forgetting": float(np.mean(values)) if values else None,
        "max_class_forgetting": float(np.max(values)) if values else None,
        "class_forgetting": forgetting,
    }

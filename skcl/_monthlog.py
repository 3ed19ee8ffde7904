"""The one line a month logs at ``verbose >= 1``: what a monthly job's log should say.

skorch prints one line per epoch; a job that runs every month needs one line
per month that a person reading the log next month understands: which month,
how many new rows, how many rows replayed from the past, how many epochs, the
final training loss and the time it took.
"""

import time

__all__ = ["MonthLog"]


class MonthLog:
    """Measure one month of a :class:`~skcl.ContinualClassifier` and print its line.

    Created by :meth:`start` before the month's data is set up (retraining
    appends the month to its history there), closed by :meth:`finish` after
    the strategies' end-of-month updates.
    """

    def __init__(self, net):
        self.start_time = time.perf_counter()
        self.processed = net.n_samples_processed_
        self.first_epoch = len(net.history_) if net.__dict__.get("history_") else 0
        past = net.__dict__.get("past_data_")
        self.n_past = len(past) if past is not None else 0
        buffer = net.__dict__.get("rehearsal_")
        # a buffer replays from the month after it first holds rows
        self.buffer_has_rows = buffer is not None and "y_" in buffer.__dict__

    @classmethod
    def start(cls, net):
        """Start measuring a month (``None`` when ``net.verbose`` is 0)."""
        return cls(net) if net.verbose else None

    def finish(self, net, month, n_rows, n_train):
        """Print the month's line through skorch's sink (``print``)."""
        epochs = len(net.history_) - self.first_epoch
        processed = net.n_samples_processed_ - self.processed
        replayed = _replayed_rows(net, n_rows, n_train, epochs, processed, self.n_past,
                                  self.buffer_has_rows)
        loss = net.history_[-1].get("train_loss") if epochs else None
        loss_text = "n/a" if loss is None else f"{loss:.4f}"
        print(f"month {month!s}: {n_rows:,} rows, {replayed:,} replayed, {epochs} "
              f"epoch{'' if epochs == 1 else 's'}, "
              f"train_loss {loss_text}, {time.perf_counter() - self.start_time:.1f} s",
              flush=True)


def _replayed_rows(net, n_rows, n_train, epochs, processed, n_past, buffer_has_rows):
    """Rows drawn from the past over the month's epochs.

    Retraining revisits every past row each epoch; a rehearsal buffer adds or
    swaps in its draws (its ``replay_ratio`` and ``epoch_size`` arithmetic,
    from the first month it holds rows); other strategies replay none
    (A-GEM's and DER++'s memory batches are drawn per step, beside the rows).
    """
    if n_past:
        return max(0, processed - n_rows * epochs)
    buffer = net.__dict__.get("rehearsal_")
    ratio = getattr(buffer, "replay_ratio", 0)
    if not buffer_has_rows or not ratio:
        return 0
    if getattr(buffer, "epoch_size", "fixed") == "fixed":
        per_epoch = int(round(ratio * n_train))
    else:
        per_epoch = int(round(n_train * ratio / (1 - ratio)))
    return per_epoch * epochs

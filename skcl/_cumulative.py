"""Training on the kept history: which rows an epoch of ``update="cumulative"`` sees.

Under ``update="retrain"`` and ``update="cumulative"`` the classifier keeps
every past training row once, in ``past_data_`` (a :class:`~skcl.RowStore`).
With ``history_fraction=1`` an epoch iterates over all of it; with a smaller
fraction each epoch iterates over the current month in full plus a fresh
uniform sample of that share of the earlier months' rows, so the cost of an
epoch is ``n_month + history_fraction * n_past`` rows: the budget knob.
"""

import numpy as np
import torch

from ._batching import RowsDataset

__all__ = ["HISTORY_UPDATES", "SampledRows", "epoch_history_rows", "history_epoch_dataset"]

#: ``update`` values that keep every past row in ``past_data_``.
HISTORY_UPDATES = ("retrain", "cumulative")


class SampledRows(RowsDataset):
    """The rows ``index`` of a :class:`~skcl.RowStore`, gathered batch by batch.

    A :class:`~skcl._batching.RowsDataset` restricted to some positions of the
    store: the iterator gathers batches through :meth:`take`, so nothing is
    copied ahead of time.
    """

    def __init__(self, store, index, device="cpu"):
        super().__init__(store, device=device)
        self.index = np.asarray(index, dtype=np.intp)

    def __len__(self):
        return len(self.index)

    def take(self, index):
        return super().take(self.index[np.asarray(index, dtype=np.intp)])

    def rows(self, rows):
        return self.take(np.arange(len(self))[rows])


def history_epoch_dataset(dataset, store, n_month_rows, fraction, generator):
    """The dataset one epoch trains on: the month plus a share of the past rows.

    Parameters
    ----------
    dataset : RowsDataset
        The whole history (what the classifier passes to the fit loop).
    store : RowStore
        ``past_data_``; its last ``n_month_rows`` rows are the current month.
    n_month_rows : int
        Rows of the current month.
    fraction : float in [0, 1]
        Share of the earlier months' rows drawn for this epoch (without
        replacement); ``1`` returns ``dataset`` itself, ``0`` the month alone.
    generator : torch.Generator
        The month's generator: the draw is reproducible with ``random_state``.

    Returns
    -------
    dataset : RowsDataset
        ``dataset``, or a :class:`SampledRows` of ``round(fraction * n_past)``
        past rows and every row of the month.
    """
    n_past = len(store) - n_month_rows
    if fraction >= 1 or n_past == 0:
        return dataset
    n_drawn = int(round(fraction * n_past))
    drawn = torch.randperm(n_past, generator=generator)[:n_drawn].numpy()
    index = np.concatenate([np.sort(drawn), np.arange(n_past, len(store))])
    return SampledRows(store, index, device=dataset.device)


def epoch_history_rows(net, dataset):
    """What an epoch of ``net`` iterates over, given the month's training ``dataset``.

    Under ``update="retrain"`` / ``"cumulative"`` with ``history_fraction < 1``
    (``finish_history_fraction``, when set, in the finishing epochs), when
    ``dataset`` is the whole history in ``past_data_``, a fresh draw of
    :func:`history_epoch_dataset`; otherwise ``dataset`` itself.
    """
    store = net.__dict__.get("past_data_")
    month = net.__dict__.get("_month")
    fraction = net.history_fraction
    if month is not None and month.finishing and net.finish_history_fraction is not None:
        fraction = net.finish_history_fraction
    if (store is None or month is None or fraction >= 1
            or not isinstance(dataset, RowsDataset) or dataset.X is not store):
        return dataset
    n_month_rows = store.chunks()[-1][0].shape[0]
    return history_epoch_dataset(dataset, store, n_month_rows, fraction, month.generator)

"""A skorch-compatible iterator that batches tensors by slicing on the device.

skorch's default ``DataLoader`` fetches and collates samples one by one, which on
tabular data costs more than the forward and backward passes. When the dataset
holds plain tensors (the case ``ContinualClassifier`` arranges), a batch is one
index into tensors already on the device.
"""

import math

import torch
from skorch.dataset import Dataset
from torch.utils.data import DataLoader, Subset

__all__ = ["DeviceBatchIterator", "dataset_tensors"]

# Bytes of shuffled rows gathered in one indexing op (see DeviceBatchIterator):
# enough to spare a GPU most per-batch launches, small enough that on a CPU the
# chunk is still in cache when its batches are read (8 MiB measured ~0.5% slower
# per CPU epoch than per-batch indexing; 2 MiB on par).
_CHUNK_BYTES = 2 * 2**20


def dataset_tensors(dataset):
    """Return ``(X, y)`` tensors behind ``dataset``, or ``None`` if there are none.

    Handles skorch's ``Dataset`` holding tensors and a ``torch.utils.data.Subset``
    of one (what skorch's ``train_split`` returns).
    """
    indices = None
    if isinstance(dataset, Subset):
        indices = dataset.indices
        dataset = dataset.dataset
    if not isinstance(dataset, Dataset) or type(dataset).__getitem__ is not Dataset.__getitem__:
        return None
    X, y = dataset.X, dataset.y
    if not isinstance(X, torch.Tensor) or not (y is None or isinstance(y, torch.Tensor)):
        return None
    if indices is not None:
        index = torch.as_tensor(indices, device=X.device, dtype=torch.long)
        X = X.index_select(0, index)
        y = None if y is None else y.index_select(0, index.to(y.device))
    return X, y


class DeviceBatchIterator:
    """Iterate over mini-batches of in-memory tensors by slicing.

    Used as ``iterator_train`` / ``iterator_valid`` of
    :class:`~skcl.ContinualClassifier`. With a dataset of plain tensors, each
    epoch draws one permutation on the tensors' device (from torch's global
    generator, which the classifier seeds), gathers the permuted rows a few
    megabytes at a time and yields slices of them: no per-sample collation, no
    worker processes, no host-device copy and no indexing op per batch. The
    batches are exactly ``X[order[i:i + batch_size]]`` for the drawn ``order``.
    Any other dataset falls back to ``torch.utils.data.DataLoader`` with the
    same arguments.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        What skorch passes: a ``skorch.dataset.Dataset`` or a ``Subset`` of one.
    batch_size : int, default=128
        Rows per batch; the last batch may be smaller unless ``drop_last``.
    shuffle : bool, default=False
        Draw a fresh permutation at each pass.
    drop_last : bool, default=False
        Drop the last, incomplete batch.
    generator : torch.Generator or None, default=None
        Source of the shuffling permutations (a CPU generator; the permutation
        is moved to the data's device). ``None`` draws from torch's global
        generator. The classifier passes its own, seeded per month.
    **dataloader_kwargs
        Passed on to ``DataLoader`` on the fallback path (``num_workers``, ...).
    """

    def __init__(self, dataset, batch_size=128, shuffle=False, drop_last=False,
                 generator=None, **dataloader_kwargs):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator
        self.dataloader_kwargs = dataloader_kwargs
        self._tensors = None if dataloader_kwargs else dataset_tensors(dataset)

    def __len__(self):
        n_rows = len(self.dataset)
        if self.drop_last:
            return n_rows // self.batch_size
        return math.ceil(n_rows / self.batch_size)

    def __iter__(self):
        if self._tensors is None:
            yield from DataLoader(
                self.dataset, batch_size=self.batch_size, shuffle=self.shuffle,
                drop_last=self.drop_last, generator=self.generator,
                **self.dataloader_kwargs,
            )
            return
        X, y = self._tensors
        n_rows = X.shape[0]
        stop = n_rows - n_rows % self.batch_size if self.drop_last else n_rows
        if not self.shuffle:
            for start in range(0, stop, self.batch_size):
                end = start + self.batch_size
                yield X[start:end], (None if y is None else y[start:end])
            return
        if self.generator is None:
            order = torch.randperm(n_rows, device=X.device)
        else:
            order = torch.randperm(n_rows, generator=self.generator).to(X.device)
        # Rows are gathered a chunk of whole batches at a time and batches are
        # views of the chunk: two indexing ops per chunk instead of per batch
        # (on a GPU each op is a kernel launch that costs more than a small
        # batch's arithmetic), for at most one chunk of extra memory.
        chunk_rows = self._chunk_rows(X, y)
        for chunk_start in range(0, stop, chunk_rows):
            index = order[chunk_start:min(chunk_start + chunk_rows, stop)]
            X_chunk = X[index]
            y_chunk = None if y is None else y[index]
            for start in range(0, index.shape[0], self.batch_size):
                end = start + self.batch_size
                yield X_chunk[start:end], (None if y is None else y_chunk[start:end])

    def _chunk_rows(self, X, y):
        """Rows gathered at once: whole batches, about ``_CHUNK_BYTES`` in all."""
        row_bytes = X[:1].numel() * X.element_size()
        if y is not None:
            row_bytes += y[:1].numel() * y.element_size()
        n_batches = max(1, _CHUNK_BYTES // max(row_bytes * self.batch_size, 1))
        return n_batches * self.batch_size

"""A skorch-compatible iterator that batches tensors by slicing on the device.

skorch's default ``DataLoader`` fetches and collates samples one by one, which on
tabular data costs more than the forward and backward passes. When the dataset
holds plain tensors (the case ``ContinualClassifier`` arranges), a batch is one
index into tensors already on the device. When it holds host rows (a
:class:`RowsDataset`: sparse rows, or a history kept in a
:class:`~skcl.RowStore`), rows are gathered a few megabytes at a time on the
host and sent to the device as they are needed.
"""

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from skorch.dataset import Dataset
from torch.utils.data import DataLoader, Subset

from ._sparse import to_torch_csr
from .storage import RowStore

__all__ = ["DeviceBatchIterator", "RowsDataset", "dataset_tensors", "shared_tensor"]

# Bytes of shuffled rows gathered in one indexing op (see DeviceBatchIterator):
# enough to spare a GPU most per-batch launches, small enough that on a CPU the
# chunk is still in cache when its batches are read (8 MiB measured ~0.5% slower
# per CPU epoch than per-batch indexing; 2 MiB on par).
_CHUNK_BYTES = 2 * 2**20


def shared_tensor(array, device=None):
    """``array`` as a tensor sharing its memory on CPU (read-only arrays included)."""
    with warnings.catch_warnings():
        # torch warns about read-only arrays; stored chunks are, and nothing
        # writes through the training tensors
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.as_tensor(np.asarray(array))
    return tensor if device is None else tensor.to(device)


def dataset_tensors(dataset):
    """Return ``(X, y)`` tensors behind ``dataset``, or ``None`` if there are none.

    Handles skorch's ``Dataset`` holding tensors and a ``torch.utils.data.Subset``
    of one (what skorch's ``train_split`` returns).
    """
    indices = None
    if isinstance(dataset, RowsDataset):
        return None
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
    With a :class:`RowsDataset` (host rows: sparse, or a history in a
    :class:`~skcl.RowStore`), the permutation is drawn on the CPU and the
    permuted rows are gathered on the host a few megabytes at a time and sent
    to the dataset's device: dense rows as one tensor per chunk (no copy on
    CPU; on CUDA through a pinned staging buffer, copied asynchronously so the
    next chunk is gathered while the device computes), sparse rows as one
    ``torch.sparse_csr`` tensor per batch. Any other dataset falls back to
    ``torch.utils.data.DataLoader`` with the same arguments.

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
        self._host_rows = isinstance(dataset, RowsDataset) and not dataloader_kwargs
        if isinstance(dataset, RowsDataset) and dataset.sparse and dataloader_kwargs:
            raise TypeError(
                f"sparse rows cannot go through a DataLoader (got "
                f"{sorted(dataloader_kwargs)}); drop the iterator_*__ DataLoader "
                "arguments so DeviceBatchIterator batches them"
            )

    def __len__(self):
        n_rows = len(self.dataset)
        if self.drop_last:
            return n_rows // self.batch_size
        return math.ceil(n_rows / self.batch_size)

    def __iter__(self):
        if self._host_rows:
            yield from self._host_batches()
            return
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

    def _host_batches(self):
        dataset = self.dataset
        n_rows = len(dataset)
        stop = n_rows - n_rows % self.batch_size if self.drop_last else n_rows
        order = None
        if self.shuffle:
            order = torch.randperm(n_rows, generator=self.generator).numpy()
        n_batches = max(1, _CHUNK_BYTES // max(dataset.row_bytes * self.batch_size, 1))
        chunk_rows = n_batches * self.batch_size
        stager = _PinnedStager(dataset.device)
        for chunk_start in range(0, stop, chunk_rows):
            chunk_stop = min(chunk_start + chunk_rows, stop)
            if order is None:
                X_host, y_host = dataset.rows(slice(chunk_start, chunk_stop))
            else:
                X_host, y_host = dataset.take(order[chunk_start:chunk_stop])
            y_chunk = None if y_host is None else torch.as_tensor(y_host).to(
                dataset.device)
            if dataset.sparse:
                for start in range(0, X_host.shape[0], self.batch_size):
                    end = start + self.batch_size
                    yield (to_torch_csr(X_host[start:end], dataset.device),
                           None if y_chunk is None else y_chunk[start:end])
                continue
            X_chunk = stager.to_device(X_host)
            for start in range(0, X_chunk.shape[0], self.batch_size):
                end = start + self.batch_size
                yield X_chunk[start:end], (None if y_chunk is None else y_chunk[start:end])


class RowsDataset(torch.utils.data.Dataset):
    """Rows held on the host, sent to ``device`` a chunk at a time by the iterator.

    What :class:`~skcl.ContinualClassifier` trains and predicts on when the
    rows are sparse, or when they are a history kept in a
    :class:`~skcl.RowStore`: nothing is copied to the device or densified
    ahead of time. :class:`DeviceBatchIterator` gathers batches from it; a
    module then receives each batch as a float32 tensor on ``device``, dense
    (``torch.strided``) for dense rows and of layout ``torch.sparse_csr`` for
    sparse rows (which ``torch.nn.Linear`` and ``torch.sparse.mm`` accept).

    Parameters
    ----------
    X : ndarray, scipy.sparse.csr_matrix or RowStore
        The rows. A ``RowStore`` supplies its own labels when ``y`` is None.
    y : ndarray of shape (n_samples,) or None, default=None
        Encoded labels (int64), or ``None`` for prediction.
    device : str or torch.device, default="cpu"
        Where batches are sent.
    """

    def __init__(self, X, y=None, device="cpu"):
        self.X = X
        self.y = None if y is None else np.asarray(y)
        self.device = torch.device("cpu" if device is None else device)
        if isinstance(X, RowStore):
            self.sparse = bool(X.__dict__.get("sparse_", False))
            n_features = X.__dict__.get("n_features_in_", 0)
            if self.y is None and X.has_labels:
                self.y = "store"
            self.row_bytes = _row_bytes(X, n_features)
        else:
            self.sparse = sp.issparse(X)
            self.row_bytes = _row_bytes(X, X.shape[1])

    def __len__(self):
        return len(self.X) if isinstance(self.X, RowStore) else self.X.shape[0]

    def take(self, index):
        """Rows ``index`` on the host: ``(X, y)`` as float32 ndarray/CSR and int64."""
        if isinstance(self.X, RowStore):
            X, y_store = self.X.take(index)
            y = y_store if isinstance(self.y, str) else (
                None if self.y is None else self.y[index])
        else:
            X, y = self.X[index], None if self.y is None else self.y[index]
        return self._host(X, y)

    def rows(self, rows):
        """Rows of the slice ``rows`` on the host (views where possible)."""
        if isinstance(self.X, RowStore):
            return self.take(np.arange(len(self))[rows])
        return self._host(self.X[rows], None if self.y is None else self.y[rows])

    def __getitem__(self, i):
        if self.sparse:
            raise TypeError(
                "sparse rows are batched by DeviceBatchIterator, not fetched one by "
                "one; use the default iterator_train / iterator_valid"
            )
        X, y = self.take(np.array([i]))
        return torch.from_numpy(X[0]), (None if y is None else int(y[0]))

    @staticmethod
    def _host(X, y):
        if sp.issparse(X):
            if X.dtype != np.float32:
                X = X.astype(np.float32)
        else:
            X = np.ascontiguousarray(X, dtype=np.float32)
        if y is not None:
            y = np.asarray(y, dtype=np.int64)
        return X, y


def _row_bytes(X, n_features):
    """Host bytes of an average row (non-zeros for sparse rows)."""
    n_rows = len(X) if isinstance(X, RowStore) else X.shape[0]
    if isinstance(X, RowStore):
        return max(1, X.nbytes // max(n_rows, 1))
    if sp.issparse(X):
        return max(1, 8 * X.nnz // max(n_rows, 1))
    return max(1, n_features * 4)


class _PinnedStager:
    """Dense host chunks to the device; on CUDA through two pinned buffers.

    A chunk is copied into page-locked memory and sent with
    ``non_blocking=True``, so the host gathers the next chunk while the copy
    and the batches' compute proceed; a buffer is reused only after its
    previous copy has completed (one CUDA event per buffer).
    """

    def __init__(self, device):
        self.device = device
        self.cuda = device.type == "cuda"
        self.buffers = [None, None]
        self.events = [None, None]
        self.turn = 0

    def to_device(self, X_host):
        X = shared_tensor(X_host)
        if not self.cuda:
            return X.to(self.device)
        slot, self.turn = self.turn, 1 - self.turn
        if self.events[slot] is not None:
            self.events[slot].synchronize()
        buffer = self.buffers[slot]
        if buffer is None or buffer.numel() < X.numel():
            buffer = self.buffers[slot] = torch.empty(
                X.numel(), dtype=X.dtype).pin_memory()
        staged = buffer[:X.numel()].view(X.shape)
        staged.copy_(X)
        X_device = staged.to(self.device, non_blocking=True)
        self.events[slot] = torch.cuda.Event()
        self.events[slot].record()
        return X_device

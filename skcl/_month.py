"""One month of training as one object, and the one rule for where rows go.

A :class:`Month` is built once per month of a ``fit`` / ``partial_fit`` call,
from the validated host rows, and lives only during that month:
``ContinualClassifier._fit_month`` keeps it as ``_month`` while skorch's loop
runs (skorch's hooks take no month argument) and drops it at the end, whatever
happens. It holds everything the month's steps share: the label, the seed and
the generator drawn from it, the host rows and encoded labels, the device, what
the epochs iterate over, what the strategies receive, and the counters.

:func:`place_rows` is the single device-placement decision, used for the
month's training rows, for each epoch's rehearsal mix and for prediction's
rows. A dense float32 month on the CPU is used in place (shared, read-only:
nothing in training writes to its rows), never copied.
"""

import numpy as np
import torch
from skorch.dataset import Dataset
from torch.utils.data import Subset

from ._batching import RowsDataset, dataset_tensors, shared_tensor
from ._sparse import is_scipy_sparse, to_csr, to_torch_csr
from .storage import RowStore
from .utils._seeding import torch_generator

# Dense data larger than this share of the free CUDA memory stays on the host
# and is streamed to the device in chunks instead of copied whole.
DEVICE_BUDGET_FRACTION = 0.5
_NUMPY_DTYPES = {torch.float32: np.float32, torch.long: np.int64}


def fits_device(X, device):
    """Whether dense rows ``X`` fit the device's budget (always on CPU).

    On CUDA the budget is ``DEVICE_BUDGET_FRACTION`` of the free device
    memory; larger data stays on the host and is streamed in chunks through
    pinned buffers (see :class:`~skcl._batching.DeviceBatchIterator`).
    """
    device = torch.device(device) if device is not None else None
    if device is None or device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return X.shape[0] * X.shape[1] * 4 <= DEVICE_BUDGET_FRACTION * free


def device_tensor(array, device, dtype=torch.float32):
    """``array`` as a ``dtype`` tensor on ``device``: shared on the CPU when it can be.

    A CPU array already of ``dtype`` becomes a tensor over the same memory
    (read-only arrays included: training only reads its rows); anything else
    is one copy (a conversion, or the upload to the device).
    """
    array = np.asarray(array)
    device = torch.device("cpu" if device is None else device)
    if device.type == "cpu" and array.dtype == _NUMPY_DTYPES.get(dtype):
        return shared_tensor(array)
    return torch.tensor(array, dtype=dtype, device=device)


def place_rows(X, y=None, device="cpu"):
    """Put host rows where skorch's loop reads them; return ``(X, y)`` for it.

    Dense rows within the device's budget become tensors on ``device``
    (shared with ``X`` on the CPU when it is float32). Sparse rows, and dense
    rows beyond the budget, stay on the host as a
    :class:`~skcl._batching.RowsDataset` (and ``y`` is ``None``: the dataset
    holds the labels), whose batches go to ``device`` one chunk at a time.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix of shape (n_samples, n_features)
        Validated host rows.
    y : ndarray of shape (n_samples,) or None, default=None
        Encoded labels (int64), or ``None`` for prediction.
    device : str or torch.device, default="cpu"
        Where the rows are trained or predicted on.

    Returns
    -------
    X, y : torch.Tensor or RowsDataset, torch.Tensor or None
        What ``fit_loop`` / ``predict_proba`` take.
    """
    if is_scipy_sparse(X):
        return RowsDataset(to_csr(X), y, device=device), None
    if not fits_device(X, device):
        return RowsDataset(X, y, device=device), None
    return (device_tensor(X, device),
            None if y is None else device_tensor(y, device, dtype=torch.long))


def as_dataset(X, y):
    """What :func:`place_rows` returned, as one dataset (a ``RowsDataset`` as is)."""
    return X if isinstance(X, RowsDataset) else Dataset(X, y)


class Month:
    """One month of training, from the caller's rows to the optimizer.

    Parameters
    ----------
    label : hashable
        The month's label (recorded in ``months_``).
    seed : int
        The month's seed, drawn from the estimator's ``rng_``.
    X : ndarray or scipy.sparse matrix of shape (n_samples, n_features)
        The month's validated rows, on the host.
    y : ndarray of shape (n_samples,)
        Their encoded labels (indices into ``classes_``).
    device : str or torch.device
        Where the month trains.
    history : RowStore or None, default=None
        Under ``update="retrain"``: the store of every past row, the month
        appended last; the epochs then iterate over all of it.
    groups : array-like of shape (n_samples,) or None, default=None
        The rows' groups (e.g. malware families), for a buffer that reads them
        at the month's end.

    Attributes
    ----------
    X, y : host rows (float32 ndarray or CSR) and encoded labels (int64)
        The month as the strategies' host-side steps (the rehearsal mix, the
        buffer) read it: never fetched back from the device.
    generator : torch.Generator
        The month's shuffling generator, seeded with ``seed``.
    X_train, y_train
        What the epochs iterate over (see :func:`place_rows`).
    X_strategies, y_strategies : torch.Tensor
        The month as ``on_month_end`` gives it to the strategies: on
        ``device`` (the training tensors themselves for a dense month), of
        layout ``sparse_csr`` for a sparse one, on the host for a dense month
        beyond the device's budget.
    first_epoch : int
        Index in ``history_`` of the month's first epoch.
    n_batches : int
        Training batches run so far.
    finishing : bool
        Whether the finishing epochs (``finish_epochs``) are running.
    schedule : MonthSchedule or None
        The month's learning-rate schedule (``lr_schedule``), while it runs.
    """

    def __init__(self, label, seed, X, y, device, history=None, groups=None):
        self.label = label
        self.seed = seed
        self.groups = groups
        self.finishing = False
        self.schedule = None
        self.generator = torch_generator(seed)
        self.device = torch.device("cpu" if device is None else device)
        self.first_epoch = 0
        self.n_batches = 0
        if history is not None:
            # the month as the store holds it (a read-only chunk), gathered
            # batch by batch with every past row, never copied whole
            X, y = history.chunks()[-1]
            self.X_train, self.y_train = RowsDataset(history, device=self.device), None
        else:
            X = to_csr(X) if is_scipy_sparse(X) else np.ascontiguousarray(X, dtype=np.float32)
            self.X_train, self.y_train = place_rows(X, y, self.device)
        self.X, self.y = X, np.asarray(y, dtype=np.int64)
        if isinstance(self.X_train, torch.Tensor):
            self.X_strategies, self.y_strategies = self.X_train, self.y_train
        elif history is not None:
            # float32 as the training batches are (no copy when stored so):
            # strategies run the module on it (update="cumulative")
            self.X_strategies = (to_torch_csr(X, device=self.device) if is_scipy_sparse(X)
                                 else shared_tensor(X, device=self.device)).to(torch.float32)
            self.y_strategies = device_tensor(self.y, self.device, dtype=torch.long)
        else:
            # sparse rows: one sparse_csr tensor (non-zeros only); dense rows
            # beyond the budget stay on the host (the Fisher estimators move
            # them chunk by chunk)
            self.X_strategies = (to_torch_csr(X, device=self.device) if is_scipy_sparse(X)
                                 else shared_tensor(X))
            self.y_strategies = device_tensor(self.y, self.device, dtype=torch.long)


def host_rows_of(dataset, month=None):
    """The host rows ``(X, y)`` behind a training ``dataset``.

    ``dataset`` is what skorch built from ``month.X_train`` (or a
    ``train_split`` part of it), or a host-rows dataset; the rows then come
    from ``month.X`` / ``month.y`` (or the dataset's own host rows), never
    back from the device. Any other dataset (an override of ``get_dataset``,
    a ``fit_loop`` called outside a month) is read back from its tensors, or
    refused when it has none.
    """
    indices = None
    if isinstance(dataset, Subset):
        indices, dataset = np.asarray(dataset.indices), dataset.dataset
    if isinstance(dataset, RowsDataset) and not isinstance(dataset.X, RowStore):
        X, y = dataset.X, dataset.y
    elif (month is not None and isinstance(dataset, Dataset)
          and dataset.X is month.X_train):
        X, y = month.X, month.y
    else:
        tensors = dataset_tensors(dataset if indices is None else Subset(dataset, indices))
        if tensors is None:
            raise TypeError(
                "rehearsal needs in-memory training data, but skorch built a "
                f"{type(dataset).__name__}; pass numpy arrays or DataFrames"
            )
        return tuple(t.cpu().numpy() for t in tensors)
    return (X, y) if indices is None else (X[indices], y[indices])

"""Data-parallel training of ``ContinualClassifier`` on ``torch.distributed``.

The private half of :mod:`skcl.distributed`; the classifier calls the functions
below from short call sites, and each is a no-op unless the estimator has
``distributed=True`` and a process group is initialized.

How a month is split, and why this way: every rank is given the *same* month
(as with PyTorch's ``DistributedSampler``, every rank holds the dataset and
takes its share of the indices). The month's seed, hence the shuffle, the
rehearsal buffer's draws and the ``RowStore`` history, is rank 0's, so every
rank iterates over the same global batches of ``batch_size`` rows; each rank
runs forward and backward on its contiguous share of each batch, and one
all-reduce per step sums the gradients weighted by each share's size. The
summed gradient is then exactly the gradient of the single-process batch
(float summation order aside), so the optimizer steps, the strategies'
after-backward hooks (the fast penalty gradient, SI's path integral, A-GEM's
projection) and the recorded losses are those of one process with the same
global batch, and identical on every rank. The module is never wrapped (no
``DistributedDataParallel``): penalties, their fast paths, rollback and
persistence keep working on the plain module.
"""

import contextlib
import zlib

import numpy as np
import torch
from skorch.dataset import get_len, unpack_data

from ._sparse import is_scipy_sparse, torch_csr_rows
from .regularizers import MAS, DERpp
from .regularizers._ewc import _FisherRegularizer
from .utils._labels import encode_labels

__all__ = [
    "agree_month_end",
    "agree_on_month",
    "check_distributed",
    "data_parallel",
    "is_active",
    "run_on_main_process",
    "shard_bounds",
    "sharded_consolidation",
]

# the number of evenly spaced rows whose bytes fingerprint a month (the check
# that every rank was given the same month reads these, not the whole month)
_FINGERPRINT_ROWS = 64


class RankFailedError(RuntimeError):
    """Another rank failed; this rank rolled its call back too."""


def _dist():
    import torch.distributed as dist

    return dist


def is_active(estimator):
    """Whether ``estimator`` trains data-parallel now (``distributed=True``, group up)."""
    if not getattr(estimator, "distributed", False):
        return False
    dist = _dist()
    return dist.is_available() and dist.is_initialized()


def shard_bounds(n_rows, rank, world_size):
    """The contiguous share ``[start, stop)`` of ``n_rows`` rows that ``rank`` takes.

    Shares differ by at most one row; with fewer rows than ranks, the last
    ranks get empty shares.
    """
    return (n_rows * rank) // world_size, (n_rows * (rank + 1)) // world_size


def _comm_device():
    # NCCL reduces CUDA tensors only; gloo takes CPU tensors
    dist = _dist()
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ----------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------
def check_distributed(estimator):
    """Refuse ``distributed=True`` where it cannot train as documented (every call)."""
    if not getattr(estimator, "distributed", False):
        return
    dist = _dist()
    if not dist.is_available() or not dist.is_initialized():
        raise ValueError(
            "distributed=True needs an initialized torch.distributed process group, "
            "but none is; launch the script with torchrun (or accelerate launch) and "
            "call skcl.distributed.init_distributed() before fit, or pass "
            "distributed=False"
        )
    if estimator.step == "compiled":
        raise ValueError(
            "step='compiled' does not reduce gradients across ranks, so it cannot "
            "train with distributed=True; pass step='eager'"
        )
    device = torch.device(estimator.device) if estimator.device is not None else None
    if dist.get_backend() == "nccl" and (device is None or device.type != "cuda"):
        raise ValueError(
            f"the process group uses the nccl backend, which reduces CUDA tensors "
            f"only, but device={estimator.device!r}; pass the device returned by "
            "skcl.distributed.init_distributed(), or init the group with backend='gloo'"
        )
    if (dist.get_backend() == "nccl" and device.index is not None
            and device.index != torch.cuda.current_device()):
        raise ValueError(
            f"device={estimator.device!r} is not this rank's current CUDA device "
            f"(cuda:{torch.cuda.current_device()}), which nccl's collectives use; "
            "pass the device returned by skcl.distributed.init_distributed() (it sets "
            "the current device from LOCAL_RANK)"
        )
    regularizer = estimator.regularizer
    if (isinstance(regularizer, DERpp) and regularizer.batch_size is None
            and (regularizer.alpha or regularizer.beta)):
        raise ValueError(
            "DERpp(batch_size=None) replays as many rows as each rank's share of the "
            "batch, so its replay would differ from one process's; set "
            "DERpp(batch_size=...) (e.g. the classifier's batch_size) to train it "
            "with distributed=True"
        )


# ----------------------------------------------------------------------
# the start of a month: one seed, one month, one state
# ----------------------------------------------------------------------
def _fingerprint(X, y):
    """A cheap summary of a month: equal on every rank given the same month."""
    n_rows = X.shape[0]
    rows = np.unique(np.linspace(0, max(n_rows - 1, 0), min(n_rows, _FINGERPRINT_ROWS))
                     .astype(np.int64))
    sample = X[rows]
    if is_scipy_sparse(sample):
        parts = [np.asarray(sample.data), np.asarray(sample.indices),
                 np.asarray(sample.indptr)]
    else:
        parts = [np.ascontiguousarray(sample)]
    checksum = zlib.crc32(np.ascontiguousarray(y).tobytes())
    for part in parts:
        checksum = zlib.crc32(np.ascontiguousarray(part).tobytes(), checksum)
    return checksum


def _state_checksum(estimator):
    """Two float64 sums of the module's state: equal on ranks holding the same model."""
    module = estimator.__dict__.get("module_") if estimator.__dict__.get("initialized_") else None
    if module is None:
        return None
    with torch.no_grad():
        total = absolute = 0.0
        for value in module.state_dict().values():
            if value.is_floating_point():
                value = value.detach().double()
                total += float(value.sum())
                absolute += float(value.abs().sum())
    return total, absolute


def agree_on_month(estimator, X, y, seed):
    """Return rank 0's month seed, after checking every rank has the same month and state.

    Every rank must call ``partial_fit`` / ``fit`` with the same month: each
    trains on its share of every batch. Rank 0's seed (and its seed
    generator, so later months agree too, even with ``random_state=None``)
    is used by all; a rank given other rows, or holding another model, makes
    every rank raise the same error before anything trains.
    """
    if not is_active(estimator):
        return seed
    dist = _dist()
    summary = {
        "rows": int(X.shape[0]),
        "features": int(X.shape[1]) if X.ndim > 1 else 1,
        # labels as indices into classes_ (object arrays' bytes are addresses)
        "data checksum": _fingerprint(X, encode_labels(estimator.classes_, y)),
        "months trained": int(estimator.__dict__.get("n_months_seen_", 0)),
        "classes": len(estimator.classes_),
        "weights checksum": _state_checksum(estimator),
    }
    summaries = [None] * dist.get_world_size()
    dist.all_gather_object(summaries, summary)
    for rank, other in enumerate(summaries[1:], start=1):
        different = [key for key in summary if other[key] != summaries[0][key]]
        if different:
            key = different[0]
            raise ValueError(
                f"rank {rank} called {type(estimator).__name__} with a different month "
                f"or model than rank 0 ({key}: {other[key]!r} on rank {rank}, "
                f"{summaries[0][key]!r} on rank 0); with distributed=True every rank "
                "must train the same estimator state on the same month (each takes "
                "its share of every batch): load the same data and checkpoint on "
                "every rank"
            )
    shared = [seed, estimator.rng_.bit_generator.state]
    dist.broadcast_object_list(shared, src=0)
    estimator.rng_.bit_generator.state = shared[1]
    return int(shared[0])


# ----------------------------------------------------------------------
# the training steps
# ----------------------------------------------------------------------
@contextlib.contextmanager
def data_parallel(estimator, seed):
    """Reduce each training step's gradients across ranks while the block runs.

    On entry the module's weights and buffers are broadcast from rank 0 (as
    ``DistributedDataParallel`` does when it wraps a module), and a module
    drawing from torch's global generator (dropout) is reseeded per rank, so
    ranks draw different masks for their different rows.
    """
    if not is_active(estimator):
        yield
        return
    rank = _dist().get_rank()
    module = estimator.module_
    with torch.no_grad():
        for value in module.state_dict().values():
            _broadcast(value)
    from .classifier import _draws_from_global_rng

    if rank and _draws_from_global_rng(module):
        # inside the classifier's seeded_global_torch: restored at month end
        torch.manual_seed(int(np.random.SeedSequence([seed, rank]).generate_state(1)[0]))
    estimator.__dict__["_gradient_sync"] = _GradientSync(estimator)
    try:
        yield
    finally:
        estimator.__dict__.pop("_gradient_sync", None)


def _broadcast(value):
    """Broadcast a tensor from rank 0 into ``value`` in place."""
    dist = _dist()
    device = _comm_device()
    if value.device == device:
        dist.broadcast(value, src=0)
        return
    staged = value.to(device)
    dist.broadcast(staged, src=0)
    value.copy_(staged)


class _GradientSync:
    """One training step on this rank's share of the batch, gradients summed over ranks."""

    def __init__(self, estimator):
        dist = _dist()
        self.estimator = estimator
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.params = [p for _, p in estimator.get_all_learnable_params()]
        self.output_shape = None   # trailing shape of y_pred, learnt at the first step

    def train_step_single(self, batch, local_step):
        """Run ``local_step`` on this rank's rows of ``batch``; return the global step.

        The returned loss, prediction and the parameters' ``.grad`` are those
        of the whole batch: the loss and gradient are the means over every
        rank's rows (each rank's mean weighted by its share), the prediction
        is every rank's rows gathered in batch order. A rank whose step
        raises still takes part in the all-reduce, flagging its failure, so
        every rank raises and rolls back.
        """
        X, y = unpack_data(batch)
        n_rows = get_len(y) if y is not None else get_len(X)
        start, stop = shard_bounds(n_rows, self.rank, self.world_size)
        weight = (stop - start) / n_rows
        if start == stop:
            # a stand-in row with zero weight keeps this rank in step: the same
            # hooks run, and strategies draw from their generators as the others
            start, stop, weight = 0, 1, 0.0
        error, step = None, None
        try:
            step = local_step(_batch_rows(X, y, start, stop))
        except Exception as exc:  # shared with the other ranks below
            error = exc
        if self.output_shape is None:
            self._agree_output_shape(step)
        buffer, layout = self._pack(step, weight, start, stop, n_rows, error)
        _dist().all_reduce(buffer)
        flags = buffer[:self.world_size]
        if bool((flags > 0).any()):
            _raise_shared_failure(flags, error, "a training step")
        return self._unpack(buffer, layout, n_rows, step)

    def _agree_output_shape(self, step):
        # every rank packs the prediction alike, even one whose step failed
        dist = _dist()
        y_pred = None if step is None else step.get("y_pred")
        shape = (list(y_pred.shape[1:]) if isinstance(y_pred, torch.Tensor)
                 and y_pred.ndim >= 1 else [])
        sizes = [None] * self.world_size
        dist.all_gather_object(sizes, None if step is None else
                               (isinstance(y_pred, torch.Tensor), shape))
        known = [size for size in sizes if size is not None]
        self.output_shape = known[0] if known else (False, [])

    def _pack(self, step, weight, start, stop, n_rows, error):
        device = _comm_device()
        dtype = self.params[0].dtype if self.params else torch.float32
        flags = torch.zeros(self.world_size, dtype=dtype, device=device)
        if error is not None:
            flags[self.rank] = 1.0
        parts = [flags]
        has_grad = torch.zeros(len(self.params), dtype=dtype, device=device)
        for i, p in enumerate(self.params):
            if error is None and p.grad is not None:
                has_grad[i] = 1.0
                parts.append(p.grad.detach().reshape(-1).to(device, dtype) * weight)
            else:
                parts.append(torch.zeros(p.numel(), dtype=dtype, device=device))
        parts.append(has_grad)
        loss = (torch.zeros(1, dtype=dtype, device=device) if error is not None
                else step["loss"].detach().reshape(1).to(device, dtype) * weight)
        parts.append(loss)
        is_tensor, shape = self.output_shape
        if is_tensor:
            row_size = int(np.prod(shape)) if shape else 1
            y_pred = torch.zeros(n_rows * row_size, dtype=dtype, device=device)
            if error is None and weight > 0:
                y_pred[start * row_size:stop * row_size] = (
                    step["y_pred"].detach().reshape(-1).to(device, dtype))
            parts.append(y_pred)
        return torch.cat(parts), [p.numel() for p in self.params]

    def _unpack(self, buffer, sizes, n_rows, step):
        offset = self.world_size
        grads = []
        for size in sizes:
            grads.append(buffer[offset:offset + size])
            offset += size
        has_grad = buffer[offset:offset + len(sizes)]
        offset += len(sizes)
        with torch.no_grad():
            for p, grad, used in zip(self.params, grads, has_grad.tolist()):
                if not used:
                    p.grad = None  # no rank's loss reached it, as in one process
                elif p.grad is None:
                    p.grad = grad.view_as(p).to(p.device, p.dtype).clone()
                else:
                    p.grad.copy_(grad.view_as(p))
        loss = step["loss"]
        result = dict(step)
        result["loss"] = buffer[offset].to(loss.device, loss.dtype)
        offset += 1
        is_tensor, shape = self.output_shape
        if is_tensor:
            y_pred = step["y_pred"]
            result["y_pred"] = buffer[offset:].view(n_rows, *shape).to(
                y_pred.device, y_pred.dtype)
        return result


def _batch_rows(X, y, start, stop):
    """Rows ``start:stop`` of a training batch ``(X, y)`` (dense or sparse CSR X)."""
    if isinstance(X, torch.Tensor) and X.layout == torch.sparse_csr:
        X_part = torch_csr_rows(X, start, stop)
    else:
        X_part = X[start:stop]
    return X_part, (None if y is None else y[start:stop])


def _raise_shared_failure(flags, error, where):
    """Raise on every rank once ``flags`` (one per rank, summed) show a failure."""
    dist = _dist()
    failed = [rank for rank, flag in enumerate(flags.tolist()) if flag > 0]
    messages = [None] * dist.get_world_size()
    dist.all_gather_object(
        messages, None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        error._skcl_ranks_told = True
        error.add_note(f"rank {dist.get_rank()} failed in {where}; ranks {failed} "
                       "failed and every rank rolled the call back")
        raise error
    detail = "; ".join(f"rank {rank}: {messages[rank]}" for rank in failed)
    exc = RankFailedError(
        f"rank(s) {failed} failed in {where} ({detail}); this rank rolled the call "
        "back too, so every rank holds the state from before it. Fix the failing "
        "rank's error and call again on every rank"
    )
    exc._skcl_ranks_told = True
    raise exc


# ----------------------------------------------------------------------
# the end of a month: importances reduced, success agreed
# ----------------------------------------------------------------------
def _row_mean_estimator(regularizer):
    """Whether the regularizer's importance is a mean over rows (so shards reduce exactly)."""
    method = getattr(type(regularizer), "estimate_importance", None)
    if method is _FisherRegularizer.estimate_importance:
        return regularizer.fisher == "empirical"
    return method is MAS.estimate_importance


@contextlib.contextmanager
def sharded_consolidation(estimator):
    """While the block runs, the regularizer estimates importances on this rank's rows.

    For the built-in row-mean estimators (EWC and OnlineEWC with
    ``fisher="empirical"``, MAS): the ``max_samples`` subsample is drawn as
    in one process (the same generator on every rank), each rank estimates
    on its contiguous share of it, and one all-reduce sums the shares'
    means weighted by their sizes: the one-process estimate, on every rank.
    Other estimators (SI's path integral, which sees the reduced gradients
    already, and the non-linear Fisher forms) run whole on every rank and
    agree without communication.
    """
    regularizer = getattr(estimator, "regularizer_", None)
    if not is_active(estimator) or regularizer is None or not _row_mean_estimator(regularizer):
        yield
        return
    original = type(regularizer).estimate_importance

    def estimate_importance(net, X, y):
        return _sharded_importance(regularizer, original, net, X, y)

    regularizer.__dict__["estimate_importance"] = estimate_importance
    try:
        yield
    finally:
        regularizer.__dict__.pop("estimate_importance", None)


def _sharded_importance(regularizer, original, net, X, y):
    from .module_utils import trainable_parameters

    dist = _dist()
    rank, world_size = dist.get_rank(), dist.get_world_size()
    X, y, _ = regularizer._subsample(X, y)   # the same rows on every rank
    n_rows = X.shape[0]
    start, stop = shard_bounds(n_rows, rank, world_size)
    weight = (stop - start) / max(n_rows, 1)
    if start == stop:
        start, stop, weight = 0, min(1, n_rows), 0.0
    X_part, y_part = _batch_rows(X, y, start, stop)  # on the device, no host round trip
    shapes = {name: p.shape for name, p in trainable_parameters(net.module_).items()}
    device = _comm_device()
    flags = torch.zeros(world_size, dtype=torch.float64, device=device)
    error, local = None, None
    saved = regularizer.max_samples
    regularizer.max_samples = None   # subsampled above, as one process would
    try:
        local = original(regularizer, net, X_part, y_part)
        parts = [local[name].detach().reshape(-1).to(device, torch.float64) * weight
                 for name in shapes]
    except Exception as exc:  # shared with the other ranks below
        error = exc
        flags[rank] = 1.0
        parts = [torch.zeros(shape.numel(), dtype=torch.float64, device=device)
                 for shape in shapes.values()]
    finally:
        regularizer.max_samples = saved
    buffer = torch.cat([flags, *parts])
    dist.all_reduce(buffer)
    if bool((buffer[:world_size] > 0).any()):
        _raise_shared_failure(buffer[:world_size], error, "estimating importances")
    result, offset = {}, world_size
    for name, shape in shapes.items():
        size = shape.numel()
        reference = local[name]
        result[name] = buffer[offset:offset + size].view(shape).to(reference.device,
                                                                   reference.dtype)
        offset += size
    return result


def agree_month_end(estimator, error=None):
    """Commit a month only if every rank trained it; otherwise raise on every rank.

    Called after the month's last step (``error=None``: raises
    :class:`RankFailedError` if another rank failed) and on the way out of a
    failed month (with the exception: tells the other ranks, unless they
    were told already within a step). A rank that died or left the group
    makes the collective fail, which rolls this rank back as well.
    """
    if not is_active(estimator):
        return
    if error is not None and getattr(error, "_skcl_ranks_told", False):
        return
    dist = _dist()
    flags = torch.zeros(dist.get_world_size(), dtype=torch.float64, device=_comm_device())
    if error is not None:
        flags[dist.get_rank()] = 1.0
    try:
        dist.all_reduce(flags)
        if bool((flags > 0).any()):
            _raise_shared_failure(flags, error, "the month")
    except Exception:
        if error is not None:
            return   # the caller re-raises its own error
        raise


# ----------------------------------------------------------------------
# files
# ----------------------------------------------------------------------
def run_on_main_process(estimator, write):
    """Call ``write()`` on rank 0 only; every rank returns once it is done, or raises."""
    if not is_active(estimator):
        return write()
    dist = _dist()
    error = None
    if dist.get_rank() == 0:
        try:
            write()
        except Exception as exc:  # shared with the other ranks below
            error = exc
    outcome = [None if error is None else f"{type(error).__name__}: {error}"]
    dist.broadcast_object_list(outcome, src=0)
    if error is not None:
        raise error
    if outcome[0] is not None:
        raise RankFailedError(
            f"rank 0, which writes the file, failed ({outcome[0]}); nothing was "
            "written. Fix rank 0's error and save again on every rank"
        )
    return None

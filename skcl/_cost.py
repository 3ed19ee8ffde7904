"""What a month of training costs, counted the same way for every strategy.

The optimizer's own batches are counted from skorch's history
(``n_samples_processed_``, see ``ContinualClassifier._count_epoch_batches``).
Everything else a strategy runs through the network during the month is
counted here, by one forward pre-hook on every call of a network of the
trained module's class, in the thread that trains:

* with autograd on (a backward follows): rows through forward+backward, e.g.
  DER++'s replayed memory rows, A-GEM's reference rows, the rows of an
  importance estimate (EWC's Fisher, MAS's sensitivities);
* with autograd off: forward-only rows, e.g. LwF's teacher (a copy of the
  module, of the same class), DER++'s logits recorded at the month's end, a
  validation split.

The optimizer step's own forward is skipped (it is counted from the history,
which stays exact when the step runs as a compiled graph that calls no hook).
A forward inside ``torch.func.vmap`` (per-sample gradients) sees one logical
row per call: the physical batch behind it is counted instead.
"""

import math
import threading
import time
from contextlib import contextmanager

import torch
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)

_functorch = torch._C._functorch


def start_counters(net):
    """Set the cost counters of a new stream to zero."""
    net.n_train_rows_ = 0
    net.n_forward_rows_ = 0
    net.train_seconds_ = 0.0


@contextmanager
def counting_month(net):
    """Count the month's extra rows and wall time into ``net``'s counters.

    The optimizer's rows are added by the caller's epochs
    (``n_samples_processed_``); on leaving, ``n_train_rows_`` grows by those
    plus the strategy's forward+backward rows, ``n_forward_rows_`` by the
    forward-only rows and ``train_seconds_`` by the month's wall time. On an
    error nothing is added (the month is rolled back).
    """
    counter = _RowCounter(net)
    processed = net.__dict__.get("n_samples_processed_", 0)
    start = time.perf_counter()
    net.__dict__["_row_counter"] = counter
    enter = register_module_forward_pre_hook(counter)
    leave = register_module_forward_hook(counter.leave, always_call=True)
    try:
        yield counter
    finally:
        enter.remove()
        leave.remove()
        net.__dict__.pop("_row_counter", None)
    if "n_train_rows_" not in net.__dict__:  # a stream fitted before the counters existed
        return
    net.n_train_rows_ += net.n_samples_processed_ - processed + counter.backward_rows
    net.n_forward_rows_ += counter.forward_rows
    net.train_seconds_ += time.perf_counter() - start


@contextmanager
def optimizer_step(net):
    """Leave the optimizer step's own forward uncounted (its rows are in the history)."""
    counter = net.__dict__.get("_row_counter")
    if counter is None:
        yield
        return
    counter.skip_next = True
    try:
        yield
    finally:
        counter.skip_next = False


class _RowCounter:
    """A global forward pre-hook counting rows of the net's module class in one thread.

    The class is looked up at each call: the first month creates the module
    inside the counted call, and retraining re-creates it every month. Only
    the outermost call counts: a submodule of the same class (a nested
    ``nn.Sequential``) runs on rows already counted, so the depth of such
    calls is tracked (``leave``, a forward hook that runs even on errors).
    """

    def __init__(self, net):
        self.net = net
        self.thread = threading.get_ident()
        self.backward_rows = 0
        self.forward_rows = 0
        self.skip_next = False
        self.depth = 0

    def _counts(self, module):
        return (threading.get_ident() == self.thread
                and type(module) is type(self.net.__dict__.get("module_"))
                and not torch.compiler.is_compiling())

    def __call__(self, module, args):
        if not self._counts(module):
            return
        self.depth += 1
        if self.depth > 1 or not args:  # inside a counted (or skipped) call
            return
        if self.skip_next:
            self.skip_next = False
            return
        rows = _physical_rows(args[0])
        if torch.is_grad_enabled():
            self.backward_rows += rows
        else:
            self.forward_rows += rows

    def leave(self, module, args, output):
        if self._counts(module):
            self.depth -= 1


def _physical_rows(X):
    """Rows of a batch, the physical ones under ``torch.func`` transforms."""
    if not isinstance(X, torch.Tensor) or X.dim() == 0:
        return 0
    if not _functorch.is_functorch_wrapped_tensor(X):
        return int(X.shape[0])
    features = max(1, math.prod(X.shape[1:]))
    inner = X
    while _functorch.is_functorch_wrapped_tensor(inner):
        inner = _functorch.get_unwrapped(inner)
    return int(inner.numel() // features)

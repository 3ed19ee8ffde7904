"""Epoch time of ContinualClassifier vs a hand-written PyTorch loop (issues #6, #18).

What is timed, per variant and batch size, one training epoch over the same
data (N x 256 float32, binary labels), the same module class and
initialization (``skcl.modules.MLP`` with two hidden layers of 256 units), Adam
with the same learning rate, and shuffling by a fresh permutation each epoch:

``hand``
    A hand-written loop over tensors already on the device: ``randperm``, then
    per batch index, ``zero_grad``, forward, loss, backward, ``step``. Each
    batch's loss is kept on the device; the epoch's mean loss is read once at
    the end (a loop that reports its loss, without a sync per batch).
``skcl``
    ``ContinualClassifier.partial_fit`` with ``max_epochs=1`` after a warm-up
    call (so initialization is excluded). The *epoch* is timed by a callback
    from ``on_epoch_begin`` to ``on_epoch_end`` (device-synchronized at both
    ends): the training iteration plus skorch's per-batch and per-epoch
    callbacks and history. The rest of the ``partial_fit`` call (input
    validation, the copy of the month to the device, the backup for atomicity,
    seeding, ``on_train_begin/end``, ``on_month_end``) is reported apart as
    ``skcl call``: the whole ``partial_fit`` call against the hand loop's
    epoch, held to the same 1.10 target (issue #26; a float32 month on the CPU
    is trained in place, so the call adds no copy of the rows). ``--copies``
    also reports whether the rows skorch's loop receives share the caller's
    memory (copies of the month before the per-epoch shuffle gather).
``skcl compiled``
    The same with ``step="compiled"`` (issue #18). Its warm-up call compiles
    the step; the compile time reported is that call's wall time minus the
    median compiled ``partial_fit`` call, with inductor's on-disk cache pointed
    at a fresh folder (a cold compile, as a new machine pays it; a process that
    finds the cache warm pays less). ``torch._dynamo.reset()`` runs before each
    batch size, so each is compiled for its own static shape. The break-even
    is the number of epochs after which the compile time is paid back by the
    faster epochs: compile time / (skcl epoch - skcl compiled epoch).
``skcl+DataLoader``
    The same, with ``iterator_train=iterator_valid=torch.utils.data.DataLoader``
    (per-sample fetch and collate of the device tensors).
``skorch``
    Plain ``skorch.NeuralNetClassifier`` with its default ``DataLoader`` over the
    numpy arrays (per-sample fetch, collate, a host-to-device copy per batch):
    where skcl would be without its fast path. Timed by the same callback.

Usage::

    python benchmarks/bench_epoch.py               # CPU, 100k rows
    python benchmarks/bench_epoch.py --device cuda
    python benchmarks/bench_epoch.py --quick       # smoke run
    python benchmarks/bench_epoch.py --threads 1 --skip skorch skcl+DataLoader
    # issue 26: the whole call, 40k rows, one thread
    OMP_NUM_THREADS=1 python benchmarks/bench_epoch.py --threads 1 --rows 40000 \
        --batch-sizes 256 --skip skorch skcl+DataLoader "skcl compiled" --repeats 9 --copies
"""

import os
import statistics
import tempfile
import time

# a cold compile: inductor's cache in a folder of this run (before torch loads)
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="bench_epoch_"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _timing import (  # noqa: E402
    add_common_arguments,
    clock,
    format_ms,
    format_ratio,
    machine_description,
    new_parser,
    paired_ratio,
    print_table,
    run_interleaved,
    self_timed,
    setup,
    synchronize,
    write_json,
)
from skorch import NeuralNetClassifier  # noqa: E402
from skorch.callbacks import Callback  # noqa: E402

from skcl import ContinualClassifier  # noqa: E402
from skcl import _compiled_step as compiled_step  # noqa: E402
from skcl.modules import MLP  # noqa: E402

N_FEATURES = 256
HIDDEN_UNITS = (256, 256)
LR = 1e-3
TARGET = 1.10
TARGET_COMPILED = {"cpu": 0.95, "cuda": 0.6}
TYPICAL_MONTH_EPOCHS = 5  # ContinualClassifier's default max_epochs


class RowsSeen(Callback):
    """Record the training rows skorch's loop receives (to count copies of the month)."""

    def __init__(self):
        self.rows = None

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.rows = X


def month_copies(X, y, batch_size, device):
    """Copies of a dense month between the caller and the training loop (0 or 1)."""
    seen = RowsSeen()
    net = ContinualClassifier(MLP, module__hidden_units=HIDDEN_UNITS, lr=LR, max_epochs=1,
                              batch_size=batch_size, device=device, random_state=0,
                              callbacks=[("rows", seen)])
    net.partial_fit(X, y, classes=[0, 1])
    rows = seen.rows
    shared = (isinstance(rows, torch.Tensor) and rows.device.type == "cpu"
              and np.shares_memory(rows.numpy(), X))
    return 0 if shared else 1


class SyncedEpochTimer(Callback):
    """Record each epoch's wall time, synchronizing the device at both ends."""

    def __init__(self, device):
        self.device = device
        self.durations = []

    def on_epoch_begin(self, net, **kwargs):
        synchronize(self.device)
        self._start = clock()

    def on_epoch_end(self, net, **kwargs):
        synchronize(self.device)
        self.durations.append(clock() - self._start)


def make_data(n_rows, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, N_FEATURES), dtype=np.float32)
    w = rng.standard_normal(N_FEATURES).astype(np.float32)
    y = (X @ w + 0.5 * rng.standard_normal(n_rows) > 0).astype(np.int64)
    return X, y


def make_hand_loop(X, y, batch_size, device):
    X_dev = torch.as_tensor(X, device=device)
    y_dev = torch.as_tensor(y, device=device)
    torch.manual_seed(0)
    module = MLP(n_features=N_FEATURES, n_classes=2, hidden_units=HIDDEN_UNITS).to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=LR)
    criterion = torch.nn.CrossEntropyLoss()
    n_rows = X_dev.shape[0]

    def epoch():
        module.train()
        order = torch.randperm(n_rows, device=device)
        losses = []
        for start in range(0, n_rows, batch_size):
            index = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = criterion(module(X_dev[index]), y_dev[index])
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        torch.stack(losses).mean().item()

    return epoch


def make_skorch_variant(net, X, y, call_times, call_walls=None):
    """A self-timed epoch; ``call_walls`` gets every call's wall time, warm-up first."""
    timer = next(cb for cb in net.callbacks if isinstance(cb, SyncedEpochTimer))
    walls = [] if call_walls is None else call_walls

    def call():
        # compilation runs partly in worker processes: wall time, whatever --clock says
        wall = time.perf_counter()
        start = clock()
        net.partial_fit(X, y)
        walls.append(time.perf_counter() - wall)
        return clock() - start

    @self_timed
    def epoch():
        call_times.append(call())
        return timer.durations[-1]

    call()  # warm-up: initialization (and compilation) happens here
    return epoch


def skcl_net(batch_size, device, **params):
    return ContinualClassifier(
        MLP, module__hidden_units=HIDDEN_UNITS, lr=LR, max_epochs=1,
        batch_size=batch_size, device=device, random_state=0,
        callbacks=[SyncedEpochTimer(device)], **params,
    )


def plain_skorch_net(batch_size, device):
    return NeuralNetClassifier(
        MLP, module__n_features=N_FEATURES, module__n_classes=2,
        module__hidden_units=HIDDEN_UNITS, criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam, lr=LR, max_epochs=1, batch_size=batch_size,
        train_split=None, iterator_train__shuffle=True, device=device, verbose=0,
        callbacks=[SyncedEpochTimer(device)],
    )


GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::_addmm_activation")


def profile_epochs(variants, device):
    """One profiled epoch per variant: the matrix products' share of the host time.

    The compiled step can only remove what is not a matrix product (dispatch,
    elementwise kernels, the optimizer's loops): this share bounds its gain.
    """
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    rows = []
    for name, epoch in variants.items():
        with torch.profiler.profile(activities=activities) as prof:
            epoch()
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        gemm = sum(e.self_cpu_time_total for e in events if e.key in GEMM_OPS)
        calls = sum(e.count for e in events if e.key.startswith("aten::"))
        rows.append([name, f"{total / 1e3:.0f}", f"{gemm / 1e3:.0f}",
                     f"{100 * gemm / total:.0f}%", calls])
    return rows


def time_step_parts(batch_size, device, n_steps=200):
    """Forward+loss and the Adam update, eager vs compiled, per step (no profiler).

    Shows where compiling gains: the graphs of ``skcl._compiled_step`` called
    directly on one batch, against the same work done eagerly.
    """
    module = MLP(n_features=N_FEATURES, n_classes=2, hidden_units=HIDDEN_UNITS).to(device)
    criterion = torch.nn.CrossEntropyLoss()
    X = torch.randn(batch_size, N_FEATURES, device=device)
    y = torch.randint(0, 2, (batch_size,), device=device)
    optimizer = torch.optim.Adam(module.parameters(), lr=LR)
    criterion(module(X), y).backward()
    optimizer.step()  # creates Adam's state
    params = list(module.parameters())
    lr = torch.full((), LR, dtype=torch.float64, device=device)
    hyper = {"amsgrad": False, "beta1": 0.9, "beta2": 0.999, "weight_decay": 0.0,
             "eps": 1e-8, "maximize": False, "capturable": False,
             "decoupled_weight_decay": False}
    forward = compiled_step._compiled(compiled_step._forward_loss, device.type)
    update = compiled_step._compiled(compiled_step._adam_update, device.type)

    def compiled_update():
        state = [optimizer.state[p] for p in params]
        update(params, [p.grad for p in params], [s["exp_avg"] for s in state],
               [s["exp_avg_sq"] for s in state], [], [s["step"] for s in state],
               lr, None, None, None, hyper)

    parts = {"forward+loss+backward eager": lambda: criterion(module(X), y).backward(),
             "forward+loss+backward compiled":
                 lambda: forward(module, criterion, X, y)[0].backward(),
             "Adam update eager (torch's default)": optimizer.step,
             "Adam update compiled": compiled_update}
    rows = []
    for name, fn in parts.items():
        for _ in range(3):
            fn()  # compiles the first time
        synchronize(device)
        start = clock()
        for _ in range(n_steps):
            fn()
        synchronize(device)
        rows.append([name, f"{1e6 * (clock() - start) / n_steps:.0f}"])
    return rows


def main():
    parser = add_common_arguments(new_parser(__doc__.splitlines()[0]), default_repeats=7)
    parser.add_argument("--rows", type=int, default=None, help="rows (default 100000)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["skorch", "skcl+DataLoader", "skcl compiled"],
                        help="variants to leave out")
    parser.add_argument("--parts", action="store_true",
                        help="also time the forward and the update apart, eager vs compiled")
    parser.add_argument("--copies", action="store_true",
                        help="also count the copies of the month before training")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one epoch per variant: matrix products' share")
    args = parser.parse_args()
    device, repeats = setup(args, default_repeats=7)
    n_rows = args.rows or (8_000 if args.quick else 100_000)
    X, y = make_data(n_rows)
    print(f"machine: {machine_description(device)}")
    print(f"data: {n_rows} x {N_FEATURES} float32, MLP hidden {HIDDEN_UNITS}, Adam lr={LR}, "
          f"{repeats} repeats, median (min-max)")

    results = {}
    for batch_size in args.batch_sizes:
        torch._dynamo.reset()  # each batch size compiled for its own static shape
        call_times = {"skcl": [], "skcl compiled": [], "skcl+DataLoader": [], "skorch": []}
        compiled_walls = []
        variants = {
            "hand": make_hand_loop(X, y, batch_size, device),
            "skcl": make_skorch_variant(skcl_net(batch_size, device), X, y,
                                        call_times["skcl"]),
        }
        if "skcl compiled" not in args.skip:
            variants["skcl compiled"] = make_skorch_variant(
                skcl_net(batch_size, device, step="compiled"), X, y,
                call_times["skcl compiled"], call_walls=compiled_walls)
        if "skcl+DataLoader" not in args.skip:
            variants["skcl+DataLoader"] = make_skorch_variant(
                skcl_net(batch_size, device, iterator_train=torch.utils.data.DataLoader,
                         iterator_valid=torch.utils.data.DataLoader),
                X, y, call_times["skcl+DataLoader"])
        if "skorch" not in args.skip:
            variants["skorch"] = make_skorch_variant(
                plain_skorch_net(batch_size, device), X, y, call_times["skorch"])
        variants["hand"]()  # warm-up
        times = run_interleaved(variants, repeats, device)

        rows = []
        for name, seconds in times.items():
            ratio = paired_ratio(seconds, times["hand"])
            target = {"skcl": TARGET,
                      "skcl compiled": TARGET_COMPILED.get(device.type)}.get(name)
            rows.append([f"{name} epoch", format_ms(seconds), format_ratio(*ratio),
                         "" if name == "hand" else
                         (f"{target:.2f}: {'met' if ratio[0] <= target else 'MISSED'}"
                          if target else "reference")])
        for name, seconds in call_times.items():
            if seconds:
                ratio = paired_ratio(seconds, times["hand"])
                target = TARGET if name == "skcl" else None
                rows.append([f"{name} partial_fit call", format_ms(seconds),
                             format_ratio(*ratio),
                             (f"{target:.2f}: {'met' if ratio[0] <= target else 'MISSED'}"
                              if target else "reference")])
        compile_summary = None
        if compiled_walls:
            compile_s = compiled_walls[0] - statistics.median(compiled_walls[1:])
            saved_s = (statistics.median(times["skcl"])
                       - statistics.median(times["skcl compiled"]))
            break_even = compile_s / saved_s if saved_s > 0 else float("inf")
            ratio = paired_ratio(times["skcl compiled"], times["skcl"])
            rows.append(["skcl compiled / skcl epoch", "", format_ratio(*ratio), "reference"])
            rows.append(["compile time, s of wall time (cold: first call - later call)",
                         f"{compile_s:.1f} s", "", ""])
            rows.append(["break-even (epochs of this size)",
                         f"{break_even:.1f}", "",
                         f"paid back within a {TYPICAL_MONTH_EPOCHS}-epoch month: "
                         f"{'yes' if break_even <= TYPICAL_MONTH_EPOCHS else 'no'}"])
            compile_summary = {"compile_s": compile_s, "saved_per_epoch_s": saved_s,
                               "break_even_epochs": break_even}
        print_table(f"batch {batch_size}, {n_rows} rows, device {device}",
                    ["variant", "ms", "ratio to hand", "target"], rows)
        if args.copies:
            print(f"copies of the month before training (float32, {device}): "
                  f"{month_copies(X, y, batch_size, device)}")
        if args.parts:
            print_table(f"step parts, batch {batch_size}: us per step",
                        ["part", "us"], time_step_parts(batch_size, device))
        if args.profile:
            print_table(f"profile, batch {batch_size}: host time in matrix products",
                        ["variant", "self CPU ms", "matrix products ms", "share",
                         "aten calls"], profile_epochs(variants, device))
        results[batch_size] = {"epoch": times, "call": call_times, "compile": compile_summary}
    write_json(args.json, {"machine": machine_description(device), "rows": n_rows,
                           "results": results})


if __name__ == "__main__":
    main()

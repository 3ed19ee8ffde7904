"""Epoch time of ContinualClassifier vs a hand-written PyTorch loop (issue #6).

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
    ``skcl call``.
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
"""

import numpy as np
import torch
from _timing import (
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
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback

from skcl import ContinualClassifier
from skcl.modules import MLP

N_FEATURES = 256
HIDDEN_UNITS = (256, 256)
LR = 1e-3
TARGET = 1.10


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


def make_skorch_variant(net, X, y, call_times):
    timer = next(cb for cb in net.callbacks if isinstance(cb, SyncedEpochTimer))

    @self_timed
    def epoch():
        start = clock()
        net.partial_fit(X, y)
        call_times.append(clock() - start)
        return timer.durations[-1]

    net.partial_fit(X, y)  # warm-up: initialization happens here
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


def main():
    parser = add_common_arguments(new_parser(__doc__.splitlines()[0]), default_repeats=7)
    parser.add_argument("--rows", type=int, default=None, help="rows (default 100000)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["skorch", "skcl+DataLoader"], help="variants to leave out")
    args = parser.parse_args()
    device, repeats = setup(args, default_repeats=7)
    n_rows = args.rows or (8_000 if args.quick else 100_000)
    X, y = make_data(n_rows)
    print(f"machine: {machine_description(device)}")
    print(f"data: {n_rows} x {N_FEATURES} float32, MLP hidden {HIDDEN_UNITS}, Adam lr={LR}, "
          f"{repeats} repeats, median (min-max)")

    results = {}
    for batch_size in args.batch_sizes:
        call_times = {"skcl": [], "skcl+DataLoader": [], "skorch": []}
        variants = {
            "hand": make_hand_loop(X, y, batch_size, device),
            "skcl": make_skorch_variant(skcl_net(batch_size, device), X, y,
                                        call_times["skcl"]),
        }
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
            rows.append([f"{name} epoch", format_ms(seconds), format_ratio(*ratio),
                         "" if name == "hand" else
                         (f"{TARGET:.2f}: {'met' if ratio[0] <= TARGET else 'MISSED'}"
                          if name == "skcl" else "reference")])
        for name, seconds in call_times.items():
            if seconds:
                ratio = paired_ratio(seconds, times["hand"])
                rows.append([f"{name} partial_fit call", format_ms(seconds),
                             format_ratio(*ratio), "reference"])
        print_table(f"batch {batch_size}, {n_rows} rows, device {device}",
                    ["variant", "ms", "ratio to hand", "target"], rows)
        results[batch_size] = {"epoch": times, "call": call_times}
    write_json(args.json, {"machine": machine_description(device), "rows": n_rows,
                           "results": results})


if __name__ == "__main__":
    main()

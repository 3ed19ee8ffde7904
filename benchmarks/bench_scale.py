"""Malware-scale data: memory of retraining, sparse speed, per-month cost (issue 14).

Three measurements, each against a hand-written PyTorch loop doing the same
work in the same run (load on a shared machine hits both alike):

``memory``
    Peak RSS growth of full retraining (``update="retrain"``) over a dense
    EMBER-width stream (2,381 float32 features), relative to the bytes of the
    history it keeps. Each variant runs in a fresh process: the stream is
    generated first (the caller's data, not counted), the peak-RSS mark is
    reset (``/proc/self/clear_refs``), then every month is trained on. The
    hand-written reference keeps a list of month arrays and trains on
    ``torch.from_numpy(np.concatenate(history))`` each month, the plain way.
``sparse``
    One month of hashed sparse features (2^18 columns, ~130 non-zeros per
    row): ``ContinualClassifier(...).partial_fit`` on a scipy CSR matrix
    against a loop that batches the same CSR rows by a random permutation and
    trains the same network with ``torch.sparse.mm`` (first-layer weight of
    shape ``(n_features, hidden)``), Adam, the same epochs and batch size.
    Paired repeats, the median ratio is reported.
``months``
    Per-month cost of every strategy over a long stream: time per training
    row at months 1, 12, 24 and 48 and peak RSS, on the dense and the sparse
    stream, against the hand-written fine-tuning loop on the same months.
    Flat means month 48 costs what month 2 does per row.

Memory: the defaults stay under ~4 GB per process (the machine is shared);
``--quick`` is a seconds-long smoke run.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_scale.py memory
    OMP_NUM_THREADS=1 python benchmarks/bench_scale.py sparse
    OMP_NUM_THREADS=1 python benchmarks/bench_scale.py months
    python benchmarks/bench_scale.py all --device cuda
"""

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
import scipy.sparse as sp
import torch

from skcl import EWC, L2, ContinualClassifier, OnlineEWC, RehearsalBuffer
from skcl._sparse import check_sparse_structure, to_torch_csr

DENSE_FEATURES = 2381
SPARSE_FEATURES = 2 ** 18


# ----------------------------------------------------------------------
# data
# ----------------------------------------------------------------------
def dense_month(rng, n_rows, n_features, direction):
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    y = (X @ direction > 0).astype(np.int64)
    return X, y


def sparse_month(rng, n_rows, n_features, nnz, direction):
    """Hashed features: ``nnz`` distinct columns per row, tf-like values."""
    columns = np.sort(rng.integers(0, n_features, size=(n_rows, nnz), dtype=np.int64), axis=1)
    values = rng.random((n_rows, nnz), dtype=np.float32) + 0.5
    X = sp.csr_matrix((values.ravel(), columns.ravel().astype(np.int32),
                       np.arange(0, n_rows * nnz + 1, nnz, dtype=np.int32)),
                      shape=(n_rows, n_features))
    X.sum_duplicates()
    y = (np.asarray(X @ direction).ravel() > 0).astype(np.int64)
    return X, y


def make_stream(kind, n_months, n_rows, seed=0, nnz=130):
    rng = np.random.default_rng(seed)
    n_features = DENSE_FEATURES if kind == "dense" else SPARSE_FEATURES
    direction = rng.standard_normal(n_features).astype(np.float32)
    if kind == "dense":
        return [dense_month(rng, n_rows, n_features, direction) for _ in range(n_months)]
    return [sparse_month(rng, n_rows, n_features, nnz, direction) for _ in range(n_months)]


# ----------------------------------------------------------------------
# the hand-written references
# ----------------------------------------------------------------------
class HandNet(torch.nn.Module):
    """The bundled MLP's function with the first weight as (n_features, hidden)."""

    def __init__(self, n_features, hidden):
        super().__init__()
        bound = n_features ** -0.5
        self.weight = torch.nn.Parameter(torch.empty(n_features, hidden).uniform_(-bound, bound))
        self.bias = torch.nn.Parameter(torch.empty(hidden).uniform_(-bound, bound))
        self.out = torch.nn.Linear(hidden, 2)

    def forward(self, X):
        if X.layout != torch.strided:
            hidden = torch.sparse.mm(X, self.weight) + self.bias
        else:
            hidden = torch.addmm(self.bias, X, self.weight)
        return self.out(torch.relu(hidden))


def hand_epochs(net, optimizer, X, y, epochs, batch_size, device):
    """Shuffled mini-batch epochs over host rows (CSR or ndarray) or a tensor."""
    y_all = torch.as_tensor(y, device=device)
    X_dense = None if sp.issparse(X) else torch.as_tensor(X, device=device)
    n_rows = X.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n_rows)
        for start in range(0, n_rows, batch_size):
            index = order[start:start + batch_size]
            if X_dense is None:
                X_batch = to_torch_csr(X[index.numpy()], device=device)
            else:
                X_batch = X_dense[index.to(device)]
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(X_batch), y_all[index.to(device)])
            loss.backward()
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()


def hand_finetune_month(state, X, y, args, device):
    if state.get("net") is None:
        torch.manual_seed(0)
        state["net"] = HandNet(X.shape[1], args.hidden).to(device)
        state["optimizer"] = torch.optim.Adam(state["net"].parameters(), lr=1e-3)
    hand_epochs(state["net"], state["optimizer"], X, y, args.epochs, args.batch_size, device)


def hand_retrain_month(state, X, y, args, device):
    # the plain way: keep every month, concatenate, train from scratch
    state.setdefault("X", []).append(np.array(X))
    state.setdefault("y", []).append(np.array(y))
    X_all, y_all = np.concatenate(state["X"]), np.concatenate(state["y"])
    torch.manual_seed(0)
    net = HandNet(X.shape[1], args.hidden).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    hand_epochs(net, optimizer, torch.from_numpy(X_all), y_all, args.epochs,
                args.batch_size, device)


# ----------------------------------------------------------------------
# skcl
# ----------------------------------------------------------------------
def strategies(capacity):
    return {
        "naive": {},
        "l2": {"regularizer": L2(lam=1.0)},
        "ewc": {"regularizer": EWC(lam=10.0)},
        "online_ewc": {"regularizer": OnlineEWC(lam=10.0)},
        "rehearsal": {"rehearsal": RehearsalBuffer(capacity=capacity)},
        "retrain": {"update": "retrain"},
    }


def skcl_classifier(args, device, **params):
    return ContinualClassifier(max_epochs=args.epochs, batch_size=args.batch_size,
                               module__hidden_units=(args.hidden,), random_state=0,
                               device=str(device), **params)


class _Hidden:
    """``args`` with another hidden width (the months part's sparse stream)."""

    def __init__(self, args, hidden):
        self.__dict__.update(vars(args), hidden=hidden)


# ----------------------------------------------------------------------
# memory measurement (fresh process per variant)
# ----------------------------------------------------------------------
def _status_kib(key):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
        return True
    except OSError:
        return False


class _AnonymousPeak:
    """Peak of RssAnon (RSS less file-backed pages), sampled every millisecond.

    A memory-mapped history's pages count in RSS while resident, but they are
    page cache the kernel reclaims under pressure; anonymous memory is what
    the process really holds.
    """

    def __init__(self):
        self.peak = _status_kib("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self):
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _status_kib("RssAnon"))

    def stop(self):
        self._stop.set()
        self._thread.join()
        return max(self.peak, _status_kib("RssAnon"))


def memory_worker(args):
    device = torch.device(args.device)
    months = make_stream("dense", args.months, args.rows)
    history_bytes = sum(X.nbytes + y.nbytes for X, y in months)
    gc.collect()
    if not _reset_peak():
        sys.exit("cannot reset the peak RSS mark (/proc/self/clear_refs)")
    base = _status_kib("VmRSS")
    base_anon = _status_kib("RssAnon")
    sampler = _AnonymousPeak()
    start = time.perf_counter()
    if args.impl == "skcl":
        clf = skcl_classifier(args, device, update="retrain", memmap_dir=args.memmap_dir)
        for X, y in months:
            clf.partial_fit(X, y, classes=[0, 1])
    else:
        state = {}
        for X, y in months:
            hand_retrain_month(state, X, y, args, device)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    anon_growth = sampler.stop() - base_anon
    print(json.dumps({"impl": args.impl, "history_bytes": history_bytes,
                      "growth_bytes": peak - base, "anon_growth_bytes": anon_growth,
                      "seconds": seconds,
                      "memmap": args.memmap_dir is not None}))


def run_memory(args):
    rows = []
    variants = [("loop", None), ("skcl", None)]
    if args.memmap_dir:
        variants.append(("skcl", args.memmap_dir))
    for impl, memmap_dir in variants:
        command = [sys.executable, __file__, "_memory_worker", "--impl", impl,
                   "--months", str(args.months), "--rows", str(args.rows),
                   "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                   "--hidden", str(args.hidden), "--device", args.device]
        if memmap_dir:
            command += ["--memmap-dir", memmap_dir]
        output = subprocess.run(command, check=True, capture_output=True, text=True)
        rows.append(json.loads(output.stdout.strip().splitlines()[-1]))
    print(f"\nretrain memory: {args.months} months x {args.rows} rows x {DENSE_FEATURES} "
          f"float32 = {rows[0]['history_bytes'] / 2**20:.0f} MiB of history, "
          f"{args.epochs} epoch(s), device {args.device}")
    print("| variant | peak RSS growth (MiB) | growth / history | peak anonymous "
          "growth (MiB) | anonymous / history | time (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        name = row["impl"] + (" (memmap_dir)" if row["memmap"] else "")
        print(f"| {name} | {row['growth_bytes'] / 2**20:.0f} | "
              f"{row['growth_bytes'] / row['history_bytes']:.2f} | "
              f"{row['anon_growth_bytes'] / 2**20:.0f} | "
              f"{row['anon_growth_bytes'] / row['history_bytes']:.2f} | "
              f"{row['seconds']:.1f} |")
    return rows


# ----------------------------------------------------------------------
# sparse speed
# ----------------------------------------------------------------------
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_sparse(args):
    device = torch.device(args.device)
    (X, y), = make_stream("sparse", 1, args.rows, nnz=args.nnz)
    ratios, times = [], {"skcl": [], "loop": []}
    # warm-up: first-touch allocations and torch's lazy initialization
    skcl_classifier(args, device).partial_fit(X[:2000], y[:2000], classes=[0, 1])
    hand_finetune_month({}, X[:2000], y[:2000], args, device)
    for repeat in range(args.repeats):
        order = ["skcl", "loop"] if repeat % 2 == 0 else ["loop", "skcl"]
        seconds = {}
        for impl in order:
            gc.collect()
            _sync(device)
            start = time.perf_counter()
            if impl == "skcl":
                skcl_classifier(args, device).partial_fit(X, y, classes=[0, 1])
            else:
                hand_finetune_month({}, X, y, args, device)
            _sync(device)
            seconds[impl] = time.perf_counter() - start
            times[impl].append(seconds[impl])
        ratios.append(seconds["skcl"] / seconds["loop"])
    # the structure check every sparse entry point makes (issue 23), in
    # isolation: it runs once or twice per month inside partial_fit above
    check_times = []
    for _ in range(20):
        start = time.perf_counter()
        check_sparse_structure(X)
        check_times.append(time.perf_counter() - start)
    check = statistics.median(check_times)
    print(f"\nsparse month: {args.rows} rows x 2^18 features, ~{args.nnz} non-zeros per "
          f"row ({X.data.nbytes + X.indices.nbytes + X.indptr.nbytes >> 20} MiB CSR), "
          f"MLP 2^18-{args.hidden}-2, {args.epochs} epoch(s), batch {args.batch_size}, "
          f"device {args.device}, {args.repeats} paired repeats")
    print("| variant | median time (s) | skcl / loop (median, min-max) |")
    print("| --- | --- | --- |")
    print(f"| hand-written torch.sparse.mm loop | {statistics.median(times['loop']):.2f} | |")
    print(f"| skcl partial_fit | {statistics.median(times['skcl']):.2f} | "
          f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) |")
    print(f"| sparse structure check, once (median of 20) | {check:.5f} | "
          f"{check / statistics.median(times['skcl']):.2%} of skcl partial_fit |")
    return {"ratios": ratios, "times": times, "check_s": check}


# ----------------------------------------------------------------------
# per-month cost
# ----------------------------------------------------------------------
def months_worker(args):
    """One strategy on one stream, in a fresh process: per-month times, peak RSS."""
    device = torch.device(args.device)
    if args.kind == "sparse":
        args = _Hidden(args, args.sparse_hidden)
    months = make_stream(args.kind, args.months, args.rows, nnz=args.nnz)
    params = None if args.variant == "loop" else strategies(capacity=args.rows)[args.variant]
    clf = None if params is None else skcl_classifier(args, device, **params)
    state = {}
    gc.collect()
    _reset_peak()
    base = _status_kib("VmRSS")
    per_month = []
    for X, y in months:
        _sync(device)
        start = time.perf_counter()
        if params is None:
            hand_finetune_month(state, X, y, args, device)
        else:
            clf.partial_fit(X, y, classes=[0, 1])
        _sync(device)
        per_month.append(time.perf_counter() - start)
    n_rows = np.asarray([X.shape[0] for X, _ in months])
    trained = np.cumsum(n_rows) if args.variant == "retrain" else n_rows
    per_row_us = [1e6 * t / (r * args.epochs) for t, r in zip(per_month, trained)]
    print(json.dumps({"per_row_us": per_row_us,
                      "peak_bytes": _status_kib("VmHWM") - base}))


def run_months(args):
    checkpoints = [m for m in (1, 2, 12, 24, 48) if m <= args.months]
    last = checkpoints[-1]
    results = {}
    for kind in ("dense", "sparse"):
        rows = []
        for variant in ["loop", *strategies(capacity=args.rows)]:
            command = [sys.executable, __file__, "_months_worker", "--kind", kind,
                       "--variant", variant, "--months", str(args.months),
                       "--rows", str(args.rows), "--epochs", str(args.epochs),
                       "--batch-size", str(args.batch_size), "--hidden", str(args.hidden),
                       "--sparse-hidden", str(args.sparse_hidden), "--nnz", str(args.nnz),
                       "--device", args.device]
            output = subprocess.run(command, check=True, capture_output=True, text=True)
            result = json.loads(output.stdout.strip().splitlines()[-1])
            name = "hand-written naive loop" if variant == "loop" else variant
            rows.append((name, result["per_row_us"], result["peak_bytes"]))
        reference = rows[0][1]
        hidden = args.hidden if kind == "dense" else args.sparse_hidden
        print(f"\nper-month cost, {kind} stream ({'2381' if kind == 'dense' else '2^18'} "
              f"features, {hidden} hidden units), {args.months} months x {args.rows} "
              f"rows, {args.epochs} epoch(s), device {args.device}: microseconds per "
              f"training row (retrain: per row of its whole history); month {last} / "
              f"month 2 and the ratio to the hand-written loop use the median of months "
              f"{max(2, last - 2)}-{last} and 2-4; peak RSS growth, one process per row")
        print("| strategy | " + " | ".join(f"month {m}" for m in checkpoints)
              + f" | month {last} / month 2 | vs loop | peak RSS (MiB) |")
        print("| --- " * (len(checkpoints) + 4) + "|")
        for name, per_row_us, peak in rows:
            values = " | ".join(f"{per_row_us[m - 1]:.1f}" for m in checkpoints)
            # month 1 holds warm-up and initialization
            late = statistics.median(per_row_us[max(1, last - 3):last])
            early = statistics.median(per_row_us[1:4])
            versus = late / statistics.median(reference[max(1, last - 3):last])
            print(f"| {name} | {values} | {late / early:.2f} | {versus:.2f} | "
                  f"{peak / 2**20:.0f} |")
        results[kind] = rows
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["memory", "sparse", "months", "all",
                                         "_memory_worker", "_months_worker"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--months", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--nnz", type=int, default=130)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--sparse-hidden", type=int, default=16,
                        help="months part: hidden units on the sparse stream")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memmap-dir", default=None,
                        help="memory: also measure retrain with past rows under this directory")
    parser.add_argument("--impl", choices=["skcl", "loop"], default="skcl")
    parser.add_argument("--kind", choices=["dense", "sparse"], default="dense")
    parser.add_argument("--variant", default="naive")
    args = parser.parse_args(argv)
    if args.part == "_memory_worker":
        return memory_worker(args)
    if args.part == "_months_worker":
        return months_worker(args)
    defaults = {
        # 6 x 16,000 x 2,381 float32 = 872 MiB of history: with the caller's own
        # copy of the stream, the loop's peak stays under ~3 GB
        "memory": (2 if args.quick else 6, 500 if args.quick else 16_000),
        "sparse": (1, 2_000 if args.quick else 20_000),
        "months": (3 if args.quick else 48, 200 if args.quick else 1_000),
    }
    parts = ["memory", "sparse", "months"] if args.part == "all" else [args.part]
    user_months, user_rows = args.months, args.rows
    results = {}
    for part in parts:
        args.months = user_months or defaults[part][0]
        args.rows = user_rows or defaults[part][1]
        if args.quick:
            args.repeats = min(args.repeats, 1)
        results[part] = {"memory": run_memory, "sparse": run_sparse,
                         "months": run_months}[part](args)
    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    return results


if __name__ == "__main__":
    main()

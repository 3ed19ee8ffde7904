"""Data-parallel training throughput: 1 process against 2 (or more) (issue #25).

What is timed: ``ContinualClassifier.partial_fit`` on ``--months`` months of
``--rows`` rows x ``--features`` float32 features (binary labels), an MLP
with ``--hidden`` units, Adam, ``batch_size=--batch-size`` (the *global*
batch, the same for every process count, so every run trains the same
model), EWC and a rehearsal buffer as in the issue's parity test. A first,
untimed month initializes the model (and gives EWC its first importances);
the timed months run from a barrier to a barrier on every rank.

``1``
    One process, ``distributed=False``: the baseline.
``N``
    ``N`` processes started as torchrun starts them (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR=127.0.0.1``, a free port), ``distributed=True``, gloo on the
    CPU or nccl with ``--device cuda`` (one GPU per process).

Rows per second counts training rows through forward and backward
(``n_samples_processed_``: the month and its replayed rows, every epoch),
divided by the timed wall time. Scaling efficiency is the speed-up over one
process divided by the number of processes (1.0 is perfect scaling). The CPU
columns add up every rank's CPU time over the timed months (each rank's own,
before it waits at the final barrier) and divide by one process's: the work
data-parallelism adds (slicing, packing, reducing), a figure that other load
on a shared machine moves far less than the wall time; with N free cores the
wall-time speed-up is at most about N / that ratio. Each
process uses ``--threads`` CPU threads (default 1), so N processes use N
cores: on a machine with fewer free cores than processes the figure measures
the contention, not the method; the machine line says how many CPUs there are.

Usage::

    python benchmarks/bench_distributed.py                      # 1 and 2 processes, CPU
    python benchmarks/bench_distributed.py --processes 1 2 4 8 --device cuda
    python benchmarks/bench_distributed.py --quick               # smoke run
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", help="'cpu' (gloo) or 'cuda' (nccl)")
    parser.add_argument("--rows", type=int, default=20_000, help="rows per month")
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=512, help="the global batch")
    parser.add_argument("--months", type=int, default=2, help="timed months")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per month")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per process count, interleaved; the median is reported")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser


def _data(args):
    import numpy as np

    rng = np.random.default_rng(0)
    n_rows = args.rows * (args.months + 1)
    X = rng.standard_normal((n_rows, args.features), dtype=np.float32)
    w = rng.standard_normal(args.features).astype(np.float32)
    y = (X @ w + 0.5 * rng.standard_normal(n_rows) > 0).astype(np.int64)
    return X, y


def worker(args):
    """One rank: train, time the months after the first, write rank 0's figures."""
    import torch

    from skcl import EWC, ContinualClassifier, RehearsalBuffer
    from skcl.distributed import init_distributed

    torch.set_num_threads(args.threads)
    distributed = "RANK" in os.environ
    device = init_distributed() if distributed else args.device
    X, y = _data(args)
    clf = ContinualClassifier(
        module__hidden_units=tuple(args.hidden), batch_size=args.batch_size,
        max_epochs=args.epochs, regularizer=EWC(lam=10.0),
        rehearsal=RehearsalBuffer(capacity=args.rows, replay_ratio=0.25),
        random_state=0, device=device, distributed=distributed)

    def barrier():
        if distributed:
            torch.distributed.barrier()
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()

    clf.partial_fit(X[:args.rows], y[:args.rows], classes=[0, 1])   # untimed
    processed = clf.n_samples_processed_
    barrier()
    start, cpu_start = time.perf_counter(), time.process_time()
    for month in range(1, args.months + 1):
        rows = slice(month * args.rows, (month + 1) * args.rows)
        clf.partial_fit(X[rows], y[rows])
    cpu_seconds = time.process_time() - cpu_start   # before waiting for the others
    barrier()
    seconds = time.perf_counter() - start
    if distributed:
        total = torch.tensor([cpu_seconds], dtype=torch.float64)
        torch.distributed.all_reduce(total)
        cpu_seconds = float(total)
    rank = int(os.environ.get("RANK", 0))
    if rank == 0:
        Path(args.worker).write_text(json.dumps({
            "seconds": seconds, "cpu_seconds": cpu_seconds,
            "rows": clf.n_samples_processed_ - processed,
            "first_weight": float(next(clf.module_.parameters()).detach().flatten()[0]),
        }))
    if distributed:
        torch.distributed.destroy_process_group()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(args, n_processes, out):
    """Start ``n_processes`` ranks (1: one plain process); return rank 0's figures."""
    command = [sys.executable, __file__, *sys.argv[1:], "--worker", str(out)]
    base = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    if n_processes == 1:
        envs = [base]
    else:
        port = str(_free_port())
        envs = [dict(base, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(n_processes),
                     MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
                for rank in range(n_processes)]
    processes = [subprocess.Popen(command, env=env) for env in envs]
    codes = [process.wait() for process in processes]
    if any(codes):
        raise SystemExit(f"{n_processes} processes: exit codes {codes}")
    return json.loads(Path(out).read_text())


def main():
    args = _parser().parse_args()
    if args.quick:
        args.rows, args.months, args.hidden = 2_000, 1, [64]
    if args.worker:
        return worker(args)
    import platform

    import torch

    runs = {n: [] for n in args.processes}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            order = args.processes[repeat % len(args.processes):] + \
                args.processes[:repeat % len(args.processes)]
            for n in order:
                runs[n].append(launch(args, n, Path(folder) / f"{n}-{repeat}.json"))
    n_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    machine = (torch.cuda.get_device_name() if args.device == "cuda"
               else platform.processor() or platform.machine())
    print(f"machine: {machine}; {n_cpus} CPUs usable; torch {torch.__version__}; "
          f"{args.threads} thread(s) per process; backend "
          f"{'nccl' if args.device == 'cuda' else 'gloo'}")
    print(f"data: {args.months} timed months of {args.rows} rows x {args.features} "
          f"features, MLP {tuple(args.hidden)}, global batch {args.batch_size}, "
          f"{args.epochs} epoch(s), EWC + rehearsal (replay 0.25)")
    rates = {n: statistics.median(r["rows"] / r["seconds"] for r in runs[n]) for n in runs}
    cpu = {n: statistics.median(r["cpu_seconds"] for r in runs[n]) for n in runs}
    baseline = rates.get(1)
    print(f"{'processes':>9} | {'rows/s':>9} | {'speed-up':>8} | {'efficiency':>10} | "
          f"{'CPU s (all ranks)':>17} | {'CPU ratio':>9} | first weight")
    for n in args.processes:
        speedup = rates[n] / baseline if baseline else float("nan")
        cpu_ratio = cpu[n] / cpu[1] if 1 in cpu else float("nan")
        print(f"{n:>9} | {rates[n]:>9.0f} | {speedup:>8.2f} | {speedup / n:>10.2f} | "
              f"{cpu[n]:>17.2f} | {cpu_ratio:>9.2f} | {runs[n][0]['first_weight']:+.6f}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine, "cpus": n_cpus, "args": vars(args),
            "rows_per_second": rates, "cpu_seconds": cpu, "runs": runs}, indent=2))
    return None


if __name__ == "__main__":
    main()

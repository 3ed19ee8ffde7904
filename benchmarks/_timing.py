"""Timing helpers shared by the benchmark scripts (not part of the skcl package).

Every benchmark compares variants *side by side in one run*: each repeat times
every variant once, in an order that rotates from repeat to repeat, so that
background load on a shared machine hits all variants alike. Ratios are taken
per repeat (paired) and summarized by their median and their spread
(min-max over repeats).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

# The clock every timer here reads; ``setup`` may switch it to process CPU time.
_clock = time.perf_counter


def clock():
    """Seconds on the clock chosen by ``--clock`` (wall time by default)."""
    return _clock()


def add_common_arguments(parser, default_repeats):
    """Add ``--device``, ``--quick``, ``--repeats``, ``--threads``, ``--clock``, ``--json``."""
    parser.add_argument("--device", default="cpu", help="'cpu' (default) or 'cuda'")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="'wall' (default) or 'cpu': this process's CPU time "
                             "(time.process_time, all threads), which other processes' "
                             "load on a shared machine barely moves; CPU device only")
    parser.add_argument("--quick", action="store_true",
                        help="seconds-long smoke run on small data (numbers not meaningful)")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"timed repeats per variant (default {default_repeats}, "
                             "2 with --quick)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    return parser


def setup(args, default_repeats):
    """Apply the common arguments; return the ``torch.device`` and the repeat count."""
    global _clock
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {args.device} was requested but CUDA is not available")
    if args.clock == "cpu":
        if device.type != "cpu":
            sys.exit("--clock cpu measures host CPU time: use it with --device cpu only")
        _clock = time.process_time
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else default_repeats)
    return device, repeats


def synchronize(device):
    """Wait for queued device work, so a host clock reads finished work."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    """Run ``fn()`` once; return its wall time in seconds (device-synchronized)."""
    synchronize(device)
    start = clock()
    fn()
    synchronize(device)
    return clock() - start


def self_timed(fn):
    """Mark ``fn`` as returning the seconds it measured itself (see ``run_interleaved``)."""
    fn.self_timed = True
    return fn


def run_interleaved(variants, repeats, device):
    """Time each variant once per repeat, rotating the order between repeats.

    Parameters
    ----------
    variants : dict of str -> callable
        Each callable runs the timed region once; the whole call is timed here,
        except for callables wrapped by :func:`self_timed`, whose return value
        (seconds they measured themselves, e.g. one epoch inside
        ``partial_fit``) is taken instead.
    repeats : int
    device : torch.device

    Returns
    -------
    times : dict of str -> list of float
        Seconds per repeat, in repeat order (so entries are paired across variants).
    """
    names = list(variants)
    times = {name: [None] * repeats for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = clock()
            own = variants[name]()
            synchronize(device)
            elapsed = clock() - start
            times[name][repeat] = own if getattr(variants[name], "self_timed", False) else elapsed
    return times


def paired_ratio(numerator, denominator):
    """Median and min/max of the per-repeat ratios ``numerator[i] / denominator[i]``."""
    ratios = [a / b for a, b in zip(numerator, denominator)]
    return statistics.median(ratios), min(ratios), max(ratios)


def describe(times):
    """Median, min and max of a list of seconds, in milliseconds."""
    return (1e3 * statistics.median(times), 1e3 * min(times), 1e3 * max(times))


def machine_description(device):
    """One line naming the machine the numbers come from."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    clock_name = "process CPU time" if _clock is time.process_time else "wall time"
    n_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{name}; torch {torch.__version__}; {n_cpus} CPUs usable; "
            f"torch threads {torch.get_num_threads()}; clock: {clock_name}")


def print_table(title, header, rows):
    """Print a GitHub-markdown table (so it pastes into benchmarks/README.md)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(" --- " for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def format_ratio(median, low, high):
    return f"{median:.3f} ({low:.3f}-{high:.3f})"


def format_ms(times):
    median, low, high = describe(times)
    return f"{median:.1f} ({low:.1f}-{high:.1f})"


def write_json(path, payload):
    if path:
        with open(path, "w") as handle:
            json.dump(payload, handle, indent=2, default=str)


def new_parser(description):
    return argparse.ArgumentParser(description=description)

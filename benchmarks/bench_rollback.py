"""What the rollback record costs at each ``partial_fit`` (issue 13, principle 10).

Every state-changing call records the state it may change, so that a failure
puts it back. Until round 2 the record was ``copy.deepcopy(self.__dict__)``:
every tensor the estimator holds, including every past month's EWC anchor and
importance, the history and the snapshots, copied at every call. Now
``ContinualClassifier._save_state`` copies only what a month trains in place
(the weights, the optimizer's state, the callbacks) and records the rest by
reference. This script trains a ~100k-parameter MLP with EWC for ``--months``
months and times both records on the final estimator, side by side.

    python benchmarks/bench_rollback.py            # 24 months, 100k parameters
    python benchmarks/bench_rollback.py --quick    # a few seconds
"""

import copy

import numpy as np
import torch
from _timing import (
    add_common_arguments,
    format_ms,
    format_ratio,
    machine_description,
    new_parser,
    paired_ratio,
    print_table,
    run_interleaved,
    setup,
)

from skcl import EWC, ContinualClassifier
from skcl.datasets import make_drifting_stream


def tensor_bytes(obj, seen=None):
    """Bytes of every distinct tensor and array reachable from ``obj``."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        key = ("t", obj.untyped_storage().data_ptr())
        if key in seen:
            return 0
        seen.add(key)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, np.ndarray):
        key = ("a", obj.__array_interface__["data"][0])
        if key in seen or obj.dtype == object:
            return 0
        seen.add(key)
        return obj.nbytes
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.nn.Module):
        return sum(tensor_bytes(v, seen) for v in obj.state_dict().values())
    if isinstance(obj, torch.optim.Optimizer):
        return tensor_bytes(obj.state_dict(), seen)
    if isinstance(obj, dict):
        return sum(tensor_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__"):
        return tensor_bytes(vars(obj), seen)
    return 0


def record_bytes(clf):
    """Bytes the current record copies: module, criterion and optimizer tensors."""
    return (tensor_bytes(clf.module_) + tensor_bytes(clf.criterion_)
            + tensor_bytes(clf.optimizer_.state_dict()))


def main():
    parser = add_common_arguments(new_parser(__doc__.splitlines()[0]), default_repeats=7)
    parser.add_argument("--months", type=int, default=24)
    args = parser.parse_args()
    _, repeats = setup(args, default_repeats=7)
    n_months = 4 if args.quick else args.months
    X, y, months = make_drifting_stream(n_months=n_months, n_features=200,
                                        n_samples_per_month=300, random_state=0)
    clf = ContinualClassifier(module__hidden_units=(320, 128), max_epochs=1,
                              regularizer=EWC(lam=10.0), random_state=0, device=args.device)
    for month in range(n_months):
        rows = months == month
        clf.partial_fit(X[rows], y[rows], classes=[0, 1])
    n_parameters = sum(p.numel() for p in clf.module_.parameters())

    variants = {
        "deepcopy(__dict__) (round 1)": lambda: copy.deepcopy(clf.__dict__),
        "_save_state (now)": clf._save_state,
    }
    times = run_interleaved(variants, repeats, args.device)
    old, new = times["deepcopy(__dict__) (round 1)"], times["_save_state (now)"]
    bytes_old = tensor_bytes(clf.__dict__)
    bytes_new = record_bytes(clf)
    print(machine_description(args.device))
    print(f"{n_months} months of EWC, {n_parameters:,} parameters, device {args.device}")
    header = ["record", "ms (min-max)", "tensor bytes copied"]
    print_table("Rollback record per partial_fit", header, [
        ["deepcopy(__dict__) (round 1)", format_ms(old), f"{bytes_old / 2**20:.1f} MiB"],
        ["_save_state (now)", format_ms(new), f"{bytes_new / 2**20:.2f} MiB"],
        ["ratio now / round 1", format_ratio(*paired_ratio(new, old)),
         f"{bytes_new / bytes_old:.3f}"],
    ])


if __name__ == "__main__":
    main()

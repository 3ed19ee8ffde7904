"""Cost of EWC-style penalties and of importance estimates (issue #6).

Three comparisons, each timed side by side (interleaved repeats, paired ratios),
on ``skcl.modules.MLP`` with two hidden layers of 256 units over 256 float32
features, two classes:

1. *Training step*: ``ContinualClassifier.train_step`` (zero_grad, forward,
   loss, backward, Adam step, and the penalty when there is one) over the same
   ``--steps`` batches of ``--batch-size`` rows already on the device, for a
   classifier without a regularizer (``naive``) and with ``L2``, ``EWC`` and
   ``OnlineEWC`` after one consolidated month (so the penalty is active).
   The same again for a hand-written step (module, criterion, optimizer
   directly) with and without ``regularizer.penalty(module)``, which isolates
   the penalty from skorch's per-step work.
2. *Importance estimates* over ``--samples`` rows (chunks of 256): the exact
   empirical Fisher (:func:`skcl.fisher.empirical_fisher`, its Linear-layer
   path and its ``torch.func.vmap`` path), :func:`skcl.fisher.fisher_variance`
   and :func:`skcl.fisher.batch_fisher`, each against one plain forward and
   backward pass over the same rows in the same chunks
   (``torch.autograd.grad`` of each chunk's mean loss).
3. *Hessian diagonal* by Hutchinson's estimator with ``--probes`` probes
   (:func:`skcl.fisher.hessian_diagonal`), against the same plain pass.

Usage::

    python benchmarks/bench_ewc.py
    python benchmarks/bench_ewc.py --device cuda
    python benchmarks/bench_ewc.py --quick
"""

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
    write_json,
)

from skcl import ContinualClassifier
from skcl.fisher import batch_fisher, empirical_fisher, fisher_variance, hessian_diagonal
from skcl.modules import MLP
from skcl.regularizers import EWC, L2, OnlineEWC

N_FEATURES = 256
HIDDEN_UNITS = (256, 256)
STEP_TARGET = 1.15
FISHER_TARGET = 3.0


def make_data(n_rows, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, N_FEATURES), dtype=np.float32)
    w = rng.standard_normal(N_FEATURES).astype(np.float32)
    y = (X @ w + 0.5 * rng.standard_normal(n_rows) > 0).astype(np.int64)
    return X, y


def trained_net(regularizer, X, y, batch_size, device):
    net = ContinualClassifier(
        MLP, module__hidden_units=HIDDEN_UNITS, max_epochs=1, batch_size=batch_size,
        lr=1e-3, regularizer=regularizer, random_state=0, device=device,
    )
    return net.partial_fit(X, y, classes=[0, 1])  # consolidates: the penalty is now active


def step_variants(X, y, batch_size, n_steps, device):
    """{name: callable running n_steps training steps} for the step comparison."""
    X_dev = torch.as_tensor(X, device=device)
    y_dev = torch.as_tensor(y, device=device)
    batches = [(X_dev[i:i + batch_size], y_dev[i:i + batch_size])
               for i in range(0, n_steps * batch_size, batch_size)]
    regularizers = {"naive": None, "L2": L2(lam=1.0), "EWC": EWC(lam=100.0),
                    "OnlineEWC": OnlineEWC(lam=100.0)}
    nets = {name: trained_net(reg, X, y, batch_size, device)
            for name, reg in regularizers.items()}

    def skcl_steps(net):
        def run():
            for batch in batches:
                net.train_step(batch)
        return run

    def hand_steps(net, with_penalty):
        module, criterion, optimizer = net.module_, net.criterion_, net.optimizer_
        regularizer = net.regularizer_

        def run():
            module.train()
            for Xb, yb in batches:
                optimizer.zero_grad()
                loss = criterion(module(Xb), yb)
                if with_penalty:
                    loss = loss + regularizer.penalty(module)
                loss.backward()
                optimizer.step()
        return run

    variants = {f"skcl {name} step": skcl_steps(net) for name, net in nets.items()}
    variants["hand naive step"] = hand_steps(nets["EWC"], with_penalty=False)
    variants["hand EWC step"] = hand_steps(nets["EWC"], with_penalty=True)
    return variants


def estimate_variants(X, y, device, n_probes):
    X_dev = torch.as_tensor(X, device=device)
    y_dev = torch.as_tensor(y, device=device)
    torch.manual_seed(0)
    module = MLP(n_features=N_FEATURES, n_classes=2, hidden_units=HIDDEN_UNITS).to(device)
    criterion = torch.nn.CrossEntropyLoss()
    params = [p for p in module.parameters() if p.requires_grad]
    chunk = 256
    generator = torch.Generator().manual_seed(0)

    def plain_pass():
        module.eval()
        for start in range(0, X_dev.shape[0], chunk):
            loss = criterion(module(X_dev[start:start + chunk]), y_dev[start:start + chunk])
            torch.autograd.grad(loss, params)

    return {
        "plain fwd+bwd": plain_pass,
        "empirical_fisher (auto: Linear identity)":
            lambda: empirical_fisher(module, X_dev, y_dev, criterion, batch_size=chunk),
        "empirical_fisher (vmap)":
            lambda: empirical_fisher(module, X_dev, y_dev, criterion, method="vmap",
                                     batch_size=chunk),
        "fisher_variance":
            lambda: fisher_variance(module, X_dev, y_dev, criterion, batch_size=chunk),
        "batch_fisher":
            lambda: batch_fisher(module, X_dev, y_dev, criterion, batch_size=chunk),
        f"hessian_diagonal (Hutchinson, {n_probes} probes)":
            lambda: hessian_diagonal(module, X_dev, y_dev, criterion, method="hutchinson",
                                     n_probes=n_probes, generator=generator,
                                     batch_size=chunk),
    }


def main():
    parser = add_common_arguments(new_parser(__doc__.splitlines()[0]), default_repeats=9)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=None, help="steps per timing (default 50)")
    parser.add_argument("--samples", type=int, default=None,
                        help="rows for the importance estimates (default 4096)")
    parser.add_argument("--probes", type=int, default=10, help="Hutchinson probes")
    args = parser.parse_args()
    device, repeats = setup(args, default_repeats=9)
    n_steps = args.steps or (5 if args.quick else 50)
    n_samples = args.samples or (512 if args.quick else 4096)
    print(f"machine: {machine_description(device)}")
    print(f"MLP {N_FEATURES}-{'-'.join(map(str, HIDDEN_UNITS))}-2; {repeats} repeats, "
          "median (min-max)")
    results = {"machine": machine_description(device)}

    X, y = make_data(max(n_steps * args.batch_size, 1024), seed=0)
    variants = step_variants(X, y, args.batch_size, n_steps, device)
    for run in variants.values():
        run()  # warm-up (Adam state, allocator)
    times = run_interleaved(variants, repeats, device)
    rows = []
    for name, seconds in times.items():
        base = times["hand naive step" if name.startswith("hand") else "skcl naive step"]
        ratio = paired_ratio(seconds, base)
        is_target = name in ("skcl EWC step", "hand EWC step")
        rows.append([name, f"{1e3 * np.median(seconds) / n_steps:.3f}",
                     format_ratio(*ratio),
                     f"<= {STEP_TARGET}: {'met' if ratio[0] <= STEP_TARGET else 'MISSED'}"
                     if is_target else ""])
    print_table(f"training step, batch {args.batch_size}, {n_steps} steps per timing, "
                f"device {device}", ["variant", "ms per step", "ratio to naive", "target"],
                rows)
    results["steps"] = times

    X, y = make_data(n_samples, seed=1)
    variants = estimate_variants(X, y, device, args.probes)
    for run in variants.values():
        run()  # warm-up
    times = run_interleaved(variants, repeats, device)
    rows = []
    for name, seconds in times.items():
        ratio = paired_ratio(seconds, times["plain fwd+bwd"])
        target = ""
        if name.startswith("empirical_fisher (auto"):
            target = f"<= {FISHER_TARGET}: {'met' if ratio[0] <= FISHER_TARGET else 'MISSED'}"
        rows.append([name, format_ms(seconds), format_ratio(*ratio), target])
    print_table(f"importance estimates over {n_samples} rows, chunks of 256, device {device}",
                ["estimate", "ms", "ratio to plain fwd+bwd", "target"], rows)
    results["estimates"] = times
    write_json(args.json, results)


if __name__ == "__main__":
    main()

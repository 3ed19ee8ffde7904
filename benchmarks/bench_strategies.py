"""Training-step cost of every loss- and gradient-level strategy, relative to naive (issue #15).

``ContinualClassifier.train_step`` (zero_grad, forward, loss and the
strategy's batch term, backward, the strategy's gradient hook, Adam step)
over the same ``--steps`` batches of ``--batch-size`` rows already on the
device, timed side by side (interleaved repeats, paired ratios) for a
classifier without a regularizer (``naive``) and with each strategy after one
consolidated month, so that every hook is active: the penalty of L2, EWC, SI
and MAS, SI's path integral, LwF's teacher forward, A-GEM's reference gradient
on ``sample_size`` memory rows, DER++'s two replayed batches. Model:
``skcl.modules.MLP`` with two hidden layers of 256 units over 256 float32
features, two classes. SI's target: at most 1.2 times naive.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_strategies.py --threads 1
    python benchmarks/bench_strategies.py --device cuda
    python benchmarks/bench_strategies.py --quick
"""

import numpy as np
import torch
from _timing import (
    add_common_arguments,
    format_ratio,
    machine_description,
    new_parser,
    paired_ratio,
    print_table,
    run_interleaved,
    setup,
    write_json,
)

from skcl import AGEM, EWC, L2, MAS, SI, ContinualClassifier, DERpp, LwF, RehearsalBuffer
from skcl.modules import MLP

N_FEATURES = 256
HIDDEN_UNITS = (256, 256)
SI_TARGET = 1.2


def make_data(n_rows, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, N_FEATURES), dtype=np.float32)
    w = rng.standard_normal(N_FEATURES).astype(np.float32)
    y = (X @ w + 0.5 * rng.standard_normal(n_rows) > 0).astype(np.int64)
    return X, y


def strategies():
    """The strategies compared, with the defaults proposed for ``skcl-benchmark``."""
    return {
        "naive": None,
        "L2": L2(lam=1.0),
        "EWC": EWC(lam=100.0),
        "SI": SI(lam=1.0, damping=0.1),
        "MAS": MAS(lam=1.0),
        "LwF": LwF(lam=1.0, temperature=2.0),
        "AGEM": AGEM(memory=RehearsalBuffer(capacity=10_000), sample_size=256),
        "DERpp": DERpp(alpha=0.1, beta=0.5, memory=RehearsalBuffer(capacity=10_000)),
    }


def trained_net(regularizer, X, y, batch_size, device):
    net = ContinualClassifier(
        MLP, module__hidden_units=HIDDEN_UNITS, max_epochs=1, batch_size=batch_size,
        lr=1e-3, regularizer=regularizer, random_state=0, device=device,
    )
    return net.partial_fit(X, y, classes=[0, 1])  # consolidated: every hook is active


def step_variants(X, y, batch_size, n_steps, device):
    X_dev, y_dev = torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)
    batches = [(X_dev[i:i + batch_size], y_dev[i:i + batch_size])
               for i in range(0, n_steps * batch_size, batch_size)]
    nets = {name: trained_net(reg, X, y, batch_size, device)
            for name, reg in strategies().items()}

    def steps(net):
        def run():
            for batch in batches:
                net.train_step(batch)
        return run

    return {name: steps(net) for name, net in nets.items()}


def main():
    parser = add_common_arguments(new_parser(__doc__.splitlines()[0]), default_repeats=9)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=None, help="steps per timing (default 50)")
    args = parser.parse_args()
    device, repeats = setup(args, default_repeats=9)
    n_steps = args.steps or (5 if args.quick else 50)
    print(f"machine: {machine_description(device)}")
    print(f"MLP {N_FEATURES}-{'-'.join(map(str, HIDDEN_UNITS))}-2; {repeats} repeats, "
          "median (min-max)")
    X, y = make_data(max(n_steps * args.batch_size, 1024), seed=0)
    variants = step_variants(X, y, args.batch_size, n_steps, device)
    for run in variants.values():
        run()  # warm-up (Adam state, allocator)
    times = run_interleaved(variants, repeats, device)
    rows = []
    for name, seconds in times.items():
        ratio = paired_ratio(seconds, times["naive"])
        target = ""
        if name == "SI":
            target = f"<= {SI_TARGET}: {'met' if ratio[0] <= SI_TARGET else 'MISSED'}"
        rows.append([name, f"{1e3 * np.median(seconds) / n_steps:.3f}",
                     format_ratio(*ratio), target])
    print_table(f"training step, batch {args.batch_size}, {n_steps} steps per timing, "
                f"device {device}", ["strategy", "ms per step", "ratio to naive", "target"],
                rows)
    write_json(args.json, {"machine": machine_description(device), "steps": times})


if __name__ == "__main__":
    main()

"""Run ``skcl-benchmark`` with the strategies of issue #15 added (SI, MAS, LwF, A-GEM, DER++).

Until ``skcl.benchmark`` lists them itself, this script adds them to its
registry of regularizers (``skcl._benchmark.strategies``), with the settings and
tuning grids below, and runs its command line:
each strategy trained month by month on the embedded 12-month stream and
scored on every month, next to naive fine-tuning, full retraining, rehearsal
and EWC. Every argument is passed on to ``skcl-benchmark``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/report_strategies.py --out results-issue15
    python benchmarks/report_strategies.py --quick --out /tmp/quick
"""

import sys

from skcl import AGEM, MAS, SI, DERpp, LwF, RehearsalBuffer, benchmark
from skcl._benchmark import strategies as registry

STRATEGIES = "naive,retrain,rehearsal-fixed,l2,ewc-empirical,si,mas,lwf,agem,derpp"


def _memory(config):
    # as large as the rehearsal strategies' buffer
    return RehearsalBuffer(capacity=config["buffer_capacity"])


# lam of SI, MAS and LwF: the best mean accuracy of a sweep (SI 10/100/1000, MAS
# 10/100/1000, LwF 3/10) on the stream of --random-state 1, not the reported one
NEW_REGULARIZERS = {
    "si": (lambda c: SI(lam=1000.0, damping=0.1), "SI, path-integral importance, lam=1000"),
    "mas": (lambda c: MAS(lam=10.0), "MAS, output-sensitivity importance, lam=10"),
    "lwf": (lambda c: LwF(lam=10.0, temperature=2.0), "LwF, distillation, lam=10, T=2"),
    "agem": (lambda c: AGEM(memory=_memory(c), sample_size=256),
             "A-GEM, 256 memory rows per reference gradient"),
    "derpp": (lambda c: DERpp(alpha=0.1, beta=0.5, memory=_memory(c)),
              "DER++, alpha=0.1, beta=0.5"),
}


# what --tune searches: decades around each default (the default included)
NEW_GRIDS = {
    "si": {"regularizer__lam": (10.0, 100.0, 1000.0, 10000.0)},
    "mas": {"regularizer__lam": (0.1, 1.0, 10.0, 100.0)},
    "lwf": {"regularizer__lam": (1.0, 3.0, 10.0, 30.0)},
    "agem": {"regularizer__sample_size": (64, 256)},
    "derpp": {"regularizer__alpha": (0.1, 0.5), "regularizer__beta": (0.5, 1.0)},
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    registry._REGULARIZERS.update(NEW_REGULARIZERS)
    registry._GRIDS.update(NEW_GRIDS)
    if not any(arg.startswith("--strategies") or arg == "--list-strategies" for arg in argv):
        argv = [*argv, "--strategies", STRATEGIES]
    return benchmark.main(argv)


if __name__ == "__main__":
    sys.exit(main())

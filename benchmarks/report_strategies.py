"""Run ``skcl-benchmark`` on the strategies of issue #15 (SI, MAS, LwF, A-GEM, DER++).

Not run in CI. ``skcl.benchmark`` lists these strategies itself (family "other
methods", settings and tuning grids in ``skcl._benchmark.strategies``); this
script runs its command line on them next to naive fine-tuning, full
retraining, rehearsal and EWC, on the embedded 12-month stream. Every argument
is passed on to ``skcl-benchmark``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/report_strategies.py --out results-issue15
    python benchmarks/report_strategies.py --quick --out /tmp/quick
    python benchmarks/report_strategies.py --seeds 3 --tune --jobs 2 --out results
"""

import sys

from skcl import benchmark

STRATEGIES = "naive,retrain,rehearsal-fixed,l2,ewc-empirical,si,mas,lwf,agem,derpp"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not any(arg.startswith("--strategies") or arg == "--list-strategies" for arg in argv):
        argv = [*argv, "--strategies", STRATEGIES]
    return benchmark.main(argv)


if __name__ == "__main__":
    sys.exit(main())

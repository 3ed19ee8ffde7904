"""``skcl-benchmark``: every continual-learning strategy against full retraining.

Run it as ``skcl-benchmark`` (the console script) or ``python -m
skcl.benchmark``. It trains each strategy month by month on a stream (a
built-in one, ``--stream drifting``, :func:`~skcl.datasets.make_drifting_stream`,
the default, or ``--stream detection``,
:func:`~skcl.datasets.make_detection_stream`; or a CSV, parquet or sparse
file with ``--data``) at several seeds (``--seeds``, default 3), optionally
after tuning it (``--tune``) and at one or more budgets (``--budget``),
scores every intermediate model on every month's held-out part with
:func:`~skcl.evaluation.evaluate_stream`, prints the summary table (the
past-months mean and the next-month score with 95% intervals over seeds,
differences to ``retrain`` as paired intervals, costs relative to
``retrain``) and the verdicts on the original study's seven findings, and
writes to ``--out``:

``results.csv``
    The tidy table: one row per (seed, strategy, training month, evaluated
    month) with the score, the cumulative samples processed and the wall time.
``summary.json``
    The configuration; per strategy its family, description and tuning grid;
    one summary row per (seed, strategy) (``seeds``); the intervals and mean
    costs per strategy (``summary``); the values tuning chose at each seed
    with every candidate's cross-validated score (``tuning``); the findings;
    the run's wall time.
``findings.md``
    The findings table: each claim, its verdict, and the intervals behind it.
``forgetting.png``
    Per evaluated month, the score of each strategy's final model (mean over
    seeds, band = 95% interval), one panel per strategy family; ``retrain`` in
    black and ``naive`` in red in every panel (needs matplotlib, the ``plot``
    extra).
``frontier.png``
    With ``--budget``: the past-months mean and the next-month score of every
    strategy at every budget against its measured cost, with seed intervals.
``class_incremental.md``
    With ``--new-classes`` only: the class-incremental table (average
    incremental accuracy, final accuracy, forgetting per class, cost; mean and
    standard deviation over seeds) of a run where each malware family is a
    label that arrives mid-stream and every strategy grows its classes (see
    :ref:`new_classes`).

The layout of the code: this module is the entry point only;
``skcl/_benchmark/cli.py`` holds the options (grouped; a new option is one
``add_argument`` there) and their checks, ``data.py`` the streams,
``strategies.py`` the registry (how each strategy is built, tuned and
budgeted), ``runner.py`` the tasks, ``report.py``, ``budget.py`` and
``outputs.py`` what is written and printed.

Strategies and their hyper-parameters
-------------------------------------
All strategies share one network: the bundled :class:`~skcl.MLP` with two
hidden layers of 64 units, Adam at ``lr=1e-3``, batches of 128 rows and
``--epochs`` epochs per month (default 5). At each seed every fine-tuning
strategy starts from the very same model after month one and differs only in
what it does afterwards. Without ``--tune`` the values below are ordinary
defaults from the literature's usual ranges; ``--list-strategies`` prints them
with the grid ``--tune`` searches.

* ``retrain``: re-initialize and train on every month so far, every month
  (the reference: best retention, highest cost).
* ``naive``: keep fine-tuning at ``lr`` (the lower bound on retention).
* ``averaging``: :class:`~skcl.MonthlyAveragingClassifier`, one fresh model
  per month (seeded differently each month), probabilities averaged.
* ``rehearsal-fixed``: :class:`~skcl.RehearsalBuffer` (reservoir policy)
  holding a quarter of the stream's training rows (2,100 on the default
  stream), ``replay_ratio=0.5``, epochs as long as the month (half new, half
  replayed rows).
* ``rehearsal-grow``: the same buffer, each epoch the month's rows plus as
  many replayed rows (twice as long).
* ``low-lr``: fine-tune at ``finetune_lr = 0.1 * lr``.
* ``low-lr-finish``: fine-tune at ``lr``, then close every month with two
  finishing epochs at ``0.1 * lr`` (``finish_epochs=2``).
* ``l2``: :class:`~skcl.L2` pull towards the previous month's weights at its
  default ``lam=1``.
* ``ewc-empirical``, ``ewc-hessian``: :class:`~skcl.EWC` at its default
  ``lam=100`` with the empirical Fisher and with the Hessian diagonal
  (negative entries clipped, the class default).
* ``ewc-variance``: EWC with the variance-based importance at ``lam=5000``:
  that importance is on another scale (fourth powers of gradients, about 1/50
  of the Fisher's total after the first month of the default stream), so
  ``lam`` is scaled to give the penalty the same weight.
* ``online-ewc``: :class:`~skcl.OnlineEWC`, empirical Fisher, ``lam=100``,
  ``gamma=0.9`` (a tenth of the accumulated importance fades per month).
* ``rehearsal+<regularizer>``: ``rehearsal-fixed`` combined with each of the
  five regularizers above.

Tuning
------
``--tune`` runs :class:`~sklearn.model_selection.GridSearchCV` for every
strategy with a grid (all but ``retrain`` and ``naive``): ``lam`` over
decades for the regularizers, replay ratio and buffer policy for rehearsal,
``finetune_lr`` or the finishing epochs and their rate for the learning-rate
strategies, the weighting for averaging. Each candidate is trained on the
stream with :class:`~skcl.MonthlyKFold` (3 folds, 2 with ``--quick``; every
fold holds every month) and scored by :class:`~skcl.ForgettingScorer`
(``aggregate="mean"``, the benchmark's own criterion), on the **training
parts only**: the held-out parts that the table reports are never seen by
the search. Tuning is repeated at every seed; its time is the ``tune s``
column, apart from the final training's ``train s``.

Scores
------
``mean`` is the past-months mean: the final model on every month's test
part. ``next month`` is the deployed model's score: the model after month
``t`` on month ``t + 1``'s test part, averaged over ``t``
(:func:`~skcl.scoring.next_month_score`). Both are in the table, in
``summary.json`` (``mean_score`` and ``next_month_score``, each with its
interval, per strategy in ``summary``) and in the frontier figure.

Costs and budgets
-----------------
``train rows`` (see :func:`~skcl.evaluation.evaluate_stream` and
:ref:`cost`): rows through forward+backward, replayed, memory and
importance-estimate rows included; ``fwd rows`` the forward-only rows (a
teacher's). With ``M`` months of ``n`` training rows and ``E`` epochs,
fine-tuning strategies and ``rehearsal-fixed`` train on ``E * M * n`` rows,
``rehearsal-grow`` about twice that, DER++ and A-GEM about three times,
and ``retrain`` ``E * n * M (M + 1) / 2``. ``--budget F`` (several
comma-separated values run side by side) gives every strategy ``F`` times
retrain's train rows at the same seed; each registry entry states how it
spends them (``skcl/_benchmark/strategies.py``: mostly epochs per month, at
least one), and every output names the run ``strategy@F``. Per budget, the
table "the strategy to use" and ``summary.json``'s ``budgets.choices`` name
the highest past-months mean within the budget whose next-month score is at
least naive's at that budget. ``train s`` is the
wall time inside ``partial_fit``; ``peak MB`` the growth of the process's
resident memory during the final training and scoring (Linux; a lower bound
in a reused worker process); ``device MB`` the peak CUDA memory allocated,
on CUDA runs. Each cost is also given relative to ``retrain`` at the same
seed.

Parallel runs
-------------
Each (strategy, seed) is one task. ``--jobs N`` runs them in ``N`` joblib
worker processes, ``--dask-scheduler ADDRESS`` on a ``dask.distributed``
cluster (``joblib.parallel_config(backend="dask")``; the ``dask`` extra).
Every task sets torch to ``--threads`` threads (default 1), so the results
are identical to ``--jobs 1`` for the same seeds.
"""

import sys

from ._benchmark import runner
from ._benchmark.cli import build_parser, list_strategies, make_plan
from ._benchmark.outputs import publish
from ._benchmark.strategies import strategies

__all__ = ["main"]


def main(argv=None):
    """Run the benchmark from the command line (``skcl-benchmark``).

    Parameters
    ----------
    argv : list of str or None, default=None
        Command-line arguments without the program name; ``None`` reads
        ``sys.argv``.

    Returns
    -------
    status : int
        0 on success. Invalid options and data that cannot be benchmarked
        exit through ``SystemExit(2)`` with a one-line message naming the
        value and the fix, as argparse does, before any strategy trains.

    Examples
    --------
    >>> from skcl.benchmark import main
    >>> main(["--quick", "--seeds", "2", "--tune", "--out", "results"])  # doctest: +SKIP
    0
    >>> main(["--stream", "detection", "--budget", "0.1,0.25",
    ...       "--out", "results"])  # doctest: +SKIP
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_strategies:
        list_strategies(strategies())
        return 0
    plan = make_plan(parser, args, argv)      # every check, before anything trains
    results, wall_seconds = runner.execute(plan)
    publish(plan, results, wall_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())

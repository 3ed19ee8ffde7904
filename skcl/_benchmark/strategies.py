"""The strategies ``skcl-benchmark`` compares: how to build each, tune it, and budget it.

A strategy is one :class:`Strategy` entry: a name, a figure family, a
one-line description, a ``build(config)`` returning the unfitted estimator,
a ``grid`` of the knobs a practitioner would tune (parameter names as
``set_params`` takes them), and ``spend``: how it spends a budget. Adding a
strategy is one entry in ``_STRATEGIES``; adding a regularizer is one entry
in ``_REGULARIZERS``, which yields both the regularizer alone and its
combination with rehearsal, or in ``_METHODS`` for a method run alone.

``config`` holds the run's shared settings: ``hidden_units``, ``epochs``,
``batch_size``, ``random_state`` (the seed of this repetition), ``device``
and ``buffer_capacity``.

Budgets (``skcl-benchmark --budget F``)
---------------------------------------
The cost of a run is its rows through forward+backward
(``ContinualClassifier.n_train_rows_``: the optimizer's batches plus the
strategy's own memory and importance-estimate rows; forward-only rows such
as a teacher's are reported apart). ``--budget F`` gives every strategy
``F * shape.retrain_rows`` of them, where ``shape`` (a :class:`StreamShape`)
describes the stream as the run sees it: ``month_rows`` (training rows of
each month, in order), ``epochs`` (retrain's epochs per month),
``batch_size`` and ``buffer_capacity``.

``spend(rows, shape) -> dict`` returns the ``set_params`` values that make
the strategy use at most ``rows`` (at least one epoch a month, so a very
small budget can be exceeded: the measured cost is reported, and a strategy
over its budget is never the one recommended). Most strategies spend a
budget on epochs; :func:`epochs_within` turns a per-epoch cost into the
number of epochs that fit::

    def _spend_derpp(rows, shape):
        # two memory batches per step from the second month: 3 rows per new row
        return {"max_epochs": epochs_within(rows, shape, per_row=3.0)}

A strategy that spends otherwise (a sample of the history per epoch, a
replay share) returns those parameters instead; ``shape.history_rows`` is
what one epoch over every earlier month costs, so warm-started cumulative
training at ``E`` epochs fits with
``history_fraction = (rows / E - shape.n_rows) / shape.history_rows``. ``spend=None`` marks the
reference (``retrain``), which always runs at its full cost.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ..averaging import MonthlyAveragingClassifier
from ..classifier import ContinualClassifier
from ..regularizers import AGEM, EWC, L2, MAS, SI, DERpp, LwF, OnlineEWC
from ..rehearsal import RehearsalBuffer

#: Figure panels, in order.
FAMILIES = ("baselines", "rehearsal", "learning rate", "regularizers",
            "rehearsal + regularizer", "other methods")

LR = 1e-3
BUFFER_SHARE = 0.25        # of the stream's training rows
REPLAY_RATIO = 0.5
FINISH_EPOCHS = 2
L2_LAM = 1.0               # L2's default
EWC_LAM = {
    "empirical": 100.0,    # EWC's default
    "hessian": 100.0,      # same scale as the Fisher (both are curvatures of the loss)
    # Variance importances are fourth powers of gradients: after the first month
    # of the default stream they sum to about 1/50 of the empirical Fisher's,
    # so lam is scaled up by that factor to give the penalty the same weight.
    "variance": 5000.0,
}
ONLINE_GAMMA = 0.9         # forget a tenth of the past importance per month

# Tuning grids: decades around each default (the default is always a candidate,
# so tuning can only keep it or find better on the training parts).
_LAM_DECADES = (1.0, 10.0, 100.0, 1000.0)
_GRIDS = {
    "l2": {"regularizer__lam": (0.1, 1.0, 10.0, 100.0)},
    "ewc-empirical": {"regularizer__lam": _LAM_DECADES},
    "ewc-hessian": {"regularizer__lam": _LAM_DECADES},
    "ewc-variance": {"regularizer__lam": (50.0, 500.0, 5000.0, 50000.0)},
    "online-ewc": {"regularizer__lam": _LAM_DECADES},
}


@dataclass(frozen=True)
class StreamShape:
    """The stream as a budget function sees it (see the module docstring).

    Parameters
    ----------
    month_rows : tuple of int
        Training rows of each month, in training order.
    epochs : int
        Epochs per month of the run (``--epochs``): retrain's.
    batch_size : int
        Rows per mini-batch.
    buffer_capacity : int
        Rows a rehearsal buffer or replay memory holds.
    """

    month_rows: tuple
    epochs: int
    batch_size: int
    buffer_capacity: int

    @property
    def n_rows(self):
        """Training rows of the whole stream (one pass over every month)."""
        return int(sum(self.month_rows))

    @property
    def history_rows(self):
        """Rows of the earlier months, summed over months: one epoch's history.

        A strategy that trains each month on its rows plus a share ``f`` of
        every earlier month's (``update="cumulative"`` with
        ``history_fraction=f``) spends ``n_rows + f * history_rows`` rows an
        epoch.
        """
        total, seen = 0, 0
        for rows in self.month_rows:
            total += seen
            seen += rows
        return total

    @property
    def retrain_rows(self):
        """Rows retraining processes: ``epochs`` passes over every prefix of the stream."""
        total, seen = 0, 0
        for rows in self.month_rows:
            seen += rows
            total += seen
        return self.epochs * total


def epochs_within(rows, shape, *, per_row=1.0, per_month=0.0, fixed_epochs=0):
    """Epochs per month that keep a strategy within ``rows`` (at least 1).

    Parameters
    ----------
    rows : float
        The budget: rows through forward+backward over the whole stream.
    shape : StreamShape
        The stream.
    per_row : float, default=1.0
        Rows through forward+backward per month row in one epoch, from the
        second month on (1 + memory rows per new row: 3 for DER++'s two
        memory batches; the first month has no memory and costs 1).
    per_month : float, default=0.0
        Rows per month row spent once a month, outside the epochs (1 for an
        importance estimate over the month, as EWC's).
    fixed_epochs : int, default=0
        Epochs a month spends anyway (e.g. finishing epochs), at the same
        per-row cost.

    Returns
    -------
    epochs : int
        ``floor((rows - once) / per_epoch) - fixed_epochs``, at least 1.
    """
    first = shape.month_rows[0]
    per_epoch = first + per_row * (shape.n_rows - first)
    once = per_month * shape.n_rows
    return max(1, math.floor((rows - once) / per_epoch) - fixed_epochs)


def _epochs(**cost):
    """``spend`` of a strategy that spends its budget on epochs (see epochs_within)."""
    def spend(rows, shape):
        return {"max_epochs": epochs_within(rows, shape, **cost)}
    return spend


def _spend_finish(rows, shape):
    # finishing epochs come out of the budget; at least one ordinary epoch
    passes = epochs_within(rows, shape)
    finish = min(FINISH_EPOCHS, passes - 1)
    return {"max_epochs": passes - finish, "finish_epochs": finish}


def _spend_averaging(rows, shape):
    # one fresh model a month, each trained on its month only
    return {"estimator__max_epochs": epochs_within(rows, shape)}


@dataclass(frozen=True)
class Strategy:
    """One compared strategy: how to build it and which knobs ``--tune`` searches.

    Parameters
    ----------
    name : str
        The name on the command line and in every output.
    family : str
        The figure panel, one of ``FAMILIES``.
    description : str
        One line for ``--list-strategies`` and ``summary.json``.
    build : callable
        ``build(config) -> estimator``, unfitted, seeded by
        ``config["random_state"]``.
    grid : dict, default={}
        ``{parameter: candidate values}`` for ``GridSearchCV``; empty: not
        tuned. Every value list holds the untuned default.
    spend : callable or None, default=None
        ``spend(rows, shape) -> {parameter: value}``: the settings that keep
        the strategy within ``rows`` rows through forward+backward on a
        stream of :class:`StreamShape` ``shape`` (see the module docstring).
        ``None``: the reference, always run at full cost.
    """

    name: str
    family: str
    description: str
    build: Callable
    grid: dict = field(default_factory=dict)
    spend: Callable | None = None

    def quick_grid(self):
        """Return the grid cut to the first knob's first and last value (``--quick``)."""
        return {key: tuple(dict.fromkeys((values[0], values[-1])))
                for key, values in list(self.grid.items())[:1]}


def _classifier(config, **params):
    defaults = dict(
        module__hidden_units=tuple(config["hidden_units"]), max_epochs=config["epochs"],
        batch_size=config["batch_size"], lr=LR, random_state=config["random_state"],
        device=config["device"],
    )
    defaults.update(params)
    return ContinualClassifier(**defaults)


def _buffer(config, epoch_size="fixed"):
    return RehearsalBuffer(capacity=config["buffer_capacity"], replay_ratio=REPLAY_RATIO,
                           epoch_size=epoch_size)


def _averaging(config):
    # members left unseeded: the averaging estimator seeds each month's fresh
    # model differently from its own random_state
    return MonthlyAveragingClassifier(estimator=_classifier(config, random_state=None),
                                      random_state=config["random_state"])


# name -> (build(config) -> regularizer, description); each also runs with rehearsal
_REGULARIZERS = {
    "l2": (lambda c: L2(lam=L2_LAM),
           f"L2 pull towards the previous month's weights, lam={L2_LAM:g}"),
    "ewc-empirical": (lambda c: EWC(lam=EWC_LAM["empirical"], fisher="empirical"),
                      f"EWC, empirical Fisher, lam={EWC_LAM['empirical']:g}"),
    "ewc-hessian": (lambda c: EWC(lam=EWC_LAM["hessian"], fisher="hessian"),
                    f"EWC, Hessian diagonal (negatives clipped), "
                    f"lam={EWC_LAM['hessian']:g}"),
    "ewc-variance": (lambda c: EWC(lam=EWC_LAM["variance"], fisher="variance"),
                     f"EWC, per-sample variance of squared gradients, "
                     f"lam={EWC_LAM['variance']:g} (scale-matched to the Fisher's)"),
    "online-ewc": (lambda c: OnlineEWC(lam=EWC_LAM["empirical"], gamma=ONLINE_GAMMA),
                   f"online EWC, empirical Fisher, lam={EWC_LAM['empirical']:g}, "
                   f"gamma={ONLINE_GAMMA:g}"),
}

# name -> spend: an importance estimate over each month costs one more pass
# over it (the Hessian's several backward passes per row are counted once)
_REGULARIZER_SPEND = {
    "l2": _epochs(),
    "ewc-empirical": _epochs(per_month=1.0),
    "ewc-hessian": _epochs(per_month=1.0),
    "ewc-variance": _epochs(per_month=1.0),
    "online-ewc": _epochs(per_month=1.0),
}

_STRATEGIES = (
    Strategy("retrain", "baselines",
             "re-initialize and train on all months so far, every month",
             lambda c: _classifier(c, update="retrain")),
    Strategy("naive", "baselines", "fine-tune at the first month's lr",
             lambda c: _classifier(c), spend=_epochs()),
    Strategy("averaging", "baselines", "one fresh model per month, probabilities averaged",
             _averaging, grid={"weights": ("uniform", "recency")}, spend=_spend_averaging),
    Strategy("rehearsal-fixed", "rehearsal",
             f"replay {REPLAY_RATIO:.0%} of each epoch from a buffer of "
             f"{BUFFER_SHARE:.0%} of the stream; epoch as long as the month",
             lambda c: _classifier(c, rehearsal=_buffer(c, "fixed")),
             grid={"rehearsal__replay_ratio": (0.25, 0.5, 0.75),
                   "rehearsal__policy": ("reservoir", "per_month")},
             spend=_epochs()),
    Strategy("rehearsal-grow", "rehearsal",
             "same buffer; epoch = the month plus replayed rows (grows with replay)",
             lambda c: _classifier(c, rehearsal=_buffer(c, "grow")),
             grid={"rehearsal__replay_ratio": (0.25, 0.5, 0.75),
                   "rehearsal__policy": ("reservoir", "per_month")},
             spend=_epochs(per_row=2.0)),
    Strategy("low-lr", "learning rate", "fine-tune at 0.1x the first month's lr",
             lambda c: _classifier(c, finetune_lr=0.1 * LR),
             grid={"finetune_lr": (1e-5, 3e-5, 1e-4, 3e-4)}, spend=_epochs()),
    Strategy("low-lr-finish", "learning rate",
             f"fine-tune at lr, then {FINISH_EPOCHS} finishing epochs at 0.1x lr each month",
             lambda c: _classifier(c, finish_epochs=FINISH_EPOCHS, finish_lr=0.1 * LR),
             grid={"finish_epochs": (1, 2, 4), "finish_lr": (1e-5, 1e-4)},
             spend=_spend_finish),
)


def _memory(config):
    # the same memory as rehearsal's buffer, so replay-based methods store as many rows
    return RehearsalBuffer(capacity=config["buffer_capacity"])


# Methods run alone (A-GEM and DER++ replay from their own memory already):
# name -> (build(config) -> regularizer, description, grid)
_METHODS = {
    # lam of SI, MAS and LwF: the best mean accuracy of a sweep (SI 10/100/1000, MAS
    # 10/100/1000, LwF 3/10) on the stream of --random-state 1, not the reported one
    # (issue 15's benchmarks/report_strategies.py)
    "si": (lambda c: SI(lam=1000.0, damping=0.1), "SI, path-integral importance, lam=1000",
           {"regularizer__lam": (10.0, 100.0, 1000.0, 10000.0)}),
    "mas": (lambda c: MAS(lam=10.0, random_state=c["random_state"]),
            "MAS, output-sensitivity importance, lam=10",
            {"regularizer__lam": (0.1, 1.0, 10.0, 100.0)}),
    "lwf": (lambda c: LwF(lam=10.0, temperature=2.0), "LwF, distillation, lam=10, T=2",
            {"regularizer__lam": (1.0, 3.0, 10.0, 30.0)}),
    "agem": (lambda c: AGEM(memory=_memory(c), sample_size=256,
                            random_state=c["random_state"]),
             "A-GEM, 256 memory rows per reference gradient, a memory as large as "
             "rehearsal's buffer",
             {"regularizer__sample_size": (64, 256)}),
    "derpp": (lambda c: DERpp(alpha=0.1, beta=0.5, memory=_memory(c),
                              random_state=c["random_state"]),
              "DER++, replayed labels and logits, alpha=0.1, beta=0.5, same memory size",
              {"regularizer__alpha": (0.1, 0.5), "regularizer__beta": (0.5, 1.0)}),
}


def _spend_agem(rows, shape):
    # a reference gradient over sample_size memory rows at every step
    per_row = 1.0 + min(256, shape.buffer_capacity) / shape.batch_size
    return {"max_epochs": epochs_within(rows, shape, per_row=per_row)}


_METHOD_SPEND = {
    "si": _epochs(),                  # its importance comes from the training steps
    "mas": _epochs(per_month=1.0),    # output sensitivities over each month
    "lwf": _epochs(),                 # the teacher's forwards are forward-only rows
    "agem": _spend_agem,
    "derpp": _epochs(per_row=3.0),    # two memory batches per step
}


def strategies():
    """Return ``{name: Strategy}`` for every strategy, in the order of the outputs.

    Returns
    -------
    registry : dict of str to Strategy
        The baselines, rehearsal and learning-rate strategies, then each
        regularizer alone, then each with ``rehearsal-fixed``'s buffer.
    """
    registry = {strategy.name: strategy for strategy in _STRATEGIES}
    for name, (build_regularizer, text) in _REGULARIZERS.items():
        registry[name] = Strategy(
            name, "regularizers", text,
            lambda c, b=build_regularizer: _classifier(c, regularizer=b(c)),
            grid=_GRIDS.get(name, {}), spend=_REGULARIZER_SPEND[name])
    for name, (build_regularizer, text) in _REGULARIZERS.items():
        registry[f"rehearsal+{name}"] = Strategy(
            f"rehearsal+{name}", "rehearsal + regularizer", f"rehearsal-fixed and {text}",
            lambda c, b=build_regularizer: _classifier(
                c, regularizer=b(c), rehearsal=_buffer(c, "fixed")),
            grid=_GRIDS.get(name, {}), spend=_REGULARIZER_SPEND[name])
    for name, (build_regularizer, text, grid) in _METHODS.items():
        registry[name] = Strategy(
            name, "other methods", text,
            lambda c, b=build_regularizer: _classifier(c, regularizer=b(c)), grid=grid,
            spend=_METHOD_SPEND[name])
    return registry

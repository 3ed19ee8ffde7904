"""The issue-21 strategies' registry entries and their budget rule."""

import numpy as np
import pytest

from skcl._benchmark.strategies import (
    _BUDGETED,
    StreamShape,
    cumulative_history_fraction,
    strategies,
)
from skcl.datasets import make_drifting_stream

CONFIG = dict(hidden_units=(8,), epochs=2, batch_size=64, random_state=0, device="cpu",
              buffer_capacity=100)


@pytest.mark.parametrize("name", [strategy.name for strategy in _BUDGETED])
def test_every_new_entry_builds_trains_and_tunes_its_defaults(name):
    X, y, months = make_drifting_stream(n_months=3, n_samples_per_month=120, random_state=0)
    strategy = strategies()[name]
    clf = strategy.build(CONFIG).fit(X, y, months=months)
    assert clf.n_months_seen_ == 3
    params = strategy.build(CONFIG).get_params()
    for key, values in strategy.grid.items():
        default = params[key] if params[key] is not None else params["lr"]
        assert default in values, (key, default, values)


def test_history_fraction_rule_spends_the_budget():
    X, y, months = make_drifting_stream(n_months=5, n_samples_per_month=100, random_state=0)
    registry = strategies()
    retrain = registry["retrain"].build(CONFIG).fit(X, y, months=months)
    fraction = cumulative_history_fraction(0.4, [100] * 5, epochs=2, retrain_epochs=2)
    cumulative = registry["cumulative"].build(CONFIG).set_params(history_fraction=fraction)
    cumulative.fit(X, y, months=months)
    ratio = cumulative.n_samples_processed_ / retrain.n_samples_processed_
    assert ratio == pytest.approx(0.4, abs=0.01)
    assert cumulative_history_fraction(0.05, [100] * 5, epochs=2, retrain_epochs=2) is None


def test_registered_defaults_of_si_and_derpp():
    registry = strategies()
    si = registry["si"].build(CONFIG).regularizer
    derpp = registry["derpp"].build(CONFIG).regularizer
    assert si.lam == 100.0
    assert (derpp.alpha, derpp.beta) == (0.5, 1.0)
    assert np.isclose(registry["mas-normalized"].build(CONFIG).regularizer.lam, 0.1)


@pytest.mark.parametrize("budget", [0.15, 0.3, 0.6])
@pytest.mark.parametrize("name", ["cumulative", "cumulative-1epoch", "cumulative-sampled",
                                  "cumulative-finish", "cumulative-finish-fast", "ema",
                                  "mas-normalized"])
def test_spend_keeps_each_new_strategy_within_its_budget(name, budget):
    X, y, months = make_drifting_stream(n_months=5, n_samples_per_month=100, random_state=0)
    shape = StreamShape(month_rows=(100,) * 5, epochs=2, batch_size=64,
                        buffer_capacity=100)
    rows = budget * 2 * sum(100 * t for t in range(1, 6))     # of retrain's 3000
    params = strategies()[name].spend(rows, shape)
    clf = strategies()[name].build(CONFIG).set_params(**params).fit(X, y, months=months)
    # the least a month costs beyond one epoch over it: MAS's pass over it,
    # cumulative-finish's finishing epoch on it
    once = 500 if name in ("mas-normalized", "cumulative-finish") else 0
    # rows through the optimizer, plus MAS's pass over each month
    spent = clf.n_samples_processed_ + (once if name == "mas-normalized" else 0)
    if rows < 500 + once:
        # not even one epoch of the months fits: the least is spent (one epoch,
        # a one-row sample of the history), as the budget interface allows
        assert params["max_epochs"] == 1 and spent <= 500 + once + 5
        return
    assert spent <= rows * 1.01
    if name in ("cumulative-sampled", "cumulative-finish", "cumulative-finish-fast"):
        assert spent >= rows * 0.97      # the budget is used, not left idle


@pytest.mark.parametrize("budget", [0.15, 0.23, 0.25, 0.5, 1.0])
def test_cumulative_finish_fast_spends_its_budget_in_train_rows(budget):
    # every branch of its spend: the finishing epoch dropped (0.15), kept on the
    # month alone (0.23), with 5% of the history (0.25), its 2 epochs (0.5),
    # more epochs where the whole history would fit (1.0)
    from skcl._benchmark.strategies import StreamShape

    X, y, months = make_drifting_stream(n_months=5, n_samples_per_month=100, random_state=0)
    shape = StreamShape(month_rows=(100,) * 5, epochs=3, batch_size=64, buffer_capacity=100)
    rows = budget * shape.retrain_rows                        # of retrain's 4500
    strategy = strategies()["cumulative-finish-fast"]
    params = strategy.spend(rows, shape)
    expected = {0.15: (1, 0, 0.0), 0.23: (1, 1, 0.0), 0.25: (1, 1, 0.05), 0.5: (2, 1, 0.05),
                1.0: (3, 1, 0.05)}
    assert (params["max_epochs"], params["finish_epochs"],
            params["finish_history_fraction"]) == expected[budget]
    clf = strategy.build(CONFIG).set_params(**params).fit(X, y, months=months)
    assert rows * 0.97 <= clf.n_train_rows_ <= rows * 1.01

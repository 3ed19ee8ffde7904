"""The issue-21 strategies' registry entries and their budget rule."""

import numpy as np
import pytest

from skcl._benchmark.strategies import _BUDGETED, cumulative_history_fraction, strategies
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

"""lr_schedule, warmup_fraction, final_lr_fraction: the rate within each month."""

import math

import numpy as np
import pytest
from _helpers import month_slices
from sklearn.base import clone

from skcl._schedule import scheduled_lr


def _batch_rates(clf, month_back=1):
    """The recorded rate of every training batch of a recent month's epochs."""
    n_epochs = clf.max_epochs + clf.finish_epochs
    rows = clf.history_[-n_epochs * month_back:][:n_epochs]
    return [[batch.get("lr") for batch in row["batches"]] for row in rows]


def test_cosine_schedule_restarts_every_month_and_ends_low(stream, make_clf):
    X, y, months = stream
    # 200 rows, batch 64: 4 batches per epoch, 2 epochs, 8 steps per month
    clf = make_clf(lr=1e-2, finetune_lr=1e-3, lr_schedule="cosine", final_lr_fraction=0.1)
    clf.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    first = [lr for epoch in _batch_rates(clf) for lr in epoch]
    expected = [1e-2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 7))) for k in range(8)]
    np.testing.assert_allclose(first, expected)
    clf.partial_fit(X[months == 1], y[months == 1])
    second = [lr for epoch in _batch_rates(clf) for lr in epoch]
    # restarted from the month's own rate (finetune_lr), not continued
    np.testing.assert_allclose(second, np.array(expected) / 10)
    # after the month the optimizer holds the month's rate again
    assert clf.optimizer_.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_recorded_rate_is_the_rate_the_optimizer_used(stream, make_clf):
    from skorch.callbacks import Callback

    class OptimizerRate(Callback):
        def initialize(self):
            self.rates_ = []
            return self

        def on_grad_computed(self, net, named_parameters, **kwargs):
            self.rates_.append(net.optimizer_.param_groups[0]["lr"])

    X, y, months = stream
    clf = make_clf(lr_schedule="linear", warmup_fraction=0.25, final_lr_fraction=0.0,
                   callbacks=[("rate", OptimizerRate())])
    clf.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    recorded = [lr for epoch in _batch_rates(clf) for lr in epoch]
    np.testing.assert_allclose(dict(clf.callbacks_)["rate"].rates_, recorded)
    # two warm-up steps rising to lr, then linear down to 0 at the last step
    np.testing.assert_allclose(recorded, [5e-3, 1e-2, 1e-2, 8e-3, 6e-3, 4e-3, 2e-3, 0.0])


def test_schedule_applies_to_the_main_epochs_only(stream, make_clf):
    X, y, months = stream
    clf = make_clf(lr_schedule="cosine", finish_epochs=1, finish_lr=1e-4)
    clf.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    rates = _batch_rates(clf)
    assert rates[0][0] == pytest.approx(1e-2) and rates[1][-1] == pytest.approx(1e-3)
    assert rates[2] == [None] * 4          # the finishing epoch: finish_lr, unscheduled
    # the default records nothing and trains at a constant rate
    plain = make_clf().partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    assert "lr" not in plain.history_[-1]["batches"][0]


def test_scheduled_lr_closed_forms():
    assert scheduled_lr(1.0, 0, 10, "constant", 0.0, 0.1) == 1.0
    assert scheduled_lr(1.0, 9, 10, "cosine", 0.0, 0.1) == pytest.approx(0.1)
    assert scheduled_lr(1.0, 9, 10, "linear", 0.0, 0.5) == pytest.approx(0.5)
    assert scheduled_lr(1.0, 1, 10, "constant", 0.4, 0.1) == pytest.approx(0.5)
    assert scheduled_lr(1.0, 50, 10, "linear", 0.0, 0.2) == pytest.approx(0.2)


@pytest.mark.parametrize("params, match", [
    ({"lr_schedule": "step"}, "lr_schedule"),
    ({"warmup_fraction": 1.0}, "warmup_fraction"),
    ({"final_lr_fraction": 1.5}, "final_lr_fraction"),
])
def test_schedule_parameters_are_checked(stream, make_clf, params, match):
    X, y, _ = stream
    with pytest.raises(ValueError, match=match):
        make_clf(**params).partial_fit(X[:100], y[:100], classes=[0, 1])


def test_schedule_changed_between_months_applies_at_the_next(stream, make_clf):
    X, y, months = stream
    clf = make_clf()
    slices = list(month_slices(months))
    clf.partial_fit(X[slices[0][1]], y[slices[0][1]], classes=[0, 1])
    clf.set_params(lr_schedule="cosine")
    clf.partial_fit(X[slices[1][1]], y[slices[1][1]])
    assert _batch_rates(clf)[-1][-1] == pytest.approx(1e-3)
    assert clone(clf).get_params()["lr_schedule"] == "cosine"

"""MAS(accumulate=..., normalize=...): an importance whose scale stays bounded."""

import numpy as np
import pytest
import torch

from skcl import MAS


def _totals(make_clf, stream, **params):
    """The importance after each month; lam=0 so every option trains alike."""
    X, y, months = stream
    clf = make_clf(regularizer=MAS(lam=0.0, random_state=0, **params))
    totals = []
    for month in np.unique(months):
        clf.partial_fit(X[months == month], y[months == month], classes=[0, 1])
        totals.append(clf.regularizer_.penalty_weight_.clone())
    return totals


def test_summed_importance_grows_and_the_bounded_forms_do_not(stream, make_clf):
    summed = _totals(make_clf, stream)
    mean = _totals(make_clf, stream, accumulate="mean")
    normalized = _totals(make_clf, stream, accumulate="mean", normalize=True)
    sums = [float(t.sum()) for t in summed]
    assert sums[-1] > 4 * sums[0]                      # grows with the month count
    estimates = [summed[0]] + [b - a for a, b in zip(summed, summed[1:])]
    for t, total in enumerate(mean):
        # the running mean is the summed form over the month count ...
        torch.testing.assert_close(total, summed[t] / (t + 1), rtol=1e-5, atol=1e-6)
        # ... so no weight exceeds its largest monthly estimate
        assert bool((total <= torch.stack(estimates[:t + 1]).max(0).values + 1e-5).all())
    # normalized and averaged: mean importance 1 whatever the month count
    for total in normalized:
        assert float(total.mean()) == pytest.approx(1.0, rel=1e-5)


def test_running_mean_closed_form():
    reg = MAS(lam=1.0, accumulate="mean")
    reg.param_names_, reg.param_shapes_ = ["w"], [(3,)]
    anchor = torch.zeros(3)
    estimates = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 0.0, 3.0]),
                 torch.tensor([2.0, 4.0, 0.0])]
    for count, estimate in enumerate(estimates):
        reg._update_penalty(anchor, estimate)
        reg.n_consolidations_ = count + 1
    torch.testing.assert_close(reg.penalty_weight_, torch.stack(estimates).mean(0))


def test_normalize_gives_each_month_mean_one():
    reg = MAS(lam=1.0, normalize=True)
    reg.param_names_, reg.param_shapes_ = ["w"], [(4,)]
    reg._update_penalty(torch.zeros(4), torch.tensor([1.0, 3.0, 0.0, 4.0]) * 1e3)
    reg.n_consolidations_ = 1
    torch.testing.assert_close(reg.penalty_weight_, torch.tensor([0.5, 1.5, 0.0, 2.0]))
    reg._update_penalty(torch.zeros(4), torch.tensor([2.0, 2.0, 2.0, 2.0]))
    torch.testing.assert_close(reg.penalty_weight_, torch.tensor([1.5, 2.5, 1.0, 3.0]))
    both = MAS(normalize=True, accumulate="mean")
    both.param_names_, both.param_shapes_ = ["w"], [(2,)]
    for count in range(20):
        both._update_penalty(torch.zeros(2), torch.tensor([1.0, 3.0]) * 10.0 ** count)
        both.n_consolidations_ = count + 1
    torch.testing.assert_close(both.penalty_weight_, torch.tensor([0.5, 1.5]))


def test_mas_options_are_checked(stream, make_clf):
    X, y, _ = stream
    with pytest.raises(ValueError, match="accumulate"):
        make_clf(regularizer=MAS(accumulate="max")).partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="normalize"):
        make_clf(regularizer=MAS(normalize="yes")).partial_fit(X, y, classes=[0, 1])

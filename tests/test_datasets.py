"""The built-in streams: make_detection_stream's shape of production data."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from skcl.datasets import _detection_activity, make_detection_stream


@pytest.fixture(scope="module")
def detection():
    return make_detection_stream(n_months=12, n_samples_per_month=600, random_state=0)


def test_few_positives_in_every_month_of_unequal_size(detection):
    X, y, months = detection
    assert X.dtype == np.float32 and y.dtype == np.int64
    assert np.all(np.diff(months) >= 0)
    sizes = np.bincount(months)
    assert len(sizes) == 12
    assert sizes.max() > 1.5 * sizes.min()           # months of unequal size
    assert 0.045 < y.mean() < 0.055                  # about 5% positives
    for month in range(12):
        positives = y[months == month].sum()
        assert positives >= 4 and positives / sizes[month] < 0.07


def _domain_accuracy(X, months, a, b):
    """How well a linear model tells month ``a``'s rows from month ``b``'s."""
    rows = (months == a) | (months == b)
    return cross_val_score(LogisticRegression(max_iter=500), X[rows],
                           months[rows] == b, cv=3).mean()


def test_the_sudden_shift_is_detectable_and_the_only_one(detection):
    X, _, months = detection
    shift = 8  # two thirds into 12 months
    at_shift = _domain_accuracy(X, months, shift - 1, shift)
    others = [_domain_accuracy(X, months, m, m + 1) for m in (1, 4, 9)]
    assert at_shift > 0.85
    assert at_shift > max(others) + 0.1
    moved = make_detection_stream(n_months=12, n_samples_per_month=600, shift_month=3,
                                  random_state=0)
    assert _domain_accuracy(moved[0], moved[2], 2, 3) > 0.85


def test_families_appear_fade_and_come_back():
    activity = _detection_activity(12, 8, np.random.RandomState(0))
    assert (activity.sum(axis=1) > 0).all()
    births = [np.flatnonzero(activity[:, f])[0] for f in range(8)]
    assert births[0] == 0 and max(births) > 0        # some families appear later
    assert ((activity > 0) & (activity < 1)).any()   # fading weights
    comebacks = 0
    for family in range(8):
        alive = activity[:, family] > 0
        runs = np.flatnonzero(np.diff(alive.astype(int)) == 1)  # off -> on
        comebacks += len(runs) > 0 and alive[:runs[-1] + 1].any()
    assert comebacks >= 1


def test_seeded_and_validated():
    a = make_detection_stream(n_months=3, n_samples_per_month=100, random_state=3)
    b = make_detection_stream(n_months=3, n_samples_per_month=100, random_state=3)
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left, right)
    with pytest.raises(ValueError, match="positive_fraction must be in"):
        make_detection_stream(positive_fraction=0.7)
    with pytest.raises(ValueError, match="shift_month must be an int in 1 .. n_months - 1"):
        make_detection_stream(n_months=4, shift_month=4)
    with pytest.raises(ValueError, match="n_samples_per_month must be an int >= 20"):
        make_detection_stream(n_samples_per_month=5)

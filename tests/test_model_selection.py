"""MonthlyKFold and TemporalSplit: fold contents, balance, errors, use as cv=."""

import numpy as np
import pytest
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import GridSearchCV, cross_validate

from skcl import MonthlyKFold, TemporalSplit
from skcl.utils._sklearn_compat import InvalidParameterError


@pytest.fixture
def toy():
    """Four months of 7, 9, 5 and 12 rows (out of order), two classes."""
    rng = np.random.default_rng(0)
    months = np.repeat(["2021-03", "2021-01", "2021-02", "2021-04"], [7, 9, 5, 12])
    y = rng.integers(0, 2, len(months))
    X = rng.normal(size=(len(months), 3))
    return X, y, months


def _check_partition(splits, n_samples):
    seen_in_test = np.zeros(n_samples, dtype=int)
    for train, test in splits:
        assert np.intersect1d(train, test).size == 0
        assert len(train) + len(test) == n_samples
        assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
        seen_in_test[test] += 1
    return seen_in_test


@pytest.mark.parametrize("shuffle, random_state", [(False, None), (True, 0)])
def test_monthly_kfold_every_fold_holds_every_month(toy, shuffle, random_state):
    X, y, months = toy
    cv = MonthlyKFold(n_splits=3, shuffle=shuffle, random_state=random_state)
    splits = list(cv.split(X, y, months=months))
    assert len(splits) == cv.get_n_splits() == 3
    assert np.all(_check_partition(splits, len(y)) == 1)  # each row tested once
    labels, counts = np.unique(months, return_counts=True)
    for train, test in splits:
        assert set(months[train]) == set(months[test]) == set(labels)
        test_counts = np.array([np.sum(months[test] == m) for m in labels])
        # each month is cut into near-equal thirds
        assert np.all(np.abs(test_counts - counts / 3) < 1)
    fold_sizes = [len(test) for _, test in splits]
    assert max(fold_sizes) - min(fold_sizes) <= 1


def test_monthly_kfold_without_shuffle_takes_contiguous_blocks():
    months = np.repeat([0, 1], 6)
    splits = list(MonthlyKFold(n_splits=3).split(np.zeros((12, 1)), months=months))
    assert [test.tolist() for _, test in splits] == [[0, 1, 6, 7], [2, 3, 8, 9],
                                                    [4, 5, 10, 11]]


def test_monthly_kfold_leftover_rows_rotate_over_folds():
    # three months of 4 rows, 3 folds: the extra row of each month lands on the
    # next fold in turn, so the folds stay equal overall
    months = np.repeat([0, 1, 2], 4)
    splits = list(MonthlyKFold(n_splits=3).split(np.zeros((12, 1)), months=months))
    assert [len(test) for _, test in splits] == [4, 4, 4]


def test_monthly_kfold_groups_and_months_are_the_same_input(toy):
    X, y, months = toy
    cv = MonthlyKFold(n_splits=3, shuffle=True, random_state=1)
    by_groups = list(cv.split(X, y, groups=months))
    by_months = list(cv.split(X, y, months=months))
    by_both = list(cv.split(X, y, groups=months, months=months))
    for a, b, c in zip(by_groups, by_months, by_both):
        for part in range(2):
            np.testing.assert_array_equal(a[part], b[part])
            np.testing.assert_array_equal(a[part], c[part])


def test_monthly_kfold_shuffle_is_reproducible(toy):
    X, y, months = toy
    first = [test for _, test in MonthlyKFold(3, shuffle=True, random_state=0).split(
        X, months=months)]
    again = [test for _, test in MonthlyKFold(3, shuffle=True, random_state=0).split(
        X, months=months)]
    other = [test for _, test in MonthlyKFold(3, shuffle=True, random_state=1).split(
        X, months=months)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_monthly_kfold_stratifies_by_month_and_class():
    rng = np.random.default_rng(3)
    months = np.repeat([0, 1, 2], [30, 24, 27])
    y = (rng.random(len(months)) < np.where(months == 1, 0.2, 0.6)).astype(int)
    cv = MonthlyKFold(n_splits=3, shuffle=True, random_state=0, stratify_by_class=True)
    splits = list(cv.split(np.zeros((len(y), 2)), y, months=months))
    assert np.all(_check_partition(splits, len(y)) == 1)
    for _, test in splits:
        for month in range(3):
            for label in range(2):
                cell = np.sum((months == month) & (y == label))
                in_fold = np.sum((months[test] == month) & (y[test] == label))
                assert abs(in_fold - cell / 3) < 1


def test_monthly_kfold_errors(toy):
    X, y, months = toy
    with pytest.raises(ValueError, match="months=None and groups=None.*groups=months"):
        next(MonthlyKFold(3).split(X, y))
    with pytest.raises(ValueError, match="month '2021-02' has 5 rows, fewer than n_splits=6"):
        next(MonthlyKFold(6).split(X, y, months=months))
    with pytest.raises(ValueError, match="both months and groups, and they differ"):
        next(MonthlyKFold(3).split(X, y, months=months, groups=months[::-1]))
    with pytest.raises(ValueError, match=r"months has shape \(3,\), but X has 33 rows"):
        next(MonthlyKFold(3).split(X, y, months=months[:3]))
    with pytest.raises(ValueError, match="stratify_by_class=True.* needs y"):
        next(MonthlyKFold(3, stratify_by_class=True).split(X, months=months))
    with pytest.raises(ValueError, match="random_state=0 has no effect since shuffle"):
        next(MonthlyKFold(3, random_state=0).split(X, months=months))
    with pytest.raises(InvalidParameterError, match="n_splits"):
        next(MonthlyKFold(1).split(X, months=months))


def test_temporal_split_trains_on_the_past_and_tests_on_held_out_and_future(toy):
    X, y, months = toy
    cv = TemporalSplit(n_splits=2, test_size=0.3)
    splits = list(cv.split(X, y, months=months))
    assert len(splits) == cv.get_n_splits() == 2
    _check_partition(splits, len(y))
    labels = np.unique(months)
    held_out = []
    for (train, test), cut in zip(splits, labels[1:3]):
        assert set(months[train]) == set(labels[labels <= cut])
        future = months > cut
        # every future row is tested, and every past month is also tested
        assert set(np.flatnonzero(future)) <= set(test)
        assert set(months[test]) == set(labels)
        past_test = test[~future[test]]
        for month in labels[labels <= cut]:
            n_month = np.sum(months == month)
            assert np.sum(months[past_test] == month) == np.ceil(0.3 * n_month)
        held_out.append(set(past_test))
    # the held-out rows of a month are the same in every split
    assert held_out[0] <= held_out[1]


def test_temporal_split_holds_out_the_last_rows_without_shuffle():
    months = np.repeat([0, 1, 2], 4)
    train, test = next(TemporalSplit(n_splits=1, test_size=0.25).split(
        np.zeros((12, 1)), groups=months))
    assert train.tolist() == [0, 1, 2, 4, 5, 6]
    assert test.tolist() == [3, 7, 8, 9, 10, 11]


def test_temporal_split_errors():
    months = np.repeat([0, 1, 2], 4)
    X = np.zeros((12, 1))
    with pytest.raises(ValueError, match=r"n_splits=3\) needs at least 4 distinct months"):
        next(TemporalSplit(n_splits=3).split(X, months=months))
    with pytest.raises(ValueError, match="month 1 has 1 row"):
        next(TemporalSplit(n_splits=1).split(X[:9], months=np.array([0] * 4 + [1] + [2] * 4)))
    with pytest.raises(ValueError, match="months=None and groups=None"):
        next(TemporalSplit().split(X))
    with pytest.raises(InvalidParameterError, match="test_size"):
        next(TemporalSplit(n_splits=1, test_size=1.0).split(X, months=months))


class _MonthsRecorder(ClassifierMixin, BaseEstimator):
    """A cheap classifier that checks the months it is fitted with."""

    __metadata_request__fit = {"months": True}

    def fit(self, X, y, months=None):
        self.classes_ = np.unique(y)
        self.months_ = months
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


@pytest.mark.parametrize("cv", [MonthlyKFold(n_splits=3), TemporalSplit(n_splits=2)])
def test_splitters_receive_months_as_cv_with_routing_on(toy, cv):
    X, y, months = toy
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(_MonthsRecorder(), {}, cv=cv, error_score="raise")
        search.fit(X, y, months=months)
        result = cross_validate(_MonthsRecorder(), X, y, cv=cv,
                                params={"months": months})
    assert search.n_splits_ == cv.get_n_splits()
    assert len(result["test_score"]) == cv.get_n_splits()


def test_splitter_takes_groups_with_routing_off(toy):
    X, y, months = toy
    search = GridSearchCV(_MonthsRecorder(), {}, cv=MonthlyKFold(n_splits=3))
    search.fit(X, y, groups=months)
    assert search.n_splits_ == 3
    with pytest.raises(ValueError, match="with routing off, pass groups=months"):
        GridSearchCV(_MonthsRecorder(), {}, cv=MonthlyKFold(n_splits=3)).fit(
            X, y, months=months)

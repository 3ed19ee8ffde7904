"""Metadata routing of ``months`` through GridSearchCV, cross_validate and Pipeline.

A spy classifier and a spy scorer record what they receive; the first feature
of every row is its index (scaled down), so each fold's months can be checked
against the rows it was actually given.
"""

import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcl import (
    EWC,
    L2,
    ContinualClassifier,
    DiverseRehearsalBuffer,
    ForgettingScorer,
    MonthlyKFold,
    RehearsalBuffer,
    TemporalSplit,
)
from skcl.datasets import make_drifting_stream

FIT_CALLS = []
SCORE_CALLS = []


class SpyClassifier(ContinualClassifier):
    """Records the row indices (first feature) and months of every fit."""

    def fit(self, X, y, months=None, **fit_params):
        FIT_CALLS.append((_row_index(X), None if months is None else np.asarray(months)))
        return super().fit(X, y, months=months, **fit_params)


class SpyScorer(ForgettingScorer):
    """Records the row indices (first feature) and months of every call."""

    def __call__(self, estimator, X, y, months=None):
        SCORE_CALLS.append((_row_index(X), None if months is None else np.asarray(months)))
        return super().__call__(estimator, X, y, months=months)


BUFFER_CALLS = []


class SpyBuffer(DiverseRehearsalBuffer):
    """Records the row indices (first feature) and groups of every month it keeps."""

    def partial_fit(self, X, y, month=None, extra=None, groups=None, embedding=None):
        BUFFER_CALLS.append((_row_index(X), None if groups is None else np.asarray(groups)))
        return super().partial_fit(X, y, month=month, extra=extra, groups=groups,
                                   embedding=embedding)


def _row_index(X):
    return np.rint(np.asarray(X)[:, 0] * 1000).astype(int)


@pytest.fixture(autouse=True)
def fresh_records():
    FIT_CALLS.clear()
    SCORE_CALLS.clear()
    BUFFER_CALLS.clear()


@pytest.fixture(scope="module")
def data():
    X, y, months = make_drifting_stream(n_months=4, n_samples_per_month=45, random_state=0)
    X[:, 0] = np.arange(len(y)) / 1000  # the row index, recoverable by the spies
    return X, y, months


def _clf(**params):
    defaults = dict(module__hidden_units=(8,), max_epochs=1, batch_size=64, lr=1e-2,
                    random_state=0)
    return SpyClassifier(**{**defaults, **params})


def _check_calls(calls, index_sets, months):
    assert len(calls) == len(index_sets)
    for (rows, seen), expected in zip(calls, index_sets):
        np.testing.assert_array_equal(rows, expected)
        np.testing.assert_array_equal(seen, months[rows])


@pytest.mark.parametrize("explicit_request", [False, True])
def test_grid_search_routes_each_fold_its_months(data, explicit_request):
    X, y, months = data
    cv = MonthlyKFold(n_splits=3, shuffle=True, random_state=0)
    splits = list(cv.split(X, y, months=months))
    with sklearn.config_context(enable_metadata_routing=True):
        clf = _clf()
        scorer = SpyScorer()
        if explicit_request:
            clf.set_fit_request(months=True)
            scorer.set_score_request(months=True)
        search = GridSearchCV(clf, {"lr": [1e-2, 3e-2]}, scoring=scorer, cv=cv,
                              error_score="raise")
        search.fit(X, y, months=months)
    # fits run candidate by candidate, fold by fold, then the refit on everything
    _check_calls(FIT_CALLS, [train for _ in range(2) for train, _ in splits]
                 + [np.arange(len(y))], months)
    _check_calls(SCORE_CALLS, [test for _ in range(2) for _, test in splits], months)
    assert search.best_estimator_.months_ == [0, 1, 2, 3]


def test_cross_validate_through_a_pipeline_matches_a_manual_loop(data):
    X, y, months = data
    cv = KFold(n_splits=3, shuffle=True, random_state=0)  # folds differ in months
    splits = list(cv.split(X))
    pipe = make_pipeline(StandardScaler(), _clf())
    scorer = ForgettingScorer(aggregate="min")
    with sklearn.config_context(enable_metadata_routing=True):
        result = cross_validate(pipe, X, y, cv=cv, scoring=scorer,
                                params={"months": months}, error_score="raise")
    # the scaler changes the features, so compare months in call order
    assert [len(m) for _, m in FIT_CALLS] == [len(train) for train, _ in splits]
    for (_, seen), (train, _) in zip(FIT_CALLS, splits):
        np.testing.assert_array_equal(seen, months[train])
    expected = []
    for train, test in splits:
        fitted = clone(pipe).fit(X[train], y[train], spyclassifier__months=months[train])
        expected.append(scorer(fitted, X[test], y[test], months=months[test]))
    np.testing.assert_allclose(result["test_score"], expected)


def test_multi_metric_search_refits_the_chosen_metric(data):
    X, y, months = data
    scoring = {"mean": ForgettingScorer(aggregate="mean"),
               "worst": ForgettingScorer(aggregate="min")}
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(make_pipeline(StandardScaler(), _clf()),
                              {"spyclassifier__finetune_lr": [1e-4, 1e-2]},
                              scoring=scoring, refit="mean", cv=MonthlyKFold(n_splits=2),
                              error_score="raise")
        search.fit(X, y, months=months)
        refit_score = search.score(X, y, months=months)
    results = search.cv_results_
    assert np.all(results["mean_test_worst"] <= results["mean_test_mean"] + 1e-12)
    assert search.best_index_ == np.argmax(results["mean_test_mean"])
    assert search.best_estimator_[-1].months_ == [0, 1, 2, 3]
    assert refit_score == pytest.approx(
        scoring["mean"](search.best_estimator_, X, y, months=months))


def test_scorer_can_decline_months(data):
    X, y, months = data
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = SpyScorer(aggregate="min").set_score_request(months=False)
        GridSearchCV(_clf(), {}, scoring=scorer, cv=MonthlyKFold(n_splits=2),
                     error_score="raise").fit(X, y, months=months)
    assert [m for _, m in SCORE_CALLS] == [None, None]
    assert all(m is not None for _, m in FIT_CALLS)


def test_routing_off_months_reach_fit_but_not_the_scorer(data):
    X, y, months = data
    cv = MonthlyKFold(n_splits=2)
    splits = list(cv.split(X, groups=months))
    search = GridSearchCV(_clf(), {}, scoring=SpyScorer(), cv=cv, error_score="raise")
    with pytest.warns(UserWarning, match="got no months"):
        search.fit(X, y, months=months, groups=months)
    _check_calls(FIT_CALLS, [train for train, _ in splits] + [np.arange(len(y))], months)
    assert [m for _, m in SCORE_CALLS] == [None, None]
    # the splitter says how to give it the months
    with pytest.raises(ValueError, match="with routing off, pass groups=months"):
        GridSearchCV(_clf(), {}, cv=cv).fit(X, y, months=months)


def test_direct_fit_works_with_routing_on_and_off(data):
    X, y, months = data
    reference = _clf().fit(X, y, months=months)
    with sklearn.config_context(enable_metadata_routing=True):
        routed = _clf().fit(X, y, months=months)
    assert routed.months_ == reference.months_ == [0, 1, 2, 3]
    np.testing.assert_array_equal(routed.predict_proba(X), reference.predict_proba(X))


class _L2Double(BaseEstimator):
    """Minimal L2-to-anchor regularizer (stands in for skcl.regularizers.L2)."""

    def __init__(self, lam=1.0):
        self.lam = lam

    def penalty(self, module):
        if not hasattr(self, "anchor_"):
            return torch.zeros(())
        return self.lam * sum(((p - a) ** 2).sum()
                              for p, a in zip(module.parameters(), self.anchor_))

    def consolidate(self, net, X, y):
        self.anchor_ = [p.detach().clone() for p in net.module_.parameters()]


class _BufferDouble(BaseEstimator):
    """Minimal replay memory (stands in for skcl.rehearsal.RehearsalBuffer)."""

    def __init__(self, capacity=100, replay_ratio=0.5, random_state=None):
        self.capacity = capacity
        self.replay_ratio = replay_ratio
        self.random_state = random_state

    def partial_fit(self, X, y, month=None):
        X_old, y_old = getattr(self, "memory_", (X[:0], y[:0]))
        self.memory_ = (np.r_[X_old, X][-self.capacity:], np.r_[y_old, y][-self.capacity:])
        return self

    def fit_resample(self, X, y):
        n_replay = int(self.replay_ratio * len(y))
        if not hasattr(self, "memory_") or n_replay == 0:
            return X, y
        rows = np.random.default_rng(self.random_state).integers(0, len(self.memory_[1]),
                                                                 n_replay)
        return np.r_[X, self.memory_[0][rows]], np.r_[y, self.memory_[1][rows]]


def test_grid_over_strategy_parameters(data):
    X, y, months = data
    clf = _clf(regularizer=_L2Double(), rehearsal=_BufferDouble(random_state=0))
    grid = {"regularizer__lam": [0.0, 1.0], "rehearsal__replay_ratio": [0.0, 0.5]}
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(clf, grid, scoring=ForgettingScorer(aggregate="past"),
                              cv=MonthlyKFold(n_splits=2), error_score="raise")
        search.fit(X, y, months=months)
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_
    assert best.regularizer_.lam == search.best_params_["regularizer__lam"]
    assert best.rehearsal_.replay_ratio == search.best_params_["rehearsal__replay_ratio"]
    # the user's objects are left untouched: copies were tuned
    assert clf.regularizer.lam == 1.0 and clf.rehearsal.replay_ratio == 0.5


@pytest.mark.slow  # starting two loky workers (importing torch) takes ~15 s
def test_parallel_search_matches_serial(data):
    X, y, months = data
    grid = {"finetune_lr": [1e-3, 1e-2]}
    kwargs = dict(scoring=ForgettingScorer(aggregate="min"), cv=MonthlyKFold(n_splits=2),
                  error_score="raise")
    clf = ContinualClassifier(module__hidden_units=(8,), max_epochs=1, lr=1e-2,
                              random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        serial = GridSearchCV(clf, grid, **kwargs).fit(X, y, months=months)
        parallel = GridSearchCV(clf, grid, n_jobs=2, **kwargs).fit(X, y, months=months)
    np.testing.assert_allclose(parallel.cv_results_["split0_test_score"],
                               serial.cv_results_["split0_test_score"])


@pytest.mark.dask
def test_search_on_a_dask_cluster(data):
    distributed = pytest.importorskip("distributed")
    import joblib

    X, y, months = data
    clf = ContinualClassifier(module__hidden_units=(8,), max_epochs=1, lr=1e-2,
                              random_state=0)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), \
            sklearn.config_context(enable_metadata_routing=True), \
            joblib.parallel_config(backend="dask"):
        search = GridSearchCV(clf, {"finetune_lr": [1e-3, 1e-2]},
                              scoring=ForgettingScorer(aggregate="min"),
                              cv=MonthlyKFold(n_splits=2), error_score="raise", n_jobs=-1)
        search.fit(X, y, months=months)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.months_ == [0, 1, 2, 3]


def test_temporal_split_search_scores_future_months(data):
    X, y, months = data
    cv = TemporalSplit(n_splits=2, test_size=0.3)
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(_clf(), {"finetune_lr": [1e-3, 1e-2]},
                              scoring={"future": SpyScorer(aggregate="future"),
                                       "seen": ForgettingScorer(aggregate="seen")},
                              refit="future", cv=cv, error_score="raise")
        search.fit(X, y, months=months)
    # fold k trains on months 0..k+1 and is scored on the months after them
    trained = [sorted(set(m.tolist())) for _, m in FIT_CALLS[:2]]
    assert trained == [[0, 1], [0, 1, 2]]
    assert [sorted(set(m.tolist())) for _, m in SCORE_CALLS[:2]] == [[0, 1, 2, 3]] * 2
    assert np.isfinite(search.cv_results_["mean_test_future"]).all()


@pytest.mark.parametrize("regularizer", [L2(), EWC()], ids=["L2", "EWC"])
def test_grid_over_the_real_strategies(data, regularizer):
    clf = _clf(regularizer=regularizer,
               rehearsal=RehearsalBuffer(capacity=60, random_state=0))
    grid = {"regularizer__lam": [0.0, 10.0], "rehearsal__replay_ratio": [0.0, 0.5]}
    X, y, months = data
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(clf, grid, scoring=ForgettingScorer(aggregate="past"),
                              cv=MonthlyKFold(n_splits=2), error_score="raise")
        search.fit(X, y, months=months)
    assert [p for p in search.cv_results_["params"]] == [
        {"regularizer__lam": lam, "rehearsal__replay_ratio": ratio}
        for lam in (0.0, 10.0) for ratio in (0.0, 0.5)]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_
    assert best.regularizer_.lam == search.best_params_["regularizer__lam"]
    assert best.rehearsal_.replay_ratio == search.best_params_["rehearsal__replay_ratio"]


def test_grid_search_routes_each_fold_its_groups_to_the_buffer(data):
    X, y, months = data
    families = np.array(["a", "b", "c"])[np.arange(len(y)) % 3]
    cv = MonthlyKFold(n_splits=3, shuffle=True, random_state=0)
    splits = list(cv.split(X, y, months=months))
    with sklearn.config_context(enable_metadata_routing=True):
        clf = ContinualClassifier(
            module__hidden_units=(8,), max_epochs=1, batch_size=64, random_state=0,
            rehearsal=SpyBuffer(capacity=30, outlier_share=0.0)).set_fit_request(groups=True)
        # the splitter reads the months; the families are the estimator's alone
        search = GridSearchCV(clf, {"lr": [1e-2]}, cv=cv.set_split_request(groups=False),
                              scoring="accuracy", error_score="raise")
        search.fit(X, y, months=months, groups=families)
    # one buffer call per month of each fold's train rows, then of the refit
    expected = [train[months[train] == month] for train, _ in splits
                for month in np.unique(months[train])]
    expected += [np.flatnonzero(months == month) for month in np.unique(months)]
    assert len(BUFFER_CALLS) == len(expected)
    for (rows, groups), wanted in zip(BUFFER_CALLS, expected):
        np.testing.assert_array_equal(rows, wanted)
        np.testing.assert_array_equal(groups, families[rows])
    assert sorted(search.best_estimator_.rehearsal_.group_codes_) == ["a", "b", "c"]


def test_groups_are_not_routed_to_fit_unless_requested(data):
    X, y, months = data
    with sklearn.config_context(enable_metadata_routing=True):
        # groups meant for the splitter never reach a model that cannot use them
        search = GridSearchCV(_clf(), {"lr": [1e-2]}, cv=GroupKFold(2), scoring="accuracy",
                              error_score="raise")
        search.fit(X, y, months=months, groups=months % 2)
    assert len(FIT_CALLS) == 3 and search.best_estimator_.rehearsal is None

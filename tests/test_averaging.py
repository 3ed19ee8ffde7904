"""MonthlyAveragingClassifier: one fresh model per month, averaged predictions."""

import joblib
import numpy as np
import pytest
import sklearn
from _helpers import month_slices
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

from skcl import ContinualClassifier, MonthlyAveragingClassifier
from skcl.utils._sklearn_compat import InvalidParameterError


def test_each_month_gets_a_fresh_model_trained_on_that_month_only(stream, make_clf):
    X, y, months = stream
    clf = MonthlyAveragingClassifier(make_clf(random_state=None), random_state=0)
    for month, rows in month_slices(months[:600]):
        clf.partial_fit(X[:600][rows], y[:600][rows], classes=[0, 1], month=month)
    assert clf.estimator_months_ == [0, 1, 2]
    assert len({id(model) for model in clf.estimators_}) == 3
    assert [model.n_samples_seen_ for model in clf.estimators_] == [200, 200, 200]
    assert [model.n_months_seen_ for model in clf.estimators_] == [1, 1, 1]
    assert clf.estimator.__dict__.get("classes_") is None      # the template is untouched
    seeds = [model.random_state for model in clf.estimators_]
    assert len(set(seeds)) == 3 and None not in seeds


def test_fit_equals_partial_fit_sequence_in_sorted_month_order(stream):
    X, y, months = stream
    labels = np.array([f"2024-{m + 1:02d}" for m in months])
    shuffled = np.random.default_rng(0).permutation(len(y))
    by_fit = MonthlyAveragingClassifier(LogisticRegression(), random_state=0)
    by_fit.fit(X[shuffled], y[shuffled], months=labels[shuffled])
    by_partial = MonthlyAveragingClassifier(LogisticRegression(), random_state=0)
    for month, rows in month_slices(labels):
        by_partial.partial_fit(X[rows], y[rows], classes=[0, 1], month=month)
    assert by_fit.estimator_months_ == sorted(set(labels))
    # rows come in another order within each month: equal up to the solver's tolerance
    np.testing.assert_allclose(by_fit.predict_proba(X), by_partial.predict_proba(X),
                               rtol=1e-5)
    by_fit.fit(X[:100], y[:100])                          # resets: one month, one model
    assert len(by_fit.estimators_) == 1


@pytest.mark.parametrize("weights, decay", [("uniform", 0.5), ("recency", 0.5),
                                            ("recency", 1.0), ("recency", 0.1)])
def test_predict_proba_is_the_weighted_mean_of_the_monthly_models(stream, weights, decay):
    X, y, months = stream
    clf = MonthlyAveragingClassifier(LogisticRegression(), weights=weights, decay=decay)
    clf.fit(X, y, months=months)
    monthly = np.stack([model.predict_proba(X) for model in clf.estimators_])
    age = np.arange(5, -1, -1)
    w = np.ones(6) if weights == "uniform" else decay ** age
    expected = np.tensordot(w / w.sum(), monthly, axes=1)
    np.testing.assert_allclose(clf.predict_proba(X), expected)
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1)


def test_labels_are_returned_from_classes_and_missing_classes_get_zero(stream):
    X, y, months = stream
    names = np.array(["benign", "malware", "unknown"])
    y3 = names[y]
    y3[months == 5] = np.where(y[months == 5] == 1, "unknown", "benign")  # new class, month 5
    clf = MonthlyAveragingClassifier(LogisticRegression()).fit(X, y3, months=months)
    assert clf.classes_.tolist() == names.tolist()
    assert set(clf.predict(X)) <= set(names)
    proba = clf.predict_proba(X)
    # only the month-5 model knows "unknown"; it weighs 1/6 in the mean
    assert proba[:, 2].max() <= 1 / 6 + 1e-12
    np.testing.assert_allclose(proba.sum(axis=1), 1)


def test_random_state_makes_runs_reproducible(stream, make_clf):
    X, y, months = stream
    rows = months < 2
    a, b, c = (MonthlyAveragingClassifier(make_clf(random_state=None), random_state=seed)
               .fit(X[rows], y[rows], months=months[rows]) for seed in (0, 0, 1))
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))
    # an estimator with its own seed keeps it
    own = MonthlyAveragingClassifier(make_clf(random_state=7), random_state=0)
    own.fit(X[rows], y[rows], months=months[rows])
    assert [model.random_state for model in own.estimators_] == [7, 7]


def test_default_estimator_is_a_continual_classifier(stream):
    X, y, months = stream
    clf = MonthlyAveragingClassifier(random_state=0).fit(X[:200], y[:200])
    assert isinstance(clf.estimators_[0], ContinualClassifier)
    assert clf.score(X[:200], y[:200]) > 0.6


def test_errors_name_the_value_and_the_fix(stream):
    X, y, months = stream
    clf = MonthlyAveragingClassifier(LogisticRegression())
    with pytest.raises(ValueError, match="only one class .*classes=\\[...\\]"):
        clf.partial_fit(X[y == 0][:20], y[y == 0][:20])
    clf.partial_fit(X[:100], y[:100], classes=[0, 1])
    with pytest.raises(ValueError, match="month 1 has only one class \\(0\\).*needs two"):
        clf.partial_fit(X[y == 0][:20], y[y == 0][:20])
    with pytest.raises(ValueError, match="y has labels \\[2\\] not in classes_"):
        clf.partial_fit(X[:10], np.r_[y[:9], 2])
    with pytest.raises(ValueError, match="classes=\\[0, 1, 2\\] differs"):
        clf.partial_fit(X[:100], y[:100], classes=[0, 1, 2])
    with pytest.raises(ValueError, match="X has 3 features, but MonthlyAveragingClassifier "
                                         "is expecting 20 features"):
        clf.partial_fit(X[:100, :3], y[:100])
    with pytest.raises(ValueError, match="months has shape \\(5,\\)"):
        MonthlyAveragingClassifier(LogisticRegression()).fit(X, y, months=months[:5])
    assert len(clf.estimators_) == 1 and clf.estimator_months_ == [0]
    with pytest.raises(InvalidParameterError, match="decay"):
        MonthlyAveragingClassifier(LogisticRegression(), decay=0).fit(X, y)


def test_partial_fit_is_atomic(stream):
    X, y, months = stream
    clf = MonthlyAveragingClassifier(SGDClassifier(loss="log_loss"), random_state=0)
    clf.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    rng_state = clf.rng_.bit_generator.state
    estimators = clf.estimators_
    with pytest.raises(ValueError, match="alpha"):     # fails inside the month's fit
        clf.set_params(estimator__alpha=-1.0).partial_fit(X[months == 1], y[months == 1])
    assert clf.estimators_ is estimators and clf.estimator_months_ == [0]
    assert clf.rng_.bit_generator.state == rng_state


def test_joblib_round_trip(stream, make_clf, tmp_path):
    X, y, months = stream
    clf = MonthlyAveragingClassifier(make_clf(), weights="recency", random_state=0)
    clf.fit(X[months < 2], y[months < 2], months=months[months < 2])
    joblib.dump(clf, tmp_path / "avg.joblib")
    loaded = joblib.load(tmp_path / "avg.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    for continued in (clf, loaded):
        continued.partial_fit(X[months == 2], y[months == 2], month=2)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_months_are_routed_by_default(stream):
    X, y, months = stream
    assert MonthlyAveragingClassifier().get_metadata_routing().fit.requests == {"months": True}
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(MonthlyAveragingClassifier(LogisticRegression()),
                              {"weights": ["uniform", "recency"]}, cv=2)
        search.fit(X, y, months=months)
        scores = cross_validate(MonthlyAveragingClassifier(LogisticRegression()), X, y,
                                params={"months": months},
                                cv=KFold(2, shuffle=True, random_state=0),
                                return_estimator=True)
    assert len(search.best_estimator_.estimators_) == 6
    assert all(len(est.estimators_) == 6 for est in scores["estimator"])

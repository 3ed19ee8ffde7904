"""ForgettingScorer, per-month scores and the accuracy-matrix summaries."""

import pickle
import warnings

import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, make_scorer, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state

from skcl import ForgettingScorer
from skcl.scoring import (
    accuracy_matrix,
    average_accuracy,
    backward_transfer,
    forgetting,
    forward_transfer,
    negative_flip_rate,
    next_month_score,
    per_month_scores,
)
from skcl.utils._sklearn_compat import InvalidParameterError


class _ColumnClassifier(ClassifierMixin, BaseEstimator):
    """Predicts ``X[:, 0]``; its probability of class 1 is ``X[:, 1]``."""

    def fit(self, X, y, months=None):
        self.classes_ = np.array([0, 1])
        if months is not None:
            self.months_ = list(np.unique(months))
        return self

    def predict(self, X):
        return np.asarray(X)[:, 0].astype(int)

    def predict_proba(self, X):
        p = np.asarray(X)[:, 1]
        return np.c_[1 - p, p]


@pytest.fixture
def known():
    """Three months whose accuracies are 1, 1/2 and 1/4 by construction."""
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    pred = np.array([0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 1, 1])
    months = np.repeat([0, 1, 2], 4)
    proba = np.linspace(0.1, 0.9, 12)
    X = np.c_[pred, proba]
    return X, y, months


def test_per_month_scores_match_hand_computation(known):
    X, y, months = known
    clf = _ColumnClassifier().fit(X, y)
    assert per_month_scores(clf, X, y, months) == {0: 1.0, 1: 0.5, 2: 0.25}
    recall = per_month_scores(clf, X, y, months, metric=make_scorer(recall_score))
    assert recall == {m: recall_score(y[months == m], X[months == m, 0]) for m in range(3)}


def test_per_month_scores_of_a_continual_classifier(stream, make_clf):
    X, y, months = stream
    clf = make_clf(max_epochs=1).fit(X, y, months=months)
    scores = per_month_scores(clf, X, y, months)
    assert list(scores) == list(range(6))
    for month, score in scores.items():
        rows = months == month
        assert score == pytest.approx(accuracy_score(y[rows], clf.predict(X[rows])))


@pytest.mark.parametrize("aggregate, expected", [
    ("mean", (1 + 0.5 + 0.25) / 3),
    ("min", 0.25),
    ("last", 0.25),
    ("past", 0.75),
    ("seen", 0.75),  # the classifier was trained on months 0 and 1
    ("future", 0.25),
])
def test_aggregates(known, aggregate, expected):
    X, y, months = known
    clf = _ColumnClassifier().fit(X, y, months=months[months < 2])
    score = ForgettingScorer(aggregate=aggregate)(clf, X, y, months=months)
    assert score == pytest.approx(expected)


def test_string_months_are_sorted_before_aggregating(known):
    X, y, months = known
    labels = np.array(["2020-11", "2020-12", "2021-01"])[months]
    order = np.random.default_rng(0).permutation(len(y))
    clf = _ColumnClassifier().fit(X, y)
    scorer = ForgettingScorer(aggregate="last")
    assert scorer(clf, X[order], y[order], months=labels[order]) == pytest.approx(0.25)


def test_roc_auc_skips_single_class_months_with_a_warning(known):
    X, y, months = known
    # month 3 holds two rows of class 0 only
    X, y, months = np.r_[X, [[0, 0.2], [1, 0.3]]], np.r_[y, 0, 0], np.r_[months, 3, 3]
    clf = _ColumnClassifier().fit(X, y)
    with pytest.warns(UndefinedMetricWarning, match=r"undefined on months \[3\]"):
        scores = per_month_scores(clf, X, y, months, metric="roc_auc")
    assert np.isnan(scores[3]) and not np.isnan([scores[m] for m in range(3)]).any()
    with pytest.warns(UndefinedMetricWarning, match=r"months \[3\]"):
        last = ForgettingScorer("roc_auc", aggregate="last")(clf, X, y, months=months)
    # month 3 is left out, so month 2 is the newest defined month
    assert last == pytest.approx(scores[2])
    with pytest.warns(UndefinedMetricWarning):
        mean = ForgettingScorer("roc_auc")(clf, X, y, months=months)
    assert mean == pytest.approx(np.mean([scores[m] for m in range(3)]))


def test_metric_raising_on_a_single_class_month_is_undefined(known):
    X, y, months = known
    X = X.copy()
    X[:, 1] = np.clip(X[:, 1], 0.05, 0.95)
    # month 9 holds positives only
    X, y, months = np.r_[X, [[1, 0.6], [1, 0.7]]], np.r_[y, 1, 1], np.r_[months, 9, 9]
    clf = _ColumnClassifier().fit(X, y)
    with pytest.warns(UndefinedMetricWarning, match=r"months \[9\]"):
        scores = per_month_scores(clf, X, y, months, metric="neg_log_loss")
    assert np.isnan(scores[9])
    assert scores[0] < 0


def test_metric_undefined_everywhere_raises(known):
    X, y, _ = known
    clf = _ColumnClassifier().fit(X, y)
    with pytest.warns(UndefinedMetricWarning), pytest.raises(
            ValueError, match="'roc_auc' is undefined on every test month"):
        ForgettingScorer("roc_auc")(clf, X, y, months=y)


def test_other_warnings_of_defined_months_pass_through(known):
    X, y, months = known
    X = X.copy()
    X[:, 0] = 0  # never predicts class 1: precision is ill-defined, but defined (0)
    clf = _ColumnClassifier().fit(X, y)
    with pytest.warns(UndefinedMetricWarning, match="Precision is ill-defined"):
        assert ForgettingScorer("precision")(clf, X, y, months=months) == 0.0


def test_months_none_is_the_plain_metric(known):
    X, y, _ = known
    clf = _ColumnClassifier().fit(X, y)
    plain = accuracy_score(y, X[:, 0])
    with pytest.warns(UserWarning, match="got no months.*enable_metadata_routing"):
        assert ForgettingScorer()(clf, X, y) == pytest.approx(plain)
    with sklearn.config_context(enable_metadata_routing=True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert ForgettingScorer(aggregate="min")(clf, X, y) == pytest.approx(plain)
        with pytest.raises(ValueError, match="aggregate='past' needs the month"):
            ForgettingScorer(aggregate="past")(clf, X, y)


def test_scorer_errors(known):
    X, y, months = known
    clf = _ColumnClassifier().fit(X, y)
    with pytest.raises(InvalidParameterError, match="use aggregate='neg_forgetting'"):
        ForgettingScorer(aggregate="forgetting")(clf, X, y, months=months)
    with pytest.raises(InvalidParameterError, match="aggregate"):
        ForgettingScorer(aggregate="median")(clf, X, y, months=months)
    with pytest.raises(ValueError, match="Got 'accuracyy' instead"):
        ForgettingScorer("accuracyy")(clf, X, y, months=months)
    with pytest.raises(ValueError, match=r"months has shape \(3,\), but y has 12 rows"):
        ForgettingScorer()(clf, X, y, months=months[:3])
    with pytest.raises(ValueError, match="aggregate='past' needs at least two test months"):
        ForgettingScorer(aggregate="past")(clf, X, y, months=np.zeros(12))
    with pytest.raises(ValueError, match="has no months_"):
        ForgettingScorer(aggregate="future")(clf, X, y, months=months)
    trained = _ColumnClassifier().fit(X, y, months=months)
    with pytest.raises(ValueError, match="no test month after the last training month 2"):
        ForgettingScorer(aggregate="future")(trained, X, y, months=months)
    with pytest.raises(ValueError, match="needs the weights kept after every training"):
        ForgettingScorer(aggregate="bwt")(clf, X, y, months=months)


def test_scorer_requests_months_by_default_and_survives_clone_and_pickle():
    scorer = ForgettingScorer(aggregate="min")
    assert scorer.get_metadata_routing().consumes("score", ["months"]) == {"months"}
    with pytest.raises(RuntimeError, match="enable_metadata_routing=True"):
        scorer.set_score_request(months=False)
    with sklearn.config_context(enable_metadata_routing=True):
        aliased = ForgettingScorer(aggregate="min").set_score_request(months="test_months")
        for copy in (clone(aliased), pickle.loads(pickle.dumps(aliased))):
            assert copy.aggregate == "min"
            request = copy.get_metadata_routing().score.requests
            assert request == {"months": "test_months"}
        off = ForgettingScorer().set_score_request(months=False)
        assert off.get_metadata_routing().score.requests == {"months": False}
    assert repr(clone(scorer)) == "ForgettingScorer(aggregate='min')"


# ----------------------------------------------------------------------
# accuracy-matrix summaries on a known matrix
# ----------------------------------------------------------------------
R = np.array([
    [0.90, 0.20, 0.10, 0.30],
    [0.70, 0.85, 0.30, 0.40],
    [0.80, 0.60, 0.95, 0.50],
    [0.60, 0.75, 0.70, 0.90],
])


def test_matrix_summaries_match_hand_computation():
    assert average_accuracy(R) == pytest.approx((0.60 + 0.75 + 0.70 + 0.90) / 4)
    # max over the rows before the last, minus the last row, for months 0..2
    assert forgetting(R) == pytest.approx(((0.90 - 0.60) + (0.85 - 0.75)
                                           + (0.95 - 0.70)) / 3)
    assert backward_transfer(R) == pytest.approx(((0.60 - 0.90) + (0.75 - 0.85)
                                                  + (0.70 - 0.95)) / 3)
    baseline = [0.5, 0.5, 0.2, 0.3]
    assert forward_transfer(R, baseline) == pytest.approx(((0.20 - 0.5) + (0.30 - 0.2)
                                                           + (0.50 - 0.3)) / 3)


def test_forgetting_uses_the_best_earlier_score_not_the_diagonal():
    # month 0 peaks after month 2 (0.8 > 0.7 just after learning it)
    square = np.array([[0.7, 0.1, 0.1, 0.0], [0.5, 0.9, 0.2, 0.0],
                       [0.8, 0.9, 0.9, 0.0], [0.4, 0.9, 0.5, 0.9]])
    assert forgetting(square) == pytest.approx(((0.8 - 0.4) + 0 + (0.9 - 0.5)) / 3)
    assert backward_transfer(square) == pytest.approx(((0.4 - 0.7) + 0 + (0.5 - 0.9)) / 3)


def test_matrix_summaries_leave_out_undefined_months():
    with_nan = R.copy()
    with_nan[2, 1] = np.nan  # month 1 undefined for one model: month 1 is left out
    assert forgetting(with_nan) == pytest.approx(((0.90 - 0.60) + (0.95 - 0.70)) / 2)
    assert backward_transfer(with_nan) == pytest.approx(((0.60 - 0.90) + (0.70 - 0.95)) / 2)
    assert average_accuracy(with_nan) == pytest.approx((0.60 + 0.70 + 0.90) / 3)
    assert forward_transfer(R, [0.5, np.nan, 0.2, 0.3]) == pytest.approx(
        ((0.30 - 0.2) + (0.50 - 0.3)) / 2)
    all_nan = R.copy()
    all_nan[:, :3] = np.nan
    with pytest.raises(ValueError, match="forgetting: every month it averages over"):
        forgetting(all_nan)


def test_matrix_summary_errors():
    with pytest.raises(ValueError, match=r"square matrix of at least 2 months, got shape \(4, 3\)"):
        forgetting(R[:, :3])
    with pytest.raises(ValueError, match=r"got shape \(1, 1\)"):
        backward_transfer([[0.5]])
    with pytest.raises(ValueError, match=r"baseline has shape \(3,\), but R has 4 months"):
        forward_transfer(R, [0.5, 0.5, 0.5])


def test_negative_flip_rate():
    y = np.array([0, 1, 1, 0, 1, 0])
    before = np.array([0, 1, 0, 0, 1, 1])  # right on rows 0, 1, 3, 4
    after = np.array([1, 1, 1, 0, 0, 0])  # wrong on rows 0 and 4
    assert negative_flip_rate(y, before, after) == pytest.approx(2 / 6)
    assert negative_flip_rate(y, after, before) == pytest.approx(2 / 6)  # rows 2 and 5
    assert negative_flip_rate(y, before, before) == 0.0
    with pytest.raises(ValueError, match="three 1-d arrays of one length"):
        negative_flip_rate(y, before, after[:3])


# ----------------------------------------------------------------------
# snapshot-based scores of a ContinualClassifier
# ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def snapshot_run():
    from skcl import ContinualClassifier
    from skcl.datasets import make_drifting_stream

    X, y, months = make_drifting_stream(n_months=4, n_samples_per_month=120, random_state=1)
    clf = ContinualClassifier(module__hidden_units=(16,), max_epochs=2, batch_size=64,
                              lr=1e-2, keep_snapshots=True, random_state=0)
    return clf.fit(X, y, months=months), X, y, months


def test_accuracy_matrix_rows_are_the_snapshots(snapshot_run):
    clf, X, y, months = snapshot_run
    matrix = accuracy_matrix(clf, X, y, months)
    assert matrix.shape == (4, 4)
    for i in range(4):
        snapshot = clf.get_snapshot_estimator(i)
        np.testing.assert_allclose(matrix[i], list(per_month_scores(snapshot, X, y,
                                                                    months).values()))
    np.testing.assert_allclose(matrix[-1], list(per_month_scores(clf, X, y, months).values()))


def test_snapshot_aggregates_match_the_matrix(snapshot_run):
    clf, X, y, months = snapshot_run
    matrix = accuracy_matrix(clf, X, y, months)

    def score(aggregate, **params):
        return ForgettingScorer(aggregate=aggregate, **params)(clf, X, y, months=months)

    assert score("neg_forgetting") == pytest.approx(-forgetting(matrix))
    assert score("bwt") == pytest.approx(backward_transfer(matrix))
    assert score("mean") == pytest.approx(average_accuracy(matrix))

    # the FWT baseline: the same network freshly initialized, seeded by random_state
    untrained = clf.get_snapshot_estimator(0)
    with torch.random.fork_rng():
        torch.manual_seed(check_random_state(3).randint(np.iinfo(np.int32).max))
        untrained.initialize_module()
    baseline = list(per_month_scores(untrained, X, y, months).values())
    assert score("fwt", random_state=3) == pytest.approx(forward_transfer(matrix, baseline))
    assert score("fwt", random_state=3) == score("fwt", random_state=3)

    predictions = [clf.get_snapshot_estimator(i).predict(X) for i in range(4)]
    flips = [negative_flip_rate(y, predictions[i], predictions[i + 1]) for i in range(3)]
    assert score("neg_flip_rate") == pytest.approx(-np.mean(flips))


def test_snapshot_aggregates_through_a_pipeline(snapshot_run):
    clf, X, y, months = snapshot_run
    pipe = make_pipeline(StandardScaler(), clone(clf))
    pipe.fit(X, y, continualclassifier__months=months)
    matrix = accuracy_matrix(pipe, X, y, months)
    assert matrix.shape == (4, 4)
    scorer = ForgettingScorer(aggregate="bwt")
    assert scorer(pipe, X, y, months=months) == pytest.approx(backward_transfer(matrix))


def test_snapshot_aggregates_need_test_rows_of_every_trained_month(snapshot_run):
    clf, X, y, months = snapshot_run
    later = months >= 2
    with pytest.raises(ValueError, match=r"no rows of months \[0, 1\].*MonthlyKFold"):
        ForgettingScorer(aggregate="bwt")(clf, X[later], y[later], months=months[later])


def test_dataframe_inputs(known):
    pd = pytest.importorskip("pandas")
    X, y, months = known
    clf = _ColumnClassifier().fit(X, y)
    frame = pd.DataFrame(X, index=np.arange(100, 112))
    scores = per_month_scores(clf, frame, pd.Series(y, index=frame.index),
                              pd.Series(months, index=frame.index))
    assert scores == {0: 1.0, 1: 0.5, 2: 0.25}


# ----------------------------------------------------------------------
# the deployed model's score
# ----------------------------------------------------------------------
def test_next_month_score_is_the_superdiagonal_mean():
    R = [[0.9, 0.5, 0.1], [0.2, 0.9, 0.75], [0.3, 0.4, 0.9]]
    assert next_month_score(R) == pytest.approx((0.5 + 0.75) / 2)
    # an undefined entry is left out, not averaged as 0
    assert next_month_score([[0.9, np.nan, 0.1], [0.2, 0.9, 0.75],
                             [0.3, 0.4, 0.9]]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="square matrix"):
        next_month_score([[0.9, 0.5]])
    with pytest.raises(ValueError, match="no test month"):
        next_month_score([[0.9, np.nan], [0.2, 0.9]])


def test_scorer_next_month_matches_the_matrix(snapshot_run):
    clf, X, y, months = snapshot_run
    matrix = accuracy_matrix(clf, X, y, months)
    expected = np.mean([matrix[t, t + 1] for t in range(3)])
    assert ForgettingScorer(aggregate="next_month")(clf, X, y, months=months) == \
        pytest.approx(expected)
    # a test set of later months only (TemporalSplit): each model on the first
    # test month after its training month; the last model on month 3
    early, late = months <= 1, months >= 2
    trained = clone(clf).fit(X[early], y[early], months=months[early])
    later = accuracy_matrix(trained, X[late], y[late], months[late])  # 2 x 2
    score = ForgettingScorer(aggregate="next_month")(trained, X[late], y[late],
                                                     months=months[late])
    assert score == pytest.approx(np.mean([later[0, 0], later[1, 0]]))


def test_scorer_next_month_follows_an_ordered_categoricals_order(snapshot_run):
    # category order (m3, m1, m2, m0) is not the labels' alphabetical order
    pd = pytest.importorskip("pandas")
    clf, X, y, months = snapshot_run
    order = ["m3", "m1", "m2", "m0"]
    names = pd.Categorical(np.array(order)[months], categories=order, ordered=True)
    trained = clone(clf).fit(X, y, months=names)
    matrix = accuracy_matrix(trained, X, y, names)  # columns sorted: m0, m1, m2, m3
    column = {label: i for i, label in enumerate(sorted(order))}
    expected = np.mean([matrix[t, column[order[t + 1]]] for t in range(3)])
    assert ForgettingScorer(aggregate="next_month")(trained, X, y, months=names) == \
        pytest.approx(expected)

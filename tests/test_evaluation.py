"""Tests for skcl.evaluation: evaluate_stream and StreamEvaluation."""

import csv
import io
import sys

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import SGDClassifier

from skcl import ContinualClassifier
from skcl.evaluation import RECORD_COLUMNS, SUMMARY_COLUMNS, StreamEvaluation, evaluate_stream


class LastMajority(ClassifierMixin, BaseEstimator):
    """Predicts the majority label of the last month it was trained on."""

    def partial_fit(self, X, y, classes=None, month=None):
        self.classes_ = np.asarray(classes)
        labels, counts = np.unique(y, return_counts=True)
        self.label_ = labels[np.argmax(counts)]
        self.months_seen_ = getattr(self, "months_seen_", []) + [month]
        return self

    def predict(self, X):
        return np.full(len(X), self.label_)


class AllMajority(ClassifierMixin, BaseEstimator):
    """Predicts the majority label of every row trained on so far (no month keyword)."""

    def partial_fit(self, X, y, classes=None):
        self.classes_ = np.asarray(classes)
        self.counts_ = getattr(self, "counts_", np.zeros(len(classes), dtype=int))
        self.counts_ += np.array([np.sum(y == label) for label in self.classes_])
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[np.argmax(self.counts_)])


def _toy_stream():
    """Three months whose stratified halves have exactly known label counts."""
    counts = [(10, 30), (10, 30), (24, 16)]  # (zeros, ones) per month
    y = np.concatenate([np.r_[np.zeros(n0, int), np.ones(n1, int)] for n0, n1 in counts])
    months = np.concatenate([np.full(n0 + n1, m) for m, (n0, n1) in enumerate(counts)])
    X = np.arange(len(y), dtype=float).reshape(-1, 1)
    return X, y, months


def test_scores_match_hand_computation():
    X, y, months = _toy_stream()
    result = evaluate_stream({"retrain": AllMajority(), "naive": LastMajority()},
                             X, y, months, test_size=0.5, random_state=0)
    # test halves: months 0 and 1 hold 5 zeros / 15 ones, month 2 12 zeros / 8 ones.
    # naive predicts 1 after months 0 and 1, and 0 after month 2 (12 vs 8 train rows);
    # retrain keeps predicting 1 (22 zeros vs 38 ones at the end).
    np.testing.assert_allclose(result.matrix("naive"),
                               [[0.75, 0.75, 0.4], [0.75, 0.75, 0.4], [0.25, 0.25, 0.6]])
    np.testing.assert_allclose(result.matrix("retrain"), [[0.75, 0.75, 0.4]] * 3)

    summary = {row["strategy"]: row for row in result.summary}
    naive, retrain = summary["naive"], summary["retrain"]
    assert naive["mean_score"] == pytest.approx((0.25 + 0.25 + 0.6) / 3)
    assert naive["worst_score"] == pytest.approx(0.25) and naive["worst_month"] == 0
    assert naive["first_month_score"] == pytest.approx(0.25)
    assert naive["first_month_forgetting"] == pytest.approx(0.5)
    assert naive["last_month_score"] == pytest.approx(0.6)
    assert retrain["mean_score"] == pytest.approx(1.9 / 3)
    assert retrain["worst_score"] == pytest.approx(0.4) and retrain["worst_month"] == 2
    assert retrain["first_month_forgetting"] == pytest.approx(0.0)
    assert naive["gap_to_reference"] == pytest.approx(1.1 / 3 - 1.9 / 3)
    assert retrain["gap_to_reference"] == 0
    # no training history: one pass over each month's 20 training rows
    assert naive["samples_processed"] == retrain["samples_processed"] == 60
    assert naive["relative_cost"] == 1.0


def test_records_are_tidy_and_month_is_passed_when_accepted():
    X, y, months = _toy_stream()
    months = np.array(["2020-01", "2020-02", "2020-03"])[months]
    estimator = LastMajority()
    result = evaluate_stream([("naive", estimator), ("all", AllMajority())], X, y, months,
                             test_size=0.5, random_state=0)
    assert not hasattr(estimator, "label_")  # cloned, the user's object stays unfitted
    assert result.estimators["naive"] is not estimator
    assert result.estimators["naive"].months_seen_ == ["2020-01", "2020-02", "2020-03"]
    assert len(result.records) == 2 * 3 * 3
    assert all(list(row) == list(RECORD_COLUMNS) for row in result.records)
    assert [list(row) for row in result.summary] == [list(SUMMARY_COLUMNS)] * 2
    assert result.months == ["2020-01", "2020-02", "2020-03"]
    first = result.records[0]
    assert (first["strategy"], first["n_months_trained"], first["train_month"],
            first["eval_month"], first["metric"]) == ("naive", 1, "2020-01", "2020-01",
                                                      "accuracy")
    assert [row["samples_processed"] for row in result.records[:9:3]] == [20, 40, 60]
    assert result.reference is None  # no strategy named "retrain"
    assert result.summary[0]["gap_to_reference"] is None


def test_splits_are_stratified_disjoint_and_seeded():
    X, y, months = _toy_stream()
    seen = []

    class Recorder(LastMajority):
        def partial_fit(self, X, y, classes=None, month=None):
            seen.append(X[:, 0].copy())
            return super().partial_fit(X, y, classes=classes, month=month)

    evaluate_stream({"a": Recorder()}, X, y, months, test_size=0.5, random_state=3)
    first = [rows.copy() for rows in seen]
    seen.clear()
    evaluate_stream({"a": Recorder()}, X, y, months, test_size=0.5, random_state=3)
    for rows_a, rows_b, month in zip(first, seen, range(3)):
        np.testing.assert_array_equal(rows_a, rows_b)
        assert len(rows_a) == 20 and set(months[rows_a.astype(int)]) == {month}
        assert np.mean(y[rows_a.astype(int)]) == np.mean(y[months == month])


def test_samples_processed_counts_epochs_replay_and_retraining(stream, make_clf):
    X, y, months = stream
    keep = months < 2
    X, y, months = X[keep], y[keep], months[keep]
    n_train = 140  # 200 rows per month, 30% held out
    epochs = 2
    strategies = {
        "retrain": make_clf(update="retrain", max_epochs=epochs),
        "naive": make_clf(max_epochs=epochs),
        "sgd": SGDClassifier(random_state=0),
    }
    result = evaluate_stream(strategies, X, y, months, random_state=0)
    summary = {row["strategy"]: row for row in result.summary}
    assert summary["naive"]["samples_processed"] == epochs * 2 * n_train
    assert summary["retrain"]["samples_processed"] == epochs * (1 + 2) * n_train
    assert summary["sgd"]["samples_processed"] == 2 * n_train
    assert summary["naive"]["relative_cost"] == pytest.approx(2 / 3)
    assert summary["retrain"]["relative_cost"] == 1.0
    assert summary["retrain"]["relative_time"] == 1.0
    cumulative = [row["samples_processed"] for row in result.records
                  if row["strategy"] == "retrain" and row["eval_month"] == 0]
    assert cumulative == [epochs * n_train, epochs * 3 * n_train]
    times = [row["fit_seconds"] for row in result.records if row["strategy"] == "naive"]
    assert times == sorted(times) and times[0] > 0


def test_rehearsal_rows_count():
    rehearsal = pytest.importorskip("skcl.rehearsal")
    from skcl.datasets import make_drifting_stream

    X, y, months = make_drifting_stream(n_months=3, n_samples_per_month=100, random_state=0)
    params = dict(module__hidden_units=(8,), max_epochs=1, random_state=0)
    strategies = {
        "naive": ContinualClassifier(**params),
        "fixed": ContinualClassifier(**params, rehearsal=rehearsal.RehearsalBuffer(
            capacity=500, replay_ratio=0.5, epoch_size="fixed")),
        "grow": ContinualClassifier(**params, rehearsal=rehearsal.RehearsalBuffer(
            capacity=500, replay_ratio=0.5, epoch_size="grow")),
    }
    result = evaluate_stream(strategies, X, y, months, random_state=0)
    summary = {row["strategy"]: row["samples_processed"] for row in result.summary}
    assert summary["fixed"] == summary["naive"] == 3 * 70
    assert summary["grow"] == 70 + 2 * 140  # later months: 70 new + 70 replayed rows


def test_roc_auc_and_dataframe_input(stream, make_clf):
    pd = pytest.importorskip("pandas")
    X, y, months = stream
    keep = months < 2
    frame = pd.DataFrame(X[keep], columns=[f"f{i}" for i in range(X.shape[1])])
    result = evaluate_stream({"naive": make_clf(max_epochs=1)}, frame, y[keep],
                             months[keep], metric="roc_auc", random_state=0)
    assert result.metric == "roc_auc"
    assert all(0 <= row["score"] <= 1 for row in result.records)
    table = result.to_frame()
    assert list(table.columns) == list(RECORD_COLUMNS) and len(table) == 4
    assert result.summary_frame().index.tolist() == ["naive"]


def test_callable_metric_and_explicit_reference():
    X, y, months = _toy_stream()

    def error_count(estimator, X, y):
        return float(np.sum(estimator.predict(X) != y))

    result = evaluate_stream({"a": LastMajority(), "b": AllMajority()}, X, y, months,
                             test_size=0.5, metric=error_count, reference="b",
                             random_state=0)
    assert result.metric == "error_count"
    assert result.reference == "b"
    assert result.matrix("a")[0, 0] == 5.0  # 5 zeros in month 0's test half


def test_csv_and_text_table(tmp_path):
    X, y, months = _toy_stream()
    result = evaluate_stream({"retrain": AllMajority(), "naive": LastMajority()},
                             X, y, months, test_size=0.5, random_state=0)
    path = tmp_path / "results.csv"
    result.to_csv(path)
    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 18 and list(rows[0]) == list(RECORD_COLUMNS)
    assert float(rows[-1]["score"]) == pytest.approx(result.records[-1]["score"])
    table = result.format_summary()
    lines = table.splitlines()
    assert lines[0].split()[0] == "strategy"
    assert lines[2].startswith("retrain") and lines[3].startswith("naive")  # best first
    assert "relative to 'retrain'" in table
    with pytest.raises(ValueError, match="sort_by='strategy' is not a numeric"):
        result.format_summary(sort_by="strategy")
    with pytest.raises(KeyError, match="no strategy 'missing'"):
        result.matrix("missing")
    assert "StreamEvaluation(strategies=['retrain', 'naive']" in repr(result)


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self):
        return True


def test_progress_on_a_terminal_without_tqdm_prints_a_line_per_month(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    X, y, months = _toy_stream()
    evaluate_stream({"naive": LastMajority()}, X, y, months, test_size=0.5, progress=True)
    assert terminal.getvalue().splitlines() == [
        "[1/3] naive: month 0", "[2/3] naive: month 1", "[3/3] naive: month 2"]


def test_progress_in_a_log_prints_one_line_per_strategy(capsys):
    # capsys' stderr is not a terminal, like a CI log: no per-month refreshes,
    # even with tqdm installed
    X, y, months = _toy_stream()
    evaluate_stream({"naive": LastMajority(), "retrain": AllMajority()}, X, y, months,
                    test_size=0.5, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith("[3/6] naive: done in ")
    assert err[1].startswith("[6/6] retrain: done in ")


def test_stream_evaluation_is_usable_on_its_own():
    records = [
        {"strategy": "s", "n_months_trained": step, "train_month": t, "eval_month": e,
         "metric": "accuracy", "score": score, "samples_processed": 5 * step,
         "fit_seconds": 1.0 * step}
        for step, t, e, score in [(1, "a", "a", 1.0), (1, "a", "b", 0.0),
                                  (2, "b", "a", 0.5), (2, "b", "b", 1.0)]
    ]
    result = StreamEvaluation(records, metric="accuracy", reference="s", months=["a", "b"])
    (row,) = result.summary
    assert row["mean_score"] == 0.75 and row["worst_month"] == "a"
    assert row["samples_processed"] == 10 and row["fit_seconds"] == 2.0
    assert row["relative_cost"] == 1.0 and row["gap_to_reference"] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(strategies={}), ValueError, "strategies is empty"),
        (dict(strategies="naive"), TypeError, "strategies must be a dict or a list"),
        (dict(strategies=[("a", LastMajority()), ("a", LastMajority())]), ValueError,
         r"unique; \['a'\] repeat"),
        (dict(strategies={"a": object()}), TypeError, "'a' is .* which has no partial_fit"),
        (dict(strategies={1: LastMajority()}), TypeError, "non-empty strings, got 1"),
        (dict(test_size=1.5), ValueError, r"test_size must be a float in \(0, 1\), got 1.5"),
        (dict(metric="accurasy"), ValueError, "metric='accurasy' is not a scikit-learn"),
        (dict(reference="nope"), ValueError, "reference='nope' is not one of the strategies"),
        (dict(months=np.zeros(3)), ValueError, "one month label per row"),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    X, y, months = _toy_stream()
    arguments = dict(strategies={"a": LastMajority()}, X=X, y=y, months=months)
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        evaluate_stream(**arguments)


def test_month_too_small_to_split_names_it():
    X, y, months = _toy_stream()
    y = y.copy()
    y[months == 2] = 0
    y[np.flatnonzero(months == 2)[0]] = 1  # a single positive row in month 2
    with pytest.raises(ValueError, match=r"month 2 has 40 rows with label counts "
                                         r"\{0: 39, 1: 1\}, too few"):
        evaluate_stream({"a": LastMajority()}, X, y, months)


def test_unsortable_months():
    X, y, _ = _toy_stream()
    months = np.array([1, "a"] * (len(y) // 2), dtype=object)
    with pytest.raises(ValueError, match="month labels cannot be sorted"):
        evaluate_stream({"a": LastMajority()}, X, y, months)


def test_next_month_score_by_hand():
    # test parts (test_size=0.5, stratified): month 0 holds 3 zeros and 1 one,
    # month 1 1 zero and 3 ones, month 2 2 and 2. LastMajority predicts 0 after
    # month 0 (6 zeros, 2 ones), 1 after month 1, 0 after month 2 (a tie).
    y = np.r_[[0] * 6 + [1] * 2, [0] * 2 + [1] * 6, [0] * 4 + [1] * 4]
    months = np.repeat([0, 1, 2], 8)
    X = np.zeros((len(y), 1))
    result = evaluate_stream({"last": LastMajority()}, X, y, months, test_size=0.5,
                             random_state=0)
    row = result.summary[0]
    # after month 0 on month 1: 1/4; after month 1 on month 2: 2/4
    assert row["next_month_score"] == pytest.approx((0.25 + 0.5) / 2)
    assert row["mean_score"] == pytest.approx((0.75 + 0.25 + 0.5) / 3)
    assert "next month" in result.format_summary()
    one_month = evaluate_stream({"last": LastMajority()}, X[:8], y[:8], months[:8],
                                test_size=0.5, random_state=0)
    assert one_month.summary[0]["next_month_score"] is None

"""Month labels of every kind through every entry point (skcl/utils/_months.py)."""

import datetime
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn

from skcl import (
    ContinualClassifier,
    ForgettingScorer,
    MonthlyKFold,
    RehearsalBuffer,
    TemporalSplit,
)
from skcl.benchmark import main
from skcl.datasets import make_drifting_stream
from skcl.evaluation import evaluate_stream
from skcl.utils._months import check_month_label, check_months

# Three months of each kind, in time order; ``column`` builds a per-row
# months argument from the labels and the month index of each row.
KINDS = {
    "datetime64": (np.array(["2024-01", "2024-02", "2024-03"], dtype="datetime64[M]"),
                   lambda labels, index: labels[index]),
    "Timestamp": ([pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01"),
                   pd.Timestamp("2024-03-01")],
                  lambda labels, index: np.array(labels, dtype=object)[index]),
    "date": ([datetime.date(2024, 1, 1), datetime.date(2024, 2, 1), datetime.date(2024, 3, 1)],
             lambda labels, index: np.array(labels, dtype=object)[index]),
    "datetime": ([datetime.datetime(2024, 1, 1), datetime.datetime(2024, 2, 1),
                  datetime.datetime(2024, 3, 1)],
                 lambda labels, index: np.array(labels, dtype=object)[index]),
    "Period": ([pd.Period("2024-01", "M"), pd.Period("2024-02", "M"),
                pd.Period("2024-03", "M")],
               lambda labels, index: pd.PeriodIndex(np.array(labels, dtype=object)[index])),
    # category order is time order; the strings' own order is not
    "ordered Categorical": (["Mar 23", "Jan 24", "Feb 24"],
                            lambda labels, index: pd.Categorical(
                                np.array(labels)[index], categories=labels, ordered=True)),
}


@pytest.fixture(scope="module")
def stream():
    X, y, index = make_drifting_stream(n_months=3, n_samples_per_month=40, random_state=0)
    return X, y, index


def _kind(name, index):
    labels, column = KINDS[name]
    return list(labels), column(labels, index)


def _same(got, labels):
    """Equal, and each of the very type the user gave."""
    assert len(got) == len(labels)
    for value, label in zip(got, labels):
        assert value == label
        assert type(value) is type(label)


def _clf(**params):
    return ContinualClassifier(max_epochs=1, batch_size=32, random_state=0,
                               module__hidden_units=(8,), **params)


@pytest.mark.parametrize("kind", KINDS)
def test_partial_fit_keeps_month_labels_as_given(kind, stream):
    X, y, index = stream
    labels, _ = _kind(kind, index)
    clf = _clf()
    for code, label in enumerate(labels):
        clf.partial_fit(X[index == code], y[index == code], classes=[0, 1], month=label)
    _same(clf.months_, labels)


@pytest.mark.parametrize("kind", KINDS)
def test_fit_trains_dated_months_in_time_order(kind, stream):
    X, y, index = stream
    labels, months = _kind(kind, index)
    clf = _clf().fit(X, y, months=months)
    _same(clf.months_, labels)


@pytest.mark.parametrize("kind", KINDS)
def test_buffer_stores_month_labels_as_given(kind, stream):
    X, y, index = stream
    labels, _ = _kind(kind, index)
    buffer = RehearsalBuffer(capacity=30, policy="per_month", random_state=0)
    for code, label in enumerate(labels):
        buffer.partial_fit(X[index == code], y[index == code], month=label)
    _same(list(buffer.n_samples_seen_per_month_), labels)
    stored = list(buffer.sample_months_)
    if not isinstance(labels[0], str):  # strings are stored in a str array
        assert {type(m) for m in stored} == {type(labels[0])}
    assert {str(m) for m in stored} == {str(m) for m in labels}
    # the buffer inside the classifier sees the same labels
    clf = _clf(rehearsal=RehearsalBuffer(capacity=30))
    for code, label in enumerate(labels):
        clf.partial_fit(X[index == code], y[index == code], classes=[0, 1], month=label)
    _same(list(clf.rehearsal_.n_samples_seen_per_month_), labels)


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_stream_passes_month_labels_as_given(kind, stream):
    X, y, index = stream
    labels, months = _kind(kind, index)
    result = evaluate_stream({"naive": _clf()}, X, y, months, random_state=0)
    _same(result.months, labels)
    _same(result.estimators["naive"].months_, labels)
    assert result.matrix("naive").shape == (3, 3)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("aggregate", ["mean", "seen", "future"])
def test_forgetting_scorer_with_dated_months(kind, aggregate, stream):
    X, y, index = stream
    labels, months = _kind(kind, index)
    clf = _clf()
    first = index == 0
    clf.partial_fit(X[first], y[first], classes=[0, 1], month=labels[0])
    scorer = ForgettingScorer(aggregate=aggregate)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score = scorer(clf, X, y, months=months)
    per_month = [clf.score(X[index == code], y[index == code]) for code in range(3)]
    expected = {"mean": np.mean(per_month), "seen": per_month[0],
                "future": np.mean(per_month[1:])}[aggregate]
    assert score == pytest.approx(expected)


@pytest.mark.parametrize("kind", KINDS)
def test_splitters_with_dated_months(kind, stream):
    X, y, index = stream
    labels, months = _kind(kind, index)
    for train, test in MonthlyKFold(n_splits=2).split(X, months=months):
        assert set(index[train]) == set(index[test]) == {0, 1, 2}
    cuts = [(set(index[train]), set(index[test]))
            for train, test in TemporalSplit(n_splits=2).split(X, months=months)]
    # cut after the first month, then after the second: time order, not text order
    assert cuts == [({0}, {0, 1, 2}), ({0, 1}, {0, 1, 2})]


@pytest.mark.parametrize("kind", KINDS)
def test_grid_search_routes_dated_months(kind, stream):
    from sklearn.model_selection import GridSearchCV

    X, y, index = stream
    labels, months = _kind(kind, index)
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(_clf(), {"lr": [1e-3]}, cv=MonthlyKFold(n_splits=2),
                              scoring=ForgettingScorer()).fit(X, y, months=months)
    _same(search.best_estimator_.months_, labels)


def _write_stream_csv(path, month_strings, stream):
    X, y, index = stream
    frame = pd.DataFrame(X[:, :3], columns=["a", "b", "c"])
    frame["month"] = np.array(month_strings)[index]
    frame["label"] = y
    frame.to_csv(path, index=False)
    return path


def test_cli_trains_dated_months_in_time_order(tmp_path, stream):
    path = _write_stream_csv(tmp_path / "s.csv", ["2024-01-31", "2024-02-29", "2024-03-31"],
                             stream)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["--data", str(path), "--quick", "--strategies", "naive",
                     "--seeds", "1", "--out", str(tmp_path / "out")]) == 0
    rows = pd.read_csv(tmp_path / "out" / "results.csv")
    assert list(dict.fromkeys(rows["train_month"])) == ["2024-01-31", "2024-02-29",
                                                          "2024-03-31"]


def test_cli_warns_about_months_that_do_not_sort_as_dates(tmp_path, stream):
    path = _write_stream_csv(tmp_path / "s.csv", ["9/2024", "10/2024", "11/2024"], stream)
    with pytest.warns(UserWarning, match=r"look like dates .* order used is "
                                         r"\['10/2024', '11/2024', '9/2024'\]"):
        assert main(["--data", str(path), "--quick", "--strategies", "naive",
                     "--seeds", "1", "--out", str(tmp_path / "out")]) == 0


@pytest.mark.parametrize("labels, what, used", [
    (["9/2024", "10/2024", "11/2024"], "dates", "['10/2024', '11/2024', '9/2024']"),
    (["2024-9", "2024-10"], "dates", "['2024-10', '2024-9']"),
    (["Jan", "Feb", "Mar"], "month names", "['Feb', 'Jan', 'Mar']"),
    (["january", "february"], "month names", "['february', 'january']"),
    (["9", "10", "11"], "numbers", "['10', '11', '9']"),
])
def test_labels_that_do_not_sort_as_time_warn_naming_the_order(labels, what, used):
    with pytest.warns(UserWarning, match=f"look like {what}.*order used is {used!s}"
                      .replace("[", r"\[").replace("]", r"\]")):
        _, order = check_months(np.array(labels), len(labels))
    # the order used is the strings' own: nothing is guessed
    assert order.tolist() == sorted(labels)


@pytest.mark.parametrize("labels", [
    ["2024-01", "2024-02", "2024-10"], ["2024-01-15", "2024-02-01"], ["01", "02", "10"],
    ["a", "b"], ["spring", "summer"], [3, 1, 2],
    np.array(["2024-01", "2024-02"], dtype="datetime64[M]"),
    pd.Categorical(["Feb", "Jan"], categories=["Jan", "Feb"], ordered=True),
])
def test_labels_that_sort_as_time_or_are_not_time_do_not_warn(labels):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_months(labels, len(labels))


def test_a_date_added_to_datetime64_months_is_counted_under_the_stored_label():
    X = np.zeros((10, 2))
    buffer = RehearsalBuffer(capacity=None, random_state=0)
    buffer.partial_fit(X, np.arange(10) % 2, month=np.datetime64("2020-02-01"))
    buffer.partial_fit(X, np.arange(10) % 2, month=datetime.date(2020, 2, 1))
    assert buffer.n_samples_seen_per_month_ == {np.datetime64("2020-02-01"): 20}
    assert buffer.sample_months_.dtype.kind == "M"


@pytest.mark.parametrize("labels", [["\u00b2", "1"], ["--1", "2"]])
def test_digit_like_labels_that_are_not_integers_train_in_text_order(labels):
    # "²" is a digit to str.isdigit but not to int(): the order check must not crash
    _, order = check_months(np.array(labels), len(labels))
    assert order.tolist() == sorted(labels)


@pytest.mark.parametrize("month", [[1, 2], np.array([1, 2]), {"m": 1}, {1}, (2024, 3)])
def test_a_month_that_is_not_one_label_is_refused_with_one_wording(month, stream):
    X, y, index = stream
    match = "is not a single label; partial_fit trains one month"
    with pytest.raises(ValueError, match=match):
        check_month_label(month)
    with pytest.raises(ValueError, match=match):
        RehearsalBuffer(capacity=10).partial_fit(X[:5], y[:5], month=month)
    with pytest.raises(ValueError, match=match):
        _clf().partial_fit(X[:20], y[:20], classes=[0, 1], month=month)


@pytest.mark.parametrize("month", [np.nan, pd.NaT, np.datetime64("NaT"), float("nan")])
def test_a_missing_month_label_is_refused(month, stream):
    X, y, _ = stream
    with pytest.raises(ValueError, match="is a missing label"):
        RehearsalBuffer(capacity=10).partial_fit(X[:5], y[:5], month=month)


def test_periods_of_different_frequencies_are_refused():
    months = np.array([pd.Period("2024-01", "M"), pd.Period("2024-Q1", "Q")], dtype=object)
    with pytest.raises(ValueError, match="month labels cannot be sorted"):
        check_months(months, 2)

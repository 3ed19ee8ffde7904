"""Reliability: bad input is rejected cleanly, failures roll back, models resume."""

import io
import pickle
from numbers import Real

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from _helpers import fingerprint, month_slices, state_equal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, InvalidParameterError
from skorch.callbacks import Callback

from skcl import ContinualClassifier


class BoundedPenalty(BaseEstimator):
    """Minimal regularizer with sklearn-style constraints on ``lam``."""

    _parameter_constraints = {"lam": [Interval(Real, 0, None, closed="left")]}

    def __init__(self, lam=1.0):
        self.lam = lam

    def penalty(self, module):
        return sum((p ** 2).sum() for p in module.parameters()) * self.lam * 0.0

    def consolidate(self, net, X, y):
        return self


@pytest.fixture
def trained(stream, make_clf):
    """A classifier after one month, and the stream."""
    X, y, months = stream
    clf = make_clf().partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    return clf, X, y, months


def _with(array, row, col, value):
    array = array.copy()
    array[row, col] = value
    return array


# name -> (call(clf, X, y, months), expected error type, message pattern)
BAD_INPUTS = {
    "nan in X": (lambda c, X, y, m: c.partial_fit(_with(X[:50], 3, 2, np.nan), y[:50]),
                 ValueError, "NaN"),
    "inf in X": (lambda c, X, y, m: c.partial_fit(_with(X[:50], 3, 2, np.inf), y[:50]),
                 ValueError, "infinity.*Replace or clip"),
    "fewer features": (lambda c, X, y, m: c.partial_fit(X[:50, :19], y[:50]),
                       ValueError, "X has 19 features, but ContinualClassifier is expecting 20"),
    "labels outside classes_": (lambda c, X, y, m: c.partial_fit(X[:50], np.full(50, 7)),
                                ValueError, r"labels \[7\] not in classes_"),
    "empty month": (lambda c, X, y, m: c.partial_fit(X[:0], y[:0]),
                    ValueError, "0 sample"),
    "strings in X": (lambda c, X, y, m: c.partial_fit(
        np.where(np.arange(20) == 4, "a", X[:50].astype(str)).astype(object), y[:50]),
        ValueError, "X must be numeric, but could not convert string to float.*encode"),
    "1-D X": (lambda c, X, y, m: c.partial_fit(X[:50, 0], y[:50]),
              ValueError, "Expected 2D array"),
    "X and y lengths differ": (lambda c, X, y, m: c.partial_fit(X[:50], y[:49]),
                               ValueError, "inconsistent numbers of samples"),
    "months of wrong length": (lambda c, X, y, m: c.fit(X, y, months=m[:-1]),
                               ValueError, "months has shape"),
    "unsortable months": (lambda c, X, y, m: c.fit(
        X, y, months=np.array(["a" if k % 2 else 1 for k in m], dtype=object)),
        ValueError, "cannot be sorted"),
    "classes changed": (lambda c, X, y, m: c.partial_fit(X[:50], y[:50], classes=[0, 1, 2]),
                        ValueError, "differs from classes_"),
    "negative lam": (lambda c, X, y, m: c.set_params(regularizer=BoundedPenalty(lam=-1.0))
                     .fit(X, y, months=m),
                     InvalidParameterError, r"'lam' parameter .* Got -1.0"),
    "negative lr": (lambda c, X, y, m: c.set_params(lr=-0.1).fit(X, y, months=m),
                    InvalidParameterError, r"'lr' parameter .* Got -0.1"),
    "unknown update": (lambda c, X, y, m: c.set_params(update="rehearse").fit(X, y),
                         InvalidParameterError, "'update' parameter"),
    "predict with fewer features": (lambda c, X, y, m: c.predict(X[:5, :3]),
                                    ValueError, "X has 3 features"),
    "score with nan": (lambda c, X, y, m: c.score(_with(X[:5], 0, 0, np.nan), y[:5]),
                       ValueError, "NaN"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_rejected_and_changes_nothing(case, trained):
    clf, X, y, months = trained
    call, error, pattern = BAD_INPUTS[case]
    params_before = {k: v for k, v in clf.get_params(deep=False).items()
                     if k not in ("regularizer", "lr", "strategy")}
    before = fingerprint(clf)
    with pytest.raises(error, match=pattern):
        call(clf, X, y, months)
    clf.set_params(regularizer=None, lr=1e-2, update="finetune")
    assert fingerprint(clf) == before
    assert {k: v for k, v in clf.get_params(deep=False).items() if k in params_before} == \
        params_before
    # and the estimator still trains on a good month
    clf.partial_fit(X[months == 1], y[months == 1])
    assert clf.n_months_seen_ == 2


def test_first_month_with_one_class_is_rejected(stream, make_clf):
    X, y, _ = stream
    clf = make_clf()
    before = fingerprint(clf)
    with pytest.raises(ValueError, match="only one class"):
        clf.partial_fit(X[y == 1][:30], y[y == 1][:30])
    assert fingerprint(clf) == before
    assert not hasattr(clf, "classes_")


def test_dataframe_columns_must_match(stream, make_clf):
    X, y, _ = stream
    columns = [f"f{i}" for i in range(20)]
    clf = make_clf().partial_fit(pd.DataFrame(X[:100], columns=columns), y[:100])
    before = fingerprint(clf)
    renamed = pd.DataFrame(X[100:200], columns=columns[::-1])
    with pytest.raises(ValueError, match="feature names should match"):
        clf.partial_fit(renamed, y[100:200])
    assert fingerprint(clf) == before


class FailingModule(torch.nn.Module):
    """Linear model that raises, or returns NaN, after ``n_good_calls`` forwards."""

    def __init__(self, n_features=20, n_classes=2, n_good_calls=3, failure="raise"):
        super().__init__()
        self.linear = torch.nn.Linear(n_features, n_classes)
        self.n_good_calls = n_good_calls
        self.failure = failure
        self.calls = 0

    def forward(self, X):
        self.calls += 1
        out = self.linear(X)
        if self.training and self.calls > self.n_good_calls:
            if self.failure == "raise":
                raise RuntimeError("simulated failure in the middle of an epoch")
            return out * float("nan")
        return out


@pytest.mark.parametrize("failure, error, pattern", [
    ("raise", RuntimeError, "simulated failure"),
    ("nan", FloatingPointError, "diverged"),
])
def test_failure_mid_month_rolls_back(stream, failure, error, pattern):
    X, y, months = stream
    clf = ContinualClassifier(module=FailingModule, module__n_good_calls=10 ** 6,
                              module__failure=failure, max_epochs=2, batch_size=64,
                              random_state=0)
    clf.partial_fit(X[months == 0], y[months == 0])
    clf.module_.calls = 0
    clf.module_.n_good_calls = 2
    before = fingerprint(clf)
    with pytest.raises(error, match=pattern) as info:
        clf.partial_fit(X[months == 1], y[months == 1])
    assert "rolled back" in "".join(getattr(info.value, "__notes__", []))
    assert fingerprint(clf) == before
    clf.module_.n_good_calls = 10 ** 6
    clf.partial_fit(X[months == 1], y[months == 1])
    assert clf.n_months_seen_ == 2


class InterruptAfter(Callback):
    """Raise KeyboardInterrupt after ``n_batches`` training batches."""

    def __init__(self, n_batches=3):
        self.n_batches = n_batches

    def initialize(self):
        self.seen_ = 0
        return self

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.seen_ += 1
            if self.seen_ > self.n_batches:
                raise KeyboardInterrupt


def test_keyboard_interrupt_rolls_back(stream, make_clf):
    X, y, months = stream
    clf = make_clf(callbacks=[("interrupt", InterruptAfter(10 ** 6))])
    clf.partial_fit(X[months == 0], y[months == 0])
    clf.set_params(callbacks__interrupt__n_batches=1)
    clf.callbacks_[-1][1].seen_ = 0
    before = fingerprint(clf)
    with pytest.raises(KeyboardInterrupt):
        clf.partial_fit(X[months == 1], y[months == 1])
    assert fingerprint(clf) == before


def test_resume_after_joblib_is_bit_identical(stream, make_clf):
    X, y, months = stream
    slices = list(month_slices(months))
    uninterrupted = make_clf(module__dropout=0.1)
    resumed = make_clf(module__dropout=0.1)
    for k, (_, rows) in enumerate(slices):
        uninterrupted.partial_fit(X[rows], y[rows], classes=[0, 1])
        if k < 3:
            resumed.partial_fit(X[rows], y[rows], classes=[0, 1])
        else:
            if k == 3:
                buffer = io.BytesIO()
                joblib.dump(resumed, buffer)
                buffer.seek(0)
                resumed = joblib.load(buffer)
            resumed.partial_fit(X[rows], y[rows])
    assert state_equal(uninterrupted.module_, resumed.module_)
    assert fingerprint(uninterrupted.optimizer_) == fingerprint(resumed.optimizer_)


def test_save_weights_round_trip_and_safety(stream, make_clf, tmp_path):
    X, y, months = stream
    labels = np.where(y == 1, "malicious", "benign")
    clf = make_clf().fit(X, labels, months=months)
    path = tmp_path / "weights.pt"
    clf.save_weights(path)
    # weights_only loading: the file holds tensors and plain values only
    payload = torch.load(path, weights_only=True)
    assert payload["classes"] == ["benign", "malicious"]
    loaded = make_clf().load_weights(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    loaded.partial_fit(X[:100], labels[:100])  # fine-tunes on from the loaded weights
    assert loaded.n_months_seen_ == 1
    joblib_path = tmp_path / "model.joblib"
    joblib.dump(clf, joblib_path)
    with pytest.raises(ValueError, match="not a file written by save_weights"):
        make_clf().load_weights(joblib_path)


def test_save_weights_rejects_foreign_files(make_clf, tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a weights file"):
        make_clf().load_weights(path)


def test_long_stream_state_stays_bounded(make_clf):
    rng = np.random.default_rng(0)
    clf = make_clf(module__hidden_units=(4,), max_epochs=1, batch_size=8)
    sizes = {}
    for month in range(100):
        X = rng.normal(size=(16, 5)).astype(np.float32)
        y = rng.integers(0, 2, size=16)
        clf.partial_fit(X, y, classes=[0, 1])
        if month in (19, 99):
            sizes[month] = len(pickle.dumps(clf))
    assert clf.snapshots_ == []
    assert sum(len(epoch["batches"]) for epoch in clf.history_) == 2  # latest month only
    assert len(clf.history_) == 100
    # 80 more months add only their epoch rows (well under 1 kB each)
    assert sizes[99] - sizes[19] < 80 * 1000


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(
    st.tuples(st.sampled_from(["good", "nan", "features", "label", "empty"]),
              st.integers(1, 25),
              st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True)),
    min_size=1, max_size=6,
))
def test_random_month_sequences_never_corrupt_state(make_clf, months):
    rng = np.random.default_rng(0)
    clf = make_clf(module__hidden_units=(4,), max_epochs=1, batch_size=8)
    n_good = 0
    for kind, n_rows, labels in months:
        X = rng.normal(size=(n_rows, 6)).astype(np.float32)
        y = rng.choice(labels, size=n_rows)
        if kind == "nan":
            X[0, 0] = np.nan
        elif kind == "features":
            X = X[:, :5] if n_good else X[:, :0]
        elif kind == "label":
            y[0] = 9
        elif kind == "empty":
            X, y = X[:0], y[:0]
        before = fingerprint(clf)
        try:
            clf.partial_fit(X, y, classes=[0, 1, 2])
        except ValueError:
            assert kind != "good"
            assert fingerprint(clf) == before
        else:
            assert kind == "good" or (kind == "features" and n_good == 0 and X.shape[1])
            n_good += 1
            assert clf.n_months_seen_ == n_good
            assert set(clf.predict(X)) <= {0, 1, 2}

"""The production month loop (issue 13): each principle, and each reproduction B1-B12."""

import concurrent.futures
import os

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from _helpers import fingerprint, state_equal
from sklearn.base import clone
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    GradientNormClipping,
    LoadInitState,
    LRScheduler,
    ProgressBar,
)
from skorch.dataset import ValidSplit

from skcl import (
    EWC,
    L2,
    MLP,
    ContinualClassifier,
    ForgettingScorer,
    MonthlyAveragingClassifier,
    RehearsalBuffer,
    TemporalSplit,
)


def months_of(months, *wanted):
    return [months == month for month in wanted]


# ----------------------------------------------------------------------
# 1. atomic calls, files included
# ----------------------------------------------------------------------
def test_failed_load_weights_leaves_a_trained_model_untouched(stream, make_clf, tmp_path):
    """B2: a file from another architecture is refused before anything changes."""
    X, y, months = stream
    path = tmp_path / "small.pt"
    make_clf(module__hidden_units=(8,)).partial_fit(X[:200], y[:200]).save_weights(path)
    receiver = make_clf(module__hidden_units=(16,)).fit(X, y, months=months)
    before, proba = fingerprint(receiver), receiver.predict_proba(X[:20])
    with pytest.raises(ValueError, match=r"does not fit .* has shape \(8, 20\)"):
        receiver.load_weights(path)
    assert fingerprint(receiver) == before
    assert receiver.n_months_seen_ == 6
    np.testing.assert_array_equal(receiver.predict_proba(X[:20]), proba)


class _RecordingMLP(MLP):
    devices = []

    def __init__(self, n_features=20, n_classes=2, **kwargs):
        super().__init__(n_features=n_features, n_classes=n_classes, **kwargs)
        type(self).devices.append(self.layers[0].weight.device.type)


def test_crafted_weights_file_is_refused_without_allocating(stream, make_clf, tmp_path):
    """B12: metadata claiming 8,000,000 features builds nothing real."""
    X, y, months = stream
    path = tmp_path / "crafted.pt"
    make_clf().partial_fit(X[:200], y[:200]).save_weights(path)
    payload = torch.load(path, weights_only=True)
    payload["n_features_in"] = 8_000_000
    torch.save(payload, path)
    assert os.path.getsize(path) < 30_000
    _RecordingMLP.devices = []
    receiver = make_clf(module=_RecordingMLP)
    with pytest.raises(ValueError, match="8000000"):
        receiver.load_weights(path)
    assert _RecordingMLP.devices == ["meta"]
    assert not receiver.__sklearn_is_fitted__()


def test_failed_save_weights_leaves_the_old_file_byte_identical(stream, make_clf,
                                                                 tmp_path, monkeypatch):
    """B3: a write failing (disk full) never damages the previous file."""
    X, y, months = stream
    clf = make_clf().partial_fit(X[:200], y[:200])
    path = tmp_path / "model.pt"
    clf.save_weights(path)
    good = path.read_bytes()
    clf.partial_fit(X[200:400], y[200:400])

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        clf.save_weights(path)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temp file left
    make_clf().load_weights(path)


def test_truncated_weights_file_is_called_damaged(stream, make_clf, tmp_path):
    X, y, months = stream
    path = tmp_path / "model.pt"
    make_clf().partial_fit(X[:200], y[:200]).save_weights(path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match="damaged or truncated"):
        make_clf().load_weights(path)


def test_averaging_fit_rolls_back(stream):
    """B8: a failing fit after a good one keeps the good models."""
    X, y, months = stream
    clf = MonthlyAveragingClassifier(
        ContinualClassifier(max_epochs=1, module__hidden_units=(8,)), random_state=0)
    clf.fit(X[:600], y[:600], months=months[:600])
    before, proba = fingerprint(clf), clf.predict_proba(X[:10])
    y_bad = y[:600].copy()
    y_bad[months[:600] == 2] = 0  # a one-class month
    with pytest.raises(ValueError, match="only one class") as info:
        clf.fit(X[:600], y_bad, months=months[:600])
    assert "rolled back" in "".join(info.value.__notes__)
    assert len(clf.estimators_) == 3 and fingerprint(clf) == before
    np.testing.assert_array_equal(clf.predict_proba(X[:10]), proba)


# ----------------------------------------------------------------------
# 2. parameters checked at every partial_fit
# ----------------------------------------------------------------------
@pytest.mark.parametrize("params, error, pattern", [
    (dict(finetune_lr=-0.05), InvalidParameterError, "'finetune_lr' parameter"),  # B5
    (dict(max_epochs=-1), InvalidParameterError, "'max_epochs' parameter"),
    (dict(batch_size=0), InvalidParameterError, "'batch_size' parameter"),
    (dict(update="rehearse"), InvalidParameterError, "'update' parameter"),
    (dict(max_epochs=0), ValueError, "train nothing"),
    (dict(rehearsal=RehearsalBuffer(capacity=10), regularizer=L2()), ValueError, None),
])
def test_parameters_are_checked_at_every_partial_fit(stream, make_clf, params, error,
                                                     pattern):
    X, y, months = stream
    clf = make_clf(rehearsal=None).partial_fit(X[:200], y[:200])
    if pattern is None:  # retrain with strategy objects, set after month 1
        clf = make_clf(update="retrain").partial_fit(X[:200], y[:200])
        pattern = "update='retrain' trains from scratch"
    before = fingerprint(clf)
    with pytest.raises(error, match=pattern):
        clf.set_params(**params).partial_fit(X[200:400], y[200:400])
    clf.set_params(**{k: clone(make_clf()).get_params()[k] for k in params})
    assert fingerprint(clf) == before


def test_memmap_dir_is_checked_before_training(stream, make_clf, tmp_path):
    X, y, months = stream
    clf = make_clf(rehearsal=RehearsalBuffer(capacity=50, memmap_dir=tmp_path / "missing"))
    calls = []
    clf.set_params(callbacks=[("count", _CountBatches(calls))])
    with pytest.raises(ValueError, match="not an existing directory"):
        clf.partial_fit(X[:200], y[:200])
    assert calls == []  # refused before the first batch


def test_a_month_that_trains_no_batch_is_refused(stream, make_clf):
    X, y, months = stream
    clf = make_clf(batch_size=64, iterator_train__drop_last=True,
                   regularizer=EWC(lam=1.0)).partial_fit(X[:200], y[:200])
    before = fingerprint(clf)
    with pytest.raises(ValueError, match="trained on no batch"):
        clf.partial_fit(X[200:230], y[200:230])
    assert fingerprint(clf) == before


# ----------------------------------------------------------------------
# 3. settings changed between months
# ----------------------------------------------------------------------
def test_strategy_settings_carry_over_between_months(stream, make_clf):
    """B4: lam, replay_ratio and capacity reach the fitted copies; None drops."""
    X, y, months = stream
    m0, m1, m2, m3 = months_of(months, 0, 1, 2, 3)
    clf = make_clf(regularizer=EWC(lam=1.0),
                   rehearsal=RehearsalBuffer(capacity=300, replay_ratio=0.5))
    clf.partial_fit(X[m0], y[m0]).partial_fit(X[m1], y[m1])
    clf.set_params(regularizer__lam=1000.0, rehearsal__replay_ratio=0.25,
                   rehearsal__capacity=100)
    clf.partial_fit(X[m2], y[m2])
    assert clf.regularizer_.lam == 1000.0
    assert clf.rehearsal_.replay_ratio == 0.25 and len(clf.rehearsal_.y_) == 100
    assert clf.regularizer_.n_consolidations_ == 3  # state kept across the change
    clf.set_params(regularizer=None, rehearsal=None).partial_fit(X[m3], y[m3])
    assert clf.regularizer_ is None and clf.rehearsal_ is None
    assert clf.n_months_seen_ == 4


def test_lower_capacity_keeps_a_per_month_share():
    rng = np.random.default_rng(0)
    buffer = RehearsalBuffer(capacity=300, policy="per_month", random_state=0)
    for month in range(3):
        buffer.partial_fit(rng.normal(size=(100, 4)), rng.integers(0, 2, 100), month=month)
    buffer.set_params(capacity=60)
    assert np.bincount(buffer.sample_months_).tolist() == [20, 20, 20]
    with pytest.raises(InvalidParameterError):
        buffer.set_params(capacity=-1)
    assert buffer.capacity == 60 and len(buffer.y_) == 60


@pytest.mark.parametrize("change, pattern", [
    (dict(regularizer=L2()), "changed from EWC to L2"),
    (dict(update="retrain"), "update='retrain' was set after 1 months"),
    (dict(keep_snapshots=True), "keep_snapshots=True was set after 1 months"),
])
def test_changes_that_cannot_carry_over_are_refused(stream, make_clf, change, pattern):
    X, y, months = stream
    clf = make_clf(regularizer=EWC(lam=1.0)).partial_fit(X[:200], y[:200])
    if "update" in change:
        clf.set_params(regularizer=None)
    clf.set_params(**change)
    before = fingerprint(clf)
    with pytest.raises(ValueError, match=pattern):
        clf.partial_fit(X[200:400], y[200:400])
    assert fingerprint(clf) == before


def test_module_params_are_refused_on_a_trained_model(stream, make_clf):
    """B6: no half-reset: the network is not rebuilt under counted months."""
    X, y, months = stream
    clf = make_clf().fit(X[:400], y[:400], months=months[:400])
    before = fingerprint(clf)
    with pytest.raises(ValueError, match=r"cannot set \['module__dropout'\].*Call fit"):
        clf.set_params(module__dropout=0.1)
    assert fingerprint(clf) == before
    clone(clf).set_params(module__dropout=0.1)  # a fresh estimator takes it


# ----------------------------------------------------------------------
# 4. skorch's callbacks
# ----------------------------------------------------------------------
def test_early_stopping_ends_the_month_normally(stream):
    """B1: EarlyStopping's KeyboardInterrupt counts and consolidates the month."""
    X, y, months = stream
    clf = ContinualClassifier(max_epochs=100, lr=0.01, random_state=0,
                              module__hidden_units=(8,), regularizer=EWC(lam=1.0),
                              train_split=ValidSplit(5),
                              callbacks=[EarlyStopping(patience=2)])
    for month in range(2):
        clf.partial_fit(X[months == month], y[months == month], classes=[0, 1])
    assert clf.n_months_seen_ == 2
    assert len(clf.history) < 200
    assert clf.regularizer_.n_consolidations_ == 2


class _CountBatches(Callback):
    def __init__(self, calls):
        self.calls = calls

    def on_batch_end(self, net, training=False, **kwargs):
        self.calls.append(training)


@pytest.mark.parametrize("train_split", [None, ValidSplit(4)])
def test_skorch_callbacks_work_across_months(stream, make_clf, tmp_path, train_split):
    X, y, months = stream
    monitor = "valid_loss_best" if train_split is not None else "train_loss_best"
    callbacks = [
        LRScheduler(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
        GradientNormClipping(gradient_clip_value=0.01),
        Checkpoint(monitor=monitor, dirname=str(tmp_path)),
        LoadInitState(Checkpoint(monitor=monitor, dirname=str(tmp_path))),
        ProgressBar(),
    ]
    clf = make_clf(train_split=train_split, callbacks=callbacks, lr=0.1)
    for month in range(3):
        clf.partial_fit(X[months == month], y[months == month], classes=[0, 1])
    assert clf.n_months_seen_ == 3 and len(clf.history) == 6
    # each month starts at its lr and StepLR halves it every epoch
    assert clf.optimizer_.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 3)
    assert (tmp_path / "params.pt").exists()


def test_reduce_lr_on_plateau_across_months(stream, make_clf):
    X, y, months = stream
    clf = make_clf(train_split=ValidSplit(4), max_epochs=4, callbacks=[
        LRScheduler(torch.optim.lr_scheduler.ReduceLROnPlateau, monitor="valid_loss",
                    patience=0, factor=0.5)])
    for month in range(3):
        clf.partial_fit(X[months == month], y[months == month], classes=[0, 1])
    assert clf.n_months_seen_ == 3


# ----------------------------------------------------------------------
# 5. parameters are never mutated
# ----------------------------------------------------------------------
def test_module_instance_is_never_trained_in_place(stream):
    """B7: fit twice equals fit once; retrain restarts from the instance."""
    X, y, months = stream
    instance = MLP(n_features=20, n_classes=2, hidden_units=(8,))
    initial = {k: v.clone() for k, v in instance.state_dict().items()}
    clf = ContinualClassifier(module=instance, max_epochs=1, random_state=0)
    once = clf.fit(X[:400], y[:400], months=months[:400]).module_
    once_state = {k: v.clone() for k, v in once.state_dict().items()}
    twice = clf.fit(X[:400], y[:400], months=months[:400]).module_
    assert all(torch.equal(once_state[k], v) for k, v in twice.state_dict().items())
    assert all(torch.equal(initial[k], v) for k, v in instance.state_dict().items())
    assert clf.module_ is not instance
    fresh = clone(clf)
    assert all(torch.equal(initial[k], v) for k, v in fresh.module.state_dict().items())


# ----------------------------------------------------------------------
# 6. month labels as pandas means them
# ----------------------------------------------------------------------
NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]


def test_ordered_categorical_months_train_and_split_in_category_order(stream, make_clf):
    """B10: category order, not alphabetical."""
    X, y, months = stream
    labels = pd.Categorical(np.array(NAMES)[months], categories=NAMES, ordered=True)
    clf = make_clf(max_epochs=1).fit(X, y, months=labels)
    assert clf.months_ == NAMES
    train, test = next(TemporalSplit(n_splits=2).split(X, months=labels))
    assert set(labels[train]) <= set(NAMES[:4])
    assert "Jun" in set(labels[test])


def test_missing_and_non_scalar_months_are_refused(stream, make_clf):
    X, y, months = stream
    with_nan = pd.Series(months.astype(float))
    with_nan[[3, 7]] = np.nan
    with pytest.raises(ValueError, match=r"2 missing labels .* rows \[3, 7\]"):
        make_clf().fit(X, y, months=with_nan)
    with pytest.raises(ValueError, match="not a single label"):
        make_clf().partial_fit(X[:200], y[:200], month=[0, 1])
    with pytest.raises(ValueError, match=r"y has 1 missing labels"):
        make_clf().partial_fit(X[:3], np.array([0, None, 1], dtype=object))


def test_timestamp_month_after_datetime_fit(stream, make_clf):
    X, y, months = stream
    dates = pd.to_datetime("2024-01-01") + pd.to_timedelta(months * 31, unit="D")
    clf = make_clf(rehearsal=RehearsalBuffer(capacity=100))
    clf.fit(X[:1000], y[:1000], months=dates.values[:1000])
    clf.partial_fit(X[1000:], y[1000:], month=pd.Timestamp("2024-06-01"))
    assert clf.months_[-1] == np.datetime64("2024-06-01")


# ----------------------------------------------------------------------
# 7. numbers beyond float32
# ----------------------------------------------------------------------
def test_values_beyond_float32_are_refused_with_the_column(stream, make_clf):
    """B9: not NaN probabilities and class 0."""
    X, y, months = stream
    clf = make_clf().partial_fit(X[:200], y[:200])
    X_big = X[:5].astype(np.float64)
    X_big[2, 7] = 1e39
    for method in (clf.predict_proba, clf.predict):
        with pytest.raises(ValueError, match=r"beyond float32's range .* columns \[7\]"):
            method(X_big)
    with pytest.raises(ValueError, match=r"columns \[7\]"):
        clf.partial_fit(X_big, y[:5])


# ----------------------------------------------------------------------
# 9. reproducible under threads
# ----------------------------------------------------------------------
def _fit_in_thread(params, X, y, months):
    return ContinualClassifier(**params).fit(X, y, months=months)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_threaded_fits_equal_serial_fits(stream, dropout):
    X, y, months = stream
    rows = months < 3
    params = [dict(module__hidden_units=(16,), module__dropout=dropout, max_epochs=2,
                   batch_size=32, random_state=seed) for seed in range(4)]
    serial = [_fit_in_thread(p, X[rows], y[rows], months[rows]) for p in params]
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(_fit_in_thread, params, *zip(*[(X[rows], y[rows],
                                                                 months[rows])] * 4)))
    assert all(state_equal(a.module_, b.module_) for a, b in zip(serial, threaded))
    assert torch.equal(torch.get_rng_state(), global_state)


def test_grid_search_threading_backend_equals_serial(stream, make_clf):
    X, y, months = stream
    rows = months < 3
    sklearn.set_config(enable_metadata_routing=True)
    try:
        def search(n_jobs):
            grid = GridSearchCV(make_clf(max_epochs=1, regularizer=L2()),
                                {"regularizer__lam": [0.0, 1.0, 10.0]}, cv=2,
                                n_jobs=n_jobs)
            with joblib.parallel_config(backend="threading"):
                return grid.fit(X[rows], y[rows], months=months[rows])

        np.testing.assert_array_equal(search(1).cv_results_["mean_test_score"],
                                      search(2).cv_results_["mean_test_score"])
    finally:
        sklearn.set_config(enable_metadata_routing=False)


def test_binary_metric_without_a_valid_pos_label_is_named(stream, make_clf):
    """A missing pos_label must not pass for a metric undefined on one-class months."""
    X, y, months = stream
    labels = np.where(y == 1, "malware", "benign")
    clf = make_clf(max_epochs=1).fit(X, labels, months=months)
    with pytest.raises(ValueError, match=r"pos_label=1, .*make_scorer\(f1_score, "
                                         r"pos_label='malware'\)"):
        ForgettingScorer("f1")(clf, X, labels, months=months)
    scorer = ForgettingScorer(make_scorer(f1_score, pos_label="malware"))
    assert 0 <= scorer(clf, X, labels, months=months) <= 1


def test_callbacks_set_between_months_apply_at_the_next_month(stream, make_clf):
    """set_params(callbacks=...) on a trained model replaces callbacks_; state stays."""
    X, y, months = stream
    m0, m1, m2 = months_of(months, 0, 1, 2)
    first, second = [], []
    clf = make_clf(regularizer=EWC(lam=1.0), callbacks=[("count", _CountBatches(first))])
    clf.partial_fit(X[m0], y[m0], classes=[0, 1])
    n_first, anchor = len(first), clf.regularizer_.penalty_center_.clone()
    optimizer = clf.optimizer_
    clf.set_params(callbacks=[("count", _CountBatches(second))])
    assert dict(clf.callbacks_)["count"].calls is second
    clf.partial_fit(X[m1], y[m1])
    assert len(first) == n_first and len(second) > 0  # the new callback ran, the old did not
    # the module, optimizer (with its state) and strategy state were kept
    assert clf.optimizer_ is optimizer and clf.optimizer_.state
    assert not torch.equal(clf.regularizer_.penalty_center_, anchor)
    assert clf.n_months_seen_ == 2 and clf.regularizer_.n_consolidations_ == 2
    # dropping them drops the callback; skorch's own defaults stay
    clf.set_params(callbacks=None).partial_fit(X[m2], y[m2])
    assert "count" not in dict(clf.callbacks_) and "print_log" in dict(clf.callbacks_)
    assert clf.n_months_seen_ == 3
    # a callback that cannot initialize leaves the old list and callbacks_
    callbacks_ = clf.callbacks_
    with pytest.raises(ValueError, match="bad callback"):
        clf.set_params(callbacks=[("bad", _FailsToInitialize())])
    assert clf.callbacks is None and clf.callbacks_ is callbacks_


class _FailsToInitialize(Callback):
    def initialize(self):
        raise ValueError("bad callback")

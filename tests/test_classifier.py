"""ContinualClassifier: month-by-month training, baselines, sklearn contract."""

import io

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from _helpers import month_slices, state_equal
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import train_test_split

from skcl import ContinualClassifier
from skcl.datasets import make_drifting_stream
from skcl.modules import MLP


class ConstantPenalty(BaseEstimator):
    """A regularizer whose penalty is a constant: visible in the loss, no gradient."""

    def __init__(self, lam=1.0):
        self.lam = lam

    def penalty(self, module):
        return torch.tensor(float(self.lam))

    def consolidate(self, net, X, y):
        self.n_consolidations_ = getattr(self, "n_consolidations_", 0) + 1
        return self


def test_partial_fit_continues_weights_and_optimizer_state(stream, make_clf):
    X, y, months = stream
    clf = make_clf()
    clf.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    optimizer_id = id(clf.optimizer_)
    steps_after_first = clf.optimizer_.state[next(clf.module_.parameters())]["step"].item()
    clf.partial_fit(X[months == 1], y[months == 1])
    assert id(clf.optimizer_) == optimizer_id
    steps_after_second = clf.optimizer_.state[next(clf.module_.parameters())]["step"].item()
    assert steps_after_second == 2 * steps_after_first
    assert clf.n_months_seen_ == 2
    assert clf.months_ == [0, 1]
    assert len(clf.history) == 2 * clf.max_epochs


def test_finetune_lr_applies_after_first_month(stream, make_clf):
    X, y, months = stream
    clf = make_clf(lr=1e-2, finetune_lr=1e-4)
    clf.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    assert clf.optimizer_.param_groups[0]["lr"] == 1e-2
    clf.partial_fit(X[months == 1], y[months == 1])
    assert clf.optimizer_.param_groups[0]["lr"] == 1e-4


def test_finetune_lr_none_keeps_lr(stream, make_clf):
    X, y, months = stream
    clf = make_clf(lr=3e-3)
    for _, rows in month_slices(months[:400]):
        clf.partial_fit(X[:400][rows], y[:400][rows], classes=[0, 1])
    assert clf.optimizer_.param_groups[0]["lr"] == 3e-3


def test_fit_equals_partial_fit_sequence(stream, make_clf):
    X, y, months = stream
    by_fit = make_clf().fit(X, y, months=months)
    by_partial = make_clf()
    for month, rows in month_slices(months):
        by_partial.partial_fit(X[rows], y[rows], classes=[0, 1], month=month)
    assert state_equal(by_fit.module_, by_partial.module_)
    assert by_fit.months_ == by_partial.months_


def test_fit_sorts_months_and_resets(stream, make_clf):
    X, y, months = stream
    shuffled = np.random.default_rng(0).permutation(len(y))
    labels = np.array([f"2024-{m + 1:02d}" for m in months])
    clf = make_clf().fit(X[shuffled], y[shuffled], months=labels[shuffled])
    assert clf.months_ == sorted(set(labels))
    clf.fit(X[:200], y[:200])
    assert clf.n_months_seen_ == 1


def test_random_state_makes_runs_bit_identical(stream, make_clf):
    X, y, months = stream
    before = torch.get_rng_state()
    a = make_clf(module__dropout=0.2).fit(X, y, months=months)
    b = make_clf(module__dropout=0.2).fit(X, y, months=months)
    assert state_equal(a.module_, b.module_)
    assert torch.equal(torch.get_rng_state(), before), "global torch RNG was touched"
    c = make_clf(module__dropout=0.2, random_state=1).fit(X, y, months=months)
    assert not state_equal(a.module_, c.module_)


def test_joblib_round_trip_predicts_and_continues_identically(stream, make_clf):
    X, y, months = stream
    clf = make_clf()
    for _, rows in list(month_slices(months))[:3]:
        clf.partial_fit(X[rows], y[rows], classes=[0, 1])
    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    np.testing.assert_array_equal(clf.predict_proba(X), loaded.predict_proba(X))
    for _, rows in list(month_slices(months))[3:]:
        clf.partial_fit(X[rows], y[rows])
        loaded.partial_fit(X[rows], y[rows])
    assert state_equal(clf.module_, loaded.module_)


def test_clone_and_params_round_trip(make_clf):
    clf = make_clf(regularizer=ConstantPenalty(lam=2.0), finetune_lr=1e-4)
    params = clf.get_params(deep=True)
    assert params["regularizer__lam"] == 2.0
    assert params["module__hidden_units"] == (16,)
    assert not any(key.startswith("_") for key in params)
    cloned = clone(clf)
    assert cloned.get_params(deep=False).keys() == clf.get_params(deep=False).keys()
    assert cloned.regularizer is not clf.regularizer
    cloned.set_params(regularizer__lam=5.0, finetune_lr=1e-5)
    assert cloned.regularizer.lam == 5.0
    assert clf.regularizer.lam == 2.0
    assert cloned.finetune_lr == 1e-5


def test_set_params_nested_without_object_raises(make_clf):
    with pytest.raises(ValueError, match="regularizer is None"):
        make_clf().set_params(regularizer__lam=1.0)


def test_penalty_enters_training_loss_only(stream, make_clf):
    from skorch.dataset import ValidSplit

    X, y, months = stream
    rows = months == 0
    plain = make_clf(train_split=ValidSplit(4)).partial_fit(X[rows], y[rows])
    penalized = make_clf(train_split=ValidSplit(4), regularizer=ConstantPenalty(100.0))
    penalized.partial_fit(X[rows], y[rows])
    # constant penalty: same gradients, so the same weights and valid loss
    assert state_equal(plain.module_, penalized.module_)
    np.testing.assert_allclose(
        penalized.history[:, "train_loss"], np.add(plain.history[:, "train_loss"], 100.0),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        penalized.history[:, "valid_loss"], plain.history[:, "valid_loss"], rtol=1e-6
    )
    assert penalized.regularizer_.n_consolidations_ == 1
    assert not hasattr(penalized.regularizer, "n_consolidations_")


def test_labels_outside_classes_raise(stream, make_clf):
    X, y, months = stream
    clf = make_clf().partial_fit(X[:100], y[:100], classes=[0, 1])
    with pytest.raises(ValueError, match=r"labels \[2\] not in classes_"):
        clf.partial_fit(X[100:200], np.full(100, 2))
    with pytest.raises(ValueError, match="differs from classes_"):
        clf.partial_fit(X[100:200], y[100:200], classes=[0, 1, 2])


def test_first_month_with_one_class_needs_classes(stream, make_clf):
    X, y, _ = stream
    benign = y == 0
    with pytest.raises(ValueError, match="only one class"):
        make_clf().partial_fit(X[benign][:50], y[benign][:50])
    clf = make_clf().partial_fit(X[benign][:50], y[benign][:50], classes=[0, 1])
    assert list(clf.classes_) == [0, 1]
    assert clf.predict_proba(X[:5]).shape == (5, 2)


def test_one_class_later_month_trains(stream, make_clf):
    X, y, _ = stream
    clf = make_clf().partial_fit(X[:200], y[:200], classes=[0, 1])
    before = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    malicious = y == 1
    clf.partial_fit(X[malicious][:40], y[malicious][:40])
    assert list(clf.classes_) == [0, 1]
    assert any(not torch.equal(before[k], v) for k, v in clf.module_.state_dict().items())


def test_string_labels_and_dataframes(stream, make_clf):
    X, y, months = stream
    labels = np.where(y == 1, "malicious", "benign")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf = make_clf().fit(frame, labels, months=months)
    assert set(clf.predict(frame)) <= {"benign", "malicious"}
    assert list(clf.feature_names_in_) == list(frame.columns)
    assert 0.5 < clf.score(frame, labels) <= 1.0
    proba = clf.predict_proba(frame.iloc[:3])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_float64_input_and_custom_module_instance(stream):
    X, y, _ = stream
    module = torch.nn.Sequential(torch.nn.Linear(20, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    clf = ContinualClassifier(module=module, max_epochs=1, random_state=0)
    clf.partial_fit(X[:200].astype(np.float64), y[:200])
    assert clf.predict(X[:10].astype(np.float64)).shape == (10,)


def test_module_class_gets_feature_and_class_counts(stream):
    class Logistic(torch.nn.Module):
        def __init__(self, n_features, n_classes):
            super().__init__()
            self.linear = torch.nn.Linear(n_features, n_classes)

        def forward(self, X):
            return self.linear(X)

    X, y, _ = stream
    clf = ContinualClassifier(module=Logistic, max_epochs=1, random_state=0)
    clf.partial_fit(X[:200], y[:200])
    assert clf.module_.linear.in_features == 20
    assert clf.module_.linear.out_features == 2


def test_retrain_reinitializes_and_trains_on_everything(stream, make_clf):
    X, y, months = stream
    clf = make_clf(update="retrain", max_epochs=1)
    seen = []
    for _month, rows in month_slices(months[:600]):
        clf.partial_fit(X[:600][rows], y[:600][rows], classes=[0, 1])
        seen.append(rows.sum())
        # one epoch over everything so far: batches = ceil(rows seen / batch size)
        assert clf.history[-1, "train_batch_count"] == int(np.ceil(sum(seen) / 64))
    assert clf.optimizer_.param_groups[0]["lr"] == clf.lr
    assert len(clf.past_data_) == 600 and clf.past_data_.n_chunks == len(seen)
    assert len(clf.history) == 3


def test_retrain_with_strategy_objects_is_rejected(make_clf, stream):
    X, y, _ = stream
    with pytest.raises(ValueError, match="update='retrain'"):
        make_clf(update="retrain", regularizer=ConstantPenalty()).partial_fit(X, y)


def test_cuda_request_without_cuda_raises(stream, make_clf):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    X, y, _ = stream
    with pytest.raises(ValueError, match="CUDA is not available"):
        make_clf(device="cuda").partial_fit(X, y)


def test_keep_snapshots_and_snapshot_estimator(stream, make_clf):
    X, y, months = stream
    clf = make_clf(keep_snapshots=True).fit(X, y, months=months)
    assert len(clf.snapshots_) == 6
    assert all(v.device.type == "cpu" for v in clf.snapshots_[0].values())
    first = clf.get_snapshot_estimator(0)
    last = clf.get_snapshot_estimator(-1)
    np.testing.assert_array_equal(last.predict_proba(X), clf.predict_proba(X))
    assert not np.array_equal(first.predict_proba(X), clf.predict_proba(X))
    assert len(clf.snapshots_) == 6
    with pytest.raises(ValueError, match="keep_snapshots=True"):
        make_clf().fit(X, y, months=months).get_snapshot_estimator(0)


def test_naive_finetuning_forgets_what_retraining_keeps():
    """The problem skcl exists for: the generator must produce real forgetting."""
    X, y, months = make_drifting_stream(n_months=12, n_samples_per_month=400, random_state=0)
    train, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=months,
                                   random_state=0)
    first_month_test = test[months[test] == 0]
    scores = {}
    for strategy in ("finetune", "retrain"):
        clf = ContinualClassifier(update=strategy, max_epochs=5, random_state=0)
        clf.fit(X[train], y[train], months=months[train])
        scores[strategy] = clf.score(X[first_month_test], y[first_month_test])
    assert scores["retrain"] > 0.8
    assert scores["finetune"] < scores["retrain"] - 0.2


def test_finish_epochs_run_at_the_low_rate(stream, make_clf):
    from skorch.callbacks import Callback

    class RecordLR(Callback):
        def initialize(self):
            self.rates_ = []
            return self

        def on_epoch_begin(self, net, **kwargs):
            self.rates_.append(net.optimizer_.param_groups[0]["lr"])

    X, y, months = stream
    clf = make_clf(lr=1e-2, finetune_lr=1e-3, max_epochs=2, finish_epochs=1,
                   callbacks=[("lr", RecordLR())])
    clf.partial_fit(X[months == 0], y[months == 0])
    clf.partial_fit(X[months == 1], y[months == 1])
    rates = dict(clf.callbacks_)["lr"].rates_
    np.testing.assert_allclose(rates, [1e-2, 1e-2, 1e-3, 1e-3, 1e-3, 1e-4])
    assert len(clf.history) == 6
    assert clf.optimizer_.param_groups[0]["lr"] == 1e-3
    explicit = make_clf(max_epochs=1, finish_epochs=2, finish_lr=5e-4,
                        callbacks=[("lr", RecordLR())])
    explicit.partial_fit(X[months == 0], y[months == 0])
    np.testing.assert_allclose(dict(explicit.callbacks_)["lr"].rates_, [1e-2, 5e-4, 5e-4])


def test_samples_processed_counts_every_epoch_row(stream, make_clf):
    X, y, months = stream
    clf = make_clf(max_epochs=2, finish_epochs=1)
    clf.partial_fit(X[months == 0], y[months == 0])
    clf.partial_fit(X[months == 1], y[months == 1])
    assert clf.n_samples_processed_ == 3 * 200 + 3 * 200
    retrain = make_clf(update="retrain", max_epochs=2)
    for month in range(3):
        retrain.partial_fit(X[months == month], y[months == month])
    assert retrain.n_samples_processed_ == 2 * (200 + 400 + 600)


def test_module_options_beside_a_module_instance_are_refused():
    # skorch would build a new module from the instance's class with only the
    # module__ options (no n_features, no hidden_units): refused up front instead
    X = np.random.default_rng(0).normal(size=(40, 18)).astype(np.float32)
    y = np.arange(40) % 2
    clf = ContinualClassifier(module=MLP(n_features=18, n_classes=2, hidden_units=(8,)),
                              module__dropout=0.2, max_epochs=1)
    with pytest.raises(ValueError, match=r"module__ options \['dropout'\] cannot apply"):
        clf.partial_fit(X, y, classes=[0, 1])
    assert not hasattr(clf, "classes_")
    # the same options on the class train
    clf.set_params(module=MLP, module__hidden_units=(8,)).partial_fit(X, y, classes=[0, 1])
    assert any(isinstance(layer, torch.nn.Dropout) and layer.p == 0.2
               for layer in clf.module_.layers)

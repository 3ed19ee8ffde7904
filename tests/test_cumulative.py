"""update="cumulative": warm-started training on the kept history (skcl/_cumulative.py)."""

import joblib
import numpy as np
import pytest
import torch
from _helpers import fingerprint, month_slices, state_equal
from sklearn.base import clone
from sklearn.model_selection import train_test_split
from skorch.callbacks import Callback

from skcl import ContinualClassifier, RehearsalBuffer
from skcl.datasets import make_drifting_stream


class RecordStart(Callback):
    """The module's weights at each month's start and the month column of every batch."""

    def initialize(self):
        self.starts_ = []
        self.batch_months_ = []
        return self

    def on_train_begin(self, net, **kwargs):
        self.starts_.append({k: v.clone() for k, v in net.module_.state_dict().items()})
        self.batch_months_.append([])

    def on_epoch_begin(self, net, **kwargs):
        self.batch_months_[-1].append([])

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        if training:
            self.batch_months_[-1][-1].append(batch[0][:, -1].round().long().tolist())


def _marked_stream():
    """Four months of 100 rows whose last column is the month's index."""
    X, y, months = make_drifting_stream(n_months=4, n_samples_per_month=100,
                                        n_features=6, n_families=2, random_state=0)
    X = np.column_stack([X, months]).astype(np.float32)
    return X, y, months


def test_cumulative_warm_starts_from_last_months_weights(make_clf):
    X, y, months = _marked_stream()
    clf = make_clf(update="cumulative", callbacks=[("rec", RecordStart())])
    ends = []
    for _month, rows in month_slices(months):
        clf.partial_fit(X[rows], y[rows], classes=[0, 1])
        ends.append({k: v.clone() for k, v in clf.module_.state_dict().items()})
    starts = dict(clf.callbacks_)["rec"].starts_
    for start, end in zip(starts[1:], ends[:-1]):
        assert all(torch.equal(start[k], end[k]) for k in start)
    # retraining, for contrast, starts every month from fresh weights
    retrain = make_clf(update="retrain", callbacks=[("rec", RecordStart())])
    retrain.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    end = {k: v.clone() for k, v in retrain.module_.state_dict().items()}
    retrain.partial_fit(X[months == 1], y[months == 1])
    start = dict(retrain.callbacks_)["rec"].starts_[-1]   # callbacks re-initialized too
    assert not all(torch.equal(start[k], end[k]) for k in start)
    # the optimizer state carries over too, at finetune_lr after the first month
    assert clf.optimizer_.state and len(clf.past_data_) == 400


def test_cumulative_trains_on_rows_of_every_past_month(make_clf):
    X, y, months = _marked_stream()
    clf = make_clf(update="cumulative", max_epochs=2, callbacks=[("rec", RecordStart())])
    clf.fit(X, y, months=months)
    last_month = dict(clf.callbacks_)["rec"].batch_months_[-1]
    for epoch in last_month:
        seen = np.concatenate(epoch)
        assert len(seen) == 400
        np.testing.assert_array_equal(np.bincount(seen.astype(int)), [100] * 4)


@pytest.mark.parametrize("fraction", [0.25, 0.5])
def test_history_fraction_bounds_the_rows_per_epoch(make_clf, fraction):
    X, y, months = _marked_stream()
    clf = make_clf(update="cumulative", history_fraction=fraction, max_epochs=3,
                   callbacks=[("rec", RecordStart())])
    processed = []
    for _month, rows in month_slices(months):
        clf.partial_fit(X[rows], y[rows], classes=[0, 1])
        processed.append(clf.n_samples_processed_)
    expected = [3 * (100 + round(fraction * 100 * t)) for t in range(4)]
    np.testing.assert_array_equal(np.diff([0, *processed]), expected)
    epochs = dict(clf.callbacks_)["rec"].batch_months_[-1]
    draws = []
    for epoch in epochs:
        seen = np.concatenate(epoch).astype(int)
        counts = np.bincount(seen, minlength=4)
        assert counts[3] == 100                          # the month in full
        assert counts[:3].sum() == round(fraction * 300)  # a share of the past
        draws.append(tuple(np.sort(seen)))
    assert len(set(draws)) > 1                           # drawn afresh per epoch
    # reproducible with random_state
    again = clone(clf).fit(X, y, months=months)
    assert state_equal(again.module_, clf.module_)


def test_cumulative_forgets_less_than_naive_fine_tuning():
    X, y, months = make_drifting_stream(n_months=8, n_samples_per_month=300, random_state=0)
    train, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=months,
                                   random_state=0)
    early = test[months[test] <= 1]
    scores = {}
    for update in ("finetune", "cumulative"):
        clf = ContinualClassifier(update=update, max_epochs=3, random_state=0,
                                  module__hidden_units=(32,))
        clf.fit(X[train], y[train], months=months[train])
        scores[update] = clf.score(X[early], y[early])
    assert scores["cumulative"] > scores["finetune"] + 0.1, scores


def test_cumulative_refuses_what_it_cannot_honour(make_clf):
    X, y, months = _marked_stream()
    with pytest.raises(ValueError, match="rehearsal=None"):
        make_clf(update="cumulative", rehearsal=RehearsalBuffer()).partial_fit(X, y)
    with pytest.raises(ValueError, match="history_fraction=0.5 samples the kept"):
        make_clf(history_fraction=0.5).partial_fit(X, y)
    with pytest.raises(ValueError, match="history_fraction"):
        make_clf(update="cumulative", history_fraction=0.0).partial_fit(X, y)
    clf = make_clf().partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    clf.set_params(update="cumulative")
    with pytest.raises(ValueError, match="call fit to start the stream over"):
        clf.partial_fit(X[months == 1], y[months == 1])
    assert clf.n_months_seen_ == 1


def test_switching_between_retrain_and_cumulative_keeps_the_history(make_clf):
    X, y, months = _marked_stream()
    clf = make_clf(update="retrain", callbacks=[("rec", RecordStart())])
    clf.partial_fit(X[months == 0], y[months == 0], classes=[0, 1])
    clf.set_params(update="cumulative")
    before = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    clf.partial_fit(X[months == 1], y[months == 1])
    assert len(clf.past_data_) == 200
    start = dict(clf.callbacks_)["rec"].starts_[-1]
    assert all(torch.equal(start[k], before[k]) for k in start)


def test_cumulative_month_is_atomic(make_clf):
    class FailOnSecondEpoch(Callback):
        def initialize(self):
            self.calls_ = 0
            return self

        def on_epoch_end(self, net, **kwargs):
            self.calls_ += 1
            if net.n_months_seen_ == 2 and self.calls_ > 4:
                raise RuntimeError("boom")

    X, y, months = _marked_stream()
    clf = make_clf(update="cumulative", history_fraction=0.5, weight_averaging="ema",
                   lr_schedule="cosine", callbacks=[("fail", FailOnSecondEpoch())])
    for month in (0, 1):
        clf.partial_fit(X[months == month], y[months == month], classes=[0, 1])
    before = fingerprint({k: v for k, v in vars(clf).items() if k != "callbacks_"})
    with pytest.raises(RuntimeError, match="boom"):
        clf.partial_fit(X[months == 2], y[months == 2])
    after = fingerprint({k: v for k, v in vars(clf).items() if k != "callbacks_"})
    assert before == after
    assert len(clf.past_data_) == 200 and clf.n_months_seen_ == 2


def test_cumulative_clones_and_round_trips_through_joblib(make_clf, tmp_path):
    X, y, months = _marked_stream()
    clf = make_clf(update="cumulative", history_fraction=0.5, memmap_dir=str(tmp_path))
    assert clone(clf).get_params()["history_fraction"] == 0.5
    clf.fit(X[months < 3], y[months < 3], months=months[months < 3])
    path = tmp_path / "model.joblib"
    joblib.dump(clf, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    clf.partial_fit(X[months == 3], y[months == 3])
    loaded.partial_fit(X[months == 3], y[months == 3])
    assert state_equal(loaded.module_, clf.module_)


def test_cumulative_sampled_history_on_sparse_rows(make_clf):
    import scipy.sparse as sp

    X, y, months = _marked_stream()
    X_sparse = sp.csr_matrix(np.where(np.abs(X) > 1, X, 0))
    clf = make_clf(update="cumulative", history_fraction=0.5, weight_averaging="ema",
                   lr_schedule="cosine")
    clf.fit(X_sparse, y, months=months)
    assert clf.past_data_.sparse_ and len(clf.past_data_) == 400
    assert clf.n_samples_processed_ == 2 * sum(100 + round(0.5 * 100 * t) for t in range(4))
    assert clf.predict_proba(X_sparse).shape == (400, 2)


@pytest.mark.parametrize("finish_fraction, past_rows", [(0.0, 0), (0.5, 150), (None, 75)])
def test_finishing_epochs_sample_their_own_share_of_the_history(make_clf, finish_fraction,
                                                                 past_rows):
    X, y, months = _marked_stream()
    clf = make_clf(update="cumulative", history_fraction=0.25, max_epochs=1,
                   finish_epochs=2, finish_history_fraction=finish_fraction,
                   callbacks=[("rec", RecordStart())])
    clf.fit(X, y, months=months)
    main, *finishing = dict(clf.callbacks_)["rec"].batch_months_[-1]
    counts = np.bincount(np.concatenate(main).astype(int), minlength=4)
    assert counts[3] == 100 and counts[:3].sum() == 75
    for epoch in finishing:
        counts = np.bincount(np.concatenate(epoch).astype(int), minlength=4)
        assert counts[3] == 100 and counts[:3].sum() == past_rows


def test_finish_history_fraction_needs_a_history(make_clf):
    X, y, _ = _marked_stream()
    with pytest.raises(ValueError, match="finish_history_fraction=0.0 samples"):
        make_clf(finish_history_fraction=0.0, finish_epochs=1).partial_fit(X, y)

"""skcl._month: the month object and the one placement rule (copies counted)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from skorch.callbacks import Callback

from skcl import ContinualClassifier
from skcl._batching import RowsDataset
from skcl._month import Month, device_tensor, place_rows


class RecordTrainingRows(Callback):
    """Keep what skorch's loop receives at ``on_train_begin``."""

    def __init__(self):
        self.seen = []

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.seen.append((X, y))


def _rows(n_rows=120, n_features=6, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features)).astype(dtype)
    return X, (X[:, 0] > 0).astype(np.int64)


def test_a_float32_month_on_the_cpu_trains_in_place_without_a_copy():
    X, y = _rows()
    X.flags.writeable = False  # as pandas hands out; training only reads
    before = X.copy()
    recorder = RecordTrainingRows()
    clf = ContinualClassifier(module__hidden_units=(8,), max_epochs=2, random_state=0,
                              callbacks=[("rows", recorder)])
    clf.partial_fit(X, y, classes=[0, 1])
    X_train, y_train = recorder.seen[0]
    assert isinstance(X_train, torch.Tensor)
    assert np.shares_memory(X_train.numpy(), X)   # zero copies of the rows
    assert y_train.dtype == torch.long
    np.testing.assert_array_equal(X, before)
    assert "_month" not in clf.__dict__          # lives only during the call


def test_a_float64_month_is_converted_once():
    X, y = _rows(dtype=np.float64)
    recorder = RecordTrainingRows()
    ContinualClassifier(module__hidden_units=(8,), max_epochs=1, random_state=0,
                        callbacks=[("rows", recorder)]).partial_fit(X, y, classes=[0, 1])
    X_train, _ = recorder.seen[0]
    assert X_train.dtype == torch.float32 and not np.shares_memory(X_train.numpy(), X)


def test_the_month_object_holds_the_host_rows_and_its_strategies_view():
    X, y = _rows()
    month = Month("2024-01", 7, X, y, "cpu")
    assert month.label == "2024-01" and month.seed == 7 and month.n_batches == 0
    assert month.X is X and month.X_strategies is month.X_train
    assert torch.equal(torch.randperm(5, generator=month.generator),
                       torch.randperm(5, generator=Month("x", 7, X, y, "cpu").generator))
    sparse = Month(0, 0, sp.csr_matrix(X), y, "cpu")
    assert isinstance(sparse.X_train, RowsDataset) and sparse.y_train is None
    assert sparse.X_strategies.layout == torch.sparse_csr


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_place_rows_is_one_rule_for_training_mix_and_prediction(kind):
    X, y = _rows()
    X = sp.csr_matrix(X) if kind == "sparse" else X
    placed_X, placed_y = place_rows(X, y, "cpu")
    if kind == "sparse":
        assert isinstance(placed_X, RowsDataset) and placed_y is None
    else:
        assert np.shares_memory(placed_X.numpy(), X) and placed_y.dtype == torch.long
    assert device_tensor(np.arange(3), "cpu", dtype=torch.long).dtype == torch.long


def test_predict_proba_on_a_float32_matrix_matches_a_copy():
    X, y = _rows()
    clf = ContinualClassifier(module__hidden_units=(8,), max_epochs=1, random_state=0)
    clf.partial_fit(X, y, classes=[0, 1])
    np.testing.assert_allclose(clf.predict_proba(X), clf.predict_proba(X.astype(np.float64)),
                               rtol=1e-6)


def test_a_train_split_month_mixes_its_own_host_rows(monkeypatch):
    """With a validation split, the mix reads the training part's host rows."""
    from skorch.dataset import ValidSplit

    from skcl import RehearsalBuffer
    from skcl import _month as month_module

    def no_read_back(dataset):
        raise AssertionError("the month was read back from the device")

    monkeypatch.setattr(month_module, "dataset_tensors", no_read_back)
    X, y = _rows(200)
    mixes = []
    original = RehearsalBuffer.fit_resample

    def recording(self, X_new, y_new):
        mixes.append(len(y_new))
        return original(self, X_new, y_new)

    monkeypatch.setattr(RehearsalBuffer, "fit_resample", recording)
    clf = ContinualClassifier(module__hidden_units=(8,), max_epochs=2, random_state=0,
                              train_split=ValidSplit(4),
                              rehearsal=RehearsalBuffer(capacity=50, random_state=0))
    clf.partial_fit(X[:100], y[:100], classes=[0, 1])
    clf.partial_fit(X[100:], y[100:])
    assert mixes == [75, 75]  # the training part of month 2, once per epoch

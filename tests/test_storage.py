"""RowStore: chunks appended once, gathered in any order, shared by copies, on disk."""

import copy
import mmap
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from skcl import RowStore


def _months(n_months=4, n_rows=50, n_features=6, sparse=False, seed=0):
    rng = np.random.default_rng(seed)
    for month in range(n_months):
        X = rng.normal(size=(n_rows + month, n_features)).astype(np.float32)
        if sparse:
            X[rng.random(X.shape) < 0.7] = 0.0
            X = sp.csr_matrix(X)
        yield X, rng.integers(0, 3, size=n_rows + month)


def _on_disk(array):
    while array is not None and not isinstance(array, (np.memmap, mmap.mmap)):
        array = getattr(array, "base", None)
    return array is not None


def _dense(X):
    return X.toarray() if sp.issparse(X) else X


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("on_disk", [False, True])
def test_take_returns_the_concatenated_rows_in_index_order(tmp_path, sparse, on_disk):
    store = RowStore(memmap_dir=tmp_path if on_disk else None)
    months = list(_months(sparse=sparse))
    for X, y in months:
        store.append(X, y)
    X_all = np.concatenate([_dense(X) for X, _ in months])
    y_all = np.concatenate([y for _, y in months])
    assert len(store) == len(y_all) and store.n_chunks == 4
    index = np.random.default_rng(1).integers(0, len(store), size=97)
    X, y = store.take(index)
    assert sp.issparse(X) == sparse
    np.testing.assert_array_equal(_dense(X), X_all[index])
    np.testing.assert_array_equal(y, y_all[index])
    if on_disk:
        chunk = store.chunks()[0][0]
        assert _on_disk(chunk.data if sparse else chunk)
        assert list(tmp_path.iterdir()) == []      # anonymous files


def test_append_copies_once_and_chunks_are_read_only():
    X, y = next(_months())
    store = RowStore().append(X, y)
    X[:] = 0.0                                     # the caller's array is not shared
    stored, labels = store.chunks()[0]
    assert stored.any() and not stored.flags.writeable and not labels.flags.writeable
    assert store.nbytes == stored.nbytes + labels.nbytes


def test_rollback_truncates_to_the_checkpoint():
    store = RowStore()
    months = list(_months())
    store.append(*months[0])
    marker = store.checkpoint()
    store.append(*months[1]).append(*months[2])
    assert store.rollback(marker) is store
    assert len(store) == len(months[0][1]) and store.n_chunks == 1
    with pytest.raises(ValueError, match="marker=5 is not a checkpoint"):
        store.rollback(5)


def test_deepcopy_shares_chunks_but_not_the_list():
    store = RowStore()
    months = list(_months())
    store.append(*months[0])
    backup = copy.deepcopy(store)
    assert backup.chunks()[0][0] is store.chunks()[0][0]   # no copy of the rows
    store.append(*months[1])
    assert len(backup) == len(months[0][1]) and backup.n_chunks == 1


def _on_disk(chunk):
    from skcl.storage import _on_disk

    return _on_disk(chunk)


@pytest.mark.parametrize("sparse", [False, True])
def test_pickle_round_trip_from_disk(tmp_path, sparse):
    store = RowStore(memmap_dir=tmp_path)
    for X, y in _months(sparse=sparse):
        store.append(X, y)
    loaded = pickle.loads(pickle.dumps(store))
    index = np.arange(len(store))[::-1]
    np.testing.assert_array_equal(_dense(loaded.take(index)[0]), _dense(store.take(index)[0]))
    # the history goes back to memmap_dir, not into memory (issue 23)
    assert all(_on_disk(chunk) for chunk, _ in loaded.chunks())


def test_bad_appends_name_the_problem(tmp_path):
    store = RowStore().append(np.zeros((2, 3), dtype=np.float32), np.array([0, 1]))
    with pytest.raises(ValueError, match="X has 4 features, but the RowStore holds rows of 3"):
        store.append(np.zeros((2, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match="X is sparse but the store holds dense rows"):
        store.append(sp.csr_matrix(np.zeros((2, 3))), np.array([0, 1]))
    with pytest.raises(ValueError, match="pass y to every append or to none"):
        store.append(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="X has 2 rows but y has shape"):
        store.append(np.zeros((2, 3)), np.array([0]))
    with pytest.raises(IndexError, match="index out of range for a RowStore of 2 rows"):
        store.take([2])
    with pytest.raises(ValueError, match="is not an existing directory"):
        RowStore(memmap_dir=tmp_path / "missing").append(np.zeros((1, 1)))
    assert len(store) == 2


def test_appending_costs_the_new_month_only():
    # no re-concatenation: earlier chunks are the very same objects after appends
    store = RowStore()
    months = list(_months(n_months=6))
    store.append(*months[0])
    first = store.chunks()[0][0]
    for X, y in months[1:]:
        store.append(X, y)
    assert store.chunks()[0][0] is first


# ----------------------------------------------------------------------
# ContinualClassifier(update="retrain") keeps its history in a RowStore
# ----------------------------------------------------------------------
def _retrain(**params):
    from skcl import ContinualClassifier

    return ContinualClassifier(update="retrain", max_epochs=1, batch_size=32,
                               module__hidden_units=(4,), random_state=0, **params)


def test_retrain_appends_each_month_once_and_rolls_back_by_truncation():
    from skorch.callbacks import Callback

    months = list(_months(n_months=3, n_features=5))
    clf = _retrain()
    for X, y in months[:2]:
        clf.partial_fit(X, y, classes=[0, 1, 2])
    store = clf.past_data_
    first_chunks = [X for X, _ in store.chunks()]

    class Interrupt(Callback):
        def on_epoch_end(self, net, **kwargs):
            raise RuntimeError("power cut")

    clf.set_params(callbacks=[Interrupt()])
    with pytest.raises(RuntimeError, match="power cut"):
        clf.partial_fit(*months[2])
    # the same store, truncated to its two months; nothing was copied
    assert clf.past_data_ is store and store.n_chunks == 2
    assert [X for X, _ in store.chunks()] == first_chunks
    clf.set_params(callbacks=None)
    clf.partial_fit(*months[2])
    assert store.n_chunks == 3 and len(store) == sum(len(y) for _, y in months)
    np.testing.assert_array_equal(store.take(np.arange(len(store)))[0],
                                  np.concatenate([X for X, _ in months]))


def test_retrain_on_disk_trains_the_same_model(tmp_path):
    months = list(_months(n_months=3, n_features=5))
    in_memory, on_disk = _retrain(), _retrain(memmap_dir=str(tmp_path))
    for X, y in months:
        in_memory.partial_fit(X, y, classes=[0, 1, 2])
        on_disk.partial_fit(X, y, classes=[0, 1, 2])
    assert _on_disk(on_disk.past_data_.chunks()[0][0])
    X_all = np.concatenate([X for X, _ in months])
    np.testing.assert_array_equal(on_disk.predict_proba(X_all), in_memory.predict_proba(X_all))
    loaded = pickle.loads(pickle.dumps(on_disk))
    np.testing.assert_array_equal(loaded.predict_proba(X_all), in_memory.predict_proba(X_all))


def test_copies_of_a_retrained_model_do_not_share_appends():
    months = list(_months(n_months=3, n_features=5))
    clf = _retrain()
    for X, y in months[:2]:
        clf.partial_fit(X, y, classes=[0, 1, 2])
    twin = copy.deepcopy(clf)
    twin.partial_fit(*months[2])
    assert clf.past_data_.n_chunks == 2 and twin.past_data_.n_chunks == 3

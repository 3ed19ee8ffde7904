"""DeviceBatchIterator: the batches of a permutation, by slicing, or DataLoader's."""

import numpy as np
import pytest
import torch
from skorch.dataset import Dataset
from torch.utils.data import Subset, TensorDataset

from skcl import _batching
from skcl._batching import DeviceBatchIterator, dataset_tensors


def _data(n_rows=1000, n_features=7):
    X = torch.arange(n_rows * n_features, dtype=torch.float32).reshape(n_rows, n_features)
    return X, torch.arange(n_rows)


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("chunk_bytes", [1, 1000, 2 ** 30])
def test_shuffled_batches_are_slices_of_one_permutation(monkeypatch, drop_last, chunk_bytes):
    monkeypatch.setattr(_batching, "_CHUNK_BYTES", chunk_bytes)
    X, y = _data()
    torch.manual_seed(0)
    batches = list(DeviceBatchIterator(Dataset(X, y), batch_size=64, shuffle=True,
                                       drop_last=drop_last))
    torch.manual_seed(0)
    order = torch.randperm(len(X))
    stop = 960 if drop_last else 1000
    expected = [order[i:min(i + 64, stop)] for i in range(0, stop, 64)]
    assert len(batches) == len(expected) == len(
        DeviceBatchIterator(Dataset(X, y), batch_size=64, drop_last=drop_last))
    for (Xb, yb), index in zip(batches, expected):
        assert torch.equal(Xb, X[index])
        assert torch.equal(yb, y[index])


def test_unshuffled_batches_keep_order_and_allow_no_target():
    X, y = _data(n_rows=10)
    batches = list(DeviceBatchIterator(Dataset(X, None), batch_size=4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    assert all(b[1] is None for b in batches)
    assert torch.equal(torch.cat([b[0] for b in batches]), X)


def test_subset_of_a_dataset_is_sliced_too():
    X, y = _data(n_rows=20)
    subset = Subset(Dataset(X, y), indices=np.arange(5, 15))
    Xs, ys = dataset_tensors(subset)
    assert torch.equal(Xs, X[5:15]) and torch.equal(ys, y[5:15])
    batches = list(DeviceBatchIterator(subset, batch_size=3))
    assert torch.equal(torch.cat([b[1] for b in batches]), y[5:15])


def test_other_datasets_fall_back_to_dataloader():
    X, y = _data(n_rows=10)
    dataset = TensorDataset(X, y)
    assert dataset_tensors(dataset) is None
    batches = list(DeviceBatchIterator(dataset, batch_size=4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in batches]), y)
    # DataLoader-only arguments take the fallback path as well
    iterator = DeviceBatchIterator(Dataset(X, y), batch_size=5, num_workers=0)
    assert [b[0].shape[0] for b in iterator] == [5, 5]


# ----------------------------------------------------------------------
# host rows: sparse months and RowStore histories
# ----------------------------------------------------------------------
def _sparse_rows(n_rows=300, n_features=40, seed=0):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features)).astype(np.float32)
    X[rng.random(X.shape) < 0.8] = 0.0
    return sp.csr_matrix(X), rng.integers(0, 2, size=n_rows)


@pytest.mark.parametrize("chunk_bytes", [1, 1000, 2 ** 30])
def test_sparse_rows_batches_are_the_permutation_as_csr_tensors(monkeypatch, chunk_bytes):
    from skcl._batching import RowsDataset

    monkeypatch.setattr(_batching, "_CHUNK_BYTES", chunk_bytes)
    X, y = _sparse_rows()
    torch.manual_seed(0)
    batches = list(DeviceBatchIterator(RowsDataset(X, y), batch_size=64, shuffle=True))
    torch.manual_seed(0)
    order = torch.randperm(X.shape[0]).numpy()
    assert len(batches) == 5
    for k, (Xb, yb) in enumerate(batches):
        index = order[k * 64:(k + 1) * 64]
        assert Xb.layout == torch.sparse_csr and Xb.dtype == torch.float32
        np.testing.assert_array_equal(Xb.to_dense().numpy(), X[index].toarray())
        np.testing.assert_array_equal(yb.numpy(), y[index])


def test_rowstore_rows_are_gathered_across_chunks_without_dense_device_copy():
    from skcl import RowStore
    from skcl._batching import RowsDataset

    X, y = _data(n_rows=100)
    store = RowStore()
    for start in range(0, 100, 30):                # chunks of 30, 30, 30, 10
        store.append(X[start:start + 30].numpy(), y[start:start + 30].numpy())
    torch.manual_seed(3)
    batches = list(DeviceBatchIterator(RowsDataset(store), batch_size=16, shuffle=True,
                                       drop_last=True))
    torch.manual_seed(3)
    order = torch.randperm(100)
    assert len(batches) == 6
    for k, (Xb, yb) in enumerate(batches):
        assert torch.equal(Xb, X[order[k * 16:(k + 1) * 16]])
        assert torch.equal(yb, y[order[k * 16:(k + 1) * 16]])
    unshuffled = list(DeviceBatchIterator(RowsDataset(store), batch_size=40))
    assert torch.equal(torch.cat([b[0] for b in unshuffled]), X)


def test_sparse_rows_refuse_a_dataloader():
    from skcl._batching import RowsDataset

    X, y = _sparse_rows(n_rows=10)
    with pytest.raises(TypeError, match="sparse rows cannot go through a DataLoader"):
        DeviceBatchIterator(RowsDataset(X, y), num_workers=1)


@pytest.mark.cuda
def test_host_rows_stream_to_cuda_through_pinned_buffers(monkeypatch):
    from skcl import RowStore
    from skcl._batching import RowsDataset

    monkeypatch.setattr(_batching, "_CHUNK_BYTES", 4096)     # many chunks, buffers reused
    X, y = _data(n_rows=2000, n_features=16)
    store = RowStore().append(X[:1200].numpy(), y[:1200].numpy())
    store.append(X[1200:].numpy(), y[1200:].numpy())
    torch.manual_seed(0)
    batches = list(DeviceBatchIterator(RowsDataset(store, device="cuda"), batch_size=32,
                                       shuffle=True))
    torch.manual_seed(0)
    order = torch.randperm(2000)
    got = torch.cat([b[0] for b in batches]).cpu()
    assert batches[0][0].is_cuda and torch.equal(got, X[order])
    Xs, ys = _sparse_rows()
    sparse_batches = list(DeviceBatchIterator(RowsDataset(Xs, ys, device="cuda"),
                                              batch_size=64))
    assert sparse_batches[0][0].is_cuda and sparse_batches[0][0].layout == torch.sparse_csr
    dense = torch.cat([b[0].to_dense() for b in sparse_batches]).cpu().numpy()
    np.testing.assert_array_equal(dense, Xs.toarray())

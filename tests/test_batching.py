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

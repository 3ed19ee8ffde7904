"""MLP and SparseInputLinear: one function of the input, dense or sparse."""

import pytest
import torch
from torch import nn

from skcl.modules import MLP, SparseInputLinear


def test_sparse_input_linear_matches_nn_linear_on_both_layouts():
    torch.manual_seed(0)
    layer = SparseInputLinear(50, 4)
    reference = nn.Linear(50, 4)
    with torch.no_grad():
        reference.weight.copy_(layer.weight.T)
        reference.bias.copy_(layer.bias)
    X = torch.randn(9, 50) * (torch.rand(9, 50) < 0.1)
    for batch in (X, X.to_sparse_csr(), X.to_sparse()):
        out = layer(batch)
        out.square().sum().backward()
        expected = reference(X)
        expected.square().sum().backward()
        torch.testing.assert_close(out, expected)
        torch.testing.assert_close(layer.weight.grad, reference.weight.grad.T)
        layer.zero_grad(), reference.zero_grad()


def test_sparse_input_linear_initializes_as_nn_linear():
    torch.manual_seed(0)
    layer = SparseInputLinear(400, 300)
    bound = 1 / 400 ** 0.5
    assert layer.weight.abs().max() <= bound and layer.weight.std() > 0.9 * bound / 3 ** 0.5


@pytest.mark.parametrize("hidden_units", [(8,), ()])
def test_mlp_sparse_input_only_changes_the_first_layer(hidden_units):
    mlp = MLP(20, 3, hidden_units=hidden_units, sparse_input=True)
    assert isinstance(mlp.layers[0], SparseInputLinear)
    assert all(type(layer) is not SparseInputLinear for layer in mlp.layers[1:])
    X = torch.randn(5, 20) * (torch.rand(5, 20) < 0.3)
    torch.testing.assert_close(mlp(X.to_sparse_csr()), mlp(X))
    assert isinstance(MLP(20, 3, hidden_units=hidden_units).layers[0], nn.Linear)

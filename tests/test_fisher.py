"""Fisher and Hessian estimators against closed forms and slow references."""

import pytest
import torch
from torch import nn

import skcl.fisher
from skcl.fisher import (
    batch_fisher,
    empirical_fisher,
    fisher_variance,
    hessian_diagonal,
    per_sample_loss,
)

CE = nn.CrossEntropyLoss()


def data(n_samples=40, n_features=5, n_classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    X = torch.randn(n_samples, n_features, generator=generator)
    y = torch.randint(0, n_classes, (n_samples,), generator=generator)
    return X, y


def mlp(n_features=5, n_classes=3, hidden=7, activation=nn.ReLU, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n_features, hidden), activation(),
                         nn.Linear(hidden, n_classes))


def loop_moments(module, X, y, power=2):
    """Slow reference: mean over samples of each per-sample gradient to ``power``."""
    params = {n: p for n, p in module.named_parameters() if p.requires_grad}
    totals = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
    for i in range(len(X)):
        value = nn.functional.cross_entropy(module(X[i:i + 1]), y[i:i + 1])
        grads = torch.autograd.grad(value, list(params.values()), allow_unused=True)
        for name, g in zip(params, grads):
            if g is not None:
                totals[name] += g.double() ** power
    return {n: t / len(X) for n, t in totals.items()}


def assert_close(actual, expected, atol=1e-6, rtol=1e-4):
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name].double(), expected[name].double(),
                                   atol=atol, rtol=rtol, msg=name)


class ScaledNorm(nn.Module):
    """Linear layers plus parameters that are not Linear: LayerNorm and a free scale."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(5, 6)
        self.norm = nn.LayerNorm(6)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 3))
        self.out = nn.Linear(6, 3)

    def forward(self, X):
        return self.out(torch.tanh(self.norm(self.hidden(X)))) * self.scale


class ReusedLinear(nn.Module):
    """The same Linear applied twice: the outer-product identity does not hold."""

    def __init__(self):
        super().__init__()
        self.square = nn.Linear(5, 5)
        self.out = nn.Linear(5, 3)

    def forward(self, X):
        return self.out(torch.relu(self.square(torch.relu(self.square(X)))))


class FunctionalReuse(nn.Module):
    """A Linear called once, but its weight also used functionally elsewhere."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(5, 5)
        self.out = nn.Linear(5, 3)

    def forward(self, X):
        hidden = torch.relu(self.first(X))
        hidden = torch.relu(nn.functional.linear(hidden, self.first.weight))
        return self.out(hidden)


class TiedLinear(nn.Module):
    """Two Linear modules sharing one weight tensor."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(5, 5)
        self.second = nn.Linear(5, 5)
        self.second.weight = self.first.weight
        self.out = nn.Linear(5, 3)

    def forward(self, X):
        return self.out(torch.relu(self.second(torch.relu(self.first(X)))))


class SequenceLinear(nn.Module):
    """A Linear on 3-D input (per-sample gradient sums over positions)."""

    def __init__(self):
        super().__init__()
        self.token = nn.Linear(5, 4)
        self.out = nn.Linear(4, 3)

    def forward(self, X):
        tokens = X.view(X.shape[0], 1, 5).expand(-1, 2, -1) * torch.tensor([[1.0], [-0.5]])
        return self.out(torch.tanh(self.token(tokens)).mean(dim=1))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_regression_matches_closed_form(bias, n_classes):
    X, y = data(n_samples=50, n_features=4, n_classes=n_classes)
    module = nn.Linear(4, n_classes, bias=bias)
    fisher = empirical_fisher(module, X, y, CE)

    with torch.no_grad():
        residual = torch.softmax(module(X), dim=1) - nn.functional.one_hot(y, n_classes)
    # per sample, the gradient of row c of W is (p_ic - y_ic) x_i
    expected = {"weight": (residual.square().T @ X.square()) / len(X)}
    if bias:
        expected["bias"] = residual.square().mean(dim=0)
    assert_close(fisher, expected, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("method", ["linear", "vmap", "auto"])
def test_mlp_paths_match_per_sample_loop(method):
    X, y = data()
    module = nn.Sequential(nn.Linear(5, 7), nn.ReLU(inplace=True), nn.Linear(7, 3))
    fisher = empirical_fisher(module, X, y, CE, method=method, batch_size=16)
    assert_close(fisher, loop_moments(module, X, y))


def test_general_path_covers_non_linear_parameters(monkeypatch):
    X, y = data()
    module = ScaledNorm()
    vmapped = []
    original = skcl.fisher._add_vmap_sums

    def spy(module, params, names, *args):
        vmapped.append(tuple(names))
        return original(module, params, names, *args)

    monkeypatch.setattr(skcl.fisher, "_add_vmap_sums", spy)
    fisher = empirical_fisher(module, X, y, CE, batch_size=16)
    assert len(set(vmapped)) == 1
    assert set(vmapped[0]) == {"norm.weight", "norm.bias", "scale"}
    assert_close(fisher, loop_moments(module, X, y))
    with pytest.raises(ValueError, match=r"\['scale', 'norm.weight', 'norm.bias'\]"):
        empirical_fisher(module, X, y, CE, method="linear")


@pytest.mark.parametrize("module_class",
                         [ReusedLinear, FunctionalReuse, TiedLinear, SequenceLinear])
def test_layers_breaking_the_identity_fall_back_to_exact_path(module_class):
    torch.manual_seed(0)
    module = module_class()
    X, y = data()
    assert_close(empirical_fisher(module, X, y, CE, batch_size=16),
                 loop_moments(module, X, y))
    with pytest.raises(ValueError, match="method='linear'"):
        empirical_fisher(module, X, y, CE, method="linear")


@pytest.mark.parametrize("method", ["linear", "vmap"])
def test_variance_matches_hand_computation(method):
    X, y = data()
    module = mlp(activation=nn.Tanh)
    second, fourth = loop_moments(module, X, y, 2), loop_moments(module, X, y, 4)
    expected = {name: fourth[name] - second[name] ** 2 for name in second}
    variance = fisher_variance(module, X, y, CE, method=method, batch_size=16)
    assert_close(variance, expected, atol=1e-9, rtol=1e-4)


def test_batch_fisher_squares_mini_batch_gradients():
    X, y = data(n_samples=30)
    module = mlp()
    params = list(module.parameters())
    expected = [torch.zeros_like(p) for p in params]
    for start in (0, 10, 20):
        value = CE(module(X[start:start + 10]), y[start:start + 10])
        for total, g in zip(expected, torch.autograd.grad(value, params)):
            total += g.square() / 3
    estimate = batch_fisher(module, X, y, CE, batch_size=10)
    assert_close(estimate, dict(zip(dict(module.named_parameters()), expected)))
    # the shortcut is biased low against the exact per-sample Fisher
    exact = empirical_fisher(module, X, y, CE)
    assert sum(v.sum() for v in estimate.values()) < sum(v.sum() for v in exact.values())


def hessian_reference(module, X, y):
    names = [n for n, _ in module.named_parameters()]
    shapes = [p.shape for _, p in module.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in module.parameters()])

    def mean_loss(flat):
        params = dict(zip(names, [t.view(s) for t, s in
                                  zip(flat.split([s.numel() for s in shapes]), shapes)]))
        return CE(torch.func.functional_call(module, params, (X,)), y)

    return torch.diagonal(torch.autograd.functional.hessian(mean_loss, theta))


def flat(result):
    return torch.cat([t.reshape(-1) for t in result.values()])


def test_exact_hessian_diagonal_matches_autograd():
    X, y = data()
    module = mlp(activation=nn.Tanh)
    expected = hessian_reference(module, X, y)
    exact = hessian_diagonal(module, X, y, CE, method="exact", batch_size=16)
    torch.testing.assert_close(flat(exact), expected, atol=1e-6, rtol=1e-4)
    # tanh gives genuinely negative curvature away from a minimum
    assert (expected < 0).any()
    auto = hessian_diagonal(module, X, y, CE)  # 62 parameters: exact
    torch.testing.assert_close(flat(auto), flat(exact))


def test_relu_hessian_diagonal_is_non_negative():
    X, y = data()
    exact = hessian_diagonal(mlp(), X, y, CE, method="exact")
    assert (flat(exact) >= -1e-7).all()


def test_hutchinson_converges_to_exact_diagonal():
    X, y = data()
    module = mlp(activation=nn.Tanh)
    expected = hessian_reference(module, X, y)

    def error(n_probes):
        estimate = hessian_diagonal(module, X, y, CE, method="hutchinson", n_probes=n_probes,
                                    generator=torch.Generator().manual_seed(1))
        return (flat(estimate) - expected).norm() / expected.norm()

    few, many = error(4), error(800)
    assert many < few / 5
    assert many < 0.2


def test_hutchinson_is_reproducible_with_a_generator():
    X, y = data()
    module = mlp()

    def estimate(seed):
        return flat(hessian_diagonal(module, X, y, CE, method="hutchinson", n_probes=5,
                                     generator=torch.Generator().manual_seed(seed)))

    torch.testing.assert_close(estimate(3), estimate(3), rtol=0, atol=0)
    assert not torch.equal(estimate(3), estimate(4))


def test_estimators_use_eval_mode_and_restore_it():
    X, y = data()
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Dropout(0.5), nn.Linear(7, 3))
    module.train()
    module[2].eval()  # a mixed state must come back as it was
    first = empirical_fisher(module, X, y, CE)
    second = empirical_fisher(module, X, y, CE, method="vmap")
    assert_close(first, second)
    assert module.training and module[0].training and not module[2].training
    module.eval()
    assert_close(first, loop_moments(module, X, y))


def test_parameter_grads_are_left_untouched():
    X, y = data()
    module = ScaledNorm()
    for estimator in (empirical_fisher, fisher_variance, batch_fisher, hessian_diagonal):
        estimator(module, X, y, CE)
    assert all(p.grad is None for p in module.parameters())


def test_frozen_parameters_are_left_out():
    X, y = data()
    module = mlp()
    module[0].weight.requires_grad_(False)
    assert set(empirical_fisher(module, X, y, CE)) == {"0.bias", "2.weight", "2.bias"}
    assert set(hessian_diagonal(module, X, y, CE)) == {"0.bias", "2.weight", "2.bias"}


def test_per_sample_loss_keeps_criterion_settings():
    X, y = data()
    weight = torch.tensor([1.0, 2.0, 0.5])
    criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=0.1)
    losses = per_sample_loss(criterion)(X[:, :3], y)
    expected = nn.functional.cross_entropy(X[:, :3], y, weight=weight, label_smoothing=0.1,
                                           reduction="none")
    torch.testing.assert_close(losses, expected)
    assert criterion.reduction == "mean"


def test_loss_errors_name_the_fix():
    X, y = data()
    module = mlp()
    with pytest.raises(TypeError, match="no 'reduction' attribute"):
        per_sample_loss(lambda output, target: output.sum())
    with pytest.raises(ValueError, match=r"one loss per sample is needed"):
        empirical_fisher(module, X, y, lambda output, target: CE(output, target))
    with pytest.raises(ValueError, match="method='fast'"):
        empirical_fisher(module, X, y, CE, method="fast")
    with pytest.raises(ValueError, match="n_probes=0"):
        hessian_diagonal(module, X, y, CE, method="hutchinson", n_probes=0)


# ----------------------------------------------------------------------
# sparse input: the identity with sparse activations
# ----------------------------------------------------------------------
def sparse_data(n_samples=40, n_features=30, n_classes=3, seed=0):
    X, y = data(n_samples, n_features, n_classes, seed)
    X = X * (torch.rand(X.shape, generator=torch.Generator().manual_seed(seed)) < 0.2)
    return X.to_sparse_csr(), X, y


@pytest.mark.parametrize("first_layer", ["linear", "sparse_input"])
@pytest.mark.parametrize("estimator, power", [(empirical_fisher, 2), (fisher_variance, 4)])
def test_sparse_input_matches_per_sample_loop(first_layer, estimator, power):
    from skcl.modules import MLP

    X_sparse, X_dense, y = sparse_data()
    torch.manual_seed(0)
    module = MLP(30, 3, hidden_units=(6,), sparse_input=first_layer == "sparse_input")
    result = estimator(module, X_sparse, y, CE, method="linear", batch_size=16)
    expected = loop_moments(module, X_dense, y, power=power)
    if power == 4:
        second = loop_moments(module, X_dense, y, power=2)
        expected = {n: expected[n] - second[n].square() for n in expected}
    assert_close(result, expected, atol=1e-7, rtol=1e-4)


def test_sparse_batch_fisher_and_hessian_equal_dense(monkeypatch):
    from skcl.modules import MLP

    X_sparse, X_dense, y = sparse_data()
    torch.manual_seed(0)
    module = MLP(30, 3, hidden_units=(6,), sparse_input=True)
    assert_close(batch_fisher(module, X_sparse, y, CE, batch_size=16),
                 batch_fisher(module, X_dense, y, CE, batch_size=16), atol=1e-9)
    # sparse chunks are densified one at a time, cut to the byte budget
    monkeypatch.setattr(skcl.fisher, "_DENSE_CHUNK_BYTES", 4 * 30 * 7)
    for method in ("exact", "hutchinson"):
        assert_close(
            hessian_diagonal(module, X_sparse, y, CE, method=method, n_probes=3,
                             generator=torch.Generator().manual_seed(0)),
            hessian_diagonal(module, X_dense, y, CE, method=method, n_probes=3,
                             generator=torch.Generator().manual_seed(0)), atol=1e-6)


def test_sparse_input_with_non_linear_parameters_names_the_fix():
    X_sparse, _, y = sparse_data(n_features=5)
    with pytest.raises(ValueError, match="vmap path cannot take sparse input"):
        empirical_fisher(ScaledNorm(), X_sparse, y, CE)


def test_sparse_fisher_of_a_huge_first_layer_stays_sparse():
    # 2**22 features x 2 hidden units: the dense input of 64 rows would be 1 GiB
    from skcl.modules import MLP

    n_features = 2 ** 22
    generator = torch.Generator().manual_seed(0)
    columns = torch.randint(0, n_features, (64, 3), generator=generator).sort(dim=1).values
    crow = torch.arange(0, 64 * 3 + 1, 3)
    X = torch.sparse_csr_tensor(crow, columns.reshape(-1), torch.ones(64 * 3),
                                size=(64, n_features))
    y = torch.randint(0, 2, (64,), generator=generator)
    torch.manual_seed(0)
    module = MLP(n_features, 2, hidden_units=(2,), sparse_input=True)
    fisher = empirical_fisher(module, X, y, CE, batch_size=32)
    weight = fisher["layers.0.weight"]
    touched = torch.zeros(n_features, dtype=torch.bool)
    touched[columns.reshape(-1)] = True
    assert weight.shape == (n_features, 2)
    assert (weight[~touched] == 0).all() and (weight[touched].sum(dim=1) > 0).any()

"""Fisher information and Hessian-diagonal estimators: pure functions of a module and data.

Every estimator takes ``(module, X, y, loss)`` and returns a dict mapping each
trainable parameter's name (as in ``module.named_parameters()``) to a tensor of
that parameter's shape. They hold no state, know nothing of skorch, and are
tested against closed forms; :mod:`skcl.regularizers` calls them.

``loss`` is either a torch criterion with a ``reduction`` attribute (such as
``torch.nn.CrossEntropyLoss()``; it is used with ``reduction="none"``) or a
callable ``loss(output, y)`` returning one loss per sample, shape
``(n_samples,)``. Every estimator puts the module in ``eval()`` mode while it
runs (dropout and batch-norm statistics would otherwise couple or randomize the
samples) and restores each submodule's mode afterwards. Parameter ``.grad``
fields are never touched.
"""

import copy
import math
from contextlib import contextmanager
from functools import partial

import torch
from torch import nn
from torch.func import functional_call, grad, vjp, vmap

from ._sparse import torch_csr_rows, torch_csr_take, torch_csr_values_map
from .module_utils import evaluation_mode, trainable_parameters
from .modules import SparseInputLinear

__all__ = [
    "per_sample_loss",
    "empirical_fisher",
    "fisher_variance",
    "batch_fisher",
    "hessian_diagonal",
    "output_sensitivity",
]

# hessian_diagonal(method="auto") computes the exact diagonal up to this many
# parameters: one Hessian-vector product per parameter, against one per probe
# for Hutchinson's estimator.
MAX_EXACT_HESSIAN_PARAMS = 512

# Hessian-vector products evaluated together in one vmap.
_VECTORS_PER_CALL = 32

# hessian_diagonal on sparse input densifies chunks of rows of at most this
# many bytes (torch.func does not take sparse tensors).
_DENSE_CHUNK_BYTES = 32 * 2**20


def per_sample_loss(criterion):
    """Return a function computing one loss per sample with ``criterion``.

    The criterion is shallow-copied with ``reduction="none"``; its other
    settings (class ``weight``, ``label_smoothing``, ``ignore_index``) are kept.
    Losses with more than one dimension per sample (e.g. a criterion applied
    element-wise) are summed over the non-batch dimensions.

    Parameters
    ----------
    criterion : torch.nn.Module
        A torch criterion with a ``reduction`` attribute, such as
        ``torch.nn.CrossEntropyLoss()``.

    Returns
    -------
    loss : callable
        ``loss(output, y)`` returning a tensor of shape ``(n_samples,)``.

    Examples
    --------
    >>> import torch
    >>> from skcl.fisher import per_sample_loss
    >>> loss = per_sample_loss(torch.nn.CrossEntropyLoss())
    >>> loss(torch.zeros(4, 2), torch.tensor([0, 1, 1, 0])).shape
    torch.Size([4])
    """
    if not hasattr(criterion, "reduction"):
        raise TypeError(
            f"criterion {criterion!r} has no 'reduction' attribute, so its per-sample "
            "losses cannot be obtained; pass a callable loss(output, y) that returns "
            "one loss per sample instead"
        )
    # skorch's compile=True wraps the criterion in torch.compile's module, whose
    # attributes are its original's: copy the original, not the shared wrapper
    # (setting reduction on a copy of the wrapper would change training's loss)
    criterion = getattr(criterion, "_orig_mod", criterion)
    unreduced = copy.copy(criterion)
    unreduced.reduction = "none"

    def loss(output, y):
        losses = unreduced(output, y)
        if losses.ndim > 1:
            losses = losses.reshape(losses.shape[0], -1).sum(dim=1)
        return losses

    return loss


def empirical_fisher(module, X, y, loss, *, method="auto", batch_size=256):
    r"""Diagonal empirical Fisher: the mean over samples of squared per-sample gradients.

    .. math:: F_j = \frac{1}{n} \sum_{i=1}^n g_{ij}^2, \qquad
              g_{ij} = \frac{\partial \ell_i}{\partial \theta_j}

    with :math:`\ell_i` the loss of sample :math:`i` at its observed label. The
    per-sample gradients are exact (this is not the square of mini-batch
    gradients; see :func:`batch_fisher` for that).

    Two exact paths, chosen per parameter with ``method="auto"``:

    * ``"linear"``: for an ``nn.Linear`` called once per forward on 2-D input,
      the per-sample gradient of the weight is the outer product
      :math:`\delta_i a_i^\top` of the output gradient and the input, so
      :math:`\sum_i g_i^2 = (\delta^2)^\top (a^2)` (and :math:`\sum_i \delta_i^2`
      for the bias): one forward, one backward per chunk, about twice the cost
      of a training pass. The same holds for
      :class:`~skcl.modules.SparseInputLinear`, and for sparse input
      (``X`` of layout ``torch.sparse_csr``): :math:`a^2` keeps the sparsity
      pattern and the product is sparse-dense, so nothing is densified. A
      layer called more than once (weight sharing), on
      inputs with more than two dimensions, or whose parameters are used
      outside it (detected by comparing its summed gradient with the
      identity's on the first chunk) does not qualify.
    * ``"vmap"``: ``torch.func.vmap`` of ``torch.func.grad`` over samples, in
      chunks; any parameter of any module, roughly 10-30 times slower.

    Parameters
    ----------
    module : torch.nn.Module
        The model; its forward maps ``X`` to the loss's input.
    X : torch.Tensor of shape (n_samples, ...)
        Inputs, on the module's device; dense, or a 2-D ``torch.sparse_csr``
        tensor when every trainable parameter is in a Linear layer the
        identity covers (the ``vmap`` path needs dense input).
    y : torch.Tensor of shape (n_samples,)
        Targets, as ``loss`` expects them.
    loss : torch criterion or callable
        See the module's docstring.
    method : {"auto", "linear", "vmap"}, default="auto"
        ``"auto"`` uses the Linear identity where it applies and ``vmap`` for
        every other parameter; ``"linear"`` raises if some trainable parameter
        does not qualify; ``"vmap"`` uses the general path throughout.
    batch_size : int, default=256
        Samples per chunk (memory only; the result does not depend on it).

    Returns
    -------
    fisher : dict of str to torch.Tensor
        One non-negative tensor per trainable parameter, of its shape.

    See Also
    --------
    fisher_variance : Variance of the same per-sample squared gradients.
    batch_fisher : The cheap, biased estimate from mini-batch gradients.

    Examples
    --------
    >>> import torch
    >>> from skcl.fisher import empirical_fisher
    >>> module = torch.nn.Linear(3, 2)
    >>> X, y = torch.randn(8, 3), torch.tensor([0, 1] * 4)
    >>> fisher = empirical_fisher(module, X, y, torch.nn.CrossEntropyLoss())
    >>> sorted(fisher), fisher["weight"].shape
    (['bias', 'weight'], torch.Size([2, 3]))
    """
    sums = _squared_gradient_sums(module, X, y, loss, method, batch_size, fourth=False)
    n_samples = X.shape[0]
    return {name: second / n_samples for name, (second, _) in sums.items()}


def fisher_variance(module, X, y, loss, *, method="auto", batch_size=256):
    r"""Variance over samples of the per-sample squared gradients.

    .. math:: V_j = \frac{1}{n} \sum_{i=1}^n \left(g_{ij}^2 - F_j\right)^2,
              \qquad g_{ij} = \frac{\partial \ell_i}{\partial \theta_j},
              \quad F_j = \frac{1}{n} \sum_i g_{ij}^2

    the population variance (``ddof=0``) of the terms whose mean is
    :func:`empirical_fisher`. It is computed as :math:`E[g^4] - E[g^2]^2`,
    accumulated in float64 to limit cancellation; the Linear identity extends
    to fourth powers (:math:`\sum_i g_i^4 = (\delta^4)^\top (a^4)`), so the
    same two paths apply.

    Parameters
    ----------
    module : torch.nn.Module
        The model, as in :func:`empirical_fisher`.
    X : torch.Tensor of shape (n_samples, ...)
        Inputs, on the module's device.
    y : torch.Tensor of shape (n_samples,)
        Targets, as ``loss`` expects them.
    loss : torch criterion or callable
        See the module's docstring.
    method : {"auto", "linear", "vmap"}, default="auto"
        As in :func:`empirical_fisher`.
    batch_size : int, default=256
        Samples per chunk (memory only).

    Returns
    -------
    variance : dict of str to torch.Tensor
        One non-negative tensor per trainable parameter, of its shape.

    Examples
    --------
    >>> import torch
    >>> from skcl.fisher import fisher_variance
    >>> module = torch.nn.Linear(3, 2)
    >>> X, y = torch.randn(8, 3), torch.tensor([0, 1] * 4)
    >>> variance = fisher_variance(module, X, y, torch.nn.CrossEntropyLoss())
    >>> bool((variance["weight"] >= 0).all())
    True
    """
    sums = _squared_gradient_sums(module, X, y, loss, method, batch_size, fourth=True)
    n_samples = X.shape[0]
    variance = {}
    for name, (second, fourth) in sums.items():
        mean = second / n_samples
        value = (fourth / n_samples - mean.square()).clamp_min_(0.0)
        variance[name] = value.to(_dtype_of(module, name))
    return variance


def batch_fisher(module, X, y, loss, *, batch_size=256):
    r"""Mean over mini-batches of the squared mini-batch gradient (a biased shortcut).

    .. math:: \hat F_j = \frac{1}{K} \sum_{k=1}^K
              \left(\frac{1}{|B_k|} \sum_{i \in B_k} g_{ij}\right)^2

    over consecutive chunks :math:`B_k` of ``batch_size`` rows. It costs one
    plain training pass, but is not the Fisher: the cross terms between
    samples average out, so for gradients with small mean it shrinks roughly
    like ``1 / batch_size``, and it depends on ``batch_size`` and row order.
    Use :func:`empirical_fisher` unless the cost matters more than the bias.

    Parameters
    ----------
    module : torch.nn.Module
        The model, as in :func:`empirical_fisher`.
    X : torch.Tensor of shape (n_samples, ...)
        Inputs, on the module's device.
    y : torch.Tensor of shape (n_samples,)
        Targets, as ``loss`` expects them.
    loss : torch criterion or callable
        See the module's docstring.
    batch_size : int, default=256
        Rows per mini-batch; the estimate depends on it.

    Returns
    -------
    fisher : dict of str to torch.Tensor
        One non-negative tensor per trainable parameter, of its shape.

    Examples
    --------
    >>> import torch
    >>> from skcl.fisher import batch_fisher
    >>> module = torch.nn.Linear(3, 2)
    >>> X, y = torch.randn(8, 3), torch.tensor([0, 1] * 4)
    >>> batch_fisher(module, X, y, torch.nn.CrossEntropyLoss(), batch_size=4)["bias"].shape
    torch.Size([2])
    """
    _check_batch_size(batch_size)
    loss = _as_per_sample_loss(loss)
    device = _module_device(module)
    params = _trainable_parameters(module)
    totals = {name: torch.zeros_like(p) for name, p in params.items()}
    n_batches = 0
    with _estimation_mode(module):
        for start in range(0, X.shape[0], batch_size):
            X_batch = _rows(X, start, start + batch_size, device)
            y_batch = y[start:start + batch_size].to(device)
            losses = _check_losses(loss(module(X_batch), y_batch), X_batch.shape[0])
            grads = torch.autograd.grad(losses.mean(), list(params.values()),
                                        allow_unused=True)
            for name, g in zip(params, grads):
                if g is not None:
                    totals[name].add_(g.square())
            n_batches += 1
    return {name: total / max(n_batches, 1) for name, total in totals.items()}


def hessian_diagonal(module, X, y, loss, *, method="auto", n_probes=100, generator=None,
                     batch_size=256):
    r"""Diagonal of the Hessian of the mean loss, exact or by Hutchinson's estimator.

    .. math:: H_{jj} = \frac{\partial^2}{\partial \theta_j^2}
              \frac{1}{n} \sum_{i=1}^n \ell_i(\theta)

    * ``"exact"``: one Hessian-vector product per parameter with the unit
      vectors (reverse-over-reverse ``torch.func.vjp`` of ``torch.func.grad``,
      vmapped over 32 vectors at a time). Cost grows with the number of
      parameters: for small models.
    * ``"hutchinson"``: :math:`\mathrm{diag}(H) \approx \frac{1}{K}\sum_k z_k
      \odot H z_k` with ``n_probes`` Rademacher vectors :math:`z_k` (entries
      :math:`\pm 1`). Unbiased; the error of entry :math:`j` has variance
      :math:`\sum_{l \neq j} H_{jl}^2 / K`, so it shrinks like
      :math:`1/\sqrt{K}` and is large where off-diagonal curvature dominates.
    * ``"auto"``: ``"exact"`` up to ``MAX_EXACT_HESSIAN_PARAMS`` (512)
      trainable parameters, ``"hutchinson"`` above.

    Entries can be negative: away from a minimum the true diagonal can be
    (with smooth activations such as tanh; for piecewise-linear ones such as
    ReLU each diagonal entry equals the Gauss-Newton one and is non-negative),
    and Hutchinson's noise makes small entries of either sign. The result is
    returned as computed; callers decide what to do with negative entries.

    Parameters
    ----------
    module : torch.nn.Module
        The model, as in :func:`empirical_fisher`.
    X : torch.Tensor of shape (n_samples, ...)
        Inputs, on the module's device.
    y : torch.Tensor of shape (n_samples,)
        Targets, as ``loss`` expects them.
    loss : torch criterion or callable
        See the module's docstring.
    method : {"auto", "exact", "hutchinson"}, default="auto"
        See above.
    n_probes : int, default=100
        Rademacher probes for ``"hutchinson"``.
    generator : torch.Generator or None, default=None
        CPU generator the probes are drawn from (then moved to the module's
        device); ``None`` uses torch's global generator.
    batch_size : int, default=256
        Samples per chunk (memory only). With sparse ``X``
        (``torch.sparse_csr``), ``torch.func`` needs dense input: each chunk is
        densified on its own, and chunks are cut down to at most 32 MiB dense.

    Returns
    -------
    diagonal : dict of str to torch.Tensor
        One tensor per trainable parameter, of its shape.

    Examples
    --------
    >>> import torch
    >>> from skcl.fisher import hessian_diagonal
    >>> module = torch.nn.Linear(3, 2)
    >>> X, y = torch.randn(8, 3), torch.tensor([0, 1] * 4)
    >>> diagonal = hessian_diagonal(module, X, y, torch.nn.CrossEntropyLoss(),
    ...                             method="exact")
    >>> diagonal["weight"].shape
    torch.Size([2, 3])
    """
    if method not in ("auto", "exact", "hutchinson"):
        raise ValueError(
            f"method={method!r} is not supported; use 'auto', 'exact' or 'hutchinson'"
        )
    if isinstance(n_probes, bool) or not isinstance(n_probes, int) or n_probes < 1:
        raise ValueError(f"n_probes={n_probes!r} must be an int >= 1")
    _check_batch_size(batch_size)
    sparse = X.layout != torch.strided
    if sparse:
        # torch.func's transforms do not take sparse tensors: densify one
        # chunk at a time, of at most _DENSE_CHUNK_BYTES (never the month)
        row_bytes = 4 * max(1, math.prod(X.shape[1:]))
        batch_size = max(1, min(batch_size, _DENSE_CHUNK_BYTES // row_bytes))
    loss = _as_per_sample_loss(loss)
    device = _module_device(module)
    params = _trainable_parameters(module)
    names = list(params)
    shapes = [p.shape for p in params.values()]
    n_params = sum(p.numel() for p in params.values())
    if method == "auto":
        method = "exact" if n_params <= MAX_EXACT_HESSIAN_PARAMS else "hutchinson"
    theta = torch.cat([p.detach().reshape(-1) for p in params.values()])
    n_samples = X.shape[0]

    def mean_loss(flat, X_chunk, y_chunk):
        output = functional_call(module, _unflatten(flat, names, shapes), (X_chunk,))
        losses = _check_losses(loss(output, y_chunk), X_chunk.shape[0])
        return losses.sum() / n_samples

    def hessian_times(vectors):
        # H @ v for each row v, summed over data chunks
        products = torch.zeros_like(vectors)
        for start in range(0, n_samples, batch_size):
            X_chunk = _rows(X, start, start + batch_size, device)
            gradient = partial(grad(mean_loss),
                               X_chunk=X_chunk.to_dense() if sparse else X_chunk,
                               y_chunk=y[start:start + batch_size].to(device))
            _, vjp_fn = vjp(gradient, theta)
            products += vmap(vjp_fn)(vectors)[0]
        return products

    diagonal = torch.zeros_like(theta)
    with _estimation_mode(module):
        if method == "exact":
            for start in range(0, n_params, _VECTORS_PER_CALL):
                index = torch.arange(start, min(start + _VECTORS_PER_CALL, n_params),
                                     device=theta.device)
                basis = torch.zeros(len(index), n_params, dtype=theta.dtype,
                                    device=theta.device)
                basis[torch.arange(len(index)), index] = 1.0
                diagonal[index] = hessian_times(basis)[torch.arange(len(index)), index]
        else:
            for start in range(0, n_probes, _VECTORS_PER_CALL):
                count = min(_VECTORS_PER_CALL, n_probes - start)
                signs = torch.randint(0, 2, (count, n_params), generator=generator)
                probes = (2.0 * signs - 1.0).to(dtype=theta.dtype, device=theta.device)
                diagonal += (probes * hessian_times(probes)).sum(dim=0)
            diagonal /= n_probes
    return _unflatten(diagonal, names, shapes)


def output_sensitivity(module, X, *, batch_size=256):
    r"""Mean over samples of the absolute gradient of the squared output norm (MAS).

    .. math:: \Omega_j = \frac{1}{n} \sum_{i=1}^n
              \left| \frac{\partial \lVert f(x_i) \rVert_2^2}{\partial \theta_j} \right|

    the importance of Memory Aware Synapses (Aljundi et al., 2018): how much
    the network's output on each sample moves when weight :math:`j` moves,
    whatever the label (it needs none). The per-sample gradients are exact
    (``torch.func.vmap`` of ``torch.func.grad`` over each chunk), not the
    absolute value of a mini-batch gradient, in which samples pulling in
    opposite directions cancel.

    Parameters
    ----------
    module : torch.nn.Module
        The model; its forward maps one row of ``X`` (kept 2-D, one row) to
        its output, e.g. the logits.
    X : torch.Tensor of shape (n_samples, ...)
        Inputs, on the module's device.
    batch_size : int, default=256
        Samples per chunk (memory only; the result does not depend on it).

    Returns
    -------
    sensitivity : dict of str to torch.Tensor
        One non-negative tensor per trainable parameter, of its shape.

    See Also
    --------
    empirical_fisher : The squared per-sample gradients of the loss instead.

    Examples
    --------
    >>> import torch
    >>> from skcl.fisher import output_sensitivity
    >>> module = torch.nn.Linear(3, 2, bias=False)
    >>> X = torch.tensor([[1.0, -2.0, 0.0]])
    >>> # d||Wx||^2 / dW = 2 (Wx) x^T
    >>> expected = (2 * (X @ module.weight.T).T @ X).abs()
    >>> torch.allclose(output_sensitivity(module, X)["weight"], expected)
    True
    """
    _check_batch_size(batch_size)
    params = _trainable_parameters(module)
    fixed = {name: p.detach() for name, p in params.items()}
    totals = {name: torch.zeros_like(p) for name, p in fixed.items()}

    def squared_norm(weights, x):
        return functional_call(module, weights, (x.unsqueeze(0),)).square().sum()

    per_sample = vmap(grad(squared_norm), in_dims=(None, 0))
    sparse = X.layout != torch.strided
    if sparse:
        # vmap needs dense input: densify one bounded chunk at a time
        row_bytes = 4 * max(1, math.prod(X.shape[1:]))
        batch_size = max(1, min(batch_size, _DENSE_CHUNK_BYTES // row_bytes))
    device = _module_device(module)
    with _estimation_mode(module):
        for start in range(0, X.shape[0], batch_size):
            X_chunk = _rows(X, start, start + batch_size, device)
            X_chunk = X_chunk.to_dense() if sparse else X_chunk
            for name, g in per_sample(fixed, X_chunk).items():
                totals[name] += g.abs_().sum(dim=0)
    return {name: total / max(X.shape[0], 1) for name, total in totals.items()}


# ----------------------------------------------------------------------
# internals
# ----------------------------------------------------------------------
@contextmanager
def _estimation_mode(module):
    """Evaluation mode and gradients on; every submodule's mode restored after."""
    with evaluation_mode(module), torch.enable_grad():
        yield


_trainable_parameters = trainable_parameters


def _dtype_of(module, name):
    return module.get_parameter(name).dtype


def _unflatten(flat, names, shapes):
    """Split a flat vector into a name -> view dict of the given shapes."""
    sizes = [math.prod(shape) for shape in shapes]
    return {name: part.view(shape)
            for name, part, shape in zip(names, flat.split(sizes), shapes)}


def _as_per_sample_loss(loss):
    if isinstance(loss, nn.Module) and hasattr(loss, "reduction"):
        return per_sample_loss(loss)
    if not callable(loss):
        raise TypeError(
            f"loss={loss!r} is neither a torch criterion nor a callable; pass e.g. "
            "torch.nn.CrossEntropyLoss()"
        )
    return loss


def _check_losses(losses, n_rows):
    if losses.shape != (n_rows,):
        raise ValueError(
            f"loss returned shape {tuple(losses.shape)} for {n_rows} samples, but one "
            "loss per sample is needed; use reduction='none' (per_sample_loss does)"
        )
    return losses


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an int >= 1")


def _squared_gradient_sums(module, X, y, loss, method, batch_size, fourth):
    """Name -> (sum_i g_i**2, sum_i g_i**4 or None) over samples, exactly."""
    if method not in ("auto", "linear", "vmap"):
        raise ValueError(
            f"method={method!r} is not supported; use 'auto', 'linear' or 'vmap'"
        )
    _check_batch_size(batch_size)
    loss = _as_per_sample_loss(loss)
    device = _module_device(module)
    params = _trainable_parameters(module)
    accumulate_dtype = torch.float64 if fourth else None
    sums = {name: [torch.zeros_like(p, dtype=accumulate_dtype),
                   torch.zeros_like(p, dtype=accumulate_dtype) if fourth else None]
            for name, p in params.items()}
    with _estimation_mode(module):
        layers = {}
        if method != "vmap" and X.shape[0]:
            # the first chunk decides which layers qualify; its terms are kept
            layers = _linear_layer_terms(module, params, _rows(X, 0, batch_size, device),
                                         y[:batch_size].to(device), loss, check=True)
            _add_linear_sums(layers, sums, fourth)
        covered = {name for names, _, _ in layers.values() for name in names if name}
        others = [name for name in params if name not in covered]
        if method == "linear" and others:
            raise ValueError(
                f"method='linear' needs every trainable parameter in an nn.Linear called "
                f"once per forward on 2-D input and used nowhere else, but {others!r} "
                "are not; use method='auto'"
            )
        for start in range(0, X.shape[0], batch_size):
            X_chunk = _rows(X, start, start + batch_size, device)
            y_chunk = y[start:start + batch_size].to(device)
            if layers and start:
                terms = _linear_layer_terms(
                    module, {layer: names for layer, (names, _, _) in layers.items()},
                    X_chunk, y_chunk, loss, check=False)
                _add_linear_sums(terms, sums, fourth)
            if others:
                if X_chunk.layout != torch.strided:
                    raise ValueError(
                        f"parameters {others!r} are not in a Linear layer the exact "
                        "identity covers, and the vmap path cannot take sparse input; "
                        "make the layers that see the sparse input nn.Linear or "
                        "skcl.modules.SparseInputLinear, or use fisher='batch'"
                    )
                _add_vmap_sums(module, params, others, X_chunk, y_chunk, loss, sums, fourth)
    return sums


class _LinearRecorder:
    """Forward hooks recording each candidate layer's inputs and outputs."""

    def __init__(self, layers):
        self.calls = {layer: [] for layer in layers}
        self.handles = [layer.register_forward_hook(self._hook) for layer in layers]

    def _hook(self, layer, inputs, output):
        self.calls[layer].append((inputs[0].detach(), output))
        # a later in-place op (ReLU(inplace=True)) must not rewrite the tensor
        # whose gradient is the layer's delta
        return output.clone()

    def remove(self):
        for handle in self.handles:
            handle.remove()


def _linear_candidates(module, params):
    """{layer: (weight_name, bias_name)} for plain nn.Linear layers owning their parameters.

    A layer registered twice, or whose weight or bias is shared with another
    module (tied weights), is left out.
    """
    ids = {id(p): name for name, p in params.items()}
    param_counts, module_counts = {}, {}
    for _, p in module.named_parameters(remove_duplicate=False):
        param_counts[id(p)] = param_counts.get(id(p), 0) + 1
    for _, sub in module.named_modules(remove_duplicate=False):
        module_counts[id(sub)] = module_counts.get(id(sub), 0) + 1
    candidates = {}
    for _, sub in module.named_modules():
        plain_linear = isinstance(sub, nn.Linear) and type(sub).forward is nn.Linear.forward
        if not plain_linear and type(sub) is not SparseInputLinear:
            continue
        owned = [p for p in (sub.weight, sub.bias) if p is not None]
        names = (ids.get(id(sub.weight)),
                 ids.get(id(sub.bias)) if sub.bias is not None else None)
        if module_counts[id(sub)] != 1 or any(param_counts[id(p)] != 1 for p in owned):
            continue
        if names != (None, None):
            candidates[sub] = names
    return candidates


def _linear_layer_terms(module, params_or_layers, X_chunk, y_chunk, loss, check):
    """{layer: (names, inputs, delta)} for one chunk, per qualifying layer.

    With ``check=True`` (``params_or_layers`` the trainable parameters), the
    candidates are found and kept only if, in this chunk's forward, they are
    called once on 2-D input with one row per sample, and their summed
    gradient from autograd equals the identity's (which fails if their
    parameters are also used outside their forward, e.g.
    ``F.linear(h, self.fc.weight)``). With ``check=False``,
    ``params_or_layers`` are the layers already kept.
    """
    layers = (_linear_candidates(module, params_or_layers) if check
              else params_or_layers)
    if not layers:
        return {}
    recorder = _LinearRecorder(layers)
    try:
        output = module(X_chunk)
    finally:
        recorder.remove()
    n_rows = X_chunk.shape[0]
    called = {
        layer: names for layer, names in layers.items()
        if len(recorder.calls[layer]) == 1
        and recorder.calls[layer][0][0].ndim == 2
        and recorder.calls[layer][0][0].shape[0] == n_rows
    }
    if len(called) < len(layers) and not check:
        raise RuntimeError(
            "the module's forward changed between chunks (a Linear layer was not called "
            "once on 2-D input); use method='vmap'"
        )
    if not called:
        return {}
    losses = _check_losses(loss(output, y_chunk), n_rows)
    outputs = [recorder.calls[layer][0][1] for layer in called]
    checked = ([params_or_layers[name] for names in called.values() for name in names if name]
               if check else [])
    grads = torch.autograd.grad(losses.sum(), outputs + checked, allow_unused=True)
    param_grads = iter(grads[len(outputs):])
    terms = {}
    for (layer, names), output_grad in zip(called.items(), grads[:len(outputs)]):
        inputs = recorder.calls[layer][0][0]
        delta = (torch.zeros_like(recorder.calls[layer][0][1]) if output_grad is None
                 else output_grad)  # None: the layer's output does not reach the loss
        if check and not _identity_consistent(layer, names, inputs, delta, param_grads):
            continue
        terms[layer] = (names, inputs, delta)
    return terms


def _identity_consistent(layer, names, inputs, delta, param_grads):
    """True if autograd's summed gradients equal the identity's for the layer."""
    consistent = True
    for name, expected in zip(names, (_outer_sum(layer, delta, inputs), delta.sum(dim=0))):
        if not name:
            continue
        actual = next(param_grads)
        actual = torch.zeros_like(expected) if actual is None else actual
        scale = actual.abs().max().item() + expected.abs().max().item()
        if (actual - expected).abs().max().item() > 1e-4 * scale:
            consistent = False
    return consistent


def _outer_sum(layer, delta, inputs):
    """``sum_i delta_i a_i^T`` in the layout of the layer's weight.

    ``inputs`` may be a sparse (CSR/COO) tensor: the product is then a
    sparse-dense one and nothing is densified.
    """
    if isinstance(layer, SparseInputLinear):
        return inputs.t() @ delta
    return delta.T @ inputs


def _power(inputs, exponent):
    """Element-wise power, keeping sparse inputs sparse (0 ** p == 0 for p > 0)."""
    if inputs.layout == torch.sparse_csr:
        return torch_csr_values_map(inputs, lambda values: values.pow(exponent))
    if inputs.layout != torch.strided:
        inputs = inputs.coalesce()
        return torch.sparse_coo_tensor(inputs.indices(), inputs.values().pow(exponent),
                                       inputs.shape)
    return inputs.pow(exponent)


def _rows(X, start, stop, device=None):
    """Rows ``start:stop`` of a dense or sparse (CSR) tensor, on ``device``.

    ``X`` may live on the host while the module is on a GPU (a month larger
    than the device budget): only the chunk is moved.
    """
    rows = torch_csr_rows(X, start, stop) if X.layout == torch.sparse_csr else X[start:stop]
    return rows if device is None else rows.to(device)


def _module_device(module):
    parameter = next(module.parameters(), None)
    return None if parameter is None else parameter.device


def _take_rows(X, rows):
    """Rows ``rows`` (an index tensor) of a dense or sparse (CSR) tensor."""
    if X.layout == torch.sparse_csr:
        return torch_csr_take(X, rows)
    return X[rows]


def _add_linear_sums(terms, sums, fourth):
    # the identity, per layer: sum_i g_i**2 = (delta**2)^T (a**2), and with
    # fourth powers the same with delta**4 and a**4; a sparse input stays sparse
    for layer, ((weight_name, bias_name), inputs, delta) in terms.items():
        if fourth:
            delta, inputs = delta.double(), inputs.double()
        delta_sq, inputs_sq = delta.square(), _power(inputs, 2)
        if weight_name:
            sums[weight_name][0] += _outer_sum(layer, delta_sq, inputs_sq)
            if fourth:
                sums[weight_name][1] += _outer_sum(layer, delta_sq.square(),
                                                   _power(inputs, 4))
        if bias_name:
            sums[bias_name][0] += delta_sq.sum(dim=0)
            if fourth:
                sums[bias_name][1] += delta_sq.square().sum(dim=0)


def _add_vmap_sums(module, params, names, X_chunk, y_chunk, loss, sums, fourth):
    fixed = {name: p.detach() for name, p in params.items()}

    def sample_loss(selected, x, target):
        output = functional_call(module, {**fixed, **selected}, (x.unsqueeze(0),))
        return loss(output, target.unsqueeze(0)).sum()

    selected = {name: fixed[name] for name in names}
    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))(selected, X_chunk, y_chunk)
    for name, g in per_sample.items():
        if fourth:
            g = g.double()
        g = g.square_()
        sums[name][0] += g.sum(dim=0)
        if fourth:
            sums[name][1] += g.square_().sum(dim=0)

"""Growing the output layer when new classes arrive (``new_classes="grow"``).

A month that brings labels outside ``classes_`` appends them to ``classes_``
(in order of arrival, so no known class changes position) and the output
layer gains one row per added class. The old rows keep their weights exactly;
the new ones are drawn as a fresh layer of the same kind would draw them.
Nothing is changed in place: the grown module and its optimizer are new
objects, built from copies, and are put on the estimator only once every part
has succeeded, so a month that fails afterwards is rolled back by the
classifier's usual record of the old objects.

Which layer is the output layer:

1. the module's ``get_output_layer()`` if it defines one (the contract for a
   module whose head is not simply its last linear layer); it must return an
   ``nn.Linear`` or :class:`~skcl.modules.SparseInputLinear` of the module;
2. otherwise the last ``nn.Linear`` / ``SparseInputLinear`` of
   ``module.modules()`` (registration order), which must have one output
   per known class.

The optimizer keeps each old row's state (Adam's moments, SGD's momentum);
the new rows' state tensors start at zero, which is what a fresh optimizer
starts from. Per-tensor scalars (Adam's ``step``) are shared by the old and
new rows of one tensor and are kept; at Adam's defaults the new rows' first
updates are therefore up to about ``(1 - beta1) / sqrt(1 - beta2) = 3.2``
times larger than a fresh optimizer's (no bias correction of their zero
moments), settling over a few hundred steps.

Each fitted strategy is then told through its ``grow_classes(net, growth)``
method (see :class:`HeadGrowth`); a strategy with fitted state and no such
method is refused before anything changes, as its state would no longer
match the module.
"""

import copy
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from .modules import SparseInputLinear
from .utils._seeding import seeded_global_torch

__all__ = ["HeadGrowth", "find_output_layer", "grow_output_layer"]

# the axis of each parameter of a layer kind along which classes are laid out
_CLASS_AXES = {nn.Linear: {"weight": 0, "bias": 0},
               SparseInputLinear: {"weight": 1, "bias": 0}}


@dataclass(frozen=True)
class HeadGrowth:
    """What a strategy's ``grow_classes(net, growth)`` is told about a growth.

    Parameters
    ----------
    n_old : int
        Classes (output rows) before the growth.
    n_new : int
        Classes after it; rows ``n_old .. n_new - 1`` are the added ones.
    class_axes : dict of str to int
        For each parameter of the output layer, by its name in
        ``module.named_parameters()``, the axis along which the classes lie
        (``0`` for ``nn.Linear``'s weight and bias). Every other parameter
        keeps its shape.
    """

    n_old: int
    n_new: int
    class_axes: dict

    def pad(self, name, tensor, fill=0.0):
        """Return ``tensor`` (a value of parameter ``name``) grown by the new classes.

        Parameters
        ----------
        name : str
            The parameter's name; a parameter outside the output layer is
            returned as it is.
        tensor : torch.Tensor
            A tensor of the parameter's old shape (its weights, an importance,
            an anchor, an optimizer moment).
        fill : float or torch.Tensor, default=0.0
            The new entries: a scalar, or a tensor of the added part's shape.

        Returns
        -------
        grown : torch.Tensor
            The old entries, unchanged, followed along the class axis by
            ``fill``.
        """
        axis = self.class_axes.get(name)
        if axis is None:
            return tensor
        shape = list(tensor.shape)
        if shape[axis] != self.n_old:
            raise ValueError(
                f"{name!r} has {shape[axis]} entries along its class axis where "
                f"{self.n_old} classes were expected; it does not match the output layer"
            )
        shape[axis] = self.n_new - self.n_old
        if not isinstance(fill, torch.Tensor):
            fill = torch.full(shape, float(fill), dtype=tensor.dtype, device=tensor.device)
        return torch.cat([tensor, fill.to(tensor.device, tensor.dtype)], dim=axis)

    def grown_shape(self, name, shape):
        """Return the shape of parameter ``name`` after the growth.

        Parameters
        ----------
        name : str
            The parameter's name.
        shape : tuple of int
            Its shape before the growth.

        Returns
        -------
        shape : tuple of int
            The same shape, with ``n_new`` along the class axis of an output
            layer's parameter.
        """
        axis = self.class_axes.get(name)
        if axis is None:
            return tuple(shape)
        return tuple(self.n_new if i == axis else size for i, size in enumerate(shape))

    def pad_flat(self, flat, names, shapes, fill=0.0):
        """Grow a vector of parameters flattened and concatenated in ``names`` order.

        Parameters
        ----------
        flat : torch.Tensor of shape (n_params,)
            The parameters' values, flattened one after another.
        names : list of str
            The parameters' names, in the order of ``flat``.
        shapes : list of tuple
            Their shapes before the growth.
        fill : float, default=0.0
            The value of every new entry.

        Returns
        -------
        flat : torch.Tensor
            The grown vector, in the same order (shapes as :meth:`grown_shape`).
        """
        sizes = [int(torch.Size(shape).numel()) for shape in shapes]
        return torch.cat([self.pad(name, part.view(shape), fill).reshape(-1)
                          for name, shape, part in zip(names, shapes, flat.split(sizes))])


def find_output_layer(module, n_classes=None):
    """Return ``(name, layer)`` of the module's output layer.

    Parameters
    ----------
    module : torch.nn.Module
        The network.
    n_classes : int or None, default=None
        Outputs the layer must have when found by the fallback (the last
        linear layer); ``None`` checks nothing.

    Returns
    -------
    name : str
        The layer's name in ``module.named_modules()``.
    layer : torch.nn.Linear or skcl.modules.SparseInputLinear
        The layer.
    """
    names = {id(sub): name for name, sub in module.named_modules()}
    getter = getattr(module, "get_output_layer", None)
    if getter is not None:
        layer = getter()
        if id(layer) not in names or type(layer) not in _CLASS_AXES:
            raise TypeError(
                f"{type(module).__name__}.get_output_layer() returned "
                f"{type(layer).__name__}, but must return an nn.Linear or "
                "SparseInputLinear submodule of the module, whose rows new classes "
                "extend"
            )
        return names[id(layer)], layer
    linear = [(name, sub) for name, sub in module.named_modules()
              if type(sub) in _CLASS_AXES]
    if not linear:
        raise TypeError(
            f"{type(module).__name__} has no nn.Linear or SparseInputLinear layer, so "
            "its output layer cannot grow for new classes; define "
            "get_output_layer() returning it, or use new_classes='error'"
        )
    name, layer = linear[-1]
    if n_classes is not None and layer.out_features != n_classes:
        raise TypeError(
            f"the last linear layer of {type(module).__name__} ({name!r}) has "
            f"{layer.out_features} outputs, but {n_classes} classes are known, so it "
            "is not the output layer; define get_output_layer() returning the "
            "layer whose rows are the classes, or use new_classes='error'"
        )
    return name, layer


def grow_output_layer(net, n_old, seed, required=True):
    """Grow ``net.module_``'s output layer to ``len(net.classes_)`` rows.

    Builds a grown copy of the module, an optimizer over it holding the old
    state (padded with zeros for the new rows), and lets every fitted
    strategy follow (``grow_classes``); the estimator's ``module_`` and
    ``optimizer_`` are replaced only at the end.

    Parameters
    ----------
    net : ContinualClassifier
        The initialized estimator, ``classes_`` already grown.
    n_old : int
        Classes before this month.
    seed : int or None
        Seeds the new rows' draw (``None``: no seeding, e.g. on the meta device).
    required : bool, default=True
        Whether the module must grow; when False, a module whose output layer
        cannot be found, or already has a row per class, is left as it is.

    Returns
    -------
    growth : HeadGrowth or None
        What grew, or None when nothing did.
    """
    n_new = len(net.classes_)
    try:
        name, layer = find_output_layer(net.module_, n_classes=n_old if required else None)
    except TypeError:
        if required:
            raise
        return None
    if layer.out_features >= n_new:
        return None
    n_old = layer.out_features
    axes = {f"{name}.{key}" if name else key: axis
            for key, axis in _CLASS_AXES[type(layer)].items()
            if getattr(layer, key, None) is not None}
    growth = HeadGrowth(n_old=n_old, n_new=n_new, class_axes=axes)
    strategies = _strategies_to_grow(net)

    module = copy.deepcopy(net.module_)
    new_layer = module.get_submodule(name) if name else module
    param = new_layer.weight
    context = seeded_global_torch(seed, param.device) if seed is not None else nullcontext()
    with context, torch.no_grad(), torch.device(param.device):
        # drawn where the old rows live (CPU draws on a CPU, CUDA on CUDA), as
        # the module's own initialization drew them
        fresh = type(layer)(layer.in_features, n_new - n_old).to(dtype=param.dtype)
        for key, axis in _CLASS_AXES[type(layer)].items():
            old = getattr(new_layer, key, None)
            if old is None:
                continue
            grown = torch.cat([old.detach(), getattr(fresh, key).detach()], dim=axis)
            setattr(new_layer, key, nn.Parameter(grown, requires_grad=old.requires_grad))
    new_layer.out_features = n_new

    optimizer = None
    if getattr(net, "optimizer_", None) is not None:
        optimizer = _grown_optimizer(net, module, growth)
    for strategy in strategies:
        strategy.grow_classes(net, growth)
    net.module_ = module
    if optimizer is not None:
        net.optimizer_ = optimizer
    return growth


def _strategies_to_grow(net):
    """The fitted strategies that must follow the growth; refuse one that cannot."""
    strategies = []
    for attribute in ("regularizer_", "rehearsal_"):
        strategy = net.__dict__.get(attribute)
        if strategy is None:
            continue
        if hasattr(strategy, "grow_classes"):
            strategies.append(strategy)
        elif attribute == "regularizer_" and any(
                key.endswith("_") and not key.startswith("_") for key in vars(strategy)):
            raise TypeError(
                f"the regularizer {type(strategy).__name__} has fitted state and no "
                "grow_classes(net, growth) method, so its state cannot follow the "
                "output layer's new rows; implement grow_classes (see "
                "skcl.regularizers.Regularizer) or use new_classes='error'"
            )
    return strategies


def _grown_optimizer(net, module, growth):
    """A new optimizer over ``module`` holding the old one's state, grown."""
    old = net.optimizer_
    names = {id(p): name for name, p in net.module_.named_parameters()}
    state = old.state_dict()
    order = [p for group in old.param_groups for p in group["params"]]
    for index, param in enumerate(order):
        name = names.get(id(param))
        entry = state["state"].get(index)
        if name is None or entry is None or name not in growth.class_axes:
            continue
        # state_dict() shares the live per-parameter dicts: grow a copy
        entry = state["state"][index] = dict(entry)
        for key, value in list(entry.items()):
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                continue   # per-tensor scalars (Adam's step) stay
            if tuple(value.shape) != tuple(param.shape):
                raise TypeError(
                    f"{type(old).__name__} keeps state {key!r} of shape "
                    f"{tuple(value.shape)} for {name!r} of shape {tuple(param.shape)}; "
                    "only state shaped like its parameter can grow with new classes. "
                    "Use an optimizer such as Adam or SGD, or new_classes='error'"
                )
            entry[key] = growth.pad(name, value, 0.0)
    saved_module = net.module_
    net.__dict__["module_"] = module
    try:
        net.initialize_optimizer()
        optimizer = net.optimizer_
    finally:
        net.__dict__["module_"] = saved_module
        net.__dict__["optimizer_"] = old
    new_names = [{id(p): n for n, p in module.named_parameters()}.get(id(p))
                 for group in optimizer.param_groups for p in group["params"]]
    old_names = [names.get(id(p)) for p in order]
    if new_names != old_names:
        raise TypeError(
            "the optimizer built over the grown module does not hold the same "
            f"parameters in the same order ({old_names!r} before, {new_names!r} "
            "after), so its state cannot carry over; use new_classes='error'"
        )
    optimizer.load_state_dict(state)
    return optimizer


def shrink_to_state(net, state):
    """Cut ``net``'s output layer and ``classes_`` back to the classes of ``state``.

    For a snapshot (or any ``state_dict``) taken before classes were added:
    the copy of the estimator that holds it predicts the classes known then.
    Nothing happens when the sizes already agree or no output layer is found.

    Parameters
    ----------
    net : ContinualClassifier
        A copy of the estimator, about to load ``state``.
    state : dict of str to torch.Tensor
        The module's weights at that time.
    """
    try:
        name, layer = find_output_layer(net.module_)
    except TypeError:
        return
    prefix = f"{name}." if name else ""
    axes = _CLASS_AXES[type(layer)]
    saved = state.get(prefix + "weight")
    if saved is None or saved.shape[axes["weight"]] >= layer.out_features:
        return
    n_classes = saved.shape[axes["weight"]]
    with torch.no_grad():
        for key, axis in axes.items():
            old = getattr(layer, key, None)
            if old is not None:
                part = old.detach().narrow(axis, 0, n_classes).clone()
                setattr(layer, key, nn.Parameter(part, requires_grad=old.requires_grad))
    layer.out_features = n_classes
    net.classes_ = net.classes_[:n_classes]

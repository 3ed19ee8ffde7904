"""The compiled training step of ``ContinualClassifier(step="compiled")``.

One training step of the default path is two compiled graphs:

* ``_forward_loss``: the module's forward and the criterion, compiled with
  ``torch.compile``; AOTAutograd compiles their backward with them, so
  ``loss.backward()`` runs one compiled backward graph. Only on CUDA (as CUDA
  graphs): on a CPU compiling it did not measurably pay (see
  ``_COMPILED_FORWARD_DEVICES``), so it runs eagerly there.
* ``_adam_update`` / ``_sgd_update``: the built-in quadratic penalty's gradient
  (:class:`~skcl.L2`, :class:`~skcl.EWC`, :class:`~skcl.OnlineEWC`) added to the
  gradients, then torch's own functional optimizer update
  (``torch.optim.adam.adam`` / ``torch.optim.sgd.sgd``, the code ``step()``
  runs), fused into one graph.

Everything that changes between months enters as a tensor argument, never as
a captured constant: the parameters, gradients and optimizer state, the
learning rate, the penalty's center, weights, strength and offset. So a new
month's anchor or importances, a new ``lr``, a rollback that restores the
optimizer's state, or ``update="retrain"``'s fresh module and optimizer reuse
the graphs already compiled: torch guards on shapes and dtypes, not on which
tensor or module object is passed. The graphs live here, in module-level
functions shared by every estimator of the process; an estimator holds nothing
compiled, so pickling, ``clone``, ``deepcopy`` and ``save_weights`` see a plain
estimator, and a loaded one compiles again on its first step.

Which steps run eagerly instead (the classifier's own ``train_step``, exactly
as with ``step="eager"``), decided per step by :func:`compiled_train_step`:

* a batch whose row count is not the full ``batch_size`` (the last, partial
  batch of an epoch: one eager step rather than a recompilation);
* the first step of a fresh optimizer, which creates its state (the eager
  ``step()`` does, with torch's own code);
* anything the fused update cannot prove equivalent to the eager step: an
  optimizer other than ``Adam`` / ``AdamW`` / ``SGD`` (exact classes), several
  parameter groups or optimizers, ``fused`` / ``differentiable`` optimizers,
  a regularizer whose step hooks (``penalty``, ``add_penalty_grad``,
  ``batch_loss``, ``after_backward``) are not exactly the built-in quadratic
  penalties' (a custom penalty, or a subclass that redefines one), a
  built-in one whose penalized parameters are not the optimizer's, a callback
  with ``on_grad_computed`` (it must see the gradient before the update), a
  subclass that overrides a method of the step (``train_step_single``,
  ``get_loss``, ``infer``, ...), ``fit_params`` for the forward, or an
  ``NLLLoss`` criterion (skorch takes the log of the output first).
"""

import weakref

import torch
from skorch.callbacks import Callback
from skorch.utils import to_tensor
from torch.optim import adam as _adam
from torch.optim import sgd as _sgd

from .regularizers import L2

# Methods of the classifier that the compiled step replaces: a subclass that
# overrides any of them is never bypassed (its steps run eagerly).
_STEP_METHODS = ("train_step_single", "get_loss", "infer", "_zero_grad_optimizer",
                 "_step_optimizer", "get_train_step_accumulator")

# A regularizer's training-step hooks: the fused update reproduces them only
# when each one is the very function the built-in quadratic penalties share
# (L2, EWC, OnlineEWC: lam / 2 * sum(w * (theta - c) ** 2) + offset). A class
# that redefines any of them (a custom penalty, a gradient projection, a
# per-batch loss term) is stepped eagerly, with its own hooks.
_REGULARIZER_STEP_HOOKS = ("penalty", "add_penalty_grad", "batch_loss", "after_backward")

# Per optimizer object: its step plan (alignment with the penalty, reusable
# scalar tensors). Weak keys: a plan dies with its optimizer and is never pickled.
_PLANS = weakref.WeakKeyDictionary()


def _forward_loss(module, criterion, X, y):
    y_pred = module(X)
    return criterion(y_pred, y), y_pred


def _penalized_grads(params, grads, center, weight, lam):
    """Gradients plus ``lam * w * (theta - c)``, and ``sum(w * (theta - c) ** 2)``."""
    diff = torch.cat([p.reshape(-1) for p in params]) - center
    weighted = diff if weight is None else weight * diff
    parts = weighted.split([p.numel() for p in params])
    total = [g + lam * part.view_as(g) for g, part in zip(grads, parts)]
    return total, torch.dot(weighted, diff)


def _adam_update(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps,
                 lr, center, weight, lam, hyper):
    with torch.no_grad():
        squared = None
        if center is not None:
            grads, squared = _penalized_grads(params, grads, center, weight, lam)
        _adam.adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps,
                   foreach=False, capturable=hyper["capturable"], differentiable=False,
                   fused=None, has_complex=False,
                   decoupled_weight_decay=hyper["decoupled_weight_decay"],
                   amsgrad=hyper["amsgrad"], beta1=hyper["beta1"], beta2=hyper["beta2"],
                   lr=lr, weight_decay=hyper["weight_decay"], eps=hyper["eps"],
                   maximize=hyper["maximize"])
        return squared


def _sgd_update(params, grads, momentum_buffers, lr, center, weight, lam, hyper):
    with torch.no_grad():
        squared = None
        if center is not None:
            grads, squared = _penalized_grads(params, grads, center, weight, lam)
        _sgd.sgd(params, grads, momentum_buffers, has_sparse_grad=False, foreach=False,
                 fused=None, weight_decay=hyper["weight_decay"], momentum=hyper["momentum"],
                 lr=lr, dampening=hyper["dampening"], nesterov=hyper["nesterov"],
                 maximize=hyper["maximize"])
        return squared


_COMPILED = {}

# Where the forward/backward graph is compiled too. Not on a CPU: there the
# matrix products, most of the forward/backward, are the same library calls
# compiled or not, and compiling them measured no faster within the shared
# development box's noise (``bench_epoch.py --parts``, batch 256, one thread:
# 3.2-3.5 ms compiled against 3.1-3.6 ms eager, either ahead from run to run);
# epochs with and without it took the same share of eager skcl (0.86-0.94),
# and leaving it out cut the cold compile from ~95 s to ~35 s. On CUDA the
# eager step waits on the host's dispatch of each operation; CUDA graphs
# replay the whole forward/backward from one launch.
_COMPILED_FORWARD_DEVICES = ("cuda",)


def _compiled(fn, device_type):
    """``torch.compile(fn)``, made once per process; CUDA graphs on CUDA."""
    key = (fn.__name__, device_type)
    compiled = _COMPILED.get(key)
    if compiled is None:
        # "reduce-overhead" captures the forward/backward as CUDA graphs: one
        # launch per graph instead of one per operation. The update mutates the
        # optimizer state in place, which CUDA graphs take only for static
        # addresses, so it stays an ordinary (fused) inductor graph.
        mode = "reduce-overhead" if device_type == "cuda" and fn is _forward_loss else None
        compiled = _COMPILED.setdefault(key, torch.compile(fn, mode=mode))
    return compiled


class _Plan:
    """What one optimizer's compiled steps reuse: scalars and the penalty's alignment."""

    def __init__(self, device):
        self.device = device
        self.scalars = {}
        self.penalty_key = None
        self.penalty_aligned = False

    def scalar(self, name, value):
        # one 0-dim float64 tensor per scalar, refilled when the value changes:
        # a value the graph reads as an input, never a constant it recompiles for
        cached = self.scalars.get(name)
        if cached is None or cached[0] != value:
            tensor = torch.full((), value, dtype=torch.float64, device=self.device)
            self.scalars[name] = cached = (value, tensor)
        return cached[1]


def _plan_for(optimizer, params):
    plan = _PLANS.get(optimizer)
    if plan is None:
        plan = _PLANS[optimizer] = _Plan(params[0].device)
    return plan


def _eligible_net(net, base):
    """Whether nothing about the estimator requires the eager step (cheap checks)."""
    cls = type(net)
    if any(getattr(cls, name) is not getattr(base, name) for name in _STEP_METHODS):
        return False
    if len(net._optimizers) != 1 or isinstance(net.criterion_, torch.nn.NLLLoss):
        return False
    for _, callback in net.callbacks_:
        if type(callback).on_grad_computed is not Callback.on_grad_computed:
            return False
    return True


def _optimizer_kind(optimizer, params):
    """``"adam"``, ``"sgd"`` or ``None`` (eager) for an optimizer whose state is ready."""
    if len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    kind = {torch.optim.Adam: "adam", torch.optim.AdamW: "adam",
            torch.optim.SGD: "sgd"}.get(type(optimizer))
    if kind is None or group.get("fused") or group.get("differentiable"):
        return None
    if kind == "adam" and len(optimizer.state) != len(params):
        return None  # the first step creates the state: eagerly, by torch
    if kind == "sgd" and group["momentum"] and len(optimizer.state) != len(params):
        return None
    return kind


def _penalty(regularizer, module, params, plan):
    """``(center, weight, lam, offset)`` for the fused penalty, ``()`` for none, or ``None``.

    ``None`` means eager: a regularizer whose hooks are not the built-in
    quadratic ones, or whose penalized parameters are not exactly the
    optimizer's, in the same order.
    """
    if regularizer is None:
        return ()
    cls = type(regularizer)
    if any(getattr(cls, name, None) is not getattr(L2, name, None)
           for name in _REGULARIZER_STEP_HOOKS):
        return None
    center = regularizer.__dict__.get("penalty_center_")
    if center is None or regularizer.lam == 0:
        return ()  # add_penalty_grad adds nothing then
    key = (center, module)
    if plan.penalty_key is None or any(a is not b for a, b in zip(plan.penalty_key, key)):
        named = dict(module.named_parameters())
        penalized = [named.get(name) for name in regularizer.param_names_]
        plan.penalty_aligned = (len(penalized) == len(params) and all(
            a is b for a, b in zip(penalized, params))
            and center.numel() == sum(p.numel() for p in params))
        plan.penalty_key = key
    if not plan.penalty_aligned:
        return None
    return (center, regularizer.penalty_weight_, float(regularizer.lam),
            float(regularizer.penalty_offset_ or 0.0))


def compiled_train_step(net, batch, fit_params, base):
    """Run one training step through the compiled graphs, or return ``None``.

    ``None`` asks the caller to run its eager ``train_step`` for this batch
    (see the module docstring for when). Otherwise the step matches the eager
    one: gradients zeroed, forward, loss, backward, the built-in penalty's
    gradient, the optimizer's update, and the returned loss includes the
    penalty's value.

    Parameters
    ----------
    net : ContinualClassifier
        The estimator being trained (initialized).
    batch : tuple
        One batch of the training iterator, ``(X, y)``.
    fit_params : dict
        Extra arguments for the module's forward; any make the step eager.
    base : type
        The class whose step methods the compiled step stands for; a subclass
        overriding one of them is stepped eagerly.

    Returns
    -------
    step : dict or None
        ``{"loss": loss, "y_pred": y_pred}``, both detached, or ``None``.
    """
    if fit_params or not isinstance(batch, (tuple, list)) or len(batch) != 2:
        return None
    X, y = batch
    if not (isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor)):
        return None
    if X.layout != torch.strided:
        return None  # sparse batches: the graphs are traced for dense input
    batch_rows = net.__dict__.get("iterator_train__batch_size", net.batch_size)
    if batch_rows != -1 and X.shape[0] != batch_rows:
        return None  # the last, partial batch: eager, not one more graph
    if not _eligible_net(net, base):
        return None
    optimizer = net.optimizer_
    params = optimizer.param_groups[0]["params"]
    kind = _optimizer_kind(optimizer, params)
    if kind is None:
        return None
    plan = _plan_for(optimizer, params)
    penalty = _penalty(getattr(net, "regularizer_", None), net.module_, params, plan)
    if penalty is None:
        return None

    module = net.module_
    device = params[0].device
    net._set_training(True)
    optimizer.zero_grad()
    if device.type == "cuda":
        torch.compiler.cudagraph_mark_step_begin()
    forward_loss = _forward_loss
    if device.type in _COMPILED_FORWARD_DEVICES:
        forward_loss = _compiled(_forward_loss, device.type)
    loss, y_pred = forward_loss(
        module, net.criterion_, to_tensor(X, device=device), to_tensor(y, device=device))
    loss.backward()
    loss, y_pred = loss.detach(), y_pred.detach()
    if device.type == "cuda":
        # replaying the graph overwrites its outputs: keep this step's apart
        loss, y_pred = loss.clone(), y_pred.clone()

    grads = [p.grad for p in params]
    if any(g is None for g in grads):
        # a parameter the forward did not use: torch's step skips it, so must we
        regularizer = getattr(net, "regularizer_", None)
        if regularizer is not None:
            loss = loss + regularizer.add_penalty_grad(module)
        optimizer.step()
        return {"loss": loss, "y_pred": y_pred}

    group = optimizer.param_groups[0]
    lr = plan.scalar("lr", float(group["lr"]))
    if penalty:
        center, weight, lam, offset = penalty
        lam_tensor = plan.scalar("lam", lam)
    else:
        center = weight = lam_tensor = None
    if kind == "adam":
        state = [optimizer.state[p] for p in params]
        beta1, beta2 = group["betas"]
        hyper = {"amsgrad": group["amsgrad"], "beta1": beta1, "beta2": beta2,
                 "weight_decay": group["weight_decay"], "eps": group["eps"],
                 "maximize": group["maximize"], "capturable": group["capturable"],
                 "decoupled_weight_decay": group.get("decoupled_weight_decay", False)}
        squared = _compiled(_adam_update, device.type)(
            params, grads, [s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state],
            [s["max_exp_avg_sq"] for s in state] if group["amsgrad"] else [],
            [s["step"] for s in state], lr, center, weight, lam_tensor, hyper)
    else:
        buffers = [optimizer.state[p].get("momentum_buffer") for p in params]
        hyper = {"weight_decay": group["weight_decay"], "momentum": group["momentum"],
                 "dampening": group["dampening"], "nesterov": group["nesterov"],
                 "maximize": group["maximize"]}
        squared = _compiled(_sgd_update, device.type)(
            params, grads, buffers, lr, center, weight, lam_tensor, hyper)
    if penalty:
        # the penalty's value, as add_penalty_grad returns it
        loss = loss + (squared + offset) * (0.5 * lam)
    return {"loss": loss, "y_pred": y_pred}

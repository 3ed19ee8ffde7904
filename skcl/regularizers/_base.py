"""The strategy contract: ``Regularizer`` and how the classifier picks its hooks."""

import functools

import torch
from sklearn.base import BaseEstimator

from ..utils._rollback import save_shallow_state
from ..utils._sklearn_compat import check_parameter_constraints


class Regularizer(BaseEstimator):
    """Base class of loss- and gradient-level strategies.

    A strategy is one small scikit-learn-style class: store the constructor's
    parameters verbatim (so ``clone`` and ``regularizer__<param>`` work), keep
    fitted state in attributes ending with ``_``, and implement
    ``consolidate`` plus whichever of the three training hooks it needs:

    ``penalty(module) -> tensor``
        A term on the weights alone, added to every training loss (EWC, L2).
    ``batch_loss(net, X, y, y_pred, n_months_seen) -> tensor or None``
        A term that sees the training batch and the model's output on it
        (distillation: :class:`LwF`, :class:`DERpp`).
    ``after_backward(net, X, y) -> tensor or None``
        Runs after ``backward()`` and may change the gradients in place
        (:class:`AGEM`'s projection, :class:`SI`'s path integral); what it
        returns is added to the step's recorded loss.

    :class:`~skcl.ContinualClassifier` clones the object into
    ``regularizer_`` at the first month, calls the hooks a subclass overrides
    (and only those) at every training step, and calls
    ``consolidate(net, X, y)`` after every month, the first included.
    Tensors kept in fitted attributes should live on the module's device; the
    classifier maps them to the CPU when a CUDA-trained model is loaded on a
    CPU-only machine. The classifier also calls two protocol methods, whose
    defaults suit most strategies: :meth:`check_params` before any training,
    and :meth:`save_state` before every month (its rollback).

    The fast penalty path: a regularizer may also implement
    ``add_penalty_grad(module) -> tensor``, which adds the penalty's exact
    gradient into each parameter's ``.grad`` (outside autograd) and returns
    the penalty's value, detached. :meth:`after_backward` then calls it
    instead of the penalty entering the loss, which saves differentiating the
    penalty through autograd at every step. It is used only where it
    provably computes the same penalty: where ``add_penalty_grad`` is defined
    in the same class as ``penalty`` or in a subclass of it. A subclass that
    overrides ``penalty`` alone (``class LoudL2(L2)``) therefore trains with
    its own ``penalty``; set the class attribute ``add_penalty_grad = None``
    to force the general path. For a quadratic penalty, derive from
    :class:`ImportanceRegularizer` and implement ``estimate_importance``
    only.

    With ``ContinualClassifier(new_classes="grow")``, a month that brings new
    classes grows the output layer before it trains; a strategy with fitted
    state then needs ``grow_classes(net, growth)``, which brings that state to
    the grown shapes (``growth`` names the output layer's parameters, their
    class axes and the class counts before and after; see
    :ref:`new_classes`). The built-in strategies implement it; a strategy with
    fitted state and no such method is refused at the first growth.

    Read more in the :ref:`User Guide <custom_regularizer>`.

    See Also
    --------
    ImportanceRegularizer : The quadratic family, one method deep.
    L2, EWC, OnlineEWC, SI, MAS, LwF, AGEM, DERpp : The built-in strategies.

    Examples
    --------
    A penalty on the absolute drift of every weight since the last month:

    >>> import torch
    >>> from skcl import ContinualClassifier
    >>> from skcl.datasets import make_drifting_stream
    >>> from skcl.regularizers import Regularizer
    >>> class L1Drift(Regularizer):
    ...     def __init__(self, lam=1.0):
    ...         self.lam = lam
    ...
    ...     def penalty(self, module):
    ...         if not hasattr(self, "anchor_"):
    ...             return torch.zeros((), device=next(module.parameters()).device)
    ...         drift = [(p - a).abs().sum()
    ...                  for p, a in zip(module.parameters(), self.anchor_)]
    ...         return self.lam * torch.stack(drift).sum()
    ...
    ...     def consolidate(self, net, X, y):
    ...         self.anchor_ = [p.detach().clone() for p in net.module_.parameters()]
    ...         return self
    >>> X, y, months = make_drifting_stream(n_months=2, n_samples_per_month=60,
    ...                                     random_state=0)
    >>> clf = ContinualClassifier(regularizer=L1Drift(lam=0.1), max_epochs=1,
    ...                           random_state=0).fit(X, y, months=months)
    >>> len(clf.regularizer_.anchor_) == len(list(clf.module_.parameters()))
    True
    """

    def check_params(self):
        """Check the hyper-parameters; raise before any training if one is invalid.

        Called by :class:`~skcl.ContinualClassifier` at the start of every
        ``fit`` / ``partial_fit``. The default validates the class's
        ``_parameter_constraints`` (scikit-learn's declarative constraints),
        if it declares any. Safe to override if the signature is kept (call
        ``super()``).

        Raises
        ------
        sklearn.utils._param_validation.InvalidParameterError
            A parameter out of its declared range (a ``ValueError``).
        """
        if getattr(self, "_parameter_constraints", None) is not None:
            check_parameter_constraints(self)

    def save_state(self):
        """Record the fitted state; return the function that puts it back.

        Called by :class:`~skcl.ContinualClassifier` before every month, so a
        month that fails leaves the strategy exactly as it was. The default
        records the attributes by reference, which is correct when fitted
        attributes are replaced, never changed in place (the convention the
        built-in strategies follow). Override it (keeping the signature) for
        state changed in place, as the strategies with a replay memory do.

        Returns
        -------
        restore : callable
            Called without arguments, puts the recorded state back.
        """
        return save_shallow_state(self)

    def _count_consolidation(self):
        # the built-in strategies' month counter, n_consolidations_
        self.n_consolidations_ = self.__dict__.get("n_consolidations_", 0) + 1

    def penalty(self, module):
        """Return the penalty for ``module``'s current weights, a scalar tensor.

        Optional: implement it for a term on the weights alone. Must be
        differentiable with respect to the module's parameters and return a
        zero tensor on the module's device before the first consolidation.

        Parameters
        ----------
        module : torch.nn.Module
            The network being trained.

        Returns
        -------
        penalty : torch.Tensor of shape ()
            The penalty, a scalar on the module's device, added to the
            criterion's loss at every training step.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement penalty(module)"
        )

    def batch_loss(self, net, X, y, y_pred, n_months_seen):
        """Return a loss term for one training batch, or ``None`` for none.

        Optional: implement it for a term that needs the batch or the model's
        output on it. Called in every training step (never for validation or
        scoring), after the forward pass; the term is added to the criterion's
        loss before ``backward()``, so it must be differentiable through
        ``y_pred`` or the module's parameters. Forward passes of its own
        (replayed rows) run with the module in training mode, as the batch's.

        Parameters
        ----------
        net : skorch.NeuralNet
            The classifier being trained (``net.module_``, ``net.device``).
        X : torch.Tensor of shape (n_samples, n_features)
            The batch's inputs, on the net's device.
        y : torch.Tensor of shape (n_samples,)
            The batch's encoded labels.
        y_pred : torch.Tensor of shape (n_samples, n_classes)
            The module's output on ``X`` (logits with the default module),
            part of the autograd graph.
        n_months_seen : int
            The classifier's ``n_months_seen_``: months trained before this
            one (0 during the first month). Passed positionally, so an
            override may name it as it likes (it was ``month_index``).

        Returns
        -------
        term : torch.Tensor of shape () or None
            Added to the batch's training loss; ``None`` adds nothing.
        """
        return None

    def after_backward(self, net, X, y):
        """Adjust the gradients after ``backward()``; return a value for the loss record.

        Called in every training step right after ``backward()`` (before
        callbacks' ``on_grad_computed`` and the optimizer step), when a
        subclass overrides it or uses the fast penalty path. The default
        implementation is that path: when ``add_penalty_grad`` applies (see
        the class docstring), it adds the penalty's gradient and returns its
        value. Overrides that keep the penalty should call ``super()`` last and
        return what it returns. Safe to override if the signature is kept.

        Parameters
        ----------
        net : skorch.NeuralNet
            The classifier being trained; the gradients are in the ``.grad``
            of ``net.module_``'s parameters.
        X : torch.Tensor of shape (n_samples, n_features)
            The batch's inputs.
        y : torch.Tensor of shape (n_samples,)
            The batch's encoded labels.

        Returns
        -------
        value : torch.Tensor of shape () or None
            Added (detached) to the step's recorded training loss; ``None``
            adds nothing.
        """
        if uses_fast_penalty(type(self)):
            return self.add_penalty_grad(net.module_)
        return None

    def consolidate(self, net, X, y):
        """Update the fitted state after a month of training.

        Parameters
        ----------
        net : skorch.NeuralNet
            The trained net (``net.module_``, ``net.criterion_``).
        X : torch.Tensor of shape (n_samples, n_features)
            The month's rows, on the net's device.
        y : torch.Tensor of shape (n_samples,)
            The month's encoded labels (indices into ``classes_``), on the
            net's device.

        Returns
        -------
        self : Regularizer
            The regularizer, with its fitted state updated.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement consolidate(net, X, y)"
        )


def _defining_class(cls, name):
    """The first class of ``cls``'s MRO whose own namespace defines ``name``."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass
    return None


@functools.cache
def uses_fast_penalty(cls):
    """True if ``add_penalty_grad`` provably computes ``cls``'s own penalty.

    That is: it is set (not ``None``) and defined in the class that defines
    ``penalty`` or in a subclass of it, so no subclass changed ``penalty``
    after the fast hook was written.
    """
    fast, penalty = _defining_class(cls, "add_penalty_grad"), _defining_class(cls, "penalty")
    if fast is None or cls.add_penalty_grad is None:
        return False
    return penalty is None or issubclass(fast, penalty)


class TrainingHooks:
    """Which hooks of a strategy class run at each training step (resolved once per class)."""

    def __init__(self, cls):
        def overrides(name):
            method = getattr(cls, name, None)
            return method is not None and method is not getattr(Regularizer, name)

        fast = uses_fast_penalty(cls)
        has_after_backward = getattr(cls, "after_backward", None) is not None
        self.penalty = overrides("penalty") and not fast
        self.batch_loss = overrides("batch_loss")
        self.after_backward = overrides("after_backward") or (fast and has_after_backward)
        # a duck-typed strategy with add_penalty_grad but no after_backward
        self.add_penalty_grad = fast and not has_after_backward

    def __repr__(self):
        used = [name for name, on in vars(self).items() if on]
        return f"TrainingHooks({', '.join(used)})"


@functools.cache
def training_hooks(cls):
    """The :class:`TrainingHooks` of a strategy class (cached)."""
    return TrainingHooks(cls)


def zero_like_parameters(module):
    """A zero scalar on the module's device, in its parameters' dtype."""
    for p in module.parameters():
        return torch.zeros((), device=p.device, dtype=p.dtype)
    return torch.zeros(())

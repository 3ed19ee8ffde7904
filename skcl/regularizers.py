"""Loss-level continual-learning strategies: L2, EWC and online EWC.

A regularizer is a small scikit-learn-style parameter object passed as
``ContinualClassifier(regularizer=...)`` and tuned as ``regularizer__lam``. It
implements two hooks:

* ``penalty(module) -> torch scalar``, added to the training loss at every
  step (never to the validation loss or the score);
* ``consolidate(net, X, y) -> self``, called after every month with the
  month's rows, to snapshot the anchor weights and update the importances.

The built-in ones also implement the optional fast hook
``add_penalty_grad(module) -> torch scalar``, which the classifier calls after
``backward()`` instead of differentiating ``penalty`` (see :class:`Regularizer`).

The math (Fisher and Hessian estimates) lives in :mod:`skcl.fisher`.
"""

import math
import weakref
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from skorch import NeuralNetClassifier

from .fisher import (
    _take_rows,
    _trainable_parameters,
    batch_fisher,
    empirical_fisher,
    fisher_variance,
    hessian_diagonal,
    per_sample_loss,
)
from .utils._sklearn_compat import Interval, StrOptions, check_parameter_constraints

__all__ = ["Regularizer", "L2", "EWC", "OnlineEWC"]


class Regularizer(BaseEstimator):
    """Base class of loss-level strategies: implement ``penalty`` and ``consolidate``.

    A custom regularizer is one small class: store the constructor's
    parameters verbatim (the scikit-learn rule, so ``clone`` and
    ``regularizer__<param>`` work), keep fitted state in attributes ending with
    ``_`` created by ``consolidate``, and return a scalar tensor from
    ``penalty``. :class:`~skcl.ContinualClassifier` clones the object into
    ``regularizer_`` at the first month, adds ``regularizer_.penalty(module_)``
    to every training loss and calls ``regularizer_.consolidate(self, X, y)``
    after every month, the first included. Tensors kept in fitted attributes
    should live on the module's device; the classifier maps them to the CPU
    when a CUDA-trained model is loaded on a CPU-only machine.

    Optional fast hook: a regularizer MAY also implement
    ``add_penalty_grad(module) -> torch scalar``, which adds the penalty's
    exact gradient with respect to each trainable parameter into its ``.grad``
    (outside autograd) and returns the penalty's value, detached. When it
    exists, the classifier no longer adds ``penalty`` to the training loss:
    it calls ``add_penalty_grad(module_)`` right after ``backward()`` in each
    training step and adds the returned value to the step's recorded loss,
    which saves differentiating the penalty through autograd at every step.
    The two hooks must then agree (same value, gradient equal to the
    gradient of ``penalty``); a subclass of a built-in regularizer that
    overrides ``penalty`` must override ``add_penalty_grad`` too, or set the
    class attribute ``add_penalty_grad = None`` to use ``penalty``. The built-in
    :class:`L2`, :class:`EWC` and :class:`OnlineEWC` implement it; a custom
    regularizer needs only ``penalty`` and ``consolidate``.

    Read more in the :ref:`User Guide <custom_regularizer>`.

    See Also
    --------
    L2, EWC, OnlineEWC : The built-in regularizers.

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

    def penalty(self, module):
        """Return the penalty for ``module``'s current weights, a scalar tensor.

        Must be differentiable with respect to the module's parameters and
        return a zero tensor on the module's device before the first
        consolidation.

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


class _QuadraticRegularizer(Regularizer):
    """Penalty ``lam / 2 * (sum(w * (theta - c) ** 2) + offset)`` over flattened weights.

    Subclasses set ``param_names_``, ``penalty_center_``, ``penalty_weight_``
    (``None`` for all ones) and ``penalty_offset_`` in ``consolidate``. The
    per-step cost is one concatenation of the parameters and one fused
    expression, whatever the number of months. ``add_penalty_grad`` (what the
    classifier uses) applies the gradient ``lam * w * (theta - c)`` directly,
    without autograd.
    """

    def __getstate__(self):
        state = super().__getstate__()
        # the cached parameter list refers to one module object: rebuilt lazily
        state.pop("_grad_cache", None)
        return state

    def penalty(self, module):
        if "penalty_center_" not in self.__dict__ or self.lam == 0:
            return _zero(module)
        diff = self._flat_parameters(module) - self.penalty_center_
        if self.penalty_weight_ is None:
            total = diff.square().sum()
        else:
            total = torch.dot(self.penalty_weight_, diff.square())
        if self.penalty_offset_:
            total = total + self.penalty_offset_
        return 0.5 * self.lam * total

    def add_penalty_grad(self, module):
        """Add the penalty's gradient into the parameters' ``.grad``; return its value.

        The fast path of :meth:`penalty`, called by
        :class:`~skcl.ContinualClassifier` after ``backward()`` in each
        training step: adds ``lam * w * (theta - c)`` into each penalized
        parameter's ``.grad`` (created as zeros where it is ``None``) under
        ``torch.no_grad()``, in a few operations on the flattened parameters.

        Parameters
        ----------
        module : torch.nn.Module
            The network being trained.

        Returns
        -------
        penalty : torch.Tensor of shape ()
            The penalty's value, detached, on the module's device: the same as
            :meth:`penalty` returns. Zero, with no gradient touched, before the
            first consolidation or when ``lam`` is 0.
        """
        if "penalty_center_" not in self.__dict__ or self.lam == 0:
            return _zero(module)
        params, sizes, shapes = self._penalized_parameters(module)
        lam = float(self.lam)
        with torch.no_grad():
            diff = torch.cat([p.reshape(-1) for p in params])
            if diff.shape != self.penalty_center_.shape:
                self._flat_parameters(module)  # raises the error naming the change
            diff.sub_(self.penalty_center_)
            weighted = diff if self.penalty_weight_ is None else self.penalty_weight_ * diff
            grads = []
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                grads.append(p.grad)
            parts = [part.view(shape) for part, shape
                     in zip(weighted.split(sizes), shapes)]
            torch._foreach_add_(grads, parts, alpha=lam)
            total = torch.dot(weighted, diff)
            if self.penalty_offset_:
                total = total + self.penalty_offset_
            return total.mul_(0.5 * lam)

    def _penalized_parameters(self, module):
        """The penalized parameters of ``module``, their sizes and shapes (cached)."""
        cache = self.__dict__.get("_grad_cache")
        if (cache is None or cache[0]() is not module
                or cache[1] is not self.penalty_center_):
            named = dict(module.named_parameters())
            try:
                params = [named[name] for name in self.param_names_]
            except KeyError:
                self._flat_parameters(module)  # raises the error naming the change
                raise
            shapes = [p.shape for p in params]
            sizes = [p.numel() for p in params]
            cache = (weakref.ref(module), self.penalty_center_, params, sizes, shapes)
            self._grad_cache = cache
        return cache[2], cache[3], cache[4]

    def _flat_parameters(self, module):
        named = dict(module.named_parameters())
        try:
            params = [named[name] for name in self.param_names_]
        except KeyError as exc:
            raise ValueError(
                f"the module has no parameter {exc.args[0]!r}, which "
                f"{type(self).__name__} was consolidated with: the module changed "
                "after training started; call fit to start over"
            ) from None
        theta = torch.cat([p.reshape(-1) for p in params])
        if theta.shape != self.penalty_center_.shape:
            raise ValueError(
                f"the module's parameters have {theta.numel()} entries, but "
                f"{type(self).__name__} was consolidated with "
                f"{self.penalty_center_.numel()}: the module changed after training "
                "started; call fit to start over"
            )
        return theta

    def _snapshot(self, module):
        """Check the parameter names and return the current weights, flattened."""
        params = _trainable_parameters(module)
        names = list(params)
        if not names:
            raise ValueError(
                f"the module has no trainable parameter, so {type(self).__name__} "
                "has nothing to regularize"
            )
        if "param_names_" in self.__dict__ and names != self.param_names_:
            raise ValueError(
                f"the module's trainable parameters are {names!r}, but "
                f"{type(self).__name__} was consolidated with {self.param_names_!r}; "
                "freeze or unfreeze parameters before the first month only"
            )
        self.param_names_ = names
        self.param_shapes_ = [tuple(p.shape) for p in params.values()]
        return torch.cat([p.detach().reshape(-1) for p in params.values()]).clone()

    def _as_dict(self, flat):
        """Name -> view of ``flat`` with each parameter's shape."""
        sizes = [math.prod(shape) for shape in self.param_shapes_]
        return {name: part.view(shape) for name, part, shape
                in zip(self.param_names_, flat.split(sizes), self.param_shapes_)}


class L2(_QuadraticRegularizer):
    r"""Quadratic pull towards the weights after the previous month.

    .. math:: \frac{\lambda}{2} \sum_j (\theta_j - \theta^{\text{prev}}_j)^2

    The anchor :math:`\theta^{\text{prev}}` is replaced after every month. This
    is weight decay towards the last model instead of towards zero: every
    weight is held equally, whatever its importance (compare :class:`EWC`).

    Read more in the :ref:`User Guide <l2_regularizer>`.

    Parameters
    ----------
    lam : float, default=1.0
        Strength :math:`\lambda` of the penalty, >= 0. ``0`` trains exactly as
        without a regularizer.

    Attributes
    ----------
    anchor_ : dict of str to torch.Tensor
        The weights after the last month, per trainable parameter, on the
        module's device.
    param_names_ : list of str
        Names of the penalized (trainable) parameters, in order.
    param_shapes_ : list of tuple
        Their shapes.
    penalty_center_ : torch.Tensor of shape (n_params,)
        The anchor, flattened (``anchor_`` holds views of it).
    penalty_weight_ : None
        Every weight counts once.
    penalty_offset_ : float
        0.0.
    n_consolidations_ : int
        Months consolidated so far.

    See Also
    --------
    EWC : The same pull, weighted by each weight's importance.

    Examples
    --------
    >>> from skcl import ContinualClassifier, L2
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=2, n_samples_per_month=60,
    ...                                     random_state=0)
    >>> clf = ContinualClassifier(regularizer=L2(lam=1.0), max_epochs=1,
    ...                           random_state=0).fit(X, y, months=months)
    >>> clf.regularizer_.n_consolidations_
    2
    """

    _parameter_constraints = {"lam": [Interval(Real, 0, None, closed="left")]}

    def __init__(self, lam=1.0):
        self.lam = lam

    def consolidate(self, net, X, y):
        """Snapshot the current weights as the anchor of the next month.

        Parameters
        ----------
        net : skorch.NeuralNet
            The trained net.
        X, y : torch.Tensor
            The month's rows and encoded labels (unused).

        Returns
        -------
        self : L2
            The regularizer, anchored at the net's current weights.
        """
        check_parameter_constraints(self)
        anchor = self._snapshot(net.module_)
        self.penalty_center_ = anchor
        self.penalty_weight_ = None
        self.penalty_offset_ = 0.0
        self.anchor_ = self._as_dict(anchor)
        self.n_consolidations_ = self.__dict__.get("n_consolidations_", 0) + 1
        return self


_FISHER_PARAMETER_CONSTRAINTS = {
    "lam": [Interval(Real, 0, None, closed="left")],
    "fisher": [StrOptions({"empirical", "hessian", "variance", "batch"})],
    "max_samples": [Interval(Integral, 1, None, closed="left"), None],
    "hessian_method": [StrOptions({"auto", "exact", "hutchinson"})],
    "n_probes": [Interval(Integral, 1, None, closed="left")],
    "negative": [StrOptions({"keep", "clip", "abs"})],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
}

_IMPORTANCE_PARAMETERS_DOC = """
    fisher : {"empirical", "hessian", "variance", "batch"}, default="empirical"
        The importance estimate, computed on the month's rows at the trained
        weights (module in ``eval()`` mode), with the net's criterion per
        sample, as returned by the ``get_loss_fn(net)`` method (built with
        :func:`skcl.fisher.per_sample_loss`; override the method for a
        criterion whose per-sample form does not take the module's output and
        the encoded labels):

        * ``"empirical"``: the diagonal empirical Fisher, the mean over samples
          of the squared per-sample gradient, computed exactly
          (:func:`skcl.fisher.empirical_fisher`; fast for ``nn.Linear`` layers,
          general through ``torch.func`` for any other parameter).
        * ``"hessian"``: the diagonal of the Hessian of the mean loss
          (:func:`skcl.fisher.hessian_diagonal`), exact or estimated, see
          ``hessian_method``; entries can be negative, see ``negative``.
        * ``"variance"``: the variance over *samples* of the per-sample squared
          gradients (:func:`skcl.fisher.fisher_variance`), weighting a weight
          by how unevenly the samples depend on it. Over samples, not
          mini-batches: it is exact, comes from the same pass as the mean, and
          does not depend on a batch size (a variance of mini-batch estimates
          shrinks like ``1 / batch_size``). Its scale (fourth powers of
          gradients) differs from the Fisher's: tune ``lam`` separately.
        * ``"batch"``: squared mini-batch gradients of ``batch_size`` rows
          (:func:`skcl.fisher.batch_fisher`): one plain training pass, but
          biased (shrunk roughly by ``1 / batch_size``); a shortcut, not the
          Fisher.
    max_samples : int or None, default=None
        Estimate from at most this many of the month's rows, drawn at random
        without replacement (``random_state``). ``None`` uses every row.
    hessian_method : {"auto", "exact", "hutchinson"}, default="auto"
        For ``fisher="hessian"``: ``"exact"`` costs one Hessian-vector product
        per parameter; ``"hutchinson"`` costs ``n_probes`` of them and is
        unbiased but noisy; ``"auto"`` is exact up to 512 trainable parameters.
    n_probes : int, default=100
        Rademacher probes of Hutchinson's estimator.
    negative : {"clip", "abs", "keep"}, default="clip"
        What to do with negative importances (only ``fisher="hessian"``
        produces them). ``"clip"`` sets them to zero: negative curvature
        means moving the weight lowers the past months' loss to second order,
        so it deserves no pull, and Hutchinson's noise puts small true values
        on either side of zero (on the default ReLU ``MLP``, whose exact
        diagonal is non-negative, about 40% of the entries of a 100-probe
        estimate came out negative on the embedded stream: all noise).
        ``"abs"`` uses their magnitude (as in saddle-free Newton methods).
        ``"keep"`` keeps them, which makes the
        penalty unbounded below (training can push such weights away without
        limit): for experiments only.
    batch_size : int, default=256
        Rows per chunk during estimation: memory only, except for
        ``fisher="batch"`` where it is the mini-batch size.
    random_state : int, RandomState instance or None, default=None
        Seeds the row subsample and Hutchinson's probes; an int gives a
        different, reproducible draw at each month. ``None`` draws from torch's
        global generator, which :class:`~skcl.ContinualClassifier` seeds from
        its own ``random_state`` during each month.
"""


class _ImportanceRegularizer(_QuadraticRegularizer):
    """Shared estimation of per-weight importances for EWC-style penalties."""

    _parameter_constraints = dict(_FISHER_PARAMETER_CONSTRAINTS)

    def get_loss_fn(self, net):
        """Return ``loss(output, y) -> per-sample losses`` used for the estimates.

        Built from ``net.criterion_`` with ``reduction="none"`` (see
        :func:`skcl.fisher.per_sample_loss`), so any criterion with a
        ``reduction`` attribute whose per-sample form accepts the module's
        output and the encoded labels works: ``CrossEntropyLoss`` (the
        default; class ``weight`` and ``label_smoothing`` kept), and
        ``NLLLoss`` on a module returning probabilities (the log is taken as
        skorch's classifier does). A criterion needing other targets (e.g.
        ``BCEWithLogitsLoss`` with float targets shaped like the output), a
        module returning several outputs, or a ``get_loss`` override on the
        net needs this method overridden. Safe to override if the signature
        is kept.

        Parameters
        ----------
        net : skorch.NeuralNet
            The trained net.

        Returns
        -------
        loss : callable
            ``loss(output, y)``, the module's output and the encoded labels to
            a tensor of shape ``(n_samples,)`` of per-sample losses.
        """
        criterion = net.criterion_
        loss = per_sample_loss(criterion)
        if isinstance(criterion, torch.nn.NLLLoss) and isinstance(net, NeuralNetClassifier):
            def log_loss(output, y):
                return loss(torch.log(output + torch.finfo(output.dtype).eps), y)
            return log_loss
        return loss

    def _estimate_importance(self, net, X, y):
        """Return the flat importance (negatives handled) and its negative fraction."""
        module = net.module_
        generator = None
        if self.max_samples is not None and self.max_samples < X.shape[0]:
            generator = self._generator()
            rows = torch.randperm(X.shape[0], generator=generator)[:self.max_samples]
            rows = rows.sort().values.to(X.device)
            X, y = _take_rows(X, rows), y[rows]  # X may be a sparse CSR tensor
        loss = self.get_loss_fn(net)
        if self.fisher == "empirical":
            estimate = empirical_fisher(module, X, y, loss, batch_size=self.batch_size)
        elif self.fisher == "variance":
            estimate = fisher_variance(module, X, y, loss, batch_size=self.batch_size)
        elif self.fisher == "batch":
            estimate = batch_fisher(module, X, y, loss, batch_size=self.batch_size)
        else:
            if generator is None and self.hessian_method != "exact":
                generator = self._generator()
            estimate = hessian_diagonal(
                module, X, y, loss, method=self.hessian_method, n_probes=self.n_probes,
                generator=generator, batch_size=self.batch_size,
            )
        flat = torch.cat([estimate[name].reshape(-1) for name in self.param_names_])
        negative_fraction = float((flat < 0).sum().item()) / max(flat.numel(), 1)
        if self.negative == "clip":
            flat = flat.clamp_min(0.0)
        elif self.negative == "abs":
            flat = flat.abs()
        return flat.detach(), negative_fraction

    def _generator(self):
        """A CPU torch.Generator for this consolidation's draws."""
        if self.random_state is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        elif isinstance(self.random_state, Integral):
            sequence = np.random.SeedSequence(
                [int(self.random_state), self.__dict__.get("n_consolidations_", 0)])
            seed = int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
        else:
            seed = int(self.random_state.randint(np.iinfo(np.int32).max))
        return torch.Generator().manual_seed(seed)

    def _record_negative_fraction(self, fraction):
        self.negative_fractions_ = self.__dict__.get("negative_fractions_", []) + [fraction]
        self.negative_fraction_ = fraction


class EWC(_ImportanceRegularizer):
    r"""Elastic weight consolidation: one importance-weighted pull per past month.

    .. math:: \frac{\lambda}{2} \sum_{m < t} \sum_j F_{m,j}
              (\theta_j - \theta^{*}_{m,j})^2

    the textbook form of Kirkpatrick et al. (2017), "Overcoming catastrophic
    forgetting in neural networks": after month :math:`m`, the weights
    :math:`\theta^*_m` and the importances :math:`F_m` (a diagonal Fisher or
    Hessian, see ``fisher``) are kept, and every later month is penalized by
    the sum of all past months' terms. Memory therefore grows by two copies of
    the parameters per month (``anchors_``, ``importances_``); for constant
    memory, use :class:`OnlineEWC`. The per-step cost does not grow: the sum of
    quadratics is evaluated as one equivalent quadratic
    :math:`\sum_j W_j (\theta_j - c_j)^2 + \text{offset}` with
    :math:`W = \sum_m F_m`, :math:`c = \sum_m F_m \theta^*_m / W`, merged (in
    float64) at each consolidation.

    Read more in the :ref:`User Guide <ewc>`.

    Parameters
    ----------
    lam : float, default=100.0
        Strength :math:`\lambda`, >= 0. ``0`` trains exactly as without a
        regularizer. The Fisher of a mean loss is small (it scales with the
        squared gradient of one sample), so useful values are large; tune it,
        e.g. ``regularizer__lam`` in a grid search.
    %s

    Attributes
    ----------
    anchors_ : list of dict of str to torch.Tensor
        Per month, the weights after it, per trainable parameter.
    importances_ : list of dict of str to torch.Tensor
        Per month, the importance of every weight (after ``negative``).
    negative_fraction_ : float
        Fraction of negative entries in the last month's raw estimate (before
        ``negative`` is applied); always 0.0 for the non-negative forms.
    negative_fractions_ : list of float
        The same, per month.
    param_names_ : list of str
        Names of the penalized (trainable) parameters, in order.
    param_shapes_ : list of tuple
        Their shapes.
    penalty_weight_, penalty_center_ : torch.Tensor of shape (n_params,)
        The merged quadratic's :math:`W` and :math:`c`, on the module's device.
    penalty_offset_ : float
        Its constant, :math:`\sum_m \sum_j F_{m,j} (\theta^*_{m,j} - c_j)^2`,
        so that the penalty's value (not only its gradient) is the sum above.
    n_consolidations_ : int
        Months consolidated so far.

    See Also
    --------
    OnlineEWC : One running importance and one anchor.
    L2 : Every weight held equally.
    skcl.fisher : The estimators.

    Examples
    --------
    >>> from skcl import ContinualClassifier, EWC
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=3, n_samples_per_month=60,
    ...                                     random_state=0)
    >>> clf = ContinualClassifier(regularizer=EWC(lam=100.0), max_epochs=1,
    ...                           random_state=0).fit(X, y, months=months)
    >>> len(clf.regularizer_.anchors_), len(clf.regularizer_.importances_)
    (3, 3)
    """

    def __init__(self, lam=100.0, *, fisher="empirical", max_samples=None,
                 hessian_method="auto", n_probes=100, negative="clip", batch_size=256,
                 random_state=None):
        self.lam = lam
        self.fisher = fisher
        self.max_samples = max_samples
        self.hessian_method = hessian_method
        self.n_probes = n_probes
        self.negative = negative
        self.batch_size = batch_size
        self.random_state = random_state

    def consolidate(self, net, X, y):
        """Add the month's term: its trained weights and their importances.

        Parameters
        ----------
        net : skorch.NeuralNet
            The trained net (``module_``, ``criterion_``).
        X : torch.Tensor of shape (n_samples, n_features)
            The month's rows, on the net's device.
        y : torch.Tensor of shape (n_samples,)
            The month's encoded labels, on the net's device.

        Returns
        -------
        self : EWC
            The regularizer, with the month's anchor and importances added.
        """
        check_parameter_constraints(self)
        anchor = self._snapshot(net.module_)
        importance, negative_fraction = self._estimate_importance(net, X, y)
        self.anchors_ = self.__dict__.get("anchors_", []) + [self._as_dict(anchor)]
        self.importances_ = (self.__dict__.get("importances_", [])
                             + [self._as_dict(importance)])
        self._record_negative_fraction(negative_fraction)
        self._merge_terms(anchor.dtype)
        self.n_consolidations_ = self.__dict__.get("n_consolidations_", 0) + 1
        return self

    def _merge_terms(self, dtype):
        # month by month in float64: memory stays O(n_params) whatever the month count
        def terms():
            for anchor, importance in zip(self.anchors_, self.importances_):
                yield _flatten(anchor).double(), _flatten(importance).double()

        weight = weighted = 0.0
        for anchor, importance in terms():
            weight = weight + importance
            weighted = weighted + importance * anchor
        # where no month gives a weight any importance its center is irrelevant
        center = torch.where(weight != 0, weighted / weight,
                             _flatten(self.anchors_[-1]).double())
        offset = sum(torch.dot(importance, (anchor - center).square()).item()
                     for anchor, importance in terms())
        self.penalty_weight_ = weight.to(dtype)
        self.penalty_center_ = center.to(dtype)
        self.penalty_offset_ = float(offset)


class OnlineEWC(_ImportanceRegularizer):
    r"""Online EWC: one running importance, one anchor (Schwarz et al., 2018).

    .. math:: \tilde F_t = \gamma \tilde F_{t-1} + F_t, \qquad
              \frac{\lambda}{2} \sum_j \tilde F_{t,j} (\theta_j - \theta^*_{t,j})^2

    from "Progress & Compress: A scalable framework for continual learning":
    after month :math:`t` the accumulated importance is decayed by
    :math:`\gamma` and the month's estimate added; the anchor is the latest
    weights only. Memory is constant (two copies of the parameters).
    With ``gamma=1`` every month counts fully but, unlike :class:`EWC`, all
    of them pull towards the latest weights.

    Read more in the :ref:`User Guide <online_ewc>`.

    Parameters
    ----------
    lam : float, default=100.0
        Strength :math:`\lambda`, >= 0.
    gamma : float, default=1.0
        Decay :math:`\gamma` in [0, 1] of past importances at each month
        (``0`` keeps only the last month's).
    %s

    Attributes
    ----------
    anchor_ : dict of str to torch.Tensor
        The weights after the last month.
    importance_ : dict of str to torch.Tensor
        The accumulated importance :math:`\tilde F`.
    negative_fraction_ : float
        Fraction of negative entries in the last month's raw estimate.
    negative_fractions_ : list of float
        The same, per month.
    param_names_ : list of str
        Names of the penalized (trainable) parameters, in order.
    param_shapes_ : list of tuple
        Their shapes.
    penalty_weight_, penalty_center_ : torch.Tensor of shape (n_params,)
        :math:`\tilde F` and the anchor, flattened (``importance_`` and
        ``anchor_`` hold views of them).
    penalty_offset_ : float
        0.0.
    n_consolidations_ : int
        Months consolidated so far.

    See Also
    --------
    EWC : One term per month.

    Examples
    --------
    >>> from skcl import ContinualClassifier, OnlineEWC
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=3, n_samples_per_month=60,
    ...                                     random_state=0)
    >>> clf = ContinualClassifier(regularizer=OnlineEWC(lam=100.0, gamma=0.9),
    ...                           max_epochs=1, random_state=0)
    >>> clf = clf.fit(X, y, months=months)
    >>> sorted(clf.regularizer_.importance_) == sorted(clf.regularizer_.anchor_)
    True
    """

    _parameter_constraints = {
        **_FISHER_PARAMETER_CONSTRAINTS,
        "gamma": [Interval(Real, 0, 1, closed="both")],
    }

    def __init__(self, lam=100.0, *, gamma=1.0, fisher="empirical", max_samples=None,
                 hessian_method="auto", n_probes=100, negative="clip", batch_size=256,
                 random_state=None):
        self.lam = lam
        self.gamma = gamma
        self.fisher = fisher
        self.max_samples = max_samples
        self.hessian_method = hessian_method
        self.n_probes = n_probes
        self.negative = negative
        self.batch_size = batch_size
        self.random_state = random_state

    def consolidate(self, net, X, y):
        """Decay the running importance, add the month's, move the anchor.

        Parameters
        ----------
        net : skorch.NeuralNet
            The trained net (``module_``, ``criterion_``).
        X : torch.Tensor of shape (n_samples, n_features)
            The month's rows, on the net's device.
        y : torch.Tensor of shape (n_samples,)
            The month's encoded labels, on the net's device.

        Returns
        -------
        self : OnlineEWC
            The regularizer, with its running importance and anchor updated.
        """
        check_parameter_constraints(self)
        anchor = self._snapshot(net.module_)
        importance, negative_fraction = self._estimate_importance(net, X, y)
        if "penalty_weight_" in self.__dict__:
            importance = self.gamma * self.penalty_weight_ + importance
        self.penalty_weight_ = importance
        self.penalty_center_ = anchor
        self.penalty_offset_ = 0.0
        self.importance_ = self._as_dict(importance)
        self.anchor_ = self._as_dict(anchor)
        self._record_negative_fraction(negative_fraction)
        self.n_consolidations_ = self.__dict__.get("n_consolidations_", 0) + 1
        return self


# the parameters EWC and OnlineEWC share are documented once
for _cls in (EWC, OnlineEWC):
    if _cls.__doc__:  # None under python -OO
        _cls.__doc__ = _cls.__doc__ % _IMPORTANCE_PARAMETERS_DOC.strip("\n").lstrip()
del _cls


def _zero(module):
    """A zero scalar on the module's device, in its parameters' dtype."""
    for p in module.parameters():
        return torch.zeros((), device=p.device, dtype=p.dtype)
    return torch.zeros(())


def _flatten(tensors):
    return torch.cat([t.reshape(-1) for t in tensors.values()])

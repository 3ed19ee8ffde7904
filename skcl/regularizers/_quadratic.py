"""The quadratic family: ``ImportanceRegularizer`` and its all-ones case, ``L2``."""

import math
import weakref
from numbers import Integral, Real

import numpy as np
import torch

from ..fisher import _take_rows
from ..module_utils import trainable_parameters
from ..utils._sklearn_compat import Interval, check_parameter_constraints
from ._base import Regularizer, zero_like_parameters


class ImportanceRegularizer(Regularizer):
    r"""Base class of quadratic penalties: implement ``estimate_importance`` only.

    .. math:: \frac{\lambda}{2} \sum_j \Omega_j (\theta_j - \theta^*_j)^2,
              \qquad \Omega_t = \Omega_{t-1} + \hat\Omega_t

    After every month, :meth:`consolidate` snapshots the weights
    :math:`\theta^*` (the anchor), asks :meth:`estimate_importance` for the
    month's importance :math:`\hat\Omega_t` of every trainable weight, checks
    it (one finite tensor per trainable parameter, of its shape) and adds it
    to the running importance. A subclass implements that one method and
    gets the rest: the penalty, its fast gradient path (``add_penalty_grad``,
    used by the classifier after ``backward()`` instead of autograd), the
    flattening of the parameters into one vector, the errors when the module
    changes between months, and persistence. :class:`EWC`, :class:`OnlineEWC`,
    :class:`SI`, :class:`MAS` and :class:`L2` (all ones) are built on it.

    Subclasses store ``lam`` (and their own parameters) verbatim in
    ``__init__``; declare constraints in ``_parameter_constraints`` to have
    them checked at every consolidation.

    Read more in the :ref:`User Guide <custom_importance>`.

    Attributes
    ----------
    anchor_ : dict of str to torch.Tensor
        The weights after the last month, per trainable parameter.
    importance_ : dict of str to torch.Tensor
        The running importance :math:`\Omega`, per trainable parameter.
    param_names_ : list of str
        Names of the penalized (trainable) parameters, in order.
    param_shapes_ : list of tuple
        Their shapes.
    penalty_weight_, penalty_center_ : torch.Tensor of shape (n_params,)
        :math:`\Omega` and the anchor, flattened (``importance_`` and
        ``anchor_`` hold views of them).
    penalty_offset_ : float
        A constant of the penalty (0.0 here; :class:`EWC`'s merged terms have
        one).
    n_consolidations_ : int
        Months consolidated so far.

    See Also
    --------
    Regularizer : The general contract.
    MAS : A complete subclass.

    Examples
    --------
    A penalty holding each weight by its magnitude (large weights matter more):

    >>> from skcl import ContinualClassifier
    >>> from skcl.datasets import make_drifting_stream
    >>> from skcl.regularizers import ImportanceRegularizer
    >>> class MagnitudeL2(ImportanceRegularizer):
    ...     def __init__(self, lam=1.0):
    ...         self.lam = lam
    ...
    ...     def estimate_importance(self, net, X, y):
    ...         return {name: p.detach().abs()
    ...                 for name, p in net.module_.named_parameters()}
    >>> X, y, months = make_drifting_stream(n_months=2, n_samples_per_month=60,
    ...                                     random_state=0)
    >>> clf = ContinualClassifier(regularizer=MagnitudeL2(lam=0.5), max_epochs=1,
    ...                           random_state=0).fit(X, y, months=months)
    >>> sorted(clf.regularizer_.importance_) == sorted(clf.regularizer_.anchor_)
    True
    """

    _parameter_constraints = {"lam": [Interval(Real, 0, None, closed="left")]}

    def estimate_importance(self, net, X, y):
        """Return the month's importance of every trainable weight.

        Called by :meth:`consolidate` after each month, with the module at
        its trained weights. The one method a subclass must implement.

        Parameters
        ----------
        net : skorch.NeuralNet
            The trained net (``net.module_``, ``net.criterion_``).
        X : torch.Tensor of shape (n_samples, n_features)
            The month's rows, on the net's device.
        y : torch.Tensor of shape (n_samples,)
            The month's encoded labels, on the net's device.

        Returns
        -------
        importance : dict of str to torch.Tensor
            One finite tensor per trainable parameter (the names of
            :func:`skcl.module_utils.trainable_parameters`), of its shape.
            Negative entries make the penalty unbounded below: clip them.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement estimate_importance(net, X, y)"
        )

    def consolidate(self, net, X, y):
        """Snapshot the anchor, estimate the month's importance, add it to the running one.

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
        self : ImportanceRegularizer
            The regularizer, with its anchor and importance updated.
        """
        check_parameter_constraints(self)
        anchor = self._snapshot(net.module_)
        importance = self._flat_importance(self.estimate_importance(net, X, y), anchor)
        self._update_penalty(anchor, importance)
        # the step's cache belongs to the month just trained (its scratch
        # vectors, the old centre): rebuilt at the next month's first step
        self.__dict__.pop("_grad_cache", None)
        self._count_consolidation()
        return self

    def _update_penalty(self, anchor, importance):
        """Fold the month's flat importance into the penalty (running sum, latest anchor)."""
        if "penalty_weight_" in self.__dict__:
            importance = self.penalty_weight_ + importance
        self.penalty_weight_ = importance
        self.penalty_center_ = anchor
        self.penalty_offset_ = 0.0
        self.importance_ = self._as_dict(importance)
        self.anchor_ = self._as_dict(anchor)

    def _subsample(self, X, y):
        """At most ``max_samples`` random rows of ``X, y``, and the generator drawn from.

        For subclasses with ``max_samples`` and ``random_state`` parameters.
        """
        generator = None
        if self.max_samples is not None and self.max_samples < X.shape[0]:
            generator = self._generator()
            rows = torch.randperm(X.shape[0], generator=generator)[:self.max_samples]
            rows = rows.sort().values.to(X.device)
            # X may be a sparse CSR tensor (which has no row indexing)
            X, y = _take_rows(X, rows), None if y is None else y[rows]
        return X, y, generator

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

    def _flat_importance(self, importance, anchor):
        """Check ``estimate_importance``'s result and flatten it like the anchor."""
        name = f"{type(self).__name__}.estimate_importance"
        if not isinstance(importance, dict):
            raise TypeError(
                f"{name} returned {type(importance).__name__}, but a dict of parameter "
                "name to tensor is needed"
            )
        missing = [key for key in self.param_names_ if key not in importance]
        extra = [key for key in importance if key not in self.param_names_]
        if missing or extra:
            raise ValueError(
                f"{name} returned importances for {sorted(importance)!r}, but the "
                f"trainable parameters are {self.param_names_!r} (missing {missing!r}, "
                f"unknown {extra!r}); return one tensor per trainable parameter"
            )
        parts = []
        for key, shape in zip(self.param_names_, self.param_shapes_):
            value = torch.as_tensor(importance[key])
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"{name} returned shape {tuple(value.shape)} for {key!r}, whose "
                    f"shape is {shape}; return one importance per weight"
                )
            parts.append(value.detach().reshape(-1).to(anchor.device, anchor.dtype))
        flat = torch.cat(parts)
        if not torch.isfinite(flat).all():
            raise ValueError(
                f"{name} returned non-finite importances; the penalty would be "
                "undefined: check the estimate (a zero division, a diverged month)"
            )
        return flat

    def grow_classes(self, net, growth):
        """Give the output layer's new rows zero importance: they are not anchored.

        Called by :class:`~skcl.ContinualClassifier` (``new_classes="grow"``)
        when a month brings new classes, before the month trains. The old
        rows keep their anchor and importance exactly; the new rows get an
        importance of zero (and an anchor of zero, which a zero importance
        makes irrelevant), so the penalty's value does not change and the
        new rows train freely until the month's consolidation weighs them.

        Parameters
        ----------
        net : ContinualClassifier
            The estimator, still holding the module before the growth.
        growth : skcl._head_growth.HeadGrowth
            The output layer's parameters and their class axes, the class
            counts before and after.

        Returns
        -------
        self : ImportanceRegularizer
            The regularizer, its fitted tensors grown.
        """
        if "param_names_" not in self.__dict__:
            return self   # nothing consolidated yet
        names, shapes = self.param_names_, self.param_shapes_

        def grown(flat):
            return growth.pad_flat(flat, names, shapes)

        def flat_of(values):
            return torch.cat([values[name].reshape(-1) for name in names])

        views = {name: flat_of(self.__dict__[name]) for name in ("anchor_", "importance_")
                 if name in self.__dict__}
        if "penalty_center_" in self.__dict__:
            weight = self.penalty_weight_
            if weight is None:   # all ones (L2): the new rows need their zeros
                weight = torch.ones_like(self.penalty_center_)
            self.penalty_weight_ = grown(weight)
            self.penalty_center_ = grown(self.penalty_center_)
        # EWC's running sums (float64); the offset is unchanged by zero entries
        for name in ("_importance_sum_", "_weighted_anchor_sum_"):
            if name in self.__dict__:
                setattr(self, name, grown(self.__dict__[name]))
        self.param_shapes_ = [growth.grown_shape(name, shape)
                              for name, shape in zip(names, shapes)]
        for name, flat in views.items():
            setattr(self, name, self._as_dict(grown(flat)))
        self.__dict__.pop("_grad_cache", None)
        return self

    def __getstate__(self):
        state = super().__getstate__()
        # the cached parameter list refers to one module object: rebuilt lazily
        state.pop("_grad_cache", None)
        return state

    def penalty(self, module):
        """Return ``lam / 2 * sum(Omega * (theta - anchor) ** 2)`` (plus any offset).

        The general, autograd path; the classifier uses :meth:`add_penalty_grad`
        instead unless a subclass overrides this method alone.

        Parameters
        ----------
        module : torch.nn.Module
            The network being trained.

        Returns
        -------
        penalty : torch.Tensor of shape ()
            The penalty, differentiable in the module's parameters; zero before
            the first consolidation or when ``lam`` is 0.
        """
        if "penalty_center_" not in self.__dict__ or self.lam == 0:
            return zero_like_parameters(module)
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
            return zero_like_parameters(module)
        params, sizes, shapes = self._penalized_parameters(module)
        cache = self._grad_cache
        scratch = cache.get("scratch")
        if scratch is None:
            scratch = cache["scratch"] = [torch.empty_like(self.penalty_center_)
                                          for _ in range(2)]
        with torch.no_grad():
            # into buffers kept between steps: a fresh allocation of this size
            # per step costs about as much as the arithmetic
            diff = torch.cat([p.reshape(-1) for p in params], out=scratch[0])
            return self._add_flat_penalty_grad(params, sizes, shapes, diff.sub_(
                self.penalty_center_), scratch[1])

    def _add_flat_penalty_grad(self, params, sizes, shapes, diff, weighted_out):
        """``add_penalty_grad`` from ``diff = theta - center``, flattened (no_grad)."""
        lam = float(self.lam)
        weighted = diff
        if self.penalty_weight_ is not None:
            weighted = torch.mul(self.penalty_weight_, diff, out=weighted_out)
        grads = []
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        parts = [part.view(shape) for part, shape in zip(weighted.split(sizes), shapes)]
        torch._foreach_add_(grads, parts, alpha=lam)
        total = torch.dot(weighted, diff)
        if self.penalty_offset_:
            total = total + self.penalty_offset_
        return total.mul_(0.5 * lam)

    def _penalized_parameters(self, module):
        """The penalized parameters of ``module``, their sizes and shapes.

        Cached in ``_grad_cache`` for one module until the next consolidation
        (which drops it); :meth:`add_penalty_grad` adds its two scratch
        vectors, of the flattened parameters' size, for each step's
        intermediate results.
        """
        cache = self.__dict__.get("_grad_cache")
        if cache is None or cache["module"]() is not module:
            named = dict(module.named_parameters())
            try:
                params = [named[name] for name in self.param_names_]
            except KeyError:
                self._flat_parameters(module)  # raises the error naming the change
                raise
            shapes = [p.shape for p in params]
            sizes = [p.numel() for p in params]
            if sum(sizes) != self.penalty_center_.numel():
                self._flat_parameters(module)  # raises the error naming the change
            cache = {"module": weakref.ref(module), "params": params, "sizes": sizes,
                     "shapes": shapes}
            self._grad_cache = cache
        return cache["params"], cache["sizes"], cache["shapes"]

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
        params = trainable_parameters(module)
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



class L2(ImportanceRegularizer):
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
        Every weight counts once (the importance is all ones).
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

    def estimate_importance(self, net, X, y):
        """Return an importance of one for every trainable weight.

        Parameters
        ----------
        net : skorch.NeuralNet
            The trained net.
        X, y : torch.Tensor
            The month's rows and encoded labels (unused).

        Returns
        -------
        importance : dict of str to torch.Tensor
            Ones, one tensor per trainable parameter.
        """
        return {name: torch.ones_like(p) for name, p
                in trainable_parameters(net.module_).items()}

    def _update_penalty(self, anchor, importance):
        # the latest anchor only, not a sum over months; all ones is stored as
        # None so each step skips the multiplication (a subclass returning
        # other values keeps them)
        all_ones = bool((importance == 1).all())
        self.penalty_weight_ = None if all_ones else importance
        self.penalty_center_ = anchor
        self.penalty_offset_ = 0.0
        self.anchor_ = self._as_dict(anchor)

"""Elastic weight consolidation: ``EWC`` (one term per month) and ``OnlineEWC``.

The importance estimates (Fisher, Hessian) are pure functions in
:mod:`skcl.fisher`; ``fisher=`` picks one, through the same
``estimate_importance`` hook as every :class:`ImportanceRegularizer`.
"""

from numbers import Integral, Real

import torch
from skorch import NeuralNetClassifier

from ..fisher import (
    batch_fisher,
    empirical_fisher,
    fisher_variance,
    hessian_diagonal,
    per_sample_loss,
)
from ..utils._docstrings import Substitution
from ..utils._sklearn_compat import Interval, StrOptions
from ._quadratic import ImportanceRegularizer

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


class _FisherRegularizer(ImportanceRegularizer):
    """Shared estimation of per-weight importances for EWC-style penalties (``fisher=``)."""

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

    def estimate_importance(self, net, X, y):
        """Return the month's importance, as chosen by ``fisher``, negatives handled.

        Computed on (a ``max_samples`` subsample of) the month's rows at the
        trained weights; records the fraction of negative entries of the raw
        estimate in ``negative_fractions_`` before ``negative`` is applied.

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
        importance : dict of str to torch.Tensor
            One tensor per trainable parameter, of its shape.
        """
        module = net.module_
        X, y, generator = self._subsample(X, y)
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
        raw = torch.cat([estimate[name].reshape(-1) for name in estimate])
        self._record_negative_fraction(
            float((raw < 0).sum().item()) / max(raw.numel(), 1))
        if self.negative == "clip":
            estimate = {name: value.clamp_min(0.0) for name, value in estimate.items()}
        elif self.negative == "abs":
            estimate = {name: value.abs() for name, value in estimate.items()}
        return {name: value.detach() for name, value in estimate.items()}

    def _record_negative_fraction(self, fraction):
        self.negative_fractions_ = self.__dict__.get("negative_fractions_", []) + [fraction]
        self.negative_fraction_ = fraction


@Substitution(importance_parameters=_IMPORTANCE_PARAMETERS_DOC)
class EWC(_FisherRegularizer):
    r"""Elastic weight consolidation: one importance-weighted pull per past month.

    .. math:: \frac{\lambda}{2} \sum_{m < t} \sum_j F_{m,j}
              (\theta_j - \theta^{*}_{m,j})^2

    the textbook form of Kirkpatrick et al. (2017), "Overcoming catastrophic
    forgetting in neural networks": after month :math:`m`, the weights
    :math:`\theta^*_m` and the importances :math:`F_m` (a diagonal Fisher or
    Hessian, see ``fisher``) are kept, and every later month is penalized by
    the sum of all past months' terms. The sum is evaluated as one equivalent
    quadratic :math:`\sum_j W_j (\theta_j - c_j)^2 + \text{offset}` with
    :math:`W = \sum_m F_m`, :math:`c = \sum_m F_m \theta^*_m / W`, built from
    three running float64 sums per weight
    (:math:`\sum_m F_m`, :math:`\sum_m F_m \theta^*_m`,
    :math:`\sum_m F_m \theta^{*2}_m`), so the per-step cost, the cost of a
    consolidation and the memory do not grow with the number of months; the
    past months' anchors and importances themselves are not kept. Unlike
    :class:`OnlineEWC` (one anchor, the latest), every month keeps pulling
    towards its own weights.

    Read more in the :ref:`User Guide <ewc>`.

    Parameters
    ----------
    lam : float, default=100.0
        Strength :math:`\lambda`, >= 0. ``0`` trains exactly as without a
        regularizer. The Fisher of a mean loss is small (it scales with the
        squared gradient of one sample), so useful values are large; tune it,
        e.g. ``regularizer__lam`` in a grid search.
    {importance_parameters}

    Attributes
    ----------
    anchor_ : dict of str to torch.Tensor
        The weights after the last month, per trainable parameter.
    importance_ : dict of str to torch.Tensor
        The last month's importance of every weight (after ``negative``), per
        trainable parameter; earlier months' are only kept summed, in
        ``penalty_weight_``.
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
    >>> clf.regularizer_.n_consolidations_
    3
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

    def _update_penalty(self, anchor, importance):
        # The sum of the months' quadratics only depends on running sums per
        # weight, S0 = sum_m F_m and S1 = sum_m F_m a_m, and on the total of
        # S2 = sum_m F_m a_m^2 (it only enters the offset, summed over
        # weights), so neither memory nor the cost of a consolidation grows
        # with the month count. They are kept in float64 because the offset,
        # sum(S2 - 2 c S1 + c^2 S0), is a small difference of large sums.
        # Every fitted tensor is replaced, never updated in place: the
        # classifier's rollback records them by reference.
        anchor64, importance64 = anchor.double(), importance.double()
        weighted = importance64 * anchor64
        squared = torch.dot(weighted, anchor64)
        if "_importance_sum_" in self.__dict__:
            weight = self._importance_sum_ + importance64
            weighted = self._weighted_anchor_sum_ + weighted
            squared = self._weighted_square_sum_ + squared
        else:
            weight = importance64
        # where no month gives a weight any importance its center is
        # irrelevant: the latest anchor (the offset below stays exact)
        nonzero = weight != 0
        center = torch.where(nonzero, weighted / torch.where(nonzero, weight, 1.0),
                             anchor64)
        # sum_m sum_j F_m,j (a_m,j - c_j)^2 = sum_j (S2 - 2 c S1 + c^2 S0)_j
        offset = squared - torch.dot(center, 2.0 * weighted - center * weight)
        self._importance_sum_ = weight
        self._weighted_anchor_sum_ = weighted
        self._weighted_square_sum_ = squared
        self.penalty_weight_ = weight.to(anchor.dtype)
        self.penalty_center_ = center.to(anchor.dtype)
        self.penalty_offset_ = float(offset.item())
        self.anchor_ = self._as_dict(anchor)
        self.importance_ = self._as_dict(importance)


@Substitution(importance_parameters=_IMPORTANCE_PARAMETERS_DOC)
class OnlineEWC(_FisherRegularizer):
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
    {importance_parameters}

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

    def _update_penalty(self, anchor, importance):
        if "penalty_weight_" in self.__dict__:
            importance = self.gamma * self.penalty_weight_ + importance
        self.penalty_weight_ = importance
        self.penalty_center_ = anchor
        self.penalty_offset_ = 0.0
        self.importance_ = self._as_dict(importance)
        self.anchor_ = self._as_dict(anchor)

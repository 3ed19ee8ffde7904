"""Memory aware synapses: importance from the output's sensitivity, label-free."""

from numbers import Integral, Real

import torch

from ..fisher import output_sensitivity
from ..utils._sklearn_compat import Interval, StrOptions
from ._quadratic import ImportanceRegularizer


class MAS(ImportanceRegularizer):
    r"""Memory aware synapses: each weight held by how much it moves the output.

    .. math:: \hat\Omega_j = \frac{1}{n} \sum_{i=1}^n
              \left| \frac{\partial \lVert f(x_i) \rVert_2^2}{\partial \theta_j} \right|,
              \qquad \Omega_t = \Omega_{t-1} + \hat\Omega_t

    from Aljundi et al. (2018), "Memory Aware Synapses: Learning what (not) to
    forget": after every month, the mean absolute gradient of the squared L2
    norm of the module's output (the logits) over the month's rows, exact per
    sample (:func:`skcl.fisher.output_sensitivity`), is added to the running
    importance; the penalty is :math:`\frac{\lambda}{2} \sum_j \Omega_j
    (\theta_j - \theta^*_j)^2` with the latest weights as anchor. It needs no
    labels: a month's rows alone say what the network must keep producing.

    The sum grows with every month, so with a fixed ``lam`` the penalty
    hardens until the newest months barely train (on a long stream MAS then
    falls below plain fine-tuning). Two options keep its scale bounded:
    ``accumulate="mean"`` makes :math:`\Omega_t` the running average of the
    months' estimates (no larger than the largest of them, whatever the
    stream's length), and ``normalize=True`` divides each month's estimate
    by its mean over the weights before it is accumulated, so ``lam`` no
    longer depends on the scale of the network's output. Use both for long
    streams, or whenever ``lam`` is tuned on a few months and deployed on
    many; keep the defaults (the paper's sum) on short streams where old
    months must weigh more and more.

    Read more in the :ref:`User Guide <mas>`.

    Parameters
    ----------
    lam : float, default=1.0
        Strength :math:`\lambda`, >= 0.
    max_samples : int or None, default=None
        Estimate from at most this many of the month's rows, drawn at random
        (``random_state``); ``None`` uses every row.
    batch_size : int, default=256
        Rows per chunk during the estimate (memory only).
    random_state : int, RandomState instance or None, default=None
        Seeds the row subsample.
    accumulate : {"sum", "mean"}, default="sum"
        How the months' estimates combine: ``"sum"``,
        :math:`\Omega_t = \Omega_{t-1} + \hat\Omega_t` (the paper's; grows with
        the month count), or ``"mean"``, the running average
        :math:`\Omega_t = \Omega_{t-1} + (\hat\Omega_t - \Omega_{t-1}) / t`
        (bounded by the largest month's estimate). Changing it between months
        applies from the next consolidation, to the importance as it stands.
    normalize : bool, default=False
        Divide each month's estimate :math:`\hat\Omega_t` by its mean over
        all weights before accumulating it, so every month contributes an
        importance of mean 1 and ``lam`` is independent of the output's scale.

    Attributes
    ----------
    anchor_ : dict of str to torch.Tensor
        The weights after the last month.
    importance_ : dict of str to torch.Tensor
        The running importance :math:`\Omega`.
    param_names_ : list of str
        Names of the penalized (trainable) parameters, in order.
    param_shapes_ : list of tuple
        Their shapes.
    penalty_weight_, penalty_center_ : torch.Tensor of shape (n_params,)
        :math:`\Omega` and the anchor, flattened.
    penalty_offset_ : float
        0.0.
    n_consolidations_ : int
        Months consolidated so far.

    See Also
    --------
    EWC, SI : Importances from the loss.

    Examples
    --------
    >>> from skcl import MAS, ContinualClassifier
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=2, n_samples_per_month=60,
    ...                                     random_state=0)
    >>> clf = ContinualClassifier(regularizer=MAS(lam=1.0), max_epochs=1,
    ...                           random_state=0).fit(X, y, months=months)
    >>> clf.regularizer_.n_consolidations_
    2
    """

    _parameter_constraints = {
        "lam": [Interval(Real, 0, None, closed="left")],
        "max_samples": [Interval(Integral, 1, None, closed="left"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "accumulate": [StrOptions({"sum", "mean"})],
        "normalize": ["boolean"],
    }

    def __init__(self, lam=1.0, *, max_samples=None, batch_size=256, random_state=None,
                 accumulate="sum", normalize=False):
        self.lam = lam
        self.max_samples = max_samples
        self.batch_size = batch_size
        self.random_state = random_state
        self.accumulate = accumulate
        self.normalize = normalize

    def _update_penalty(self, anchor, importance):
        if self.normalize:
            scale = importance.mean()
            # a month whose output ignores every weight adds nothing
            importance = importance / scale if scale > 0 else torch.zeros_like(importance)
        previous = self.__dict__.get("penalty_weight_")
        if self.accumulate == "mean" and previous is not None:
            # n_consolidations_ is the count before this month's
            n_months = self.__dict__.get("n_consolidations_", 0) + 1
            importance = previous + (importance - previous) / n_months
            # the sum of the base class would add it again: hand over a fresh total
            self.__dict__.pop("penalty_weight_")
        super()._update_penalty(anchor, importance)

    def estimate_importance(self, net, X, y):
        """Return the mean absolute gradient of the squared output norm.

        Parameters
        ----------
        net : skorch.NeuralNet
            The trained net.
        X : torch.Tensor of shape (n_samples, n_features)
            The month's rows, on the net's device.
        y : torch.Tensor of shape (n_samples,)
            The month's labels (unused: MAS needs none).

        Returns
        -------
        importance : dict of str to torch.Tensor
            One non-negative tensor per trainable parameter.
        """
        X, y, _ = self._subsample(X, y)
        return output_sensitivity(net.module_, X, batch_size=self.batch_size)

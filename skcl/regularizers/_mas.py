"""Memory aware synapses: importance from the output's sensitivity, label-free."""

from numbers import Integral, Real

from ..fisher import output_sensitivity
from ..utils._sklearn_compat import Interval
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
    }

    def __init__(self, lam=1.0, *, max_samples=None, batch_size=256, random_state=None):
        self.lam = lam
        self.max_samples = max_samples
        self.batch_size = batch_size
        self.random_state = random_state

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

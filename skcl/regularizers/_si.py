"""Synaptic intelligence: importance from the path of the training updates."""

import weakref
from numbers import Real

import torch

from ..module_utils import trainable_parameters
from ..utils._sklearn_compat import Interval
from ._base import uses_fast_penalty
from ._quadratic import ImportanceRegularizer


class SI(ImportanceRegularizer):
    r"""Synaptic intelligence: each weight held by its share of the month's loss decrease.

    .. math:: \omega_j = -\sum_{k} g_{k,j}\, \Delta\theta_{k,j}, \qquad
              \hat\Omega_j = \frac{\max(\omega_j, 0)}{(\theta^{\text{end}}_j -
              \theta^{\text{start}}_j)^2 + \xi}

    from Zenke, Poole and Ganguli (2017), "Continual learning through
    synaptic intelligence": during the month, after every step :math:`k`,
    the gradient of the training loss :math:`g_k` (without the penalty) times
    the update the optimizer actually made, :math:`\Delta\theta_k`, is summed
    per weight: a first-order account of how much each weight's movement
    lowered the loss. At the month's end it is divided by the squared total
    movement plus the damping :math:`\xi`, and added to the running
    importance; the penalty is then :math:`\frac{\lambda}{2} \sum_j \Omega_j
    (\theta_j - \theta^*_j)^2` with the latest weights as anchor (the paper's
    strength :math:`c` is :math:`\lambda / 2`). Negative :math:`\omega` (a
    weight whose movement raised the loss) is clipped to zero: it would make
    the penalty unbounded below.

    No pass over the data is needed at the month's end; the cost is a few
    operations on the flattened parameters at every step, into buffers kept
    for the month (six copies of the parameters, with the anchor and the
    importance eight). The gradient is
    recorded in :meth:`after_backward`, before the penalty's gradient is
    added (a subclass that overrides ``penalty``, whose penalty then goes
    through autograd, records the gradient with the penalty's in it).

    Read more in the :ref:`User Guide <si>`.

    Parameters
    ----------
    lam : float, default=1.0
        Strength :math:`\lambda`, >= 0.
    damping : float, default=0.1
        :math:`\xi` > 0, keeps weights that barely moved from getting huge
        importances.

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
    EWC : Importance from the Fisher information at the month's end.
    MAS : Importance from the output's sensitivity, label-free.

    Examples
    --------
    >>> from skcl import SI, ContinualClassifier
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=2, n_samples_per_month=60,
    ...                                     random_state=0)
    >>> clf = ContinualClassifier(regularizer=SI(lam=1.0), max_epochs=2,
    ...                           random_state=0).fit(X, y, months=months)
    >>> bool(all((w >= 0).all() for w in clf.regularizer_.importance_.values()))
    True
    """

    _parameter_constraints = {
        "lam": [Interval(Real, 0, None, closed="left")],
        "damping": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, lam=1.0, *, damping=0.1):
        self.lam = lam
        self.damping = damping

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_path_cache", None)
        return state

    def after_backward(self, net, X, y):
        """Add the previous step's term to the path integral; then the penalty's gradient.

        Parameters
        ----------
        net : skorch.NeuralNet
            The classifier being trained.
        X, y : torch.Tensor
            The batch (unused).

        Returns
        -------
        value : torch.Tensor of shape ()
            The penalty's value (see :meth:`Regularizer.after_backward`).
        """
        module = net.module_
        penalized = "penalty_center_" in self.__dict__ and uses_fast_penalty(type(self))
        if penalized:
            params, sizes, shapes = self._penalized_parameters(module)
        else:
            params = self._path_parameters(module)
        with torch.no_grad():
            path = self.__dict__.get("_path")
            if path is None:  # the month's first step: the weights have not moved yet
                theta = torch.cat([p.detach().reshape(-1) for p in params])
                path = self._path = {
                    "thetas": [theta, torch.empty_like(theta)],
                    "gradients": [torch.empty_like(theta), torch.empty_like(theta)],
                    "integral": torch.zeros_like(theta), "start": theta.clone(),
                    "current": 0, "steps": 0}
            # two buffers each for the weights and the gradient, alternating:
            # this step's and the previous one's, no allocation per step
            current, previous = path["current"], 1 - path["current"]
            theta = torch.cat([p.detach().reshape(-1) for p in params],
                              out=path["thetas"][current])
            torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1)
                       for p in params], out=path["gradients"][current])
            if path["steps"]:
                moved_back = path["thetas"][previous].sub_(theta)  # -(previous update)
                path["integral"].addcmul_(path["gradients"][previous], moved_back)
            path["current"], path["steps"] = previous, path["steps"] + 1
            # the penalty's gradient is added after the loss's gradient was
            # recorded; the previous step's buffers are free scratch now
            if penalized and self.lam != 0:
                diff = torch.sub(theta, self.penalty_center_, out=path["thetas"][previous])
                return self._add_flat_penalty_grad(params, sizes, shapes, diff,
                                                   path["gradients"][previous])
        return super().after_backward(net, X, y)

    def estimate_importance(self, net, X, y):
        """Close the month's path integral and return its importance.

        Parameters
        ----------
        net : skorch.NeuralNet
            The trained net.
        X, y : torch.Tensor
            The month's rows (unused: the importance comes from training).

        Returns
        -------
        importance : dict of str to torch.Tensor
            :math:`\\hat\\Omega`, one tensor per trainable parameter; zeros when
            the month made no training step.
        """
        params = trainable_parameters(net.module_)
        theta = torch.cat([p.detach().reshape(-1) for p in params.values()])
        path = self.__dict__.pop("_path", None)
        if path is None:
            importance = torch.zeros_like(theta)
        else:
            # the month's last step: its update shows in the final weights
            last = 1 - path["current"]
            integral = path["integral"].addcmul(path["gradients"][last],
                                                theta - path["thetas"][last], value=-1.0)
            change = theta - path["start"]
            importance = (integral / (change.square() + self.damping)).clamp_min_(0.0)
        sizes = [p.numel() for p in params.values()]
        return {name: part.view_as(p) for (name, p), part
                in zip(params.items(), importance.split(sizes))}

    def _path_parameters(self, module):
        cache = self.__dict__.get("_path_cache")
        if cache is None or cache[0]() is not module:
            cache = (weakref.ref(module), list(trainable_parameters(module).values()))
            self._path_cache = cache
        return cache[1]

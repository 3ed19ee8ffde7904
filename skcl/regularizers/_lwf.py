"""Learning without forgetting: distillation to last month's model."""

import copy
from numbers import Real

import torch
import torch.nn.functional as F

from ..utils._sklearn_compat import Interval, check_parameter_constraints
from ._base import Regularizer


class LwF(Regularizer):
    r"""Learning without forgetting: keep the outputs of last month's model on new rows.

    .. math:: \lambda\, \frac{1}{|B|} \sum_{x \in B}
              \mathrm{KL}\bigl(\sigma(f_{\theta^*}(x) / T) \,\big\|\,
              \sigma(f_\theta(x) / T)\bigr)

    from Li and Hoiem (2016), "Learning without Forgetting": every training
    batch :math:`B` of the new month is also fed to a frozen copy of the
    model as it was after the previous month, :math:`f_{\theta^*}`, and the
    current model is pulled towards its softened class probabilities
    (softmax :math:`\sigma` at temperature :math:`T`). The paper writes the
    term as the cross-entropy to those soft targets; the KL divergence used
    here differs from it by their entropy, a constant, so the gradient is the
    same and the term is 0 where nothing has moved. No old row is kept: the
    new month's inputs carry the old model's knowledge. Expects the module to
    return logits (the default ``MLP`` does).

    Read more in the :ref:`User Guide <lwf>`.

    Parameters
    ----------
    lam : float, default=1.0
        Weight :math:`\lambda` >= 0 of the distillation term.
    temperature : float, default=2.0
        :math:`T` > 0; above 1 softens the targets, so the old model's ranking
        of the unlikely classes counts too (the paper uses 2).

    Attributes
    ----------
    teacher_ : torch.nn.Module
        The frozen copy of the module after the last month, in evaluation
        mode, on the module's device.
    n_consolidations_ : int
        Months consolidated so far.

    See Also
    --------
    DERpp : Distillation on replayed rows, with stored logits.

    Examples
    --------
    >>> from skcl import ContinualClassifier, LwF
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=2, n_samples_per_month=60,
    ...                                     random_state=0)
    >>> clf = ContinualClassifier(regularizer=LwF(lam=1.0, temperature=2.0),
    ...                           max_epochs=1, random_state=0).fit(X, y, months=months)
    >>> clf.regularizer_.teacher_.training
    False
    """

    _parameter_constraints = {
        "lam": [Interval(Real, 0, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, lam=1.0, *, temperature=2.0):
        self.lam = lam
        self.temperature = temperature

    def batch_loss(self, net, X, y, y_pred, n_months_seen):
        """Return the distillation term of the batch (``None`` in the first month).

        Parameters
        ----------
        net : skorch.NeuralNet
            The classifier being trained.
        X : torch.Tensor of shape (n_samples, n_features)
            The batch's inputs, fed to ``teacher_``.
        y : torch.Tensor of shape (n_samples,)
            The batch's labels (unused).
        y_pred : torch.Tensor of shape (n_samples, n_classes)
            The current model's logits on ``X``.
        n_months_seen : int
            Months trained before this one (the classifier's ``n_months_seen_``).

        Returns
        -------
        term : torch.Tensor of shape () or None
            :math:`\\lambda` times the mean KL divergence, or ``None`` before
            any month was consolidated or with ``lam=0``.
        """
        teacher = self.__dict__.get("teacher_")
        if teacher is None or self.lam == 0:
            return None
        with torch.no_grad():
            old = teacher(X)
        # after new classes were added (new_classes="grow") the teacher knows
        # only the old ones: distil the student's distribution over those
        return self.lam * distillation_loss(y_pred[:, :old.shape[1]], old, self.temperature)

    def grow_classes(self, net, growth):
        """Keep the teacher as it is: it distils over the old classes only.

        The teacher has one output per class known when it was frozen; after
        new classes arrive, :meth:`batch_loss` compares its softmax with the
        student's softmax restricted to those classes (renormalized), so the
        new classes' logits are learned from the labels alone.

        Parameters
        ----------
        net : ContinualClassifier
            The estimator (unused).
        growth : skcl._head_growth.HeadGrowth
            The growth (unused).

        Returns
        -------
        self : LwF
            The regularizer, unchanged.
        """
        return self

    def consolidate(self, net, X, y):
        """Freeze a copy of the trained module as the next month's teacher.

        Parameters
        ----------
        net : skorch.NeuralNet
            The trained net.
        X, y : torch.Tensor
            The month's rows (unused).

        Returns
        -------
        self : LwF
            The regularizer, with ``teacher_`` replaced.
        """
        check_parameter_constraints(self)
        teacher = copy.deepcopy(net.module_)
        teacher.zero_grad(set_to_none=True)
        self.teacher_ = teacher.eval().requires_grad_(False)
        self._count_consolidation()
        return self


def distillation_loss(logits, target_logits, temperature):
    """Mean over rows of KL(softmax(target / T) || softmax(logits / T))."""
    return F.kl_div(F.log_softmax(logits / temperature, dim=1),
                    F.log_softmax(target_logits / temperature, dim=1),
                    reduction="batchmean", log_target=True)

"""Strategies with a memory of past rows: A-GEM (gradient projection) and DER++."""

from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import clone

from .._sparse import cat_rows, host_rows, is_scipy_sparse, to_csr, to_torch_csr, torch_rows
from ..module_utils import evaluation_mode, trainable_parameters
from ..rehearsal import RehearsalBuffer
from ..utils._params import carry_over_params
from ..utils._seeding import seed_from
from ..utils._sklearn_compat import HasMethods, Interval, check_parameter_constraints
from ._base import Regularizer


class _MemoryStrategy(Regularizer):
    """A strategy that keeps past rows in ``memory_``, a fitted copy of ``memory``."""

    def _fitted_memory(self):
        """``memory_``, created at the first month and kept in line with ``memory``."""
        memory = self.__dict__.get("memory_")
        if memory is None:
            memory = RehearsalBuffer() if self.memory is None else clone(self.memory)
            if memory.get_params().get("random_state", 0) is None:
                memory.set_params(random_state=seed_from(self.random_state))
            self.memory_ = memory
        elif self.memory is not None:
            # settings changed between months carry over, the rows stay
            carry_over_params(memory, self.memory)
        return memory

    def _memory_batch(self, net, n_samples, return_extra=False):
        """``n_samples`` rows drawn from ``memory_``, as tensors on the net's device."""
        drawn = self.memory_.sample(n_samples, return_extra=return_extra)
        X, y = drawn[0], drawn[1]
        X = (to_torch_csr(to_csr(X), device=net.device) if is_scipy_sparse(X)
             else torch.as_tensor(np.asarray(X, dtype=np.float32), device=net.device))
        tensors = [X,
                   torch.as_tensor(y, dtype=torch.long, device=net.device)]
        if return_extra:
            tensors.append(torch.as_tensor(drawn[3], dtype=torch.float32, device=net.device))
        return tensors

    def save_state(self):
        # the memory's rows and generator change during a month: record them
        # too, so a month rolled back by the classifier leaves them as they were
        attributes = dict(self.__dict__)
        memory = self.__dict__.get("memory_")
        memory_attributes = None if memory is None else dict(memory.__dict__)

        def restore():
            self.__dict__.clear()
            self.__dict__.update(attributes)
            if memory is not None:
                memory.__dict__.clear()
                memory.__dict__.update(memory_attributes)

        return restore


class AGEM(_MemoryStrategy):
    r"""Averaged gradient episodic memory: never step against the memory's gradient.

    .. math:: \tilde g = g - \frac{\min(g^\top g_{\text{ref}}, 0)}
              {g_{\text{ref}}^\top g_{\text{ref}}}\, g_{\text{ref}}

    from Chaudhry et al. (2019), "Efficient Lifelong Learning with A-GEM":
    after every training step's ``backward()``, the gradient :math:`g` of the
    batch is compared with the gradient :math:`g_{\text{ref}}` of the loss on
    ``sample_size`` rows drawn from a memory of past months; where they
    conflict (negative inner product), :math:`g` is projected onto the
    half-space where the memory's loss does not increase, to first order.
    The memory is a :class:`~skcl.RehearsalBuffer` fed with every month's rows
    after training (its ``capacity`` and ``policy`` apply; its
    ``replay_ratio`` is not used: no row is trained on directly). Combine with
    ``rehearsal=`` to also replay rows.

    Read more in the :ref:`User Guide <agem>`.

    Parameters
    ----------
    memory : RehearsalBuffer or None, default=None
        The memory's settings, cloned into ``memory_`` at the first month
        (tunable as ``regularizer__memory__capacity``); ``None`` is
        ``RehearsalBuffer()``.
    sample_size : int, default=256
        Memory rows per reference gradient (all rows when fewer are stored).
    random_state : int, RandomState instance or None, default=None
        Seeds the memory's draws when the memory has no seed of its own;
        :class:`~skcl.ContinualClassifier` fills it in from its own.

    Attributes
    ----------
    memory_ : RehearsalBuffer
        The fitted memory of past rows (encoded labels).
    n_consolidations_ : int
        Months consolidated so far.

    See Also
    --------
    DERpp : Replay of labels and logits as loss terms.
    skcl.RehearsalBuffer : Replay as data.

    Examples
    --------
    >>> from skcl import AGEM, ContinualClassifier, RehearsalBuffer
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=2, n_samples_per_month=60,
    ...                                     random_state=0)
    >>> agem = AGEM(memory=RehearsalBuffer(capacity=50), sample_size=32)
    >>> clf = ContinualClassifier(regularizer=agem, max_epochs=1,
    ...                           random_state=0).fit(X, y, months=months)
    >>> clf.regularizer_.memory_.X_.shape
    (50, 20)
    """

    _parameter_constraints = {
        "memory": [HasMethods(["partial_fit", "sample"]), None],
        "sample_size": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, memory=None, *, sample_size=256, random_state=None):
        self.memory = memory
        self.sample_size = sample_size
        self.random_state = random_state

    def after_backward(self, net, X, y):
        """Project the batch's gradient against the memory's, where they conflict.

        Parameters
        ----------
        net : skorch.NeuralNet
            The classifier being trained; its parameters' ``.grad`` are
            changed in place.
        X, y : torch.Tensor
            The batch (unused: its gradient is already in ``.grad``).

        Returns
        -------
        value : None
            Nothing is added to the recorded loss.
        """
        memory = self.__dict__.get("memory_")
        if memory is None:
            return None
        params = list(trainable_parameters(net.module_).values())
        X_ref, y_ref = self._memory_batch(net, min(self.sample_size, len(memory.y_)))
        reference_loss = net.get_loss(net.infer(X_ref), y_ref, X=X_ref, training=False)
        reference = torch.autograd.grad(reference_loss, params, allow_unused=True)
        with torch.no_grad():
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            g = torch.cat([p.grad.reshape(-1) for p in params])
            r = torch.cat([(torch.zeros_like(p) if q is None else q).reshape(-1)
                           for p, q in zip(params, reference)])
            # no branch on the sign: no device synchronization per step
            scale = torch.dot(g, r).clamp(max=0.0) / torch.dot(r, r).clamp_min(
                torch.finfo(r.dtype).tiny)
            correction = (scale * r).split([p.numel() for p in params])
            torch._foreach_sub_([p.grad for p in params],
                                [c.view_as(p) for c, p in zip(correction, params)])
        return None

    def grow_classes(self, net, growth):
        """Keep the memory as it is: its encoded labels stay valid.

        New classes are appended after the known ones, so the stored labels
        still index the same classes, and the reference gradient is the
        criterion's over every output, the new ones included.

        Parameters
        ----------
        net : ContinualClassifier
            The estimator (unused).
        growth : skcl._head_growth.HeadGrowth
            The growth (unused).

        Returns
        -------
        self : AGEM
            The regularizer, unchanged.
        """
        return self

    def consolidate(self, net, X, y):
        """Add the month's rows to the memory.

        Parameters
        ----------
        net : skorch.NeuralNet
            The trained net.
        X : torch.Tensor of shape (n_samples, n_features)
            The month's rows.
        y : torch.Tensor of shape (n_samples,)
            Their encoded labels.

        Returns
        -------
        self : AGEM
            The regularizer, with the month in its memory.
        """
        check_parameter_constraints(self)
        self._fitted_memory().partial_fit(host_rows(X), y.cpu().numpy())
        self._count_consolidation()
        return self


class DERpp(_MemoryStrategy):
    r"""Dark experience replay (DER++): replay past rows' logits and labels as loss terms.

    .. math:: \alpha\, \frac{1}{|B'| K} \sum_{(x, z) \in B'} \lVert f_\theta(x) - z
              \rVert_2^2 \;+\; \beta\, \frac{1}{|B''|} \sum_{(x, y) \in B''}
              \ell\bigl(f_\theta(x), y\bigr)

    from Buzzega et al. (2020), "Dark Experience for General Continual
    Learning: a Strong, Simple Baseline": every training step adds two terms
    on two batches drawn from a memory of past rows: the squared error
    between the current logits and the logits :math:`z` stored with the row
    (:math:`K` classes; what the model answered then, all classes' scores,
    not only the label), and the criterion's loss on the stored labels.
    ``beta=0`` is DER. The memory is a :class:`~skcl.RehearsalBuffer` fed
    after every month with the month's rows and the trained model's logits on
    them (evaluation mode) as its ``extra`` array; the original stores
    logits during training instead, which a monthly update has no need for.

    Read more in the :ref:`User Guide <derpp>`.

    Parameters
    ----------
    alpha : float, default=0.1
        Weight :math:`\alpha` >= 0 of the logit term.
    beta : float, default=0.5
        Weight :math:`\beta` >= 0 of the label term.
    memory : RehearsalBuffer or None, default=None
        The memory's settings, cloned into ``memory_`` at the first month
        (tunable as ``regularizer__memory__capacity``); ``None`` is
        ``RehearsalBuffer()``. Its ``replay_ratio`` is not used.
    batch_size : int or None, default=None
        Rows per replayed batch; ``None`` uses the training batch's size.
    random_state : int, RandomState instance or None, default=None
        Seeds the memory's draws when the memory has no seed of its own;
        :class:`~skcl.ContinualClassifier` fills it in from its own.

    Attributes
    ----------
    memory_ : RehearsalBuffer
        The fitted memory: rows, encoded labels, and logits in ``extra_``.
    n_consolidations_ : int
        Months consolidated so far.

    See Also
    --------
    LwF : Distillation on the new rows, no memory.
    AGEM : The memory as a gradient constraint.

    Examples
    --------
    >>> from skcl import ContinualClassifier, DERpp, RehearsalBuffer
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=2, n_samples_per_month=60,
    ...                                     random_state=0)
    >>> der = DERpp(alpha=0.1, beta=0.5, memory=RehearsalBuffer(capacity=50))
    >>> clf = ContinualClassifier(regularizer=der, max_epochs=1,
    ...                           random_state=0).fit(X, y, months=months)
    >>> clf.regularizer_.memory_.extra_.shape   # one logit per class per row
    (50, 2)
    """

    _parameter_constraints = {
        "alpha": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "memory": [HasMethods(["partial_fit", "sample"]), None],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    def __init__(self, alpha=0.1, beta=0.5, *, memory=None, batch_size=None,
                 random_state=None):
        self.alpha = alpha
        self.beta = beta
        self.memory = memory
        self.batch_size = batch_size
        self.random_state = random_state

    def batch_loss(self, net, X, y, y_pred, n_months_seen):
        """Return the replay terms for one training step (``None`` in the first month).

        Parameters
        ----------
        net : skorch.NeuralNet
            The classifier being trained.
        X : torch.Tensor of shape (n_samples, n_features)
            The batch's inputs (their count sets the replayed batch size when
            ``batch_size`` is None).
        y : torch.Tensor of shape (n_samples,)
            The batch's labels (unused).
        y_pred : torch.Tensor of shape (n_samples, n_classes)
            The model's output on the batch (unused).
        n_months_seen : int
            Months trained before this one (the classifier's ``n_months_seen_``).

        Returns
        -------
        term : torch.Tensor of shape () or None
            :math:`\\alpha` times the logits' mean squared error plus
            :math:`\\beta` times the labels' loss, each on its own draw from
            the memory, forwarded together.
        """
        if "memory_" not in self.__dict__ or (self.alpha == 0 and self.beta == 0):
            return None
        n_rows = X.shape[0] if self.batch_size is None else self.batch_size
        inputs, terms = [], []
        if self.alpha:
            X_logit, _, logits = self._memory_batch(net, n_rows, return_extra=True)
            inputs.append(X_logit)
        if self.beta:
            X_label, y_label = self._memory_batch(net, n_rows)
            inputs.append(X_label)
        output = net.infer(cat_rows(inputs))  # one forward for both draws
        if self.alpha:
            # after new classes (NaN-padded logits): the known entries only
            mse = (_masked_mse if self.__dict__.get("_logits_padded") else F.mse_loss)
            terms.append(self.alpha * mse(output[:n_rows], logits))
        if self.beta:
            label_loss = net.get_loss(output[-n_rows:], y_label, X=X_label, training=False)
            terms.append(self.beta * label_loss)
        return sum(terms[1:], terms[0])

    def grow_classes(self, net, growth):
        """Pad the stored logits with NaN for the new classes, which the logit term skips.

        The logits stored with past rows cover the classes known then; the
        new classes' columns are NaN ("not known"), and the logit term's mean
        squared error runs over the known entries only, so an old row is
        pulled towards what the model answered for the classes it had, and
        nothing is assumed about the new ones. The label term needs nothing:
        stored labels keep their positions.

        Parameters
        ----------
        net : ContinualClassifier
            The estimator (unused).
        growth : skcl._head_growth.HeadGrowth
            The class counts before and after.

        Returns
        -------
        self : DERpp
            The regularizer, its memory's logits padded.
        """
        memory = self.__dict__.get("memory_")
        extra = None if memory is None else memory.__dict__.get("extra_")
        if extra is not None:
            padding = np.full((len(extra), growth.n_new - extra.shape[1]), np.nan,
                              dtype=extra.dtype)
            memory.extra_ = np.concatenate([extra, padding], axis=1)
            memory.extra_.flags.writeable = False
            self._logits_padded = True
        return self

    def consolidate(self, net, X, y):
        """Add the month's rows, labels and the trained model's logits to the memory.

        Parameters
        ----------
        net : skorch.NeuralNet
            The trained net.
        X : torch.Tensor of shape (n_samples, n_features)
            The month's rows.
        y : torch.Tensor of shape (n_samples,)
            Their encoded labels.

        Returns
        -------
        self : DERpp
            The regularizer, with the month in its memory.
        """
        check_parameter_constraints(self)
        module = net.module_
        with evaluation_mode(module), torch.no_grad():
            logits = torch.cat([module(torch_rows(X, start, start + 1024))
                                for start in range(0, X.shape[0], 1024)])
        self._fitted_memory().partial_fit(host_rows(X), y.cpu().numpy(),
                                          extra=logits.float().cpu().numpy())
        self._count_consolidation()
        return self


def _masked_mse(output, target):
    """Mean squared error over the finite entries of ``target`` (NaN: class unknown then)."""
    known = torch.isfinite(target)
    squared = (output - torch.where(known, target, output.detach())).square()
    return squared.sum() / known.sum().clamp_min(1)

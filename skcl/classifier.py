"""ContinualClassifier: a skorch classifier trained month by month."""

import contextlib
import copy
import inspect
import pickle
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochScoring
from skorch.dataset import Dataset
from skorch.net import NeuralNet

from ._batching import DeviceBatchIterator, dataset_tensors
from .modules import MLP
from .utils._labels import check_month_classes
from .utils._months import check_months
from .utils._sklearn_compat import (
    HasMethods,
    Interval,
    Options,
    StrOptions,
    check_parameter_constraints,
    validate_data,
    validate_parameter_constraints,
)

__all__ = ["ContinualClassifier"]

_SEED_HIGH = np.iinfo(np.int32).max
_WEIGHTS_FORMAT = "skcl.weights/1"


class ContinualClassifier(NeuralNetClassifier):
    """Neural classifier fine-tuned month by month with ``partial_fit``.

    A skorch :class:`~skorch.classifier.NeuralNetClassifier` whose ``partial_fit``
    trains on one month of data under a continual-learning strategy, and whose
    ``fit(X, y, months=...)`` replays a whole stream month by month. Strategies
    compose through independent parameters: ``update`` (fine-tune or retrain),
    ``regularizer`` (a loss penalty), ``rehearsal`` (replayed past data) and
    ``finetune_lr`` / ``finish_epochs`` (the optimizer's learning rate after the
    first month, and low-rate epochs that close each month).

    Read more in the :ref:`User Guide <strategies>`.

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=MLP
        The network. If it is a class whose constructor takes ``n_features`` or
        ``n_classes``, those are filled in from the first month unless given as
        ``module__n_features`` / ``module__n_classes``. Its forward must return
        one logit per class when ``criterion`` is ``CrossEntropyLoss``.
    criterion : torch criterion class, default=torch.nn.CrossEntropyLoss
        The training loss.
    optimizer : torch optimizer class, default=torch.optim.Adam
        Created once at the first month and kept (state included) afterwards,
        except under ``update="retrain"``.
    lr : float, default=1e-3
        Learning rate of the first month (and of every month under
        ``update="retrain"``).
    finetune_lr : float or None, default=None
        Learning rate of every later month, set on the live optimizer without
        resetting its state. ``None`` keeps ``lr``.
    finish_epochs : int, default=0
        Extra epochs at the end of every month, trained at ``finish_lr``:
        finishing a run with a few low-learning-rate epochs settles the weights
        near a minimum of the month's loss without the large steps that move
        them far from what earlier months learned.
    finish_lr : float or None, default=None
        Learning rate of the finishing epochs; ``None`` is a tenth of the
        month's learning rate.
    max_epochs : int, default=5
        Epochs per month (per ``partial_fit`` call), before ``finish_epochs``.
    batch_size : int, default=128
        Rows per mini-batch.
    update : {"finetune", "retrain"}, default="finetune"
        How each month updates the model.
        ``"finetune"`` continues from the current weights each month.
        ``"retrain"`` re-initializes the module and optimizer each month and trains
        on every month seen so far: the full-retraining baseline. It keeps a copy
        of all past training data on the host, so its memory grows with the
        stream (``n_samples_seen * n_features * 4`` bytes for float32).
    regularizer : regularizer object or None, default=None
        A loss-level strategy (e.g. :class:`~skcl.EWC`), cloned into
        ``regularizer_`` at the first month. Its ``penalty(module)`` is added to
        the training loss only (or, when it has the optional fast hook
        ``add_penalty_grad(module)``, as the built-in ones do, its gradient is
        added after ``backward()`` and its value to the recorded training
        loss, see :meth:`get_loss`); its ``consolidate(net, X, y)`` runs after
        each month. Tunable as ``regularizer__<param>``.
    rehearsal : rehearsal object or None, default=None
        A data-level strategy (e.g. :class:`~skcl.RehearsalBuffer`), cloned into
        ``rehearsal_``. Each training epoch uses ``rehearsal_.fit_resample`` of the
        month, drawn afresh; the month is added with ``rehearsal_.partial_fit``
        after training. Tunable as ``rehearsal__<param>``.
    keep_snapshots : bool, default=False
        Keep a CPU copy of the weights after each month in ``snapshots_``
        (memory: one copy of the parameters per month).
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialization, shuffling, dropout and the rehearsal draws
        (when the buffer has no seed of its own). With an int, a CPU run is
        bit-for-bit reproducible, and so is a run that is saved and resumed.
    train_split : callable or None, default=None
        The validation split of skorch, applied within each month. ``None``
        trains on the whole month.
    iterator_train, iterator_valid : class, default=DeviceBatchIterator
        Batch iterators; the default slices tensors already on ``device``.
    callbacks : list or None, default=None
        Additional skorch callbacks (instances or ``(name, callback)`` tuples),
        run within every month.
    verbose : int, default=0
        Verbosity: when positive, skorch prints its per-epoch log.
    device : str or torch.device, default="cpu"
        Where the module, each month's data and the strategy's tensors live.
    **kwargs
        Any other skorch parameter (``module__hidden_units``,
        ``optimizer__weight_decay``, ``iterator_train__drop_last``, ...).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, fixed at the first month.
    n_features_in_ : int
        Number of features seen at the first month.
    feature_names_in_ : ndarray of str
        Column names, when the first month was a DataFrame with string columns.
    months_ : list
        Month labels trained on, in order (a running count when none was given).
    n_months_seen_ : int
        Number of months trained on.
    n_samples_seen_ : int
        Number of new rows trained on, summed over months.
    n_samples_processed_ : int
        Training rows processed, summed over every epoch of every month
        (replayed rows and retraining's re-visits included): the training cost
        measure that strategies are compared by.
    module_, optimizer_, criterion_, history_
        skorch's fitted components. ``history_`` keeps one row per epoch of
        every month, but per-batch records only for the latest month, so it
        stays small on long streams.
    regularizer_ : object or None
        The fitted copy of ``regularizer``.
    rehearsal_ : object or None
        The fitted copy of ``rehearsal``.
    snapshots_ : list of dict
        With ``keep_snapshots=True``: per month, the module's ``state_dict`` on CPU.
    rng_ : numpy.random.Generator
        Source of the per-month torch seeds.

    See Also
    --------
    skcl.RehearsalBuffer : Replay memory passed as ``rehearsal``.
    skcl.EWC : Elastic weight consolidation passed as ``regularizer``.

    Examples
    --------
    >>> from skcl import ContinualClassifier
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=3, n_samples_per_month=200,
    ...                                     random_state=0)
    >>> clf = ContinualClassifier(max_epochs=2, random_state=0)
    >>> for month in range(3):
    ...     clf = clf.partial_fit(X[months == month], y[months == month],
    ...                           classes=[0, 1])
    >>> clf.n_months_seen_
    3
    >>> clf.predict(X[:4]).shape
    (4,)
    """

    # ``months`` is what GridSearchCV must slice per fold: request it by default.
    __metadata_request__fit = {"months": True}

    # Strategy state may hold tensors on ``device``; skorch maps these through
    # torch.load's map_location when unpickling, so a CUDA-trained model loads
    # on a CPU-only machine.
    cuda_dependent_attributes_ = NeuralNetClassifier.cuda_dependent_attributes_ + [
        "regularizer_", "rehearsal_",
    ]

    _parameter_constraints = {
        "lr": [Interval(Real, 0, None, closed="neither")],
        "finetune_lr": [Interval(Real, 0, None, closed="left"), None],
        "finish_epochs": [Interval(Integral, 0, None, closed="left")],
        "finish_lr": [Interval(Real, 0, None, closed="left"), None],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"),
                       Options(Integral, {-1})],
        "update": [StrOptions({"finetune", "retrain"})],
        "regularizer": [HasMethods(["penalty", "consolidate"]), None],
        "rehearsal": [HasMethods(["fit_resample", "partial_fit"]), None],
        "keep_snapshots": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        module=MLP,
        *,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        finetune_lr=None,
        finish_epochs=0,
        finish_lr=None,
        max_epochs=5,
        batch_size=128,
        update="finetune",
        regularizer=None,
        rehearsal=None,
        keep_snapshots=False,
        random_state=None,
        train_split=None,
        iterator_train=DeviceBatchIterator,
        iterator_valid=DeviceBatchIterator,
        callbacks=None,
        verbose=0,
        device="cpu",
        **kwargs,
    ):
        # NeuralNet's constructor, not NeuralNetClassifier's: the latter adds a
        # ``classes`` parameter that would shadow ``partial_fit(classes=...)``.
        NeuralNet.__init__(
            self,
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            iterator_train=iterator_train,
            iterator_valid=iterator_valid,
            callbacks=callbacks,
            verbose=verbose,
            device=device,
            **kwargs,
        )
        self.finetune_lr = finetune_lr
        self.finish_epochs = finish_epochs
        self.finish_lr = finish_lr
        self.update = update
        self.regularizer = regularizer
        self.rehearsal = rehearsal
        self.keep_snapshots = keep_snapshots
        self.random_state = random_state

    # ------------------------------------------------------------------
    # sklearn plumbing
    # ------------------------------------------------------------------
    @property
    def classes_(self):
        """Class labels, fixed at the first month (raises before it)."""
        try:
            return self.__dict__["classes_"]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no attribute 'classes_' before its "
                "first fit or partial_fit"
            ) from None

    @classes_.setter
    def classes_(self, value):
        self.__dict__["classes_"] = value

    @classes_.deleter
    def classes_(self):
        self.__dict__.pop("classes_", None)

    def _get_param_names(self):
        # skorch lists every attribute not ending in "_" as a parameter; private
        # bookkeeping (``_params_to_validate`` ...) is not one.
        return [name for name in super()._get_param_names() if not name.startswith("_")]

    def set_params(self, **params):
        """Set parameters, routing ``regularizer__*`` / ``rehearsal__*`` to the objects.

        skorch's own ``set_params`` does not forward nested keys of plain
        sklearn-style objects, so they are applied here first.

        Parameters
        ----------
        **params
            Estimator parameters as ``name=value``. Keys
            ``regularizer__<param>`` and ``rehearsal__<param>`` are set on the
            ``regularizer`` / ``rehearsal`` object (which must not be ``None``);
            any other key is handled by skorch (``lr``,
            ``module__hidden_units``, ``optimizer__weight_decay``, ...), except
            ``callbacks`` before the estimator is initialized, which is stored
            as given.

        Returns
        -------
        self : ContinualClassifier
            The estimator, with the parameters set.
        """
        nested = {}
        for key in list(params):
            name, sep, sub_key = key.partition("__")
            if sep and name in ("regularizer", "rehearsal"):
                nested.setdefault(name, {})[sub_key] = params.pop(key)
        if "callbacks" in params and not getattr(self, "initialized_", False):
            # stored verbatim until fit, as sklearn expects (skorch would
            # initialize the callbacks here and fail on invalid values early)
            self.__dict__["callbacks"] = params.pop("callbacks")
        if params:
            super().set_params(**params)
        for name, sub_params in nested.items():
            target = getattr(self, name)
            if target is None:
                raise ValueError(
                    f"cannot set {sorted(name + '__' + k for k in sub_params)}: "
                    f"{name} is None; set {name}=... first"
                )
            target.set_params(**sub_params)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.input_tags.allow_nan = False
        tags.classifier_tags.multi_class = True
        return tags

    def __sklearn_is_fitted__(self):
        return "classes_" in self.__dict__ and getattr(self, "initialized_", False)

    # ------------------------------------------------------------------
    # public training entry points
    # ------------------------------------------------------------------
    def partial_fit(self, X, y, classes=None, month=None, **fit_params):
        """Train on one month of data under the configured strategy.

        The first call initializes the module (and fixes ``classes_``,
        ``n_features_in_``); later calls continue from the current weights and
        optimizer state. If anything raises during the call (invalid input,
        diverging loss, ``KeyboardInterrupt``), the estimator is restored to its
        state before the call and the error is re-raised.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The month's features (numpy array or DataFrame).
        y : array-like of shape (n_samples,)
            The month's labels.
        classes : array-like of shape (n_classes,), default=None
            Every label the stream can contain. Needed on the first call unless
            that month holds every label already; must match ``classes_`` after.
        month : hashable, default=None
            The month's label, recorded in ``months_`` and passed to the
            rehearsal buffer. ``None`` uses the running month count.
        **fit_params
            Passed to the module's forward, as in skorch.

        Returns
        -------
        self : ContinualClassifier
            Fitted estimator, trained on one more month.
        """
        return self._atomic(self._partial_fit, X, y, classes, month, fit_params)

    def fit(self, X, y, months=None, **fit_params):
        """Reset, then train on the stream one month at a time, in sorted order.

        Equivalent to a fresh estimator's ``partial_fit`` on each distinct month
        of ``months`` in sorted order, with ``classes`` set to every label in
        ``y``. This is the entry point of ``GridSearchCV`` and
        ``cross_validate``, which slice ``months`` per fold through metadata
        routing.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features of the whole stream.
        y : array-like of shape (n_samples,)
            Labels of the whole stream.
        months : array-like of shape (n_samples,), default=None
            Month label of each row; any sortable labels (ints, strings,
            dates). ``None`` trains on everything as a single month.
        **fit_params
            Passed to the module's forward, as in skorch.

        Returns
        -------
        self : ContinualClassifier
            Fitted estimator, trained on every month of the stream.
        """
        return self._atomic(self._fit, X, y, months, fit_params)

    # ------------------------------------------------------------------
    # prediction
    # ------------------------------------------------------------------
    def predict_proba(self, X):
        """Return class probabilities, columns ordered as ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The rows to predict (numpy array or DataFrame), with the features
            seen at the first month.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probability of each class for each row: the module's output after
            skorch's ``predict_nonlinearity`` (a softmax over the logits with
            the default ``CrossEntropyLoss``).
        """
        self.check_is_fitted()
        if isinstance(X, torch.utils.data.Dataset):
            # skorch callbacks score on the validation Dataset (encoded labels)
            return NeuralNet.predict_proba(self, X)
        X = self._validate_features(X, reset=False)
        return NeuralNet.predict_proba(self, self._to_device(X))

    def predict(self, X):
        """Return the most probable label of each row, from ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The rows to predict (numpy array or DataFrame), with the features
            seen at the first month.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            The label of ``classes_`` with the highest probability.
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def check_is_fitted(self, attributes=None, *args, **kwargs):
        """Raise ``NotInitializedError`` (a ``NotFittedError``) before the first fit.

        Parameters
        ----------
        attributes : list of str or None, default=None
            Attributes a fitted estimator has; ``None`` checks ``module_`` and
            ``classes_``.
        *args, **kwargs
            Passed on to skorch's ``check_is_fitted`` (``msg``,
            ``all_or_any``, as in ``sklearn.utils.validation.check_is_fitted``).
        """
        super().check_is_fitted(attributes or ["module_", "classes_"], *args, **kwargs)

    # ------------------------------------------------------------------
    # extension points
    # ------------------------------------------------------------------
    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Return the criterion's loss, plus the regularizer's penalty when training.

        The one place where a loss-level strategy enters: ``valid_loss`` and
        ``score`` never include the penalty. Safe to override if the signature
        is kept. Exception, the fast hook: when the regularizer has
        ``add_penalty_grad`` (the built-in :class:`~skcl.L2`,
        :class:`~skcl.EWC` and :class:`~skcl.OnlineEWC` do; ``None`` counts as
        absent), the penalty is not added here: :meth:`train_step_single` adds
        its gradient into the parameters' ``.grad`` right after ``backward()``
        and its value to the step's loss, so ``train_loss`` in the history
        includes it all the same.

        Parameters
        ----------
        y_pred : torch.Tensor
            The module's output for a batch (one logit per class with the
            default ``MLP``).
        y_true : torch.Tensor of shape (n_samples,)
            The batch's encoded labels (indices into ``classes_``).
        X : torch.Tensor of shape (n_samples, n_features), default=None
            The batch's input, passed on to skorch's ``get_loss``.
        training : bool, default=False
            Whether the loss is computed for a training step; the penalty is
            added only then.

        Returns
        -------
        loss : torch.Tensor of shape ()
            The criterion's loss on the batch (computed by skorch's
            classifier), plus ``regularizer_.penalty(module_)`` when
            ``training`` and a regularizer without ``add_penalty_grad`` is set.
        """
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        regularizer = getattr(self, "regularizer_", None) if training else None
        if regularizer is not None and getattr(regularizer, "add_penalty_grad", None) is None:
            loss = loss + regularizer.penalty(self.module_)
        return loss

    def train_step_single(self, batch, **fit_params):
        """Compute the prediction, loss and gradients of one training batch.

        skorch's step (forward, :meth:`get_loss`, ``backward()``), followed,
        when the regularizer has the fast hook ``add_penalty_grad``, by
        ``regularizer_.add_penalty_grad(module_)``: the penalty's gradient is
        added into the parameters' ``.grad`` and its value to the returned
        loss. Callbacks' ``on_grad_computed`` (e.g. gradient clipping) run
        afterwards and see the full gradient.

        Parameters
        ----------
        batch : tuple
            One batch of the training iterator, ``(X, y)``.
        **fit_params
            Passed to the module's forward, as in skorch.

        Returns
        -------
        step : dict
            ``{"loss": loss, "y_pred": y_pred}``: the training loss (penalty
            included) and the module's output.
        """
        step = super().train_step_single(batch, **fit_params)
        add_penalty_grad = getattr(getattr(self, "regularizer_", None), "add_penalty_grad", None)
        if add_penalty_grad is not None:
            step["loss"] = step["loss"] + add_penalty_grad(self.module_)
        return step

    def get_epoch_dataset(self, dataset):
        """Return the dataset one training epoch iterates over.

        The one place where a data-level strategy enters: with a rehearsal buffer
        holding past data, the month (``dataset``) is mixed with a fresh replay
        draw through ``rehearsal_.fit_resample``. Safe to override if the
        signature is kept.

        Parameters
        ----------
        dataset : torch.utils.data.Dataset
            The month's training part, as built by skorch.

        Returns
        -------
        dataset : torch.utils.data.Dataset
            ``dataset`` itself without a rehearsal buffer or at the first month;
            otherwise a new dataset on ``device`` holding
            ``rehearsal_.fit_resample`` of the month: its rows mixed with rows
            replayed from the buffer (labels encoded).
        """
        rehearsal = getattr(self, "rehearsal_", None)
        if rehearsal is None or self.n_months_seen_ == 0:
            return dataset
        cached = self.__dict__.get("_epoch_source")
        if cached is not None and cached[0] is dataset:
            X_new, y_new = cached[1:]
        else:
            tensors = dataset_tensors(dataset)
            if tensors is None:
                raise TypeError(
                    "rehearsal needs in-memory training data, but skorch built a "
                    f"{type(dataset).__name__}; pass numpy arrays or DataFrames"
                )
            X_new, y_new = (t.cpu().numpy() for t in tensors)
            # one host copy of the month for all its epochs (dropped at month end)
            self.__dict__["_epoch_source"] = (dataset, X_new, y_new)
        X_mix, y_mix = rehearsal.fit_resample(X_new, y_new)
        return Dataset(self._to_device(X_mix), self._to_device(y_mix, dtype=torch.long))

    def on_month_end(self, X, y, month):
        """Update every strategy's state after a month has been trained on.

        Consolidates the regularizer, adds the month to the rehearsal buffer and
        keeps a snapshot. Safe to override if the signature is kept (call
        ``super()``).

        Parameters
        ----------
        X : torch.Tensor of shape (n_samples, n_features)
            The month's features, on ``device``.
        y : torch.Tensor of shape (n_samples,)
            The month's encoded labels (indices into ``classes_``), on ``device``.
        month : hashable
            The month's label.
        """
        if self.regularizer_ is not None:
            self.regularizer_.consolidate(self, X, y)
        if self.rehearsal_ is not None:
            self.rehearsal_.partial_fit(X.cpu().numpy(), y.cpu().numpy(), month=month)
        if self.keep_snapshots:
            self.snapshots_.append(
                {k: v.detach().to("cpu", copy=True) for k, v in self.module_.state_dict().items()}
            )

    def get_snapshot_estimator(self, index):
        """Return a copy of this estimator holding the weights kept after a month.

        Parameters
        ----------
        index : int
            Position in ``snapshots_`` (and ``months_``); negative counts from
            the end.

        Returns
        -------
        estimator : ContinualClassifier
            A fitted copy for prediction, without snapshots of its own.
        """
        self.check_is_fitted()
        if not self.keep_snapshots or not self.snapshots_:
            raise ValueError(
                "no snapshots were kept; set keep_snapshots=True before training"
            )
        snapshots = self.snapshots_
        self.snapshots_ = []
        try:
            estimator = copy.deepcopy(self)
        finally:
            self.snapshots_ = snapshots
        estimator.module_.load_state_dict(snapshots[index])
        return estimator

    def save_weights(self, f):
        """Save what prediction needs in a file that loads without running code.

        ``joblib`` / ``pickle`` files can execute arbitrary code when loaded:
        share them only between parties that trust each other. This file holds
        only tensors and plain Python values (the module's ``state_dict``,
        ``classes_``, ``n_features_in_`` and ``feature_names_in_``), written by
        ``torch.save`` and read back by :meth:`load_weights` with
        ``torch.load(weights_only=True)``, which refuses anything else.
        Strategy state (importances, replay memory, optimizer) is not included:
        use joblib to resume training exactly.

        Parameters
        ----------
        f : str, path-like or file-like
            Where to write.
        """
        self.check_is_fitted()
        feature_names = getattr(self, "feature_names_in_", None)
        payload = {
            "format": _WEIGHTS_FORMAT,
            "module_state": {k: v.detach().to("cpu") for k, v in self.module_.state_dict().items()},
            "classes": self.classes_.tolist(),
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": None if feature_names is None else feature_names.tolist(),
        }
        torch.save(payload, f)

    def load_weights(self, f):
        """Load a file written by :meth:`save_weights` into a fresh estimator.

        Builds the module from this estimator's parameters (which must match
        those of the saved one), loads the weights on ``device``, and leaves the
        estimator ready to predict or to fine-tune on further months (the
        strategies start empty). Only tensors and plain values are unpickled.

        Parameters
        ----------
        f : str, path-like or file-like
            What to read.

        Returns
        -------
        self : ContinualClassifier
            The estimator, holding the saved weights and classes, ready to
            predict or to train on further months.
        """
        try:
            with warnings.catch_warnings():
                # torch warns about the protocol of any non-torch pickle it refuses
                warnings.simplefilter("ignore", UserWarning)
                payload = torch.load(f, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ValueError(
                f"{f!r} holds objects other than tensors and plain values, so it was "
                "not loaded (it is not a file written by save_weights); load a joblib "
                "file with joblib.load, and only if you trust its source"
            ) from exc
        if not isinstance(payload, dict) or payload.get("format") != _WEIGHTS_FORMAT:
            raise ValueError(
                f"{f!r} is not a weights file written by ContinualClassifier.save_weights "
                f"(expected format {_WEIGHTS_FORMAT!r}); load joblib files with joblib.load"
            )
        check_parameter_constraints(self)
        self._check_cross_params()
        self._reset()
        self.classes_ = np.asarray(payload["classes"])
        self.n_features_in_ = payload["n_features_in"]
        if payload["feature_names_in"] is not None:
            self.feature_names_in_ = np.asarray(payload["feature_names_in"], dtype=object)
        seed = check_random_state(self.random_state).randint(_SEED_HIGH)
        self.rng_ = np.random.default_rng(seed)
        self.months_, self.n_months_seen_, self.n_samples_seen_, self.snapshots_ = [], 0, 0, []
        self.n_samples_processed_ = 0
        with self._seeded(int(self.rng_.integers(_SEED_HIGH))):
            self._initialize_month_state()
        self.module_.load_state_dict(payload["module_state"])
        return self

    def initialize_module(self):
        """Instantiate ``module_``, filling in ``n_features`` / ``n_classes``.

        Returns
        -------
        self : ContinualClassifier
            The estimator, with a freshly initialized ``module_``.
        """
        kwargs = self.get_params_for("module")
        if isinstance(self.module, type) and "classes_" in self.__dict__:
            accepted = inspect.signature(self.module).parameters
            if "n_features" in accepted:
                kwargs.setdefault("n_features", self.n_features_in_)
            if "n_classes" in accepted:
                kwargs.setdefault("n_classes", len(self.classes_))
        self.module_ = self.initialized_instance(self.module, kwargs)
        return self

    def get_iterator(self, dataset, training=False):
        """Return the batch iterator; training batches are shuffled by default.

        Safe to override if the signature is kept.

        Parameters
        ----------
        dataset : torch.utils.data.Dataset
            The data to iterate over.
        training : bool, default=False
            Whether to build ``iterator_train`` (shuffled unless
            ``iterator_train__shuffle`` is set) or ``iterator_valid``.

        Returns
        -------
        iterator : iterable
            An instance of ``iterator_train`` or ``iterator_valid`` over
            ``dataset``, yielding mini-batches of ``batch_size`` rows (the
            ``iterator_*__batch_size`` parameter if set; ``-1`` means the
            whole dataset).
        """
        if training and "iterator_train__shuffle" not in self.__dict__:
            kwargs = self.get_params_for("iterator_train")
            kwargs.setdefault("batch_size", self.batch_size)
            if kwargs["batch_size"] == -1:
                kwargs["batch_size"] = len(dataset)
            return self.iterator_train(dataset, shuffle=True, **kwargs)
        return super().get_iterator(dataset, training=training)

    # ------------------------------------------------------------------
    # skorch hooks
    # ------------------------------------------------------------------
    @property
    def _default_callbacks(self):
        # skorch's valid_acc compares ``predict`` (labels from ``classes_``)
        # with the validation Dataset's targets (encoded indices); score the
        # encoded argmax instead so string or non-contiguous labels work.
        return [
            (name, EpochScoring(_encoded_accuracy, name="valid_acc", lower_is_better=False)
             if name == "valid_acc" else callback)
            for name, callback in super()._default_callbacks
        ]

    def check_data(self, X, y):
        """Accept the training data as is: ``classes_`` is fixed at the first month.

        skorch's classifier infers its classes from the ``y`` of every
        ``fit_loop`` call; here that ``y`` holds one month's encoded labels,
        which may lack some classes, so nothing is inferred or checked (the
        data was validated by ``fit`` / ``partial_fit`` already).

        Parameters
        ----------
        X : torch.Tensor of shape (n_samples, n_features)
            The training rows passed to ``fit_loop``.
        y : torch.Tensor of shape (n_samples,)
            Their encoded labels (indices into ``classes_``).
        """
        pass

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """Run one training or validation epoch of skorch's loop.

        skcl changes training epochs only: the epoch iterates over
        :meth:`get_epoch_dataset` of the training data (the month mixed with
        replayed rows when a rehearsal buffer is set), its rows are added to
        ``n_samples_processed_``, and afterwards a ``FloatingPointError`` is
        raised if any batch's training loss was not finite (``fit`` /
        ``partial_fit`` then roll the month back).

        Parameters
        ----------
        iterator : iterable or None
            The batch iterator over the epoch's data; ``None`` skips the epoch.
        training : bool
            Whether this is a training epoch (module in train mode) or a
            validation one.
        prefix : str
            Prefix of the history keys, ``"train"`` or ``"valid"``.
        step_fn : callable
            Called on each batch (skorch's ``train_step`` or
            ``validation_step``).
        **fit_params
            Passed to ``step_fn``.
        """
        if training and iterator is not None:
            epoch_dataset = self.get_epoch_dataset(iterator.dataset)
            if epoch_dataset is not iterator.dataset:
                iterator = self.get_iterator(epoch_dataset, training=True)
            self.n_samples_processed_ += len(epoch_dataset)
        super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        if training and iterator is not None:
            self._check_epoch_losses(prefix)

    def _check_epoch_losses(self, prefix):
        # Once per epoch, on the floats skorch recorded for each batch: a
        # torch.isfinite per step would add a kernel launch and a device sync to
        # every training step. A diverged month is rolled back whole anyway.
        key = prefix + "_loss"
        for batch in self.history[-1]["batches"]:
            if key in batch and not np.isfinite(batch[key]):
                raise FloatingPointError(
                    f"training loss became {batch[key]} in month "
                    f"{self.n_months_seen_ + 1} (epoch {len(self.history)}); the model "
                    "diverged and the month was rolled back: lower lr/finetune_lr, "
                    "scale the features, or lower the regularizer's lam"
                )

    # ------------------------------------------------------------------
    # internals
    # ------------------------------------------------------------------
    def _atomic(self, method, *args):
        # The previous state is copied whole so that any failure, including
        # KeyboardInterrupt or a CUDA out-of-memory error, leaves the estimator
        # exactly as it was. Cost: one copy of the weights, optimizer state and
        # strategy state per call.
        backup = copy.deepcopy(self.__dict__)
        try:
            return method(*args)
        except BaseException as exc:
            self.__dict__.clear()
            self.__dict__.update(backup)
            if hasattr(exc, "add_note"):
                exc.add_note(
                    f"{type(self).__name__}.{method.__name__.lstrip('_')} was rolled "
                    "back: the estimator is exactly as it was before the call"
                )
            raise

    def _fit(self, X, y, months, fit_params):
        check_parameter_constraints(self)
        self._check_cross_params()
        self._reset()
        X, y = self._validate_month(X, y, reset=True)
        if months is None:
            months = np.zeros(len(y), dtype=int)
        months, month_order = check_months(months, len(y))
        classes = np.unique(y)
        for month in month_order:
            rows = months == month
            self._fit_month(X[rows], y[rows], classes, month, fit_params)
        return self

    def _partial_fit(self, X, y, classes, month, fit_params):
        first_call = "classes_" not in self.__dict__
        if first_call:
            check_parameter_constraints(self)
            self._check_cross_params()
        X, y = self._validate_month(X, y, reset=first_call)
        self._fit_month(X, y, classes, month, fit_params)
        return self

    def _validate_month(self, X, y, reset):
        with _explained_input_errors():
            X, y = validate_data(self, X, y, reset=reset, dtype=[np.float32, np.float64])
        check_classification_targets(y)
        return X, y

    def _validate_features(self, X, reset):
        with _explained_input_errors():
            return validate_data(self, X, reset=reset, dtype=[np.float32, np.float64])

    def _check_cross_params(self):
        # the strategy objects' own constraints, checked before any training
        for name in ("regularizer", "rehearsal"):
            strategy = getattr(self, name)
            if hasattr(strategy, "_parameter_constraints"):
                validate_parameter_constraints(
                    strategy._parameter_constraints,
                    strategy.get_params(deep=False),
                    caller_name=f"{type(self).__name__}({name}={type(strategy).__name__}(...))",
                )
        device = torch.device(self.device) if self.device is not None else None
        if device is not None and device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} was requested but CUDA is not available "
                "on this machine; pass device='cpu'"
            )
        if self.update == "retrain" and (self.regularizer is not None
                                           or self.rehearsal is not None):
            raise ValueError(
                "update='retrain' trains from scratch on all past data, so "
                "regularizer and rehearsal have nothing to do; set them to None "
                "or use update='finetune'"
            )

    def _fit_month(self, X, y, classes, month, fit_params):
        if len(y) == 0:
            raise ValueError("the month has no rows; skip empty months")
        self.classes_ = check_month_classes(y, classes, self.__dict__.get("classes_"))
        y_encoded = np.searchsorted(self.classes_, y)
        first_month = not getattr(self, "initialized_", False) or "rng_" not in self.__dict__
        if first_month:
            seed = check_random_state(self.random_state).randint(_SEED_HIGH)
            self.rng_ = np.random.default_rng(seed)
            self.months_ = []
            self.n_months_seen_ = 0
            self.n_samples_seen_ = 0
            self.n_samples_processed_ = 0
            self.snapshots_ = []
        if month is None:
            month = self.n_months_seen_
        month_seed = int(self.rng_.integers(_SEED_HIGH))

        X_month = self._to_device(X)
        y_month = self._to_device(y_encoded, dtype=torch.long)
        if self.update == "retrain":
            X_train, y_train = self._remember_for_retrain(X, y_encoded)
        else:
            X_train, y_train = X_month, y_month

        with self._seeded(month_seed):
            if first_month or self.update == "retrain":
                self._initialize_month_state()
                lr = self.lr
            else:
                lr = self.lr if self.finetune_lr is None else self.finetune_lr
            for group in self.optimizer_.param_groups:
                group["lr"] = lr
            # per-batch records of earlier months are dropped (epoch rows stay)
            # so a long-lived model's history grows by a few numbers per epoch
            for epoch in self.history_:
                epoch["batches"] = []
            self.notify("on_train_begin", X=X_train, y=y_train)
            self.fit_loop(X_train, y_train, **fit_params)
            if self.finish_epochs:
                finish_lr = 0.1 * lr if self.finish_lr is None else self.finish_lr
                for group in self.optimizer_.param_groups:
                    group["lr"] = finish_lr
                self.fit_loop(X_train, y_train, epochs=self.finish_epochs, **fit_params)
                for group in self.optimizer_.param_groups:
                    group["lr"] = lr
            self.__dict__.pop("_epoch_source", None)
            self.notify("on_train_end", X=X_train, y=y_train)
            self.on_month_end(X_month, y_month, month)

        self.months_.append(month)
        self.n_months_seen_ += 1
        self.n_samples_seen_ += len(y)

    def _initialize_month_state(self):
        """Create module, optimizer and (at the first month) the strategy copies."""
        first_month = "regularizer_" not in self.__dict__
        # skorch clears history_ in place on initialize; retrain keeps one
        # history across its re-initializations, so hand it a fresh slot.
        history = None if first_month else self.history_
        self.history_ = None
        self.initialize()
        if history is not None:
            self.history_ = history
        if first_month:
            self.regularizer_ = None if self.regularizer is None else clone(self.regularizer)
            self.rehearsal_ = None if self.rehearsal is None else clone(self.rehearsal)
            if self.rehearsal_ is not None and "random_state" in self.rehearsal_.get_params():
                if self.rehearsal_.random_state is None:
                    self.rehearsal_.set_params(
                        random_state=int(self.rng_.integers(_SEED_HIGH)))

    def _remember_for_retrain(self, X, y_encoded):
        # every past row, in an unbounded RehearsalBuffer: one copy on the host
        from .rehearsal import RehearsalBuffer

        if "past_data_" not in self.__dict__:
            # capacity=None keeps every row and draws nothing; the fixed seed
            # only spares numpy's global RNG
            self.past_data_ = RehearsalBuffer(capacity=None, random_state=0)
        self.past_data_.partial_fit(X, y_encoded)
        return (self._to_device(self.past_data_.X_),
                self._to_device(self.past_data_.y_, dtype=torch.long))

    def _reset(self):
        """Forget every fitted attribute, as a fresh ``fit`` must."""
        # pop from __dict__: skorch's __delattr__ would also unregister the
        # component names it needs to initialize again.
        keep = {"initialized_", "virtual_params_", "history_", "init_context_",
                "prefixes_", "cuda_dependent_attributes_"}
        for name in [k for k in self.__dict__ if k.endswith("_") and not k.startswith("_")]:
            if name not in keep:
                self.__dict__.pop(name)
        self.initialized_ = False

    def _to_device(self, array, dtype=torch.float32):
        # a copy: the caller's array (possibly read-only, as pandas hands out)
        # is never shared with training state
        return torch.tensor(np.asarray(array), dtype=dtype, device=self.device)

    def _seeded(self, seed):
        device = torch.device(self.device) if self.device is not None else torch.device("cpu")
        devices = []
        if device.type == "cuda":
            devices = [torch.cuda.current_device() if device.index is None else device.index]
        return _SeededRNG(seed, devices)


@contextlib.contextmanager
def _explained_input_errors():
    """Add the fix to scikit-learn's input errors that only state the problem."""
    try:
        yield
    except ValueError as exc:
        message = str(exc)
        if message.startswith("could not convert"):
            raise ValueError(
                f"X must be numeric, but {message}; encode text or categorical "
                "columns first (e.g. a OneHotEncoder in a Pipeline)"
            ) from exc
        if "infinity" in message:
            raise ValueError(
                f"{message} Replace or clip infinite values before training or "
                "predicting"
            ) from exc
        raise


def _encoded_accuracy(net, X, y):
    """Accuracy of the argmax against encoded targets (skorch scoring signature)."""
    y_pred = np.argmax(NeuralNet.predict_proba(net, X), axis=1)
    return float(np.mean(y_pred == np.asarray(y)))


class _SeededRNG:
    """Context manager: torch's global RNG seeded with ``seed``, then restored.

    Training draws (shuffling, dropout) become a function of the estimator's own
    ``rng_`` and leave the caller's global torch RNG untouched.
    """

    def __init__(self, seed, devices):
        self.seed = seed
        self.devices = devices

    def __enter__(self):
        self._fork = torch.random.fork_rng(devices=self.devices)
        self._fork.__enter__()
        torch.manual_seed(self.seed)
        return self

    def __exit__(self, *exc_info):
        return self._fork.__exit__(*exc_info)

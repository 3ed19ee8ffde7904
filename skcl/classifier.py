"""ContinualClassifier: a skorch classifier trained month by month.

The file follows one month's life: the public entry points (``fit``,
``partial_fit``), the month driver ``_fit_month``, then the steps it takes in
order (checks, start of stream, settings changed between months, the month
object, initialization, the epochs and their batches, the loss, the end of the
month), then inference, parameters, rollback and persistence. The month's
state (label, seed, rows, placement, counters) is one ``skcl._month.Month``,
built once per month and dropped at its end; persistence and input validation
live in ``skcl._persistence`` and ``skcl._validation``.
"""

import copy
import functools
import inspect
import os
from contextlib import nullcontext
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.utils.multiclass import check_classification_targets
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochScoring
from skorch.dataset import unpack_data
from skorch.net import NeuralNet

from . import _persistence
from ._batching import DeviceBatchIterator
from ._compiled_step import compiled_train_step
from ._cost import counting_month, optimizer_step, start_counters
from ._cumulative import HISTORY_UPDATES, epoch_history_rows
from ._distributed import (
    agree_month_end,
    agree_on_month,
    check_distributed,
    data_parallel,
    sharded_consolidation,
)
from ._groups import check_groups
from ._head_growth import grow_output_layer, shrink_to_state
from ._month import Month, as_dataset, host_rows_of, place_rows
from ._monthlog import MonthLog
from ._persistence import _SKORCH_STATE
from ._schedule import (
    begin_month_schedule,
    end_month_schedule,
    next_scheduled_lr,
    start_scheduled_epoch,
)
from ._sparse import as_layout, host_rows, is_scipy_sparse
from ._validation import _NO_Y, _validate_input
from ._weight_averaging import average_month_weights, begin_weight_averaging
from .diverse_rehearsal import rehearsal_inputs
from .modules import MLP
from .regularizers._base import training_hooks
from .storage import RowStore
from .utils._device import check_stream_device
from .utils._fitted import is_fitted, reset_fitted_attributes
from .utils._interrupts import stopped_by_callback
from .utils._labels import check_month_classes, encode_labels
from .utils._months import check_month_label, missing_mask, stream_months
from .utils._optimizer import replace_optimizer
from .utils._params import carry_over_params
from .utils._predict import ArgmaxPredictMixin
from .utils._repr import signature_with_passed_on_defaults
from .utils._rollback import atomic, saved_state
from .utils._seeding import draw_seed, make_rng, seeded_global_torch
from .utils._sklearn_compat import (
    HasMethods,
    Interval,
    Options,
    StrOptions,
    check_parameter_constraints,
    validate_parameter_constraints,
)

__all__ = ["ContinualClassifier"]

# parameters that rebuild the network: refused once it is trained
_ARCHITECTURE_PARAMS = ("module", "criterion")


class ContinualClassifier(ArgmaxPredictMixin, NeuralNetClassifier):
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
        one logit per class when ``criterion`` is ``CrossEntropyLoss``. An
        instance is never trained in place: each initialization trains a copy
        of it, so ``fit`` twice gives the same model as once. Its weights are
        the starting point as you built it (``random_state`` seeds everything
        skcl draws after, grown output rows included, but not them): for runs
        reproducible from ``random_state`` alone, pass the class, or build the
        instance under ``torch.manual_seed``.
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
        Rows per mini-batch; ``-1`` makes each epoch one batch of all its rows.
    update : {"finetune", "retrain", "cumulative"}, default="finetune"
        How each month updates the model.
        ``"finetune"`` continues from the current weights each month.
        ``"retrain"`` re-initializes the module and optimizer each month and trains
        on every month seen so far: the full-retraining baseline. It keeps one
        copy of all past training rows on the host (in ``past_data_``, a
        :class:`~skcl.RowStore`: ``n_samples_seen * n_features * 4`` bytes
        dense float32, about ``8 * nnz`` sparse), or on disk with
        ``memmap_dir``, and streams batches from it (see :ref:`memory`).
        ``"cumulative"`` keeps the same history but warm-starts: each month
        continues from last month's weights and optimizer state (at
        ``finetune_lr``) and trains on the history so far, or a share of it
        per epoch (``history_fraction``); see :ref:`cumulative_training`.
        Switching between ``"retrain"`` and ``"cumulative"`` mid-stream is
        allowed (both keep the history); to or from ``"finetune"`` is not.
    history_fraction : float in (0, 1], default=1.0
        With ``update="retrain"`` or ``"cumulative"``: share of the earlier
        months' rows each epoch trains on, drawn afresh (uniformly, without
        replacement) every epoch, beside every row of the current month. An
        epoch then costs ``n_month + history_fraction * n_past`` rows: the
        knob that fits warm-started cumulative training into a budget.
    finish_history_fraction : float in [0, 1] or None, default=None
        With ``update="retrain"`` or ``"cumulative"`` and ``finish_epochs``:
        share of the earlier months' rows each finishing epoch trains on,
        beside the current month. ``0`` finishes on the month alone: the
        model ends fitted to the most recent data, which the next month
        resembles most (see :ref:`cumulative_training`). ``None`` uses
        ``history_fraction``.
    lr_schedule : {"constant", "cosine", "linear"}, default="constant"
        How the learning rate moves over each month's ``max_epochs`` epochs,
        step by step, restarting every month: ``"cosine"`` and ``"linear"``
        decay from the month's rate (``lr`` or ``finetune_lr``) to
        ``final_lr_fraction`` of it at the month's last step. The finishing
        epochs (``finish_epochs``) keep their own ``finish_lr``. Each batch's
        rate is recorded in the history (``history_[-1]["batches"][i]["lr"]``);
        see :ref:`lr_schedule`.
    warmup_fraction : float in [0, 1), default=0.0
        Share of each month's steps over which the rate rises linearly from
        ``rate / n_warmup_steps`` to the month's rate, before the schedule.
    final_lr_fraction : float in [0, 1], default=0.1
        With ``lr_schedule="cosine"`` or ``"linear"``: the month's last step
        trains at this fraction of the month's rate.
    weight_averaging : {None, "ema", "interpolate"}, default=None
        Average the weights across months (see :ref:`weight_averaging`):
        after month :math:`t` the deployed weights are
        ``averaging_decay * previous + (1 - averaging_decay) * trained``.
        ``"interpolate"`` trains the next month from those averaged weights;
        ``"ema"`` keeps training from the unaveraged weights (kept in
        ``training_weights_``) and deploys their exponential moving average.
        ``module_`` (what predicts, saves and is snapshot) always holds the
        averaged weights. Not with ``update="retrain"``. Turned on between
        months, it averages from that month on; turned off (or from
        ``"ema"`` to ``"interpolate"``), training continues from the deployed
        weights, as it does under ``"ema"`` in a month whose new classes grow
        the output layer.
    averaging_decay : float in [0, 1], default=0.5
        Weight of the previous months' average; ``0`` keeps only the month's
        trained weights.
    regularizer : regularizer object or None, default=None
        A loss- or gradient-level strategy (e.g. :class:`~skcl.EWC`,
        :class:`~skcl.LwF`, :class:`~skcl.AGEM`), cloned into
        ``regularizer_`` at the first month. Its training hooks (``penalty``,
        ``batch_loss``, ``after_backward``; see
        :class:`~skcl.regularizers.Regularizer`) act on the training loss and
        gradients only (see :meth:`get_loss` and :meth:`train_step_single`);
        its ``consolidate(net, X, y)`` runs after each month. Tunable as
        ``regularizer__<param>``.
    rehearsal : rehearsal object or None, default=None
        A data-level strategy (e.g. :class:`~skcl.RehearsalBuffer`), cloned into
        ``rehearsal_``. Each training epoch uses ``rehearsal_.fit_resample`` of the
        month, drawn afresh; the month is added with ``rehearsal_.partial_fit``
        after training. Tunable as ``rehearsal__<param>``.
    keep_snapshots : bool, default=False
        Keep a CPU copy of the weights after each month in ``snapshots_``
        (memory: one copy of the parameters per month).
    new_classes : {"error", "grow"}, default="error"
        What a month with labels outside ``classes_`` does. ``"error"``
        refuses it (scikit-learn's ``partial_fit(classes=...)`` contract) and
        changes nothing. ``"grow"`` appends the new labels to ``classes_``
        (after the known ones, so no class changes position) and the output
        layer grows by one row per new class, drawn as a fresh layer would
        be; the old rows, their optimizer state and every strategy's state
        of them are kept (see :ref:`new_classes`). ``fit`` under ``"grow"``
        starts from the first month's classes and grows as labels arrive.
    memmap_dir : str, path-like or None, default=None
        With ``update="retrain"``: directory where ``past_data_`` keeps the
        past rows, in anonymous memory-mapped files (deleted with the
        estimator), so a history larger than memory trains by reading only the
        batches it needs. ``None`` keeps them in memory. A directory set
        between months takes the whole history at the next month (``None``:
        later months stay in memory). A pickled estimator (``joblib.dump``)
        holds the rows themselves; loaded, they go back to ``memmap_dir``.
        Also used by ``update="cumulative"``.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialization, shuffling, dropout and the rehearsal draws
        (when the buffer has no seed of its own). With an int, a CPU run is
        bit-for-bit reproducible, and so is a run that is saved and resumed, or
        run in a thread beside others (shuffling draws from the estimator's own
        ``torch.Generator``; weight initialization and dropout, which can only
        use torch's global generator, hold a process-wide lock while they draw).
        Read at the start of a stream: changing it later applies at the next
        ``fit``.
    train_split : callable or None, default=None
        The validation split of skorch, applied within each month. ``None``
        trains on the whole month.
    iterator_train, iterator_valid : class, default=DeviceBatchIterator
        Batch iterators; the default slices tensors already on ``device``.
    callbacks : list or None, default=None
        Additional skorch callbacks (instances or ``(name, callback)`` tuples),
        run within every month. A callback that stops training by raising
        ``KeyboardInterrupt`` in ``on_epoch_end`` (skorch's ``EarlyStopping``)
        ends the month normally, as it ends a skorch ``fit``; any other
        ``KeyboardInterrupt`` (Ctrl-C) rolls the month back.
    verbose : int, default=0
        Verbosity: when positive, one line per month (its label, new rows,
        rows replayed from the past, epochs, final training loss, seconds)
        and skorch's per-epoch log, each epoch labelled with its month.
    device : str or torch.device, default="cpu"
        Where the module, each month's data and the strategy's tensors live.
        Read at the start of a stream: a change applies at the next ``fit``
        (or ``load_weights``); until then ``partial_fit`` and prediction
        refuse it, naming the stream's device.
    step : {"eager", "compiled"}, default="eager"
        How each training step runs. ``"eager"`` is skorch's step, operation
        by operation. ``"compiled"`` runs the built-in penalty's gradient and
        the optimizer's update as one graph compiled by ``torch.compile``,
        and on CUDA the forward, loss and backward too, captured as CUDA
        graphs (on a CPU those stay eager, where compiling them does not
        pay). The graphs are compiled once per process, at the first full
        batch, and reused by later months, ``lr`` changes, retraining's fresh
        module and rollbacks; the last, partial batch of an epoch and any
        step the graphs cannot reproduce exactly (custom regularizers,
        optimizers other than Adam, AdamW and SGD, gradient callbacks,
        subclasses overriding the step) run eagerly. Weights agree with the
        eager step to float rounding. Compiling takes seconds to over a
        minute, so it pays only on long runs: see :ref:`compiled_step`.
        Unlike skorch's ``compile=True``, which compiles the module only and
        replaces ``module_`` by a wrapper, nothing compiled is stored on the
        estimator (it pickles, clones and saves as with ``"eager"``).
    distributed : bool, default=False
        Train data-parallel on the initialized ``torch.distributed`` process
        group (a script launched with ``torchrun`` or ``accelerate launch``):
        every rank calls ``fit`` / ``partial_fit`` with the same month, trains
        on its share of every batch, and the gradients are summed across
        ranks, so the model equals one process's with the same
        ``batch_size`` (the global batch) and every rank holds the same
        state. ``False`` trains in this process alone, group or not. See
        :ref:`distributed`.
    dataset, predict_nonlinearity : object
        Passed to skorch, with skorch's defaults.
    warm_start : bool, default=False
        Whether ``fit`` on a trained estimator continues its stream (trains
        the given months on top of the current model, as ``partial_fit``
        calls would) instead of starting over.
    compile, use_caching, torch_load_kwargs : object
        Passed to skorch, with skorch's defaults.
    **kwargs
        Any other skorch parameter (``module__hidden_units``,
        ``optimizer__weight_decay``, ``iterator_train__drop_last``, ...).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, fixed at the first month (sorted); with
        ``new_classes="grow"``, labels that arrive later are appended in order
        of arrival. ``predict_proba``'s columns follow this order.
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
        Rows of the optimizer's batches, summed over every epoch of every
        month (replayed rows and retraining's re-visits included).
    n_train_rows_ : int
        Rows through forward and backward while training, the cost measure
        that strategies are compared by: ``n_samples_processed_`` plus the
        rows the strategy runs through the network with gradients (DER++'s
        and A-GEM's memory rows, the rows of an importance estimate such as
        EWC's Fisher). See :ref:`cost`.
    n_forward_rows_ : int
        Rows through a forward pass only while training: LwF's teacher,
        logits recorded for DER++, a validation split. Not in
        ``n_train_rows_``.
    train_seconds_ : float
        Wall time spent in ``fit`` / ``partial_fit`` training months,
        summed.
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
    past_data_ : RowStore
        With ``update="retrain"`` or ``"cumulative"``: every past training row
        (encoded labels), one chunk per month, the data each month trains on.
    training_weights_ : dict of str to torch.Tensor
        With ``weight_averaging="ema"``: the unaveraged weights after the last
        month (on CPU), from which the next month trains.
    rng_ : numpy.random.Generator
        Source of the per-month seeds (weight initialization, shuffling,
        dropout, and the strategies' draws when they have no seed of their own).

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
    # ``groups`` (families for a DiverseRehearsalBuffer) only on request
    # (``set_fit_request(groups=True)``), so that groups meant for a
    # splitter never reach fit unasked.
    __metadata_request__fit = {"months": True, "groups": False}

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
        "update": [StrOptions({"finetune", "retrain", "cumulative"})],
        "history_fraction": [Interval(Real, 0, 1, closed="right")],
        "finish_history_fraction": [Interval(Real, 0, 1, closed="both"), None],
        "lr_schedule": [StrOptions({"constant", "cosine", "linear"})],
        "warmup_fraction": [Interval(Real, 0, 1, closed="left")],
        "final_lr_fraction": [Interval(Real, 0, 1, closed="both")],
        "weight_averaging": [StrOptions({"ema", "interpolate"}), None],
        "averaging_decay": [Interval(Real, 0, 1, closed="both")],
        # consolidate, plus whichever training hooks it needs (skcl.Regularizer)
        "regularizer": [HasMethods(["consolidate"]), None],
        "rehearsal": [HasMethods(["fit_resample", "partial_fit"]), None],
        "keep_snapshots": ["boolean"],
        "new_classes": [StrOptions({"error", "grow"})],
        "memmap_dir": [str, os.PathLike, None],
        "random_state": ["random_state"],
        "step": [StrOptions({"eager", "compiled"})],
        "distributed": ["boolean"],
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
        history_fraction=1.0,
        finish_history_fraction=None,
        lr_schedule="constant",
        warmup_fraction=0.0,
        final_lr_fraction=0.1,
        weight_averaging=None,
        averaging_decay=0.5,
        regularizer=None,
        rehearsal=None,
        keep_snapshots=False,
        new_classes="error",
        memmap_dir=None,
        random_state=None,
        train_split=None,
        iterator_train=DeviceBatchIterator,
        iterator_valid=DeviceBatchIterator,
        callbacks=None,
        verbose=0,
        device="cpu",
        step="eager",
        distributed=False,
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
        self.history_fraction = history_fraction
        self.finish_history_fraction = finish_history_fraction
        self.lr_schedule = lr_schedule
        self.warmup_fraction = warmup_fraction
        self.final_lr_fraction = final_lr_fraction
        self.weight_averaging = weight_averaging
        self.averaging_decay = averaging_decay
        self.regularizer = regularizer
        self.rehearsal = rehearsal
        self.keep_snapshots = keep_snapshots
        self.new_classes = new_classes
        self.memmap_dir = memmap_dir
        self.random_state = random_state
        self.step = step
        self.distributed = distributed

    # ==================================================================
    # Public entry points
    # ==================================================================
    @atomic
    def fit(self, X, y, months=None, groups=None, **fit_params):
        """Reset, then train on the stream one month at a time, in stream order.

        Equivalent to a fresh estimator's ``partial_fit`` on each distinct month
        of ``months`` in order (sorted, or the category order of an ordered
        pandas ``Categorical``), with ``classes`` set to every label in ``y``
        (with ``new_classes="grow"``: without ``classes``, so the classes grow
        as they arrive). With ``warm_start=True`` (a skorch parameter) on a
        trained estimator, nothing is reset: the months are trained on top of
        the current model, as ``partial_fit`` calls would (labels must be in
        ``classes_``, unless ``new_classes="grow"``).
        This is the entry point of ``GridSearchCV`` and ``cross_validate``,
        which slice ``months`` per fold through metadata routing. If anything
        raises, the estimator is left exactly as before the call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features of the whole stream.
        y : array-like of shape (n_samples,)
            Labels of the whole stream.
        months : array-like of shape (n_samples,), default=None
            Month label of each row; any sortable labels (ints, strings,
            ``datetime64``, dates, ``pandas.Timestamp``, ``pandas.Period``)
            or an ordered pandas ``Categorical``, kept as given in
            ``months_``. Strings that look like dates but do not sort as
            them (``"9/2024"``, ``"Jan"``) are sorted as text, with a
            warning. ``None`` trains on everything as a single month.
        groups : array-like of shape (n_samples,), default=None
            Group label of each row (e.g. a malware family); each month's
            slice is passed to the rehearsal buffer at the month's end. Only
            for a buffer whose ``partial_fit`` takes ``groups``
            (:class:`~skcl.DiverseRehearsalBuffer`: one stratum per group);
            refused otherwise. Under metadata routing, request it with
            ``set_fit_request(groups=True)``; ``GridSearchCV`` then passes
            each fold its rows' groups.
        **fit_params
            Passed to the module's forward, as in skorch.

        Returns
        -------
        self : ContinualClassifier
            Fitted estimator, trained on every month of the stream.
        """
        self._check_params()
        # warm_start=True (skorch's parameter) continues the stream, as
        # scikit-learn's warm_start reuses the previous fit
        continuing = bool(self.warm_start) and self._stream_started()
        if not continuing:
            self._reset()
        X, y = self._validate_month(X, y, reset=not continuing)
        groups = check_groups(self, groups, len(y))
        # under "grow" the classes arrive with their months, as partial_fit's would
        classes = np.unique(y) if self.new_classes == "error" and not continuing else None
        for month, rows in stream_months(months, len(y)):
            with counting_month(self):
                self._fit_month(X[rows], y[rows], classes, month, fit_params,
                                groups=None if groups is None else groups[rows])
        return self

    @atomic
    def partial_fit(self, X, y, classes=None, month=None, groups=None, **fit_params):
        """Train on one month of data under the configured strategy.

        The first call initializes the module (and fixes ``classes_``,
        ``n_features_in_``); later calls continue from the current weights and
        optimizer state, with the parameters as they are now (each call checks
        them; see :ref:`the table of settings changed between months
        <settings_between_months>`). If anything raises during the call
        (invalid input, diverging loss, ``KeyboardInterrupt``), the estimator is
        restored to its state before the call and the error is re-raised.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            The month's features (numpy array, DataFrame or scipy sparse
            matrix). The first month fixes the stream's layout: a later
            month of the other one is converted to it (to CSR rows, or
            densified), so the rows a strategy stores are of one kind.
        y : array-like of shape (n_samples,)
            The month's labels.
        classes : array-like of shape (n_classes,), default=None
            Every label the stream can contain. Needed on the first call unless
            that month holds every label already; must match ``classes_`` after
            (with ``new_classes="grow"``, labels not yet in ``classes_`` join it
            instead).
        month : hashable, default=None
            The month's label (a scalar: int, string, ``numpy.datetime64``,
            ``datetime.date``, ``pandas.Timestamp``, ``pandas.Period``),
            recorded as given in ``months_`` and passed to the rehearsal
            buffer. ``None`` uses the running month count.
        groups : array-like of shape (n_samples,), default=None
            Group label of each row (e.g. a malware family), passed to the
            rehearsal buffer's ``partial_fit`` at the month's end. Only for a
            buffer that takes ``groups`` (:class:`~skcl.DiverseRehearsalBuffer`:
            one stratum per group, shared across months); refused otherwise.
        **fit_params
            Passed to the module's forward, as in skorch.

        Returns
        -------
        self : ContinualClassifier
            Fitted estimator, trained on one more month.
        """
        self._check_params()
        check_stream_device(self)
        month = check_month_label(month)
        X, y = self._validate_month(X, y, reset=not self._stream_started())
        groups = check_groups(self, groups, len(y))
        with counting_month(self):
            self._fit_month(X, y, classes, month, fit_params, groups=groups)
        return self

    # ==================================================================
    # The month driver: one month, in the order it happens
    # ==================================================================
    def _fit_month(self, X, y, classes, month, fit_params, groups=None):
        if len(y) == 0:
            raise ValueError("the month has no rows; skip empty months")
        n_known = len(self.__dict__.get("classes_", ()))
        self.classes_ = check_month_classes(y, classes, self.__dict__.get("classes_"),
                                            new_classes=self.new_classes)
        if not self._stream_started():
            self._start_stream(sparse_input=is_scipy_sparse(X))
        # the stored and replayed rows of a stream are of one layout
        X = as_layout(X, self._sparse_input)
        seed = agree_on_month(self, X, y, draw_seed(self.rng_))
        self._apply_changed_settings(seed)
        if month is None:
            month = self.n_months_seen_
        y_encoded = encode_labels(self.classes_, y)
        log = MonthLog.start(self)  # verbose: one line per month
        if self.update in HISTORY_UPDATES:
            self.past_data_.memmap_dir = self.memmap_dir
            self.past_data_.append(X, y_encoded)
        month = Month(month, seed, X, y_encoded, self.device,
                      history=self.__dict__.get("past_data_"), groups=groups)
        X_train, y_train = month.X_train, month.y_train

        initialize = not self.initialized_ or self.update == "retrain"
        if initialize:
            with seeded_global_torch(seed, self.device):
                self._initialize_month_state()
        if self.new_classes == "grow" and (initialize or len(self.classes_) > n_known):
            # a month with new classes (or a module rebuilt at its first size)
            grow_output_layer(self, n_known, seed + 3,
                              required=not initialize and len(self.classes_) > n_known)
        lr = self.lr if initialize or self.finetune_lr is None else self.finetune_lr
        self._set_lr(lr)
        averaged_before = begin_weight_averaging(self)
        # per-batch records of earlier months are dropped (epoch rows stay)
        # so a long-lived model's history grows by a few numbers per epoch
        for epoch in self.history_:
            if epoch.get("batches"):
                epoch["batches"] = []
        month.first_epoch = len(self.history_)
        self._month = month
        begin_month_schedule(self, lr)
        try:
            with self._global_rng_for_training(seed), data_parallel(self, seed):
                self.notify("on_train_begin", X=X_train, y=y_train)
                self._run_epochs(X_train, y_train, epochs=None, **fit_params)
                end_month_schedule(self, lr)  # the finishing epochs keep finish_lr
                if self.finish_epochs:
                    finish_lr = 0.1 * lr if self.finish_lr is None else self.finish_lr
                    self._set_lr(finish_lr)
                    month.finishing = True  # (finish_history_fraction)
                    self._run_epochs(X_train, y_train, epochs=self.finish_epochs,
                                     **fit_params)
                    self._set_lr(lr)
                self.notify("on_train_end", X=X_train, y=y_train)
            self._check_month_trained(len(X_train))
            average_month_weights(self, averaged_before)
            self.on_month_end(month.X_strategies, month.y_strategies, month.label)
            agree_month_end(self)  # every rank commits the month, or none
            if log is not None:
                log.finish(self, month.label, n_rows=len(y), n_train=len(X_train))
        except BaseException as exc:
            agree_month_end(self, exc)
            raise
        finally:
            self.__dict__.pop("_month", None)

        self.months_ = [*self.months_, month.label]
        self.n_months_seen_ += 1
        self.n_samples_seen_ += len(y)

    # ------------------------------------------------------------------
    # 1. checks, every call
    # ------------------------------------------------------------------
    def _check_params(self):
        """Check every parameter and their combinations (at every call)."""
        check_parameter_constraints(self)
        check_distributed(self)
        # the strategy objects' own constraints, checked before any training
        for name in ("regularizer", "rehearsal"):
            strategy = getattr(self, name)
            own_check = getattr(strategy, "check_params", None)
            if own_check is not None:
                own_check()  # e.g. the buffer's memmap_dir, before any training
            elif hasattr(strategy, "_parameter_constraints"):
                validate_parameter_constraints(
                    strategy._parameter_constraints,
                    strategy.get_params(deep=False),
                    caller_name=f"{type(self).__name__}({name}={type(strategy).__name__}(...))",
                )
        module_params = self.get_params_for("module")
        if isinstance(self.module, torch.nn.Module) and module_params:
            # skorch would build a new module from the instance's class with
            # only these options, silently dropping the instance's own settings
            raise ValueError(
                f"module is an instance of {type(self.module).__name__}, so the "
                f"module__ options {sorted(module_params)} cannot apply to it; pass "
                "the class with every option (module=MLP, module__hidden_units=..., "
                "...) or build the instance with them"
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
        if self.update == "cumulative" and self.rehearsal is not None:
            raise ValueError(
                "update='cumulative' trains on the whole history kept in past_data_, "
                "so a rehearsal buffer would replay rows it already sees; set "
                "rehearsal=None (lower history_fraction to spend less), or use "
                "update='finetune'"
            )
        if self.update not in HISTORY_UPDATES and self.history_fraction != 1:
            raise ValueError(
                f"history_fraction={self.history_fraction!r} samples the kept history, "
                f"but update={self.update!r} keeps none; use update='cumulative' (or "
                "'retrain'), or leave history_fraction=1.0"
            )
        if self.update not in HISTORY_UPDATES and self.finish_history_fraction is not None:
            raise ValueError(
                f"finish_history_fraction={self.finish_history_fraction!r} samples the "
                f"kept history, but update={self.update!r} keeps none; use "
                "update='cumulative' (or 'retrain'), or leave it None"
            )
        if self.update == "retrain" and self.weight_averaging is not None:
            raise ValueError(
                f"weight_averaging={self.weight_averaging!r} averages last month's "
                "weights with this month's, but update='retrain' starts each month "
                "from random weights, which do not average meaningfully; use "
                "update='cumulative' or 'finetune', or weight_averaging=None"
            )
        if self.step == "compiled" and getattr(self, "compile", False):
            raise ValueError(
                "step='compiled' compiles the whole training step, and compile=True "
                "would compile the module a second time inside it; pass one of them"
            )
        if self.max_epochs == 0 and self.finish_epochs == 0:
            raise ValueError(
                "max_epochs=0 and finish_epochs=0 would train nothing, and the month "
                "would still count as trained; set max_epochs >= 1"
            )

    def _validate_month(self, X, y, reset):
        y_values = np.asarray(y) if not hasattr(y, "dtype") else y
        missing = missing_mask(np.asarray(y_values)) if np.ndim(y_values) == 1 else None
        if missing is not None and missing.any():
            raise ValueError(
                f"y has {int(missing.sum())} missing labels (None/NaN), at rows "
                f"{np.flatnonzero(missing)[:10].tolist()}; drop those rows or label them"
            )
        X, y = _validate_input(self, X, y, reset=reset)
        check_classification_targets(y)
        return X, y

    def _validate_features(self, X):
        return _validate_input(self, X, _NO_Y, reset=False)

    # ------------------------------------------------------------------
    # 2. start of a stream, and settings changed between months
    # ------------------------------------------------------------------
    def _stream_started(self):
        """Whether a stream is under way (the one "first month?" test)."""
        return "n_months_seen_" in self.__dict__

    def _start_stream(self, sparse_input=False):
        """Set up the fitted state of a new stream: counters, seeds, strategy copies."""
        self.rng_ = make_rng(self.random_state)
        self.months_ = []
        self.n_months_seen_ = 0
        self.n_samples_seen_ = 0
        self.n_samples_processed_ = 0
        start_counters(self)
        self.snapshots_ = []
        self.regularizer_ = None
        self.rehearsal_ = None
        # fixed for the stream: the bundled MLP then takes sparse products
        self._sparse_input = sparse_input
        if self.update in HISTORY_UPDATES:
            self.past_data_ = RowStore(memmap_dir=self.memmap_dir)

    def _apply_changed_settings(self, seed):
        """Bring the fitted strategy copies in line with the parameters as set now.

        Hyper-parameters of ``regularizer`` / ``rehearsal`` carry over into the
        fitted copies with their state kept; a strategy set to ``None`` is
        dropped with its state; one set where there was none starts empty; a
        strategy replaced by another class, a change of ``update`` or of
        ``keep_snapshots`` mid-stream is refused (``fit`` starts over). A new
        copy without a ``random_state`` of its own is seeded from the month's
        ``seed``, so adding a strategy does not shift the other draws.
        """
        for offset, name in enumerate(("regularizer", "rehearsal"), start=1):
            wanted, fitted = getattr(self, name), getattr(self, name + "_")
            if wanted is None:
                setattr(self, name + "_", None)
            elif fitted is None:
                setattr(self, name + "_", _clone_strategy(wanted, seed + offset))
            elif type(fitted) is not type(wanted):
                raise ValueError(
                    f"{name} was changed from {type(fitted).__name__} to "
                    f"{type(wanted).__name__} after {self.n_months_seen_} months; the "
                    f"fitted {type(fitted).__name__}'s state cannot carry over. Set "
                    f"{name}=None first to drop it, or call fit to start the stream over"
                )
            else:
                carry_over_params(fitted, wanted)
        retrains = "past_data_" in self.__dict__
        if self.n_months_seen_ and retrains != (self.update in HISTORY_UPDATES):
            raise ValueError(
                f"update={self.update!r} was set after {self.n_months_seen_} months "
                f"trained with update={'retrain' if retrains else 'finetune'!r}; the "
                "past rows retraining needs are kept only from the start; call fit "
                "to start the stream over"
            )
        if len(self.snapshots_) != (self.n_months_seen_ if self.keep_snapshots else 0):
            raise ValueError(
                f"keep_snapshots={self.keep_snapshots} was set after "
                f"{self.n_months_seen_} months trained with keep_snapshots="
                f"{not self.keep_snapshots}, so snapshots_ would not match months_; "
                "set it back, or call fit to start the stream over"
            )

    # ------------------------------------------------------------------
    # 3. the month's data: skcl/_month.py (Month, place_rows), built in
    #    _fit_month; a float32 month on the CPU is trained in place
    # ------------------------------------------------------------------

    # ------------------------------------------------------------------
    # 4. initialization (first month, and every month under retrain)
    # ------------------------------------------------------------------
    def _initialize_month_state(self):
        """Create module, criterion, optimizer and callbacks, keeping the history."""
        # skorch clears history_ in place on initialize; a stream keeps one
        # history across retrain's re-initializations.
        history = self.history_ if self.n_months_seen_ else None
        self.history_ = None
        self.initialize()
        if history is not None:
            self.history_ = history

    def initialize_module(self):
        """Instantiate ``module_``, filling in ``n_features`` / ``n_classes``.

        A module given as an instance is copied first, so the user's object is
        never trained and every initialization starts from the same weights.

        Returns
        -------
        self : ContinualClassifier
            The estimator, with a freshly initialized ``module_``.
        """
        kwargs = self.get_params_for("module")
        module = self.module
        if isinstance(module, torch.nn.Module):
            module = copy.deepcopy(module)
        elif isinstance(module, type) and "classes_" in self.__dict__:
            accepted = inspect.signature(module).parameters
            if "n_features" in accepted:
                kwargs.setdefault("n_features", self.n_features_in_)
            if "n_classes" in accepted:
                kwargs.setdefault("n_classes", len(self.classes_))
            if "sparse_input" in accepted and self.__dict__.get("_sparse_input"):
                kwargs.setdefault("sparse_input", True)
        self.module_ = self.initialized_instance(module, kwargs)
        return self

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

    def _set_lr(self, lr):
        for group in self.optimizer_.param_groups:
            group["lr"] = lr

    def _set_training(self, training=True):
        # skorch sets the mode before every batch; ``Module.train`` walks and
        # re-assigns every submodule (~30 us a step on a small MLP), so it is
        # skipped when every module is in that mode already (same result)
        for name in self._modules + self._criteria:
            module = getattr(self, name + "_")
            if isinstance(module, torch.nn.Module) and any(
                    sub.training != training for sub in module.modules()):
                module.train(training)

    # ------------------------------------------------------------------
    # 5. the epochs
    # ------------------------------------------------------------------
    def _global_rng_for_training(self, seed):
        # Dropout can only draw from torch's global generator: seed it for the
        # month, under the process-wide lock (threads then take turns). A
        # module that draws nothing trains without the lock, in parallel.
        if _draws_from_global_rng(self.module_):
            return seeded_global_torch(seed, self.device)
        return nullcontext()

    def _run_epochs(self, X, y, epochs, **fit_params):
        """Run skorch's fit loop; a callback's early stop ends it normally."""
        try:
            self.fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt as exc:
            if not self._stopped_by_callback(exc):
                raise

    def _stopped_by_callback(self, exc):
        # skorch's convention: a callback stops training by raising
        # KeyboardInterrupt in on_epoch_end (EarlyStopping); told from Ctrl-C
        # by the instruction it was raised at (utils/_interrupts.py)
        return stopped_by_callback(exc, getattr(self, "callbacks_", []))

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Start an epoch's history row, labelled with its month.

        skorch's row (``epoch``, counted across months) gets a ``month`` key,
        the month's label as text, which skorch's log prints at ``verbose >= 1``.
        Safe to override if the signature is kept (call ``super()``).

        Parameters
        ----------
        net : ContinualClassifier
            This estimator (skorch's callback signature).
        dataset_train, dataset_valid : Dataset or None, default=None
            The epoch's training and validation data.
        **kwargs
            Passed on to skorch.
        """
        super().on_epoch_begin(net, dataset_train=dataset_train,
                               dataset_valid=dataset_valid, **kwargs)
        month = self.__dict__.get("_month")
        if month is not None:
            self.history.record("month", str(month.label))

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

    def get_iterator(self, dataset, training=False):
        """Return the batch iterator; training batches are shuffled by default.

        Training batches are shuffled with the estimator's own generator,
        seeded per month (when the iterator takes a ``generator``, as
        ``DeviceBatchIterator`` and ``DataLoader`` do). Safe to override if the
        signature is kept.

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
        if not training:
            return super().get_iterator(dataset, training=False)
        kwargs = self.get_params_for("iterator_train")
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        kwargs.setdefault("shuffle", True)
        month = self.__dict__.get("_month")
        if kwargs["shuffle"] and month is not None and _accepts(self.iterator_train,
                                                                "generator"):
            kwargs.setdefault("generator", month.generator)
        return self.iterator_train(dataset, **kwargs)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """Run one training or validation epoch of skorch's loop.

        skcl changes training epochs only: the epoch iterates over
        :meth:`get_epoch_dataset` of the training data (the month mixed with
        replayed rows when a rehearsal buffer is set), the rows of its batches
        are added to ``n_samples_processed_``, and afterwards a
        ``FloatingPointError`` is raised if any batch's training loss was not
        finite (``fit`` / ``partial_fit`` then roll the month back).

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
            start_scheduled_epoch(self, iterator)
        super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        if training and iterator is not None:
            self._count_epoch_batches(prefix)

    def get_epoch_dataset(self, dataset):
        """Return the dataset one training epoch iterates over.

        The one place where a data-level strategy enters: with a rehearsal buffer
        holding past data, the month (``dataset``) is mixed with a fresh replay
        draw through ``rehearsal_.fit_resample``; with ``history_fraction < 1``
        (``update="cumulative"`` or ``"retrain"``), the history is sampled
        afresh: the month's rows and that share of the past ones. Safe to
        override if the signature is kept.

        Parameters
        ----------
        dataset : torch.utils.data.Dataset
            The month's training part, as built by skorch.

        Returns
        -------
        dataset : torch.utils.data.Dataset
            ``dataset`` itself without a rehearsal buffer or while it is empty;
            otherwise a new dataset on ``device`` holding
            ``rehearsal_.fit_resample`` of the month: its rows mixed with rows
            replayed from the buffer (labels encoded).
        """
        dataset = epoch_history_rows(self, dataset)
        rehearsal = getattr(self, "rehearsal_", None)
        if rehearsal is None or not is_fitted(rehearsal):
            return dataset
        # the mix is drawn from the month's host rows and uploaded once
        # (outside a month, e.g. a direct fit_loop call, read back from the dataset)
        X_new, y_new = host_rows_of(dataset, self.__dict__.get("_month"))
        X_mix, y_mix = rehearsal.fit_resample(X_new, y_new)
        return as_dataset(*place_rows(X_mix, y_mix, self.device))

    # ------------------------------------------------------------------
    # 6. one training step, and its loss
    # ------------------------------------------------------------------
    def train_step(self, batch, **fit_params):
        """Run one training step: skorch's, or the compiled one with ``step="compiled"``.

        With ``step="compiled"`` the batch goes through the compiled graphs
        when they reproduce this step exactly; otherwise (the last, partial
        batch, a custom regularizer, ...) through skorch's ``train_step``.
        Safe to override if the signature is kept (an override is never
        bypassed).

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
        next_scheduled_lr(self)
        with optimizer_step(self):  # its rows are counted from the history
            if self.step == "compiled":
                step = compiled_train_step(self, batch, fit_params, base=ContinualClassifier)
                if step is not None:
                    return step
            return super().train_step(batch, **fit_params)

    def train_step_single(self, batch, **fit_params):
        """Compute the prediction, loss and gradients of one training batch.

        skorch's step (forward, :meth:`get_loss`, ``backward()``), followed by
        the regularizer's gradient hook ``after_backward(net, X, y)`` when it
        has one (A-GEM's projection; the fast penalty gradient of the built-in
        quadratic penalties, see :class:`~skcl.regularizers.Regularizer`): it
        may change the gradients in place, and what it returns (a penalty's
        value) is added to the step's loss. Callbacks' ``on_grad_computed``
        (e.g. gradient clipping) run afterwards and see the final gradient.
        With ``distributed=True``, skorch's step runs on this rank's share of
        the batch, and the gradients, loss and prediction the hooks see are
        the whole batch's, summed across ranks (see :ref:`distributed`).

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
        local_step = functools.partial(super().train_step_single, **fit_params)
        sync = self.__dict__.get("_gradient_sync")  # set by data_parallel
        step = local_step(batch) if sync is None else sync.train_step_single(batch, local_step)
        regularizer = getattr(self, "regularizer_", None)
        if regularizer is not None:
            hooks = training_hooks(type(regularizer))
            if hooks.after_backward or hooks.add_penalty_grad:
                X, y = unpack_data(batch)
                value = (regularizer.after_backward(self, X, y) if hooks.after_backward
                         else regularizer.add_penalty_grad(self.module_))
                if value is not None:
                    step["loss"] = step["loss"] + value
        return step

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Return the criterion's loss, plus the regularizer's terms when training.

        The one place where a loss-level strategy enters: ``valid_loss`` and
        ``score`` never include its terms. When training, the regularizer's
        ``penalty(module_)`` is added if it has one and no fast gradient path
        (see :class:`~skcl.regularizers.Regularizer`; the fast path adds the
        penalty's gradient after ``backward()`` in :meth:`train_step_single`
        and its value to the step's loss, so ``train_loss`` includes it all
        the same), and so is its ``batch_loss(self, X, y_true, y_pred,
        n_months_seen_)`` if it has one (distillation, replayed logits). Safe to
        override if the signature is kept.

        Parameters
        ----------
        y_pred : torch.Tensor
            The module's output for a batch (one logit per class with the
            default ``MLP``).
        y_true : torch.Tensor of shape (n_samples,)
            The batch's encoded labels (indices into ``classes_``).
        X : torch.Tensor of shape (n_samples, n_features), default=None
            The batch's input, passed on to skorch's ``get_loss`` and to the
            regularizer's ``batch_loss``.
        training : bool, default=False
            Whether the loss is computed for a training step; the
            regularizer's terms are added only then.

        Returns
        -------
        loss : torch.Tensor of shape ()
            The criterion's loss on the batch (computed by skorch's
            classifier), plus the regularizer's terms when ``training``.
        """
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        regularizer = getattr(self, "regularizer_", None) if training else None
        if regularizer is not None:
            hooks = training_hooks(type(regularizer))
            if hooks.penalty:
                loss = loss + regularizer.penalty(self.module_)
            if hooks.batch_loss:
                term = regularizer.batch_loss(self, X, y_true, y_pred, self.n_months_seen_)
                if term is not None:
                    loss = loss + term
        return loss

    def _count_epoch_batches(self, prefix):
        # Once per epoch, on the numbers skorch recorded for each batch: rows
        # actually trained on (a drop_last remainder is not) and the loss
        # check (a torch.isfinite per step would add a kernel launch and a
        # device sync to every step; a diverged month is rolled back whole).
        month = self.__dict__["_month"]
        batches = self.history[-1]["batches"]
        for batch in batches:
            loss = batch.get(prefix + "_loss")
            if loss is not None and not np.isfinite(loss):
                epoch = len(self.history) - month.first_epoch
                raise FloatingPointError(
                    f"training loss became {loss} in month {month.label!r} (epoch "
                    f"{epoch} of that month); the model diverged and the month was "
                    "rolled back: lower lr/finetune_lr, scale the features, or lower "
                    "the regularizer's lam"
                )
        month.n_batches += len(batches)
        self.n_samples_processed_ += sum(batch.get(prefix + "_batch_size", 0)
                                         for batch in batches)

    def _check_month_trained(self, n_rows):
        if self.__dict__["_month"].n_batches == 0:
            raise ValueError(
                f"the month trained on no batch: its {n_rows} training rows make no "
                f"full batch of batch_size={self.batch_size} with "
                "iterator_train__drop_last=True; lower batch_size or keep the last "
                "batch"
            )

    # ------------------------------------------------------------------
    # 7. end of the month
    # ------------------------------------------------------------------
    def on_month_end(self, X, y, month):
        """Update every strategy's state after a month has been trained on.

        Consolidates the regularizer, adds the month to the rehearsal buffer and
        keeps a snapshot. Safe to override if the signature is kept (call
        ``super()``).

        Parameters
        ----------
        X : torch.Tensor of shape (n_samples, n_features)
            The month's features, on ``device``; of layout
            ``torch.sparse_csr`` when the month was sparse. A dense month
            larger than the device's budget (see :ref:`memory`) stays on the
            host (a CPU tensor), as does nothing else. On the CPU a float32
            month is the caller's own memory, shared: copy the rows you keep.
        y : torch.Tensor of shape (n_samples,)
            The month's encoded labels (indices into ``classes_``), on ``device``.
        month : hashable
            The month's label.
        """
        if self.regularizer_ is not None:
            with sharded_consolidation(self):
                self.regularizer_.consolidate(self, X, y)
        if self.rehearsal_ is not None:
            current = self.__dict__.get("_month")
            if current is not None and X is current.X_strategies:
                X_host, y_host = current.X, current.y   # the month's host rows
            else:
                X_host, y_host = host_rows(X), y.cpu().numpy()
            self.rehearsal_.partial_fit(X_host, y_host, month=month,
                                        **rehearsal_inputs(self, X))
        if self.keep_snapshots:
            self.snapshots_ = [*self.snapshots_, {
                k: v.detach().to("cpu", copy=True) for k, v in self.module_.state_dict().items()
            }]

    # ==================================================================
    # Inference
    # ==================================================================
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
        check_stream_device(self)
        if isinstance(X, torch.utils.data.Dataset):
            # skorch callbacks score on the validation Dataset (encoded labels)
            return NeuralNet.predict_proba(self, X)
        X = self._validate_features(X)
        return NeuralNet.predict_proba(self, place_rows(X, device=self.device)[0])

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
        # a month before classes were added predicts the classes known then
        shrink_to_state(estimator, snapshots[index])
        estimator.module_.load_state_dict(snapshots[index])
        return estimator

    # ==================================================================
    # Parameters and scikit-learn plumbing
    # ==================================================================
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

    def __repr__(self, N_CHAR_MAX=700):
        # scikit-learn's repr: the parameters changed from their defaults, the
        # strategies' own included (skorch's repr shows the module only)
        return BaseEstimator.__repr__(self, N_CHAR_MAX)

    def _get_param_names(self):
        # skorch lists every attribute not ending in "_" as a parameter; private
        # bookkeeping (``_params_to_validate`` ...) is not one.
        return [name for name in super()._get_param_names() if not name.startswith("_")]

    def set_params(self, **params):
        """Set parameters, routing ``regularizer__*`` / ``rehearsal__*`` to the objects.

        skorch's own ``set_params`` does not forward nested keys of plain
        sklearn-style objects, so they are applied here first. On a trained
        estimator, parameters that rebuild the network (``module``,
        ``module__*``, ``criterion``, ``criterion__*``) are refused: they would
        start it from random weights while its months stay counted; ``fit``
        starts a stream over with them. ``optimizer`` (another class) is
        applied at once: the new optimizer is built over the current weights,
        its state (Adam's moments) starting afresh. Other settings apply from
        the next ``partial_fit`` (see :ref:`settings_between_months`).

        Parameters
        ----------
        **params
            Estimator parameters as ``name=value``. Keys
            ``regularizer__<param>`` and ``rehearsal__<param>`` are set on the
            ``regularizer`` / ``rehearsal`` object (which must not be ``None``);
            any other key is handled by skorch (``lr``,
            ``optimizer__weight_decay``, ...), except ``callbacks``: stored as
            given before the estimator is initialized, and after it also
            rebuilt into ``callbacks_`` (training state kept), so the new
            callbacks run from the next ``partial_fit``.

        Returns
        -------
        self : ContinualClassifier
            The estimator, with the parameters set.
        """
        if self.__sklearn_is_fitted__():
            rebuilding = sorted(key for key in params
                                if key.partition("__")[0] in _ARCHITECTURE_PARAMS)
            if rebuilding:
                raise ValueError(
                    f"cannot set {rebuilding} on a trained {type(self).__name__}: it "
                    "would rebuild the network with random weights while its "
                    f"{self.n_months_seen_} months stay counted. Call fit to start "
                    "the stream over with them, or sklearn.base.clone(estimator)"
                    ".set_params(...) for a fresh estimator"
                )
        nested = {}
        for key in list(params):
            name, sep, sub_key = key.partition("__")
            if sep and name in ("regularizer", "rehearsal"):
                nested.setdefault(name, {})[sub_key] = params.pop(key)
        for name, sub_params in nested.items():
            if params.get(name, getattr(self, name)) is None:
                raise ValueError(
                    f"cannot set {sorted(name + '__' + k for k in sub_params)}: "
                    f"{name} is None; set {name}=... first"
                )
        if "callbacks" in params and not getattr(self, "initialized_", False):
            # stored verbatim until fit, as sklearn expects (skorch would
            # initialize the callbacks here and fail on invalid values early)
            self.__dict__["callbacks"] = params.pop("callbacks")
        if "callbacks" in params:  # on an initialized estimator: rebuild callbacks_
            _replace_callbacks(self, params.pop("callbacks"))
        if getattr(self, "initialized_", False) and "optimizer" in params:
            # skorch would set it, raise, and train on with the old optimizer
            replace_optimizer(self, params.pop("optimizer"), {
                key: params.pop(key) for key in list(params) if key.startswith("optimizer__")})
        if params:
            super().set_params(**params)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_class = True
        return tags

    def __sklearn_is_fitted__(self):
        return "classes_" in self.__dict__ and getattr(self, "initialized_", False)

    def _reset(self):
        """Forget every fitted attribute, as a fresh ``fit`` must."""
        reset_fitted_attributes(self, keep=_SKORCH_STATE)
        self.initialized_ = False
        self.history_ = None

    # ==================================================================
    # Rollback: what a call can change, recorded before it
    # ==================================================================
    def _save_state(self):
        """Record what a call can change; return the function that restores it.

        Fitted attributes are recorded by reference: the call replaces them
        (lists are rebuilt, never appended to). Objects trained in place are
        copied: the module's and criterion's tensors and the optimizer's state
        (one copy of the weights and of Adam's moments, on their device), the
        callbacks, and the strategies' own state through their ``_save_state``
        (the built-in buffer records its size and truncates on failure;
        regularizers replace their fitted tensors, so a reference suffices).
        The history records its length. What the call only reads (past months'
        importances, snapshots, the past rows) is shared, not copied.
        """
        state = dict(self.__dict__)
        restores = []
        if getattr(self, "initialized_", False):
            for name in ("module_", "criterion_"):
                component = self.__dict__.get(name)
                if isinstance(component, torch.nn.Module):
                    restores.append(_save_module(component))
            optimizer = self.__dict__.get("optimizer_")
            if optimizer is not None:
                saved = copy.deepcopy(optimizer.state_dict())
                restores.append(lambda: optimizer.load_state_dict(saved))
            callbacks = self.__dict__.get("callbacks_")
            if callbacks is not None:
                saved_callbacks = [(name, _copy_attributes(cb)) for name, cb in callbacks]

                def restore_callbacks():
                    for (_, callback), (_, attributes) in zip(callbacks, saved_callbacks):
                        callback.__dict__.clear()
                        callback.__dict__.update(attributes)

                restores.append(restore_callbacks)
        history = self.__dict__.get("history_")
        if history is not None:
            n_epochs = len(history)
            batches = [row.get("batches") for row in history]

            def restore_history():
                del history[n_epochs:]
                for row, rows_batches in zip(history, batches):
                    if rows_batches is not None:
                        row["batches"] = rows_batches

            restores.append(restore_history)
        for name in ("regularizer_", "rehearsal_", "past_data_"):
            strategy = self.__dict__.get(name)
            if strategy is not None:
                restores.append(saved_state(strategy))
        rng = self.__dict__.get("rng_")
        if rng is not None:
            state["rng_"] = copy.deepcopy(rng)

        def restore():
            self.__dict__.clear()
            self.__dict__.update(state)
            for restore_part in restores:
                restore_part()

        return restore

    # ==================================================================
    # Persistence
    # ==================================================================
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

        Writing is atomic: a path is written to a temporary file in the same
        directory, flushed to disk and then renamed over the target, so a
        failed or interrupted write leaves any previous file byte for byte as
        it was. A file-like object receives the whole payload in one write.
        An existing file keeps its permission bits (a scoring service that
        reads it as another user keeps its access); a new file gets those of
        ``open``, ``0o666`` less the umask. A symbolic link is written
        through: the file it points to is replaced, the link stays.

        Parameters
        ----------
        f : str, path-like or file-like
            Where to write.
        """
        _persistence.save_weights(self, f)

    @atomic
    def load_weights(self, f):
        """Load a file written by :meth:`save_weights` into a fresh estimator.

        Builds the module from this estimator's parameters (which must match
        those of the saved one), loads the weights on ``device``, and leaves the
        estimator ready to predict or to fine-tune on further months (the
        strategies start empty). Only tensors and plain values are unpickled.
        The file is read and checked completely (format, classes, features,
        every tensor's name and shape against the module these parameters
        build, without allocating it) before the estimator changes; a file
        that does not match is refused and the estimator is left as it was.

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
        return _persistence.load_weights(self, f)


# scikit-learn reads defaults from __init__'s signature (its repr inside a
# Pipeline or a search): name the skorch parameters that **kwargs passes on
ContinualClassifier.__init__.__signature__ = signature_with_passed_on_defaults(
    ContinualClassifier.__init__, NeuralNet.__init__)


def _draws_from_global_rng(module):
    """Whether training ``module`` draws from torch's global generator (dropout)."""
    return any(
        (isinstance(sub, torch.nn.modules.dropout._DropoutNd) and sub.p > 0)
        or isinstance(sub, torch.nn.RReLU)
        for sub in module.modules()
    )


def _replace_callbacks(estimator, callbacks):
    """Set ``callbacks`` on an initialized estimator and rebuild ``callbacks_`` from it.

    skorch's ``set_params`` rebuilds ``callbacks_`` from the old list before it
    stores the new one, so the change would never reach training. Module,
    optimizer and strategies are untouched; if a callback fails to initialize,
    the old list and ``callbacks_`` stay.
    """
    old = estimator.__dict__.get("callbacks")
    estimator.__dict__["callbacks"] = callbacks
    try:
        estimator._initialize_callbacks()
    except BaseException:
        estimator.__dict__["callbacks"] = old
        raise


def _clone_strategy(strategy, seed):
    """A fresh copy of a strategy object, seeded with ``seed`` if it has no seed."""
    strategy = clone(strategy)
    params = strategy.get_params(deep=False)
    if "random_state" in params and params["random_state"] is None:
        strategy.set_params(random_state=seed)
    return strategy


def _copy_attributes(obj):
    """A deep copy of ``obj``'s attributes, shallow for those that refuse copying."""
    copied = {}
    for key, value in vars(obj).items():
        try:
            copied[key] = copy.deepcopy(value)
        except Exception:  # e.g. an open progress bar: kept by reference
            copied[key] = value
    return copied


def _accepts(factory, name):
    """Whether calling ``factory`` accepts the keyword ``name``."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


def _save_module(module):
    """Copy a module's tensors and modes; return the function putting them back."""
    saved = {k: v.detach().clone() for k, v in module.state_dict().items()}
    modes = [(sub, sub.training) for sub in module.modules()]

    def restore():
        module.load_state_dict(saved)
        for sub, training in modes:
            sub.training = training

    return restore


def _encoded_accuracy(net, X, y):
    """Accuracy of the argmax against encoded targets (skorch scoring signature)."""
    y_pred = np.argmax(NeuralNet.predict_proba(net, X), axis=1)
    return float(np.mean(y_pred == np.asarray(y)))

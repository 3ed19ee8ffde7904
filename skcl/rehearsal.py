"""RehearsalBuffer: a bounded replay memory of past months."""

import copy
import os
import tempfile
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_X_y

from ._sparse import check_sparse_structure, is_scipy_sparse, to_csr
from .storage import _freeze, _in_memory, _to_memmap
from .utils._arrays import as_list
from .utils._months import check_month_label
from .utils._rollback import atomic, save_shallow_state
from .utils._seeding import make_rng
from .utils._sklearn_compat import (
    Interval,
    StrOptions,
    check_parameter_constraints,
    validate_data,
)

__all__ = ["RehearsalBuffer"]

# Rows are copied into a memory-mapped file in blocks of about this many bytes,
# so a buffer larger than RAM is never loaded whole.
_COPY_BLOCK_BYTES = 64 * 2**20


class RehearsalBuffer(BaseEstimator):
    """Bounded memory of past rows, replayed alongside each new month.

    ``partial_fit`` stores a month under a strict ``capacity`` (in rows);
    ``fit_resample`` returns a new month mixed with rows drawn from the memory,
    following imbalanced-learn's sampler convention, so the buffer serves both as
    the ``rehearsal`` strategy of :class:`~skcl.ContinualClassifier` and on its
    own in front of any estimator. Read more in the
    :ref:`User Guide <rehearsal_buffer>`.

    Which rows are kept depends on ``policy``:

    * ``"reservoir"`` keeps a uniform sample of every row seen (Vitter's
      algorithm R, vectorised per batch): after ``n_seen`` rows, each one is
      stored with probability ``capacity / n_seen``. The memory then follows the
      stream's own mixture, months weighted by their volume. Right when the past
      matters in proportion to its size and months are of similar size; the
      default.
    * ``"per_month"`` gives every month an equal share, ``capacity / n_months``
      rows (a month with fewer rows keeps them all and lends the rest). When a
      new month arrives, older months shrink by uniform subsampling. Right when
      months differ in size, or when old months (families of malware that have
      faded) must keep their place however long the stream grows.
    * ``"class_balanced"`` gives every class an equal share, and within a class
      keeps a uniform sample of its rows (a reservoir per class). Right when a
      rare class (the malicious one) would otherwise be crowded out of the
      memory; note that replayed rows then have a balanced class prior, not the
      stream's.

    Within each share, the kept rows are always a uniform sample of the rows of
    that share seen so far. Calling ``partial_fit`` again with a month already
    seen adds to that month.

    Parameters
    ----------
    capacity : int or None, default=10_000
        Most rows stored at any time. ``None`` keeps every row (memory grows
        with the stream; this is what full retraining needs). May change
        between months: a lower one drops a random subset now (following
        ``policy``); a higher one is filled by the rows that arrive from then
        on (the dropped past rows are gone): each share's new slots take its
        next rows, then uniform sampling over all its rows seen resumes, so
        the months right after a raise hold more than a uniform share.
    replay_ratio : float in [0, 1), default=0.5
        Share of replayed rows in what ``fit_resample`` returns. ``0`` turns
        replay off.
    policy : {"reservoir", "per_month", "class_balanced"}, default="reservoir"
        Which rows to keep; see above.
    epoch_size : {"fixed", "grow"}, default="fixed"
        Size of ``fit_resample``'s result for a month of ``n`` rows.
        ``"fixed"``: ``n`` rows, ``round(replay_ratio * n)`` of them replayed and
        the rest a uniform subset of the month (an epoch costs as much as
        without replay, but sees only part of the new month). ``"grow"``: the
        whole month plus ``round(n * replay_ratio / (1 - replay_ratio))``
        replayed rows (every new row is seen; an epoch costs
        ``1 / (1 - replay_ratio)`` times more).
    memmap_dir : str, path-like or None, default=None
        Directory for a temporary file holding ``X_`` as a :class:`numpy.memmap`
        (for sparse rows, the CSR matrix's three arrays), for buffers larger
        than RAM. The file is anonymous (unlinked at
        creation, so nothing is left behind) and replaced at every
        ``partial_fit``. Labels and months stay in memory (a few bytes per row).
        Pickling or ``joblib.dump`` writes the stored rows themselves into the
        file (joblib streams them from the map without loading them whole);
        once loaded, ``X_`` is an in-memory array (or, with
        ``joblib.load(..., mmap_mode="r")``, a map of the joblib file) until the
        next ``partial_fit`` moves it back under ``memmap_dir``. ``None`` keeps
        ``X_`` in memory.
    random_state : int, RandomState instance or None, default=None
        Seeds every draw (which rows are kept, replayed and subsampled). Used
        once, at the first ``partial_fit``, to seed ``rng_``; a pickled buffer
        continues the same sequence of draws.

    Attributes
    ----------
    X_ : ndarray or scipy.sparse.csr_matrix of shape (n_stored, n_features)
        Stored rows, in the dtype of the first ``partial_fit`` (float32 or
        float64); a CSR matrix when the first ``partial_fit`` got sparse rows
        (any ``scipy.sparse`` format; rows are never densified, and
        ``fit_resample`` and ``sample`` return CSR rows too). Read-only:
        ``partial_fit`` builds new arrays.
    y_ : ndarray of shape (n_stored,)
        Labels of the stored rows.
    sample_months_ : ndarray of shape (n_stored,)
        Month label of each stored row.
    extra_ : ndarray of shape (n_stored, ...) or None
        The extra array passed to ``partial_fit`` (e.g. logits), for each
        stored row; ``None`` when none was passed.
    n_samples_seen_ : int
        Rows passed to ``partial_fit`` so far.
    n_samples_seen_per_month_ : dict
        Rows seen per month label, in order of arrival.
    n_samples_seen_per_class_ : dict
        Rows seen per class label, in order of arrival.
    n_features_in_ : int
        Number of features, fixed at the first ``partial_fit``.
    feature_names_in_ : ndarray of str
        Column names, when the first ``partial_fit`` got a DataFrame with
        string columns.
    rng_ : numpy.random.Generator
        Source of every draw, created from ``random_state`` at the first
        ``partial_fit``.

    See Also
    --------
    skcl.ContinualClassifier : Uses the buffer as its ``rehearsal`` strategy.
    skcl.MonthlyAveragingClassifier : The model-averaging baseline.

    Notes
    -----
    Memory: at most ``capacity`` rows are stored whatever the stream's length.
    During ``partial_fit``, the kept rows are copied into new arrays, so up to
    twice the stored size (plus the incoming month) is held for a moment.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import RehearsalBuffer
    >>> rng = np.random.default_rng(0)
    >>> buffer = RehearsalBuffer(capacity=100, replay_ratio=0.25, random_state=0)
    >>> for month in range(3):
    ...     X = rng.normal(size=(80, 5)).astype(np.float32)
    ...     y = rng.integers(0, 2, size=80)
    ...     buffer = buffer.partial_fit(X, y, month=month)
    >>> buffer.X_.shape, buffer.n_samples_seen_
    ((100, 5), 240)
    >>> X_mix, y_mix = buffer.fit_resample(X, y)
    >>> X_mix.shape
    (80, 5)
    >>> X_past, y_past, months_past = buffer.sample(10)
    >>> X_past.shape
    (10, 5)
    """

    _parameter_constraints = {
        "capacity": [Interval(Integral, 1, None, closed="left"), None],
        "replay_ratio": [Interval(Real, 0, 1, closed="left")],
        "policy": [StrOptions({"reservoir", "per_month", "class_balanced"})],
        "epoch_size": [StrOptions({"fixed", "grow"})],
        "memmap_dir": [str, os.PathLike, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        capacity=10_000,
        *,
        replay_ratio=0.5,
        policy="reservoir",
        epoch_size="fixed",
        memmap_dir=None,
        random_state=None,
    ):
        self.capacity = capacity
        self.replay_ratio = replay_ratio
        self.policy = policy
        self.epoch_size = epoch_size
        self.memmap_dir = memmap_dir
        self.random_state = random_state

    # ------------------------------------------------------------------
    # public API
    # ------------------------------------------------------------------
    @atomic
    def partial_fit(self, X, y, month=None, extra=None):
        """Add a month's rows to the memory, keeping at most ``capacity``.

        The rows are copied (the buffer never shares memory with ``X`` or
        ``y``). The call is atomic: if it raises, the buffer is unchanged.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The month's features. No NaN or infinite values.
        y : array-like of shape (n_samples,)
            The month's class labels.
        month : hashable scalar, default=None
            The month's label (int, str, ``numpy.datetime64``, date,
            ``pandas.Timestamp``, ``pandas.Period``, ...), stored with each
            row as given. ``None`` uses the number of distinct months seen so
            far (0, 1, 2, ... when never given).
        extra : array-like of shape (n_samples, ...), default=None
            An optional numeric array kept with the rows (e.g. the model's
            logits for DER, :class:`~skcl.DERpp`): stored in ``extra_`` for
            the rows kept, drawn with them by ``sample(...,
            return_extra=True)``, pickled with them. Either every call passes
            it, with the same shape after the first axis, or none does.

        Returns
        -------
        self : RehearsalBuffer
            Fitted buffer, holding at most ``capacity`` of the rows seen so far.
        """
        # atomic with a shallow record (utils/_rollback): stored arrays, dicts
        # and the generator are replaced, never modified in place
        return self._partial_fit(X, y, month, extra)

    def sample(self, n_samples, *, return_extra=False):
        """Draw stored rows uniformly at random.

        Parameters
        ----------
        n_samples : int
            Number of rows to draw. Up to the number stored, rows are drawn
            without replacement. Beyond it, every stored row is returned
            ``n_samples // n_stored`` times and ``n_samples % n_stored`` more
            are drawn without replacement, so no row appears more than once more
            than any other; the result is shuffled.
        return_extra : bool, default=False
            Also return the drawn rows' entries of ``extra_`` (the buffer
            must hold one, see ``partial_fit``).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            The drawn rows, in memory (copied from ``X_``), in the dtype of
            ``X_``.
        y : ndarray of shape (n_samples,)
            The label of each drawn row.
        months : ndarray of shape (n_samples,)
            The month label of each drawn row.
        extra : ndarray of shape (n_samples, ...)
            With ``return_extra=True`` only: each drawn row's ``extra_`` entry.
        """
        if return_extra and self.__dict__.get("extra_") is None:
            raise ValueError(
                "return_extra=True, but this buffer stores no extra array; pass "
                "extra= to every partial_fit call"
            )
        if "X_" not in self.__dict__:
            raise NotFittedError(
                "This RehearsalBuffer is empty; call partial_fit with some rows "
                "before sample"
            )
        if not isinstance(n_samples, Integral) or n_samples < 0:
            raise ValueError(
                f"n_samples={n_samples!r} is not a number of rows; pass an int >= 0"
            )
        rng = copy.deepcopy(self.rng_)
        index = self._draw_stored(rng, int(n_samples))
        self.rng_ = rng
        X = self.X_[index]
        drawn = ((X if is_scipy_sparse(X) else np.asarray(X)), self.y_[index],
                 self.sample_months_[index])
        return (*drawn, self.extra_[index]) if return_extra else drawn

    def fit_resample(self, X, y):
        """Return the month ``X, y`` mixed with rows replayed from the memory.

        Stored rows are not changed (add the month with ``partial_fit``); only
        ``rng_`` advances, so every call draws afresh. With an empty buffer or
        ``replay_ratio=0``, ``X`` and ``y`` are returned as validated.
        Subclasses change the mixing by overriding :meth:`mix`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The new month's features.
        y : array-like of shape (n_samples,)
            The new month's labels.

        Returns
        -------
        X_resampled : ndarray of shape (n_samples_new, n_features)
            ``n_samples`` rows with ``epoch_size="fixed"``, more with
            ``"grow"``, in random order (new and replayed rows interleaved).
        y_resampled : ndarray of shape (n_samples_new,)
            The label of each row of ``X_resampled``.
        """
        check_parameter_constraints(self)
        if "X_" not in self.__dict__:
            # nothing to replay; validate without fixing n_features_in_
            check_sparse_structure(X)
            X, y = check_X_y(X, y, dtype=[np.float32, np.float64], ensure_all_finite=False,
                             accept_sparse=["csr", "csc", "coo"])
            X = to_csr(X, X.dtype) if is_scipy_sparse(X) else X
            _check_finite(X)
            check_classification_targets(y)
            return X, y
        X, y = self._validate_month(X, y, reset=False)
        self._check_same_layout(X)
        if self.replay_ratio == 0:
            return X, y
        _check_same_kind("y", self.y_, y, "labels")
        rng = copy.deepcopy(self.rng_)
        X_resampled, y_resampled = self._fit_resample(X, y, rng)
        self.rng_ = rng
        return X_resampled, y_resampled

    # ------------------------------------------------------------------
    # template methods
    # ------------------------------------------------------------------
    def _fit_resample(self, X, y, rng):
        # imbalanced-learn's template name, kept for subclasses written
        # against it; the documented hook is ``mix``
        return self.mix(X, y, rng)

    def mix(self, X, y, rng):
        """Return the month ``X, y`` mixed with rows replayed from the memory.

        The data-level extension point: called by :meth:`fit_resample` (so
        once per training epoch of :class:`~skcl.ContinualClassifier`) on a
        non-empty buffer with a positive ``replay_ratio``, after validation.
        Safe to override if the signature is kept; draw every random choice
        from ``rng``. The helpers of :mod:`skcl.rows` (``take_rows``,
        ``concat_rows``) work on every form of rows met here.

        Parameters
        ----------
        X : ndarray or scipy.sparse.csr_matrix of shape (n_samples, n_features)
            The month's validated rows (CSR when the stream is sparse).
        y : ndarray of shape (n_samples,)
            Their labels (encoded as indices into ``classes_`` when the
            classifier calls it).
        rng : numpy.random.Generator
            The source of this call's draws (``rng_`` advances by it).

        Returns
        -------
        X_resampled : ndarray or scipy.sparse.csr_matrix
            The epoch's rows, of ``X``'s form. The stored rows ``X_`` are a
            read-only ``ndarray``, a read-only ``numpy.memmap`` (with
            ``memmap_dir``) or a CSR matrix (a sparse stream), with labels
            ``y_`` and months ``sample_months_``; indexing any of them copies
            the rows it takes.
        y_resampled : ndarray
            The label of each row of ``X_resampled``.
        """
        n_samples = len(y)
        if self.epoch_size == "fixed":
            n_replay = int(round(self.replay_ratio * n_samples))
            new_rows = rng.choice(n_samples, n_samples - n_replay, replace=False)
        else:
            n_replay = int(round(n_samples * self.replay_ratio / (1 - self.replay_ratio)))
            new_rows = np.arange(n_samples)
        replayed = self._draw_stored(rng, n_replay)
        n_total = len(new_rows) + n_replay
        order = rng.permutation(n_total)
        at_new, at_replay = order[: len(new_rows)], order[len(new_rows):]

        if is_scipy_sparse(X):
            # stacked row i goes to position order[i]: rows stay sparse
            stacked = sp.vstack([X[new_rows], self.X_[replayed].astype(X.dtype)], format="csr")
            X_resampled = stacked[np.argsort(order)]
        else:
            X_resampled = np.empty((n_total, X.shape[1]), dtype=X.dtype)
            X_resampled[at_new] = X[new_rows]
            X_resampled[at_replay] = self.X_[replayed]
        y_resampled = np.empty(n_total, dtype=np.result_type(y, self.y_))
        y_resampled[at_new] = y[new_rows]
        y_resampled[at_replay] = self.y_[replayed]
        return X_resampled, y_resampled

    def __sklearn_is_fitted__(self):
        return "X_" in self.__dict__

    # ------------------------------------------------------------------
    # persistence
    # ------------------------------------------------------------------
    def __getstate__(self):
        state = super().__getstate__()
        if "X_" in state:
            # pickle the rows themselves, as plain arrays: the temporary file
            # is private to this process
            state = dict(state, X_=_in_memory(state["X_"]))
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        X = self.__dict__.get("X_")
        if X is not None and self.memmap_dir is not None and os.path.isdir(self.memmap_dir):
            # the pickled rows go back to disk, as before pickling
            everything, none = np.arange(X.shape[0]), np.zeros(0, dtype=np.intp)
            self.X_ = self._gather(X, everything, X[:0], none)
        for name in ("X_", "y_", "sample_months_", "extra_"):
            array = self.__dict__.get(name)
            if is_scipy_sparse(array):
                _freeze(array)
            elif isinstance(array, np.ndarray) and array.flags.writeable:
                array.flags.writeable = False

    def __deepcopy__(self, memo):
        # Stored arrays are read-only and never written again, so copies share
        # them, as they would share any immutable value. This keeps a
        # memory-mapped X_ out of RAM and makes ContinualClassifier's copy of
        # its state before every month (for atomicity) cheap.
        for name in ("X_", "y_", "sample_months_", "extra_"):
            array = self.__dict__.get(name)
            if is_scipy_sparse(array) or (isinstance(array, np.ndarray)
                                          and not array.flags.writeable):
                memo[id(array)] = array
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    # ------------------------------------------------------------------
    # internals
    # ------------------------------------------------------------------
    def _check_params(self):
        return self.check_params()

    def save_state(self):
        """Record the buffer's state; return the function that puts it back.

        Part of the rollback protocol with :class:`~skcl.ContinualClassifier`
        (see :meth:`skcl.Regularizer.save_state`): ``partial_fit`` replaces
        the stored arrays, never changes them in place, so a record by
        reference suffices. Override it (keeping the signature) in a subclass
        that changes state in place.

        Returns
        -------
        restore : callable
            Called without arguments, puts the recorded state back.
        """
        return save_shallow_state(self)

    def check_params(self):
        """Check the parameters, and that ``memmap_dir`` exists (before any training).

        Part of the protocol with :class:`~skcl.ContinualClassifier`, which
        calls it at the start of every ``fit`` / ``partial_fit``, before any
        training. Safe to override if the signature is kept (call ``super()``).

        Raises
        ------
        sklearn.utils._param_validation.InvalidParameterError
            A parameter out of its range (a ``ValueError``).
        ValueError
            ``memmap_dir`` is not an existing directory.
        """
        check_parameter_constraints(self)
        if self.memmap_dir is not None and not os.path.isdir(self.memmap_dir):
            raise ValueError(
                f"memmap_dir={self.memmap_dir!r} is not an existing directory; "
                "create it or pass memmap_dir=None to keep the rows in memory"
            )

    def _partial_fit(self, X, y, month, extra):
        self._check_params()
        first_call = "X_" not in self.__dict__
        X, y = self._validate_month(X, y, reset=first_call)
        extra = self._validate_extra(extra, len(y), first_call)
        n_seen_per_month = dict(self.__dict__.get("n_samples_seen_per_month_", {}))
        month = check_month_label(month)
        if month is None:
            month = len(n_seen_per_month)
        month, months = _month_column(month, len(y), like=self.__dict__.get("sample_months_"))
        if not first_call:
            self._check_same_layout(X)
        if first_call:
            rng = make_rng(self.random_state)
            X_stored = (sp.csr_matrix((0, X.shape[1]), dtype=X.dtype) if is_scipy_sparse(X)
                        else np.empty((0, X.shape[1]), dtype=X.dtype))
            y_stored = y[:0]
            months_stored = months[:0]
            n_seen_per_class = {}
            n_seen = 0
        else:
            rng = copy.deepcopy(self.rng_)
            X_stored, y_stored, months_stored = self.X_, self.y_, self.sample_months_
            _check_same_kind("y", y_stored, y, "labels")
            _check_same_kind("month", months_stored, months, "month labels")
            n_seen_per_class = dict(self.n_samples_seen_per_class_)
            n_seen = self.n_samples_seen_

        keys, n_seen_of = self._groups((months_stored, months), (y_stored, y), n_seen,
                                       n_seen_per_month, n_seen_per_class)
        keep, take = self._select(keys, n_seen_of, len(y_stored), len(y), rng)

        X_new = self._gather(X_stored, keep, X, take)
        y_new = np.concatenate([y_stored[keep], y[take]])
        months_new = np.concatenate([months_stored[keep], months[take]])
        for array in (y_new, months_new):
            array.flags.writeable = False
        _freeze(X_new)
        if extra is not None:
            stored = self.extra_ if not first_call else extra[:0]
            self.extra_ = np.concatenate([stored[keep], extra[take]])
            self.extra_.flags.writeable = False
        elif first_call:
            self.extra_ = None

        n_seen_per_month[month] = n_seen_per_month.get(month, 0) + len(y)
        labels, counts = np.unique(y, return_counts=True)
        for label, count in zip(labels.tolist(), counts.tolist()):
            n_seen_per_class[label] = n_seen_per_class.get(label, 0) + count
        self.X_, self.y_, self.sample_months_ = X_new, y_new, months_new
        self.n_samples_seen_ = n_seen + len(y)
        self.n_samples_seen_per_month_ = n_seen_per_month
        self.n_samples_seen_per_class_ = n_seen_per_class
        self.rng_ = rng
        return self

    def _check_same_layout(self, X):
        if is_scipy_sparse(X) != is_scipy_sparse(self.X_):
            raise ValueError(
                f"X is {'sparse' if is_scipy_sparse(X) else 'dense'} but the buffer "
                f"stores {'sparse' if is_scipy_sparse(self.X_) else 'dense'} rows; pass "
                "one kind every month (e.g. scipy.sparse.csr_matrix(X)), or start a new "
                "buffer with sklearn.base.clone(buffer)"
            )

    def _select(self, keys, n_seen_of, n_stored, n_new, rng):
        """Which stored rows to keep and which new rows to take (see ``_select_rows``).

        Returns ``(keep, take)``, sorted positions among the stored and the
        new rows; the new stored rows are ``stored[keep]`` then ``new[take]``.
        Safe to override if the signature is kept (the diversity-aware buffer
        chooses the rows of each share differently).
        """
        return _select_rows(keys, n_seen_of, n_stored, n_new, self.capacity, rng)

    def _groups(self, months, labels, n_seen, n_seen_per_month, n_seen_per_class):
        """The policy's grouping of (stored, new) rows, and rows seen per group."""
        if self.policy == "reservoir":
            return None, {None: n_seen}
        if self.policy == "per_month":
            return months, n_seen_per_month
        return labels, n_seen_per_class

    def set_params(self, **params):
        """Set parameters; on a fitted buffer, bring the stored rows in line.

        A lower ``capacity`` than the rows stored keeps a random subset that
        follows ``policy`` (equal shares per month or class, uniform within);
        a higher one is filled by the next months' rows (see ``capacity``);
        a new ``memmap_dir`` moves the rows there (``None``: into memory). If
        that fails, the parameters and rows are left as they were.

        Parameters
        ----------
        **params
            Buffer parameters as ``name=value``.

        Returns
        -------
        self : RehearsalBuffer
            The buffer, with the parameters set.
        """
        previous = self.get_params(deep=False)
        state = dict(self.__dict__)
        super().set_params(**params)
        if self.__sklearn_is_fitted__() and {"capacity", "memmap_dir"} & set(params):
            try:
                self._check_params()
                self._restore_capacity()
            except BaseException:
                self.__dict__.clear()
                self.__dict__.update(state)
                super().set_params(**previous)
                raise
        return self

    def _restore_capacity(self):
        rng = copy.deepcopy(self.rng_)
        months, labels = self.sample_months_, self.y_
        keys, n_seen_of = self._groups((months, months[:0]), (labels, labels[:0]),
                                       self.n_samples_seen_, self.n_samples_seen_per_month_,
                                       self.n_samples_seen_per_class_)
        keep, _ = self._select(keys, n_seen_of, len(labels), 0, rng)
        no_rows = np.zeros(0, dtype=np.intp)
        X_new = self._gather(self.X_, keep, self.X_[:0], no_rows)
        y_new, months_new = labels[keep], months[keep]
        extra = self.__dict__.get("extra_")
        extra_new = None if extra is None else extra[keep]
        for array in (X_new, y_new, months_new, extra_new):
            if array is not None:
                array.flags.writeable = False
        self.X_, self.y_, self.sample_months_, self.rng_ = X_new, y_new, months_new, rng
        self.extra_ = extra_new

    def _validate_month(self, X, y, reset):
        n_features = getattr(self, "n_features_in_", None)
        shape = np.shape(X)
        if not reset and n_features is not None and len(shape) == 2 and shape[1] != n_features:
            raise ValueError(
                f"X has {shape[1]} features, but RehearsalBuffer is expecting "
                f"{n_features} features as input (fixed by the first partial_fit); "
                "pass the same columns every month, or start a new buffer with "
                "sklearn.base.clone(buffer)"
            )
        if len(shape) >= 1 and np.ndim(y) >= 1 and shape[0] != len(y):
            raise ValueError(
                f"X has {shape[0]} rows but y has {len(y)} labels; pass one label "
                "per row of X"
            )
        check_sparse_structure(X)   # before anything reads a crafted matrix's rows
        X, y = validate_data(self, X, y, reset=reset, dtype=[np.float32, np.float64],
                             ensure_all_finite=False, accept_sparse=["csr", "csc", "coo"])
        if is_scipy_sparse(X):
            X = to_csr(X, X.dtype)   # stored and gathered by rows, never densified
        _check_finite(X)
        check_classification_targets(y)
        return X, y

    def _validate_extra(self, extra, n_rows, first_call):
        """Check ``extra`` against the rows and what the buffer already stores."""
        stored = None if first_call else self.__dict__.get("extra_")
        if extra is None:
            if stored is not None:
                raise ValueError(
                    "this buffer stores an extra array with its rows, so extra= must "
                    "be passed to every partial_fit call"
                )
            return None
        if not first_call and stored is None:
            raise ValueError(
                "extra= was passed, but the buffer's earlier rows were stored without "
                "one; pass extra= from the first partial_fit on, or start a new buffer"
            )
        extra = np.asarray(extra)
        if extra.dtype.kind not in "biuf" or extra.ndim < 1 or len(extra) != n_rows:
            raise ValueError(
                f"extra has shape {extra.shape} and dtype {extra.dtype}, but one "
                f"numeric entry per row ({n_rows} rows) is needed"
            )
        if stored is not None and extra.shape[1:] != stored.shape[1:]:
            raise ValueError(
                f"extra has entries of shape {extra.shape[1:]}, but the buffer stores "
                f"entries of shape {stored.shape[1:]}; pass the same shape every month"
            )
        return extra.astype(stored.dtype if stored is not None else extra.dtype,
                            copy=True)

    def _draw_stored(self, rng, n_samples):
        """Indices of ``n_samples`` stored rows (see ``sample``)."""
        n_stored = len(self.y_)
        if n_samples == 0:
            return np.zeros(0, dtype=np.intp)
        if n_stored == 0:
            raise ValueError(
                f"cannot draw {n_samples} rows from an empty buffer; call "
                "partial_fit with some rows first"
            )
        if n_samples <= n_stored:
            return rng.choice(n_stored, n_samples, replace=False)
        repeats, rest = divmod(n_samples, n_stored)
        index = np.concatenate([np.tile(np.arange(n_stored), repeats),
                                rng.choice(n_stored, rest, replace=False)])
        rng.shuffle(index)
        return index

    def _gather(self, X_stored, keep, X, take):
        """New stored features: ``X_stored[keep]`` then ``X[take]``, as a copy."""
        n_rows, dtype = len(keep) + len(take), X_stored.dtype
        if is_scipy_sparse(X_stored):
            X_new = sp.vstack([X_stored[keep], X[take].astype(dtype)], format="csr")
            if self.memmap_dir is None:
                return X_new
            return sp.csr_matrix(
                tuple(_to_memmap(a, self.memmap_dir)
                      for a in (X_new.data, X_new.indices, X_new.indptr)),
                shape=X_new.shape, copy=False)
        if self.memmap_dir is None:
            return np.concatenate([X_stored[keep], X[take].astype(dtype, copy=False)])
        with tempfile.TemporaryFile(dir=self.memmap_dir, prefix="skcl-rehearsal-") as file:
            # the map keeps the (already unlinked) file alive after it is closed
            out = np.memmap(file, dtype=dtype, mode="w+", shape=(n_rows, X.shape[1]))
        block = max(1, _COPY_BLOCK_BYTES // max(1, X.shape[1] * dtype.itemsize))
        sources = [(X_stored, keep), (X, take)]
        position = 0
        for source, index in sources:
            for start in range(0, len(index), block):
                rows = index[start:start + block]
                out[position:position + len(rows)] = source[rows]
                position += len(rows)
        out.flush()
        return out


def _check_finite(X):
    if is_scipy_sparse(X):
        bad = np.flatnonzero(~np.isfinite(X.data))
        if len(bad):
            row = int(np.searchsorted(X.indptr, bad[0], side="right") - 1)
            raise ValueError(
                f"X contains {X.data[bad[0]]!r} at row {row}, column "
                f"{int(X.indices[bad[0]])}; stored and replayed rows must be finite: "
                "impute or drop such rows first"
            )
        return
    finite = np.isfinite(X)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        raise ValueError(
            f"X contains {X[row, column]!r} at row {row}, column {column}; stored and "
            "replayed rows must be finite: impute or drop such rows first"
        )


def _month_column(month, n_rows, like=None):
    """The month's label as stored, and ``n_rows`` copies of it: the very label given.

    numpy keeps its own scalars and Python numbers and strings in a typed array;
    other labels (dates, ``pandas.Timestamp``, ``pandas.Period``) go in an
    object array, so they come back from ``sample_months_`` as given. A date
    added to a buffer storing ``datetime64`` labels (``like``) is stored as one,
    so that the stored labels stay comparable (and its rows are counted under
    that one label in ``n_samples_seen_per_month_``).
    """
    if like is not None and like.dtype.kind == "M" and not isinstance(month, np.generic):
        try:
            stored = np.asarray([month], dtype=object).astype(like.dtype)[0]
            return stored, np.full(n_rows, stored)
        except (TypeError, ValueError):
            pass  # not a date: kept as given, and refused as another kind
    if isinstance(month, np.generic | int | float | str | bytes):
        return month, np.full(n_rows, month)
    column = np.empty(n_rows, dtype=object)
    column[:] = [month] * n_rows
    return month, column


def _check_same_kind(name, stored, new, what):
    """Refuse mixing text with numbers, which numpy would silently turn into text."""
    stored_text, new_text = stored.dtype.kind in "OSU", new.dtype.kind in "OSU"
    if stored_text != new_text:
        raise ValueError(
            f"{name} has dtype {new.dtype} but the buffer stores {what} of dtype "
            f"{stored.dtype}; pass {what} of one kind (all numbers or all strings)"
        )


def _select_rows(keys, n_seen_of, n_stored, n_new, capacity, rng):
    """Which stored rows to keep and which new rows to take.

    Rows are split into groups (one group when ``keys`` is None, else by the
    stored and new keys); each group gets an equal share of ``capacity`` and
    keeps, within its share, a uniform sample of its rows seen so far.

    Returns
    -------
    keep : ndarray of int
        Sorted positions of stored rows that stay.
    take : ndarray of int
        Positions of new rows to store.
    """
    if keys is None:
        codes = np.zeros(n_stored + n_new, dtype=np.intp)
        labels = [None]
    else:
        try:
            unique, codes = np.unique(np.concatenate(keys), return_inverse=True)
        except TypeError as exc:
            raise ValueError(
                f"labels cannot be sorted ({exc}); use labels of one comparable type"
            ) from exc
        # as_list: datetime64 keys stay numpy scalars, as n_seen_of holds them
        labels = as_list(unique)
    n_groups = len(labels)
    stored_codes, new_codes = codes[:n_stored], codes[n_stored:]
    stored_by_group = _positions_by_group(stored_codes, n_groups)
    new_by_group = _positions_by_group(new_codes, n_groups)

    n_stored_of = np.array([len(p) for p in stored_by_group])
    n_seen = np.array([n_seen_of.get(label, 0) for label in labels])
    # A group can hold its stored rows and its new ones; one that dropped rows
    # before (a capacity since raised) grows by its new rows only.
    room = n_stored_of + np.array([len(p) for p in new_by_group])
    shares = room if capacity is None else _equal_shares(room, capacity)

    keep, take = [], []
    for group in range(n_groups):
        slots = stored_by_group[group]
        share = int(shares[group])
        if share < len(slots):
            slots = np.sort(rng.choice(slots, share, replace=False))
        owner = _reservoir_owners(int(n_seen[group]), share, len(new_by_group[group]), rng,
                                  n_stored=len(slots))
        keep.append(slots[owner[: len(slots)] < 0])
        take.append(new_by_group[group][owner[owner >= 0]])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(take))


def _positions_by_group(codes, n_groups):
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=n_groups))[:-1]
    return np.split(order, bounds)


def _equal_shares(room, capacity):
    """Split ``capacity`` into integer shares as equal as possible, each <= ``room``.

    Water-filling: groups whose room is below the common level keep all their
    room and leave the rest to the others, which share it equally. Rows left
    by rounding go one each to the latest groups (the newest months), so a
    new month is stored even when ``capacity`` is below the number of months.
    """
    room = np.asarray(room, dtype=np.int64)
    shares = room.copy()
    remaining, left = min(int(capacity), int(room.sum())), len(room)
    order = np.argsort(room, kind="stable")
    for position, group in enumerate(order):
        if room[group] * left >= remaining:     # at or above the level: share equally
            level_groups = np.sort(order[position:])
            shares[level_groups] = remaining // left
            shares[level_groups[len(level_groups) - remaining % left:]] += 1
            break
        remaining -= int(room[group])
        left -= 1
    return shares


def _reservoir_owners(n_seen, n_slots, n_new, rng, n_stored):
    """Algorithm R for ``n_new`` arriving rows and a reservoir of ``n_slots``.

    The reservoir holds ``n_stored`` rows (``min(n_seen, n_slots)`` while
    nothing was dropped: a uniform sample of the ``n_seen`` rows seen before). Arriving rows first
    fill the free slots, one each, in arrival order; after that, arriving row
    ``i``, the ``t = n_seen + i``-th row of the stream, replaces slot ``j``,
    drawn uniformly from ``0 .. t``, when ``j < n_slots`` (so it is kept with
    probability ``n_slots / (t + 1)``). While nothing was ever dropped this is
    Algorithm R exactly; after a raised capacity it fills the new slots with
    the next rows, then samples on. The draws of a whole batch are made at
    once; where several rows hit one slot, the last one wins, as in the
    sequential algorithm.

    Returns
    -------
    owner : ndarray of int of shape (min(n_slots, n_stored + n_new),)
        Per slot, the arriving row now in it, or -1 where the old row stays.
    """
    owner = np.full(min(n_slots, n_stored + n_new), -1, dtype=np.intp)
    n_fill = min(n_new, len(owner) - n_stored)
    owner[n_stored:n_stored + n_fill] = np.arange(n_fill)
    rows = np.arange(n_fill, n_new)
    if len(rows):
        slot = rng.integers(0, n_seen + rows + 1)
        hit = slot < n_slots
        slot, rows = slot[hit], rows[hit]
        last_slot, last = np.unique(slot[::-1], return_index=True)
        owner[last_slot] = rows[::-1][last]
    return owner

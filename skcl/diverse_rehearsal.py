"""DiverseRehearsalBuffer: a replay memory that keeps every kind of past row.

After MADAR (Rahman et al., 2025, "MADAR: Efficient Continual Learning for
Malware Analysis with Diversity-Aware Replay"): rows are split into strata
(families when given, else clusters of the model's hidden representation),
each stratum gets an equal share of the memory, and within a share a fixed
proportion goes to the stratum's most anomalous rows (scored by an
:class:`~sklearn.ensemble.IsolationForest`), the rest to a uniform sample.
"""

import copy
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.ensemble import IsolationForest

from ._groups import check_group_labels, month_groups
from .fisher import _rows
from .module_utils import evaluation_mode
from .rehearsal import RehearsalBuffer, _equal_shares
from .utils._rollback import atomic
from .utils._seeding import SEED_HIGH, make_rng
from .utils._sklearn_compat import Interval, StrOptions

__all__ = ["DiverseRehearsalBuffer"]

# Rows per forward pass when the classifier computes the hidden representation.
_EMBED_BATCH = 2048


class DiverseRehearsalBuffer(RehearsalBuffer):
    """Replay memory that keeps every stratum of the past and its outliers.

    A :class:`RehearsalBuffer` whose choice of rows to keep is diversity-aware,
    as MADAR (Rahman et al., 2025) does for malware: every month's rows are
    split into strata, and each time the memory is trimmed to ``capacity``,
    every stratum keeps an equal share (a stratum with fewer rows keeps them
    all and lends the rest); within a stratum's share, ``outlier_share`` of
    the slots go to its most anomalous rows and the rest to a uniform sample
    of the others. Rare families and unusual samples then stay in the memory
    however much of the stream a common family fills. ``policy`` still
    decides the shares of months or classes first (see
    :class:`RehearsalBuffer`); strata and outliers decide which rows fill
    them. Replay (``fit_resample``, ``sample``) is unchanged.

    Strata come from, in order of precedence:

    * ``groups`` passed to :meth:`partial_fit` (e.g. malware families): one
      stratum per group label, shared across months, so a family that comes
      back joins its earlier rows; a :class:`~skcl.ContinualClassifier` passes
      on the ``groups`` given to its own ``fit`` / ``partial_fit``;
    * ``representation="hidden"``: ``n_strata`` k-means clusters of the
      ``embedding`` passed to :meth:`partial_fit`; a
      :class:`~skcl.ContinualClassifier` passes the input of its module's last
      linear layer (the hidden representation the network classifies from);
    * ``representation="input"``: ``n_strata`` k-means clusters of the rows
      themselves.

    Clusters are computed per month and never merged across months. Outlier
    scores are an :class:`~sklearn.ensemble.IsolationForest`'s, fitted on the
    same representation per month (lower ``score_samples``, more anomalous),
    and are compared only within a stratum.

    Read more in the :ref:`User Guide <diverse_rehearsal>`.

    Parameters
    ----------
    capacity : int or None, default=10_000
        Most rows stored at any time.
    replay_ratio : float in [0, 1), default=0.5
        Share of replayed rows in what ``fit_resample`` returns.
    policy : {"reservoir", "per_month", "class_balanced"}, default="reservoir"
        How ``capacity`` is first split (one share; equal shares per month;
        per class); the strata then split each share. Under ``"reservoir"``
        the strata of every month share the whole memory equally.
    n_strata : int, default=8
        Clusters per month (when no ``groups`` are passed).
    outlier_share : float in [0, 1], default=0.1
        Share of each stratum's slots given to its most anomalous rows.
    representation : {"hidden", "input"}, default="hidden"
        What clusters and outlier scores are computed on: the ``embedding``
        passed to :meth:`partial_fit` (``"hidden"``; a
        :class:`~skcl.ContinualClassifier` passes its hidden representation),
        or the rows ``X`` (``"input"``).
    epoch_size : {"fixed", "grow"}, default="fixed"
        Size of ``fit_resample``'s result, as in :class:`RehearsalBuffer`.
    memmap_dir : str, path-like or None, default=None
        As in :class:`RehearsalBuffer`.
    random_state : int, RandomState instance or None, default=None
        Seeds every draw, the clustering and the isolation forest included.

    Attributes
    ----------
    strata_ : ndarray of int of shape (n_stored,)
        Stratum code of each stored row.
    outlier_scores_ : ndarray of float of shape (n_stored,)
        Each stored row's anomaly score within its month (higher, more
        anomalous: minus the isolation forest's ``score_samples``; zeros when
        ``outlier_share`` was 0).
    n_strata_ : int
        Stratum codes handed out so far (clusters of every month, and groups).
    group_codes_ : dict
        The stratum code of each group label passed in ``groups``.
    strata_rng_ : numpy.random.Generator
        Seeds of the clusterings and isolation forests.
    X_, y_, sample_months_, extra_, n_samples_seen_, rng_ : see RehearsalBuffer
        The stored rows and the bookkeeping of :class:`RehearsalBuffer`.

    See Also
    --------
    RehearsalBuffer : The uniform policies.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl import DiverseRehearsalBuffer
    >>> rng = np.random.default_rng(0)
    >>> buffer = DiverseRehearsalBuffer(capacity=60, n_strata=3, outlier_share=0.2,
    ...                                 representation="input", random_state=0)
    >>> for month in range(3):
    ...     X = rng.normal(size=(100, 4)).astype(np.float32)
    ...     buffer = buffer.partial_fit(X, rng.integers(0, 2, size=100), month=month)
    >>> buffer.X_.shape, np.bincount(buffer.strata_).tolist()
    ((60, 4), [6, 6, 6, 7, 7, 7, 7, 7, 7])
    """

    _parameter_constraints = {
        **RehearsalBuffer._parameter_constraints,
        "n_strata": [Interval(Integral, 1, None, closed="left")],
        "outlier_share": [Interval(Real, 0, 1, closed="both")],
        "representation": [StrOptions({"hidden", "input"})],
    }

    def __init__(self, capacity=10_000, *, replay_ratio=0.5, policy="reservoir", n_strata=8,
                 outlier_share=0.1, representation="hidden", epoch_size="fixed",
                 memmap_dir=None, random_state=None):
        super().__init__(capacity, replay_ratio=replay_ratio, policy=policy,
                         epoch_size=epoch_size, memmap_dir=memmap_dir,
                         random_state=random_state)
        self.n_strata = n_strata
        self.outlier_share = outlier_share
        self.representation = representation

    @atomic
    def partial_fit(self, X, y, month=None, extra=None, groups=None, embedding=None):
        """Add a month's rows, keeping a diverse ``capacity`` rows of everything seen.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The month's features.
        y : array-like of shape (n_samples,)
            The month's labels.
        month : hashable scalar, default=None
            The month's label (see :meth:`RehearsalBuffer.partial_fit`).
        extra : array-like of shape (n_samples, ...), default=None
            An array kept with the rows (see :meth:`RehearsalBuffer.partial_fit`).
        groups : array-like of shape (n_samples,), default=None
            A stratum label per row (a malware family); overrides clustering.
        embedding : array-like of shape (n_samples, n_dims), default=None
            The rows' representation to cluster and score, required with
            ``representation="hidden"`` unless ``groups`` is given.

        Returns
        -------
        self : DiverseRehearsalBuffer
            The buffer, holding at most ``capacity`` rows.
        """
        self._check_params()
        first_call = "X_" not in self.__dict__
        X_checked, y_checked = self._validate_month(X, y, reset=first_call)
        if first_call:
            self.strata_rng_ = make_rng(self.random_state)
            self.n_strata_ = 0
            self.group_codes_ = {}
            self.strata_ = np.zeros(0, dtype=np.intp)
            self.outlier_scores_ = np.zeros(0)
        self._incoming = self._month_strata(X_checked, len(y_checked), groups, embedding)
        try:
            return self._partial_fit(X, y, month, extra)
        finally:
            self.__dict__.pop("_incoming", None)

    def _month_strata(self, X, n_rows, groups, embedding):
        """Stratum codes and outlier scores of a new month's rows."""
        # drawn from a copy, put in place at the end: the generator is
        # advanced in place, which the shallow rollback would not undo
        rng = copy.deepcopy(self.strata_rng_)
        features = None
        if groups is None or self.outlier_share > 0:
            features = self._representation(X, n_rows, embedding,
                                             needed_for="clusters" if groups is None
                                             else "outlier scores")
        if groups is not None:
            groups = check_group_labels(groups, n_rows, "the month")
            codes = dict(self.group_codes_)
            strata = np.empty(n_rows, dtype=np.intp)
            for label in dict.fromkeys(groups.tolist()):
                if label not in codes:
                    codes[label] = self.n_strata_ + len(codes) - len(self.group_codes_)
                strata[groups == label] = codes[label]
            n_new = len(codes) - len(self.group_codes_)
            self.group_codes_ = codes
        else:
            n_clusters = min(self.n_strata, n_rows)
            kmeans = KMeans(n_clusters=n_clusters, n_init=1,
                            random_state=int(rng.integers(SEED_HIGH)))
            strata = self.n_strata_ + kmeans.fit_predict(features).astype(np.intp)
            n_new = n_clusters
        self.n_strata_ += n_new
        scores = np.zeros(n_rows)
        if self.outlier_share > 0:
            forest = IsolationForest(n_estimators=50, random_state=int(rng.integers(SEED_HIGH)))
            scores = -forest.fit(features).score_samples(features)
        self.strata_rng_ = rng
        return strata, scores

    def _representation(self, X, n_rows, embedding, needed_for):
        if self.representation == "input":
            return X
        if embedding is None:
            raise ValueError(
                f"representation='hidden' computes {needed_for} on the model's hidden "
                "representation, but no embedding= was passed; pass embedding= (a "
                "ContinualClassifier does), groups= with outlier_share=0, or set "
                "representation='input' to use the rows themselves"
            )
        embedding = np.asarray(embedding, dtype=np.float64)
        if embedding.ndim != 2 or embedding.shape[0] != n_rows:
            raise ValueError(
                f"embedding has shape {embedding.shape}, but the month has {n_rows} "
                "rows; pass one row of representation per row of X"
            )
        if not np.isfinite(embedding).all():
            raise ValueError(
                "embedding has non-finite values; the model diverged or the "
                "representation overflowed: check the month's training"
            )
        return embedding

    def _select(self, keys, n_seen_of, n_stored, n_new, rng):
        """Keep the policy's number of rows per share, chosen by stratum and outlier score."""
        keep, take = super()._select(keys, n_seen_of, n_stored, n_new, rng)
        incoming = self.__dict__.get("_incoming")
        new_strata, new_scores = incoming if incoming is not None else (
            np.zeros(0, dtype=np.intp), np.zeros(0))
        strata = np.concatenate([self.strata_, new_strata])
        scores = np.concatenate([self.outlier_scores_, new_scores])
        if keys is None:
            share = np.zeros(n_stored + n_new, dtype=np.intp)
        else:
            _, share = np.unique(np.concatenate(keys), return_inverse=True)
        budgets = np.bincount(share[np.concatenate([keep, n_stored + take])],
                              minlength=share.max(initial=-1) + 1)
        chosen = []
        for group, budget in enumerate(budgets):
            candidates = np.flatnonzero(share == group)
            if budget:
                chosen.append(candidates[diverse_choice(strata[candidates], scores[candidates],
                                                        int(budget), self.outlier_share, rng)])
        chosen = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.intp)
        keep, take = chosen[chosen < n_stored], chosen[chosen >= n_stored] - n_stored
        self.strata_ = np.concatenate([self.strata_[keep], new_strata[take]])
        self.outlier_scores_ = np.concatenate([self.outlier_scores_[keep], new_scores[take]])
        return keep, take


def diverse_choice(strata, scores, budget, outlier_share, rng):
    """Positions of ``budget`` rows: equal shares per stratum, outliers first.

    Each stratum's share (water-filled: a small stratum keeps all its rows and
    lends the rest) holds its ``round(outlier_share * share)`` highest
    ``scores`` and a uniform sample of its other rows.
    """
    codes, inverse = np.unique(strata, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(codes))]
    shares = _equal_shares([len(m) for m in members], budget)
    chosen = []
    for rows, share in zip(members, shares):
        share = int(share)
        n_outliers = min(int(round(outlier_share * share)), share)
        order = np.argsort(-scores[rows], kind="stable")
        outliers = rows[order[:n_outliers]]
        rest = rows[order[n_outliers:]]
        chosen.append(outliers)
        chosen.append(rng.choice(rest, share - n_outliers, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.intp)


def hidden_representation(module, X):
    """The input of ``module``'s last linear layer for the rows ``X``, as numpy.

    The representation the network classifies from (for the bundled
    :class:`~skcl.modules.MLP`, the last hidden layer's activations). ``X`` is
    a dense or sparse CSR tensor; rows go through the module in chunks, in
    evaluation mode, without gradients. Modules without a linear layer give
    their output.
    """
    last = None
    for sub in module.modules():
        if isinstance(sub, torch.nn.Linear) or type(sub).__name__ == "SparseInputLinear":
            last = sub
    captured = []
    handle = None if last is None else last.register_forward_pre_hook(
        lambda _module, inputs: captured.append(inputs[0].detach()))
    parameter = next(module.parameters(), None)
    device = None if parameter is None else parameter.device
    parts = []
    try:
        with torch.no_grad(), evaluation_mode(module):
            for start in range(0, X.shape[0], _EMBED_BATCH):
                output = module(_rows(X, start, min(start + _EMBED_BATCH, X.shape[0]), device))
                hidden = captured.pop() if captured else output
                captured.clear()
                if hidden.layout != torch.strided:
                    hidden = hidden.to_dense()
                parts.append(hidden.float().cpu().numpy())
    finally:
        if handle is not None:
            handle.remove()
    return np.concatenate(parts).reshape(X.shape[0], -1)


def rehearsal_inputs(net, X):
    """Extra arguments of the buffer's ``partial_fit``: ``embedding``, ``groups``.

    The hidden representation when the buffer clusters on it, and the month's
    group labels when the classifier was given them.
    """
    buffer = net.rehearsal_
    inputs = {}
    groups = month_groups(net, X)
    if groups is not None:
        inputs["groups"] = groups
    # the representation feeds the clusters (no groups) and the outlier scores
    if (isinstance(buffer, DiverseRehearsalBuffer) and buffer.representation == "hidden"
            and (groups is None or buffer.outlier_share > 0)):
        inputs["embedding"] = hidden_representation(net.module_, X)
    return inputs

"""Data for continual-learning experiments: a drifting malware-like stream."""

import os

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state

from ._sparse import check_sparse_structure

__all__ = ["load_sparse_stream", "make_detection_stream", "make_drifting_stream"]


def make_drifting_stream(
    n_months=12,
    n_samples_per_month=1000,
    n_features=20,
    *,
    n_families=6,
    positive_fraction=0.4,
    family_strength=2.5,
    benign_drift=1.0,
    noise=1.0,
    labels="binary",
    random_state=None,
):
    """Generate a binary "malicious vs benign" stream that drifts month by month.

    The generative story mimics a malware detector's training data. Features are
    standard normal noise plus structure:

    * **Malicious families.** Each of ``n_families`` families has a signature:
      a shift of ``family_strength`` on three features of its own. Families are
      born one after another (family ``k`` appears at month
      ``round(k * n_months / n_families)``), stay active for about a third of
      the stream, fade out over their last months (fewer samples), and every
      second family re-emerges briefly two thirds of the way after it died, as
      old malware does. A month's positives are drawn from the families active
      that month, weighted by their activity.
    * **Benign drift.** Benign software changes too: its mean moves linearly
      over the stream, by ``benign_drift`` at the last month, *towards the
      signatures of the earliest families* (benign programs adopting
      behaviours that used to be malicious).

    Fine-tuning only on recent months therefore learns that the early
    families' features are harmless, and forgets month 1's malware, while a
    model retrained on all months still separates the strong historical
    signature from the weaker benign shift. The dedicated tests check that
    naive fine-tuning does forget month 1 measurably more than full
    retraining.

    Parameters
    ----------
    n_months : int, default=12
        Number of months.
    n_samples_per_month : int, default=1000
        Rows per month.
    n_features : int, default=20
        Number of features; needs at least ``3 * n_families`` (extra features
        are pure noise).
    n_families : int, default=6
        Number of malware families.
    positive_fraction : float, default=0.4
        Share of malicious rows in each month.
    family_strength : float, default=2.5
        Size of each family's signature shift (in noise standard deviations).
    benign_drift : float, default=1.0
        Size of the benign mean's shift on the early families' features at the
        last month.
    noise : float, default=1.0
        Standard deviation of the Gaussian noise.
    labels : {"binary", "family"}, default="binary"
        ``"binary"``: 1 for malicious, 0 for benign (a detector's labels).
        ``"family"``: 0 for benign and ``1 + k`` for a row of family ``k`` (a
        family classifier's labels). Families are born one after another, so
        each new family arrives as a label never seen before: the
        class-incremental stream of ``ContinualClassifier(new_classes="grow")``
        (see :ref:`new_classes`). The rows are the same for both.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible streams.

    Returns
    -------
    X : ndarray of shape (n_months * n_samples_per_month, n_features), float32
        Features.
    y : ndarray of shape (n_months * n_samples_per_month,), int64
        1 for malicious, 0 for benign; with ``labels="family"``, the family
        plus one for malicious rows.
    months : ndarray of shape (n_months * n_samples_per_month,), int64
        Month index of each row, ``0 .. n_months - 1``, in order.

    Examples
    --------
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=4, n_samples_per_month=50,
    ...                                     random_state=0)
    >>> X.shape, y.shape, sorted(set(months.tolist()))
    ((200, 20), (200,), [0, 1, 2, 3])
    """
    for name, value, low in (("n_months", n_months, 1),
                             ("n_samples_per_month", n_samples_per_month, 2),
                             ("n_families", n_families, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if n_features < 3 * n_families:
        raise ValueError(
            f"n_features={n_features!r} is too small for n_families={n_families!r}; "
            f"pass n_features >= {3 * n_families}"
        )
    if labels not in ("binary", "family"):
        raise ValueError(
            f"labels must be 'binary' or 'family', got {labels!r}"
        )
    if not 0 < positive_fraction < 1:
        raise ValueError(
            f"positive_fraction must be in (0, 1), got {positive_fraction!r}"
        )
    rng = check_random_state(random_state)

    signatures = np.zeros((n_families, n_features))
    for family in range(n_families):
        signs = rng.choice([-1.0, 1.0], size=3)
        signatures[family, 3 * family:3 * family + 3] = family_strength * signs
    activity = _family_activity(n_months, n_families)

    # benign software drifts towards the first third of the families
    n_early = max(1, n_families // 3)
    drift_direction = signatures[:n_early].sum(axis=0)
    drift_direction *= benign_drift / np.abs(drift_direction).max()

    n_pos = int(round(positive_fraction * n_samples_per_month))
    n_neg = n_samples_per_month - n_pos
    X_parts, y_parts, month_parts = [], [], []
    for month in range(n_months):
        progress = month / max(n_months - 1, 1)
        benign = rng.normal(0.0, noise, (n_neg, n_features)) + progress * drift_direction
        weights = activity[month] / activity[month].sum()
        families = rng.choice(n_families, size=n_pos, p=weights)
        malicious = rng.normal(0.0, noise, (n_pos, n_features)) + signatures[families]
        X_month = np.vstack([benign, malicious])
        positive = (np.ones(n_pos, dtype=np.int64) if labels == "binary"
                    else families.astype(np.int64) + 1)
        y_month = np.r_[np.zeros(n_neg, dtype=np.int64), positive]
        order = rng.permutation(n_samples_per_month)
        X_parts.append(X_month[order])
        y_parts.append(y_month[order])
        month_parts.append(np.full(n_samples_per_month, month, dtype=np.int64))
    return (np.vstack(X_parts).astype(np.float32), np.concatenate(y_parts),
            np.concatenate(month_parts))


def _family_activity(n_months, n_families):
    """Return an ``(n_months, n_families)`` array of family weights.

    Family ``k`` is born at ``round(k * n_months / n_families)``, lives about a
    third of the stream at full weight, then fades over two months; every second
    family re-emerges for one month at half weight. Every month has at least one
    active family.
    """
    lifetime = max(1, int(round(n_months / 3)))
    activity = np.zeros((n_months, n_families))
    for family in range(n_families):
        birth = int(round(family * n_months / n_families))
        death = birth + lifetime
        activity[birth:death, family] = 1.0
        for step, weight in enumerate((0.5, 0.2)):
            if death + step < n_months:
                activity[death + step, family] = weight
        comeback = death + int(round(2 * lifetime / 3)) + 2
        if family % 2 == 1 and comeback < n_months:
            activity[comeback, family] = max(activity[comeback, family], 0.5)
    empty = activity.sum(axis=1) == 0
    activity[empty, n_families - 1] = 1.0
    return activity


def make_detection_stream(
    n_months=12,
    n_samples_per_month=1000,
    n_features=20,
    *,
    n_families=8,
    positive_fraction=0.05,
    family_strength=2.5,
    shift_month=None,
    shift_strength=2.0,
    size_spread=0.6,
    noise=1.0,
    random_state=None,
):
    """Generate a stream shaped like a detector's production data.

    Where :func:`make_drifting_stream` is balanced and regular, this stream
    has what users' malware-detection data has:

    * **Few positives**: ``positive_fraction`` of each month (5% by default,
      at least 4 rows), so accuracy is dominated by the benign rows and
      ``roc_auc`` or ``balanced_accuracy`` tell more.
    * **Families that appear, fade and come back.** Each of ``n_families``
      families has a signature (a shift of ``family_strength`` on three
      features drawn at random, possibly shared with other families). The
      first family is born at month 0, the others at random months of the
      first two thirds of the stream; each lives a few months at full weight,
      fades over two (weights 0.5 and 0.2), and every second family comes
      back for one or two months at weight 0.6 after a gap of two to four
      months. A month's positives are drawn from the active families,
      weighted.
    * **One sudden shift** at ``shift_month``: from that month on, benign
      rows move by ``shift_strength`` on four features drawn at random (a new
      platform, a new version of the feature extractor), and the columns of
      two pairs of features are swapped for every row (a re-ordered
      extractor output), so models trained before it lose accuracy there at
      once.
    * **Months of unequal size**: each month's row count is
      ``n_samples_per_month`` times a factor drawn uniformly in
      ``[1 - size_spread, 1 + size_spread]``.
    * Benign rows come from three kinds of software (clusters), mixed in
      proportions that drift slowly.

    Parameters
    ----------
    n_months : int, default=12
        Number of months; at least 2.
    n_samples_per_month : int, default=1000
        Mean rows per month; at least 20.
    n_features : int, default=20
        Number of features; at least 8.
    n_families : int, default=8
        Number of malware families.
    positive_fraction : float, default=0.05
        Share of malicious rows in each month, in (0, 0.5].
    family_strength : float, default=2.5
        Size of each family's signature shift (in noise standard deviations).
    shift_month : int or None, default=None
        Month of the sudden shift, in ``1 .. n_months - 1``; ``None`` is two
        thirds into the stream (month 8 of 12).
    shift_strength : float, default=2.0
        Size of the benign rows' move at the shift.
    size_spread : float, default=0.6
        Months' sizes vary by up to this fraction of ``n_samples_per_month``,
        in [0, 0.9].
    noise : float, default=1.0
        Standard deviation of the Gaussian noise.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible streams.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float32
        Features.
    y : ndarray of shape (n_samples,), int64
        1 for malicious, 0 for benign.
    months : ndarray of shape (n_samples,), int64
        Month index of each row, ``0 .. n_months - 1``, in order.

    See Also
    --------
    make_drifting_stream : The balanced, regular stream.

    Examples
    --------
    >>> import numpy as np
    >>> from skcl.datasets import make_detection_stream
    >>> X, y, months = make_detection_stream(n_months=6, n_samples_per_month=400,
    ...                                      random_state=0)
    >>> X.shape[1], round(float(y.mean()), 2)
    (20, 0.05)
    >>> sizes = np.bincount(months)
    >>> bool(sizes.max() > 1.3 * sizes.min())
    True
    """
    for name, value, low in (("n_months", n_months, 2),
                             ("n_samples_per_month", n_samples_per_month, 20),
                             ("n_features", n_features, 8),
                             ("n_families", n_families, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if not 0 < positive_fraction <= 0.5:
        raise ValueError(
            f"positive_fraction must be in (0, 0.5], got {positive_fraction!r}; "
            "e.g. 0.05 for 5% malicious rows"
        )
    if not 0 <= size_spread <= 0.9:
        raise ValueError(f"size_spread must be in [0, 0.9], got {size_spread!r}")
    if shift_month is None:
        shift_month = max(1, int(round(2 * n_months / 3)))
    if not (isinstance(shift_month, (int, np.integer)) and 1 <= shift_month < n_months):
        raise ValueError(
            f"shift_month must be an int in 1 .. n_months - 1 = {n_months - 1}, got "
            f"{shift_month!r}"
        )
    rng = check_random_state(random_state)

    signatures = np.zeros((n_families, n_features))
    for family in range(n_families):
        columns = rng.choice(n_features, size=3, replace=False)
        signatures[family, columns] = family_strength * rng.choice([-1.0, 1.0], size=3)
    activity = _detection_activity(n_months, n_families, rng)
    benign_centers = rng.normal(0.0, 0.7, (3, n_features))
    benign_mix_start, benign_mix_end = rng.dirichlet(np.ones(3) * 4, size=2)
    shift_columns = rng.choice(n_features, size=8, replace=False)
    benign_jump = np.zeros(n_features)
    benign_jump[shift_columns[:4]] = shift_strength * rng.choice([-1.0, 1.0], size=4)
    swapped = np.arange(n_features)
    for a, b in shift_columns[4:].reshape(2, 2):
        swapped[[a, b]] = swapped[[b, a]]
    sizes = np.round(n_samples_per_month
                     * rng.uniform(1 - size_spread, 1 + size_spread, n_months)).astype(int)
    sizes = np.maximum(sizes, 20)

    X_parts, y_parts, month_parts = [], [], []
    for month, size in enumerate(sizes):
        n_pos = max(4, int(round(positive_fraction * size)))
        n_neg = size - n_pos
        progress = month / max(n_months - 1, 1)
        mix = (1 - progress) * benign_mix_start + progress * benign_mix_end
        kinds = rng.choice(3, size=n_neg, p=mix / mix.sum())
        benign = rng.normal(0.0, noise, (n_neg, n_features)) + benign_centers[kinds]
        weights = activity[month] / activity[month].sum()
        families = rng.choice(n_families, size=n_pos, p=weights)
        malicious = rng.normal(0.0, noise, (n_pos, n_features)) + signatures[families]
        if month >= shift_month:
            benign = benign + benign_jump
        X_month = np.vstack([benign, malicious])
        if month >= shift_month:
            X_month = X_month[:, swapped]
        y_month = np.r_[np.zeros(n_neg, dtype=np.int64), np.ones(n_pos, dtype=np.int64)]
        order = rng.permutation(size)
        X_parts.append(X_month[order])
        y_parts.append(y_month[order])
        month_parts.append(np.full(size, month, dtype=np.int64))
    return (np.vstack(X_parts).astype(np.float32), np.concatenate(y_parts),
            np.concatenate(month_parts))


def _detection_activity(n_months, n_families, rng):
    """Return ``(n_months, n_families)`` family weights: birth, life, fade, comeback.

    Family 0 is born at month 0, the others at random months of the first two
    thirds; each lives 2 to ``n_months // 3`` months at weight 1, fades over
    two months (0.5, 0.2), and every second family comes back at weight 0.6
    for one or two months, two to four months after it faded. A month with no
    active family takes the most recently born one.
    """
    activity = np.zeros((n_months, n_families))
    births = np.r_[0, rng.randint(0, max(1, 2 * n_months // 3), n_families - 1)]
    for family, birth in enumerate(births):
        life = int(rng.randint(2, max(3, n_months // 3) + 1))
        death = birth + life
        activity[birth:death, family] = 1.0
        for step, weight in enumerate((0.5, 0.2)):
            if death + step < n_months:
                activity[death + step, family] = weight
        if family % 2 == 1:
            comeback = death + 2 + int(rng.randint(2, 5))
            length = int(rng.randint(1, 3))
            activity[comeback:comeback + length, family] = np.maximum(
                activity[comeback:comeback + length, family], 0.6)
    for month in np.flatnonzero(activity.sum(axis=1) == 0):
        born = np.flatnonzero(births <= month)
        activity[month, born[np.argmax(births[born])]] = 1.0
    return activity


def load_sparse_stream(features_path, labels_path, *, month_column="month",
                       label_column="label"):
    """Load a sparse stream: a scipy ``.npz`` matrix plus a months/labels file.

    The format ``skcl-benchmark --data stream.npz --labels labels.csv`` reads:
    hashed or otherwise sparse features are saved with
    ``scipy.sparse.save_npz("stream.npz", X)`` (any format; returned as CSR),
    and the month and label of each row, in the same row order, in a CSV file
    (needs pandas) or a ``.npz`` file written by ``numpy.savez`` with one array
    per column name.

    Parameters
    ----------
    features_path : str or path-like
        The ``.npz`` file of ``scipy.sparse.save_npz``.
    labels_path : str or path-like
        A ``.csv`` or ``.npz`` file with the columns ``month_column`` and
        ``label_column``, one row per row of the matrix.
    month_column : str, default="month"
        Name of the month column.
    label_column : str, default="label"
        Name of the label column.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_samples, n_features)
        The features, never densified.
    y : ndarray of shape (n_samples,)
        The labels.
    months : ndarray of shape (n_samples,)
        The month of each row.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp, tempfile, os
    >>> from skcl.datasets import load_sparse_stream
    >>> folder = tempfile.mkdtemp()
    >>> sp.save_npz(os.path.join(folder, "X.npz"), sp.random(6, 2**18, density=1e-4))
    >>> np.savez(os.path.join(folder, "y.npz"), month=[0, 0, 0, 1, 1, 1],
    ...          label=[0, 1, 0, 1, 0, 1])
    >>> X, y, months = load_sparse_stream(os.path.join(folder, "X.npz"),
    ...                                   os.path.join(folder, "y.npz"))
    >>> X.shape, months.tolist()
    ((6, 262144), [0, 0, 0, 1, 1, 1])
    """
    try:
        # a crafted file's index arrays are checked before scipy reads its rows
        X = sp.csr_matrix(check_sparse_structure(sp.load_npz(features_path),
                                                 name=os.path.basename(features_path)))
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(
            f"{os.fspath(features_path)!r} is not a matrix saved by scipy.sparse.save_npz "
            f"({exc}); save the features with scipy.sparse.save_npz(path, X)"
        ) from exc
    labels_path = os.fspath(labels_path)
    if labels_path.lower().endswith(".npz"):
        with np.load(labels_path, allow_pickle=False) as arrays:
            columns = {name: arrays[name] for name in arrays.files}
    else:
        import pandas as pd  # optional dependency, needed for CSV only

        frame = pd.read_csv(labels_path)
        columns = {name: frame[name].to_numpy() for name in frame.columns}
    for name, option in ((month_column, "month_column"), (label_column, "label_column")):
        if name not in columns:
            raise ValueError(
                f"{labels_path!r} has no column {name!r} (it has {sorted(columns)}); "
                f"pass {option}=... naming the right one"
            )
    y, months = np.asarray(columns[label_column]), np.asarray(columns[month_column])
    if not len(y) == len(months) == X.shape[0]:
        raise ValueError(
            f"{labels_path!r} has {len(y)} rows but the matrix in "
            f"{os.fspath(features_path)!r} has {X.shape[0]}; write one month and one "
            "label per matrix row, in the same order"
        )
    return X, y, months

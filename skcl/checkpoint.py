"""Complete checkpoints of a continual learner that load without running code.

A monthly job stops after each month and starts again in a new process. What
it must carry over is everything that makes the model continual: the weights,
the optimizer's state, every strategy's state (replay rows and their months,
anchors and importances, the distillation teacher, ...), the counters,
``months_`` and the random generators. :func:`save_checkpoint` writes all of
it, :func:`load_checkpoint` puts it into a fresh estimator, and the next month
then trains bit for bit as if the process had never stopped.

The file format
---------------
One numpy ``.npz`` file (a zip archive): every array and tensor is one ``.npy``
entry, and one JSON document (entry ``skcl-checkpoint.json``) describes
everything else, naming the arrays it uses. Reading it runs no code from the
file: arrays are read with ``numpy.load(allow_pickle=False)`` (object arrays
are refused), the JSON holds only numbers, strings, lists and tagged values
from a closed vocabulary (numpy scalars, dates, periods, generators' states,
sparse matrices, tensors), and the only objects it can rebuild are of classes
the loading estimator already uses (its own strategy objects and skcl's
classes); their state is set as unpickling would set it, without calling any
constructor the file could choose. A pickle (``joblib``) file, by contrast,
can run arbitrary code when loaded.

numpy's format was chosen over safetensors because it needs no new
dependency and stores every dtype the strategies hold (``datetime64`` and
string month labels included); tensors are stored as numpy arrays.
"""

import copy
import datetime
import io
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from skorch.history import History

from ._distributed import run_on_main_process
from ._persistence import _SKORCH_STATE, rebuild_network
from .storage import RowStore, _to_memmap
from .utils._files import write_atomically
from .utils._rollback import saved_state

__all__ = ["latest_checkpoint", "load_checkpoint", "save_checkpoint"]

_FORMAT = "skcl.checkpoint/1"
_META = "skcl-checkpoint"  # the JSON entry (numpy adds ".npy")
_NAME = re.compile(r"^checkpoint-(\d+)\.npz$")
# skorch's bookkeeping, rebuilt by ``initialize``; the network's components are
# saved as state dicts, apart from the other fitted attributes
_REBUILT = _SKORCH_STATE | {"callbacks_", "module_", "criterion_", "optimizer_",
                            "history_"}
# what the file must agree on with the loading estimator: the rest may change
# between months (see the table of settings changed between months)
_STRUCTURAL = ("module", "criterion", "optimizer", "regularizer", "rehearsal", "update",
               "keep_snapshots", "new_classes", "estimator")
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def save_checkpoint(estimator, directory, *, keep_last=None):
    """Save everything a fitted estimator needs to continue, into ``directory``.

    Writes ``directory/checkpoint-NNNNNN.npz``, ``NNNNNN`` being the number of
    months trained (``n_months_seen_``), atomically: the file is written to a
    temporary file, flushed to disk and renamed, so an interrupted save leaves
    the earlier checkpoints as they were. It holds the weights, the
    optimizer's state, every strategy's fitted state, ``months_``, the
    counters, the training history and the random generators, in a format
    that runs no code when loaded (see the module documentation).

    Read more in the :ref:`User Guide <monthly_job>`.

    Parameters
    ----------
    estimator : ContinualClassifier, MonthlyAveragingClassifier or ContinualPipeline
        A fitted estimator; of a pipeline, the fitted state of every
        transformer (a scaler's mean, a PCA's components) is saved too.
    directory : str or path-like
        Where the checkpoints of this model live; created if missing.
    keep_last : int or None, default=None
        After writing, delete all but the ``keep_last`` newest checkpoints in
        ``directory`` (by month count). ``None`` keeps them all.

    Returns
    -------
    path : pathlib.Path
        The file written.

    See Also
    --------
    load_checkpoint : Continue from a checkpoint in a fresh estimator.
    latest_checkpoint : The newest checkpoint of a directory.

    Examples
    --------
    >>> import tempfile
    >>> from skcl import ContinualClassifier, EWC
    >>> from skcl.checkpoint import load_checkpoint, save_checkpoint
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=2, n_samples_per_month=100,
    ...                                     random_state=0)
    >>> def make_model():
    ...     return ContinualClassifier(regularizer=EWC(), max_epochs=1, random_state=0)
    >>> directory = tempfile.mkdtemp()
    >>> clf = make_model().partial_fit(X[months == 0], y[months == 0], month="2024-01")
    >>> save_checkpoint(clf, directory, keep_last=3).name
    'checkpoint-000001.npz'
    >>> resumed = load_checkpoint(make_model(), directory)  # in the next month's job
    >>> resumed.months_
    ['2024-01']
    """
    if keep_last is not None and (isinstance(keep_last, bool)
                                  or not isinstance(keep_last, int | np.integer)
                                  or keep_last < 1):
        raise ValueError(f"keep_last={keep_last!r} must be an int >= 1 or None")
    final = _check_fitted(estimator)
    directory = Path(directory)
    n_months = (final.n_months_seen_ if not _is_ensemble(final)
                else len(final.estimator_months_))
    path = directory / f"checkpoint-{int(n_months):06d}.npz"

    def write():
        payload = _payload(estimator)  # built by the writing rank only
        directory.mkdir(parents=True, exist_ok=True)
        write_atomically(path, payload)
        if keep_last is not None:
            # the file just written stays, whatever its month count (a rerun
            # from an earlier checkpoint writes fewer months than older files)
            others = [old for old in _checkpoints(directory) if old != path]
            for old in others[:max(0, len(others) - (keep_last - 1))]:
                old.unlink(missing_ok=True)

    # under distributed=True, rank 0 writes and rotates, the other ranks wait
    run_on_main_process(final, write)
    return path


def _check_fitted(estimator):
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    final = estimator.steps[-1][1] if _is_pipeline(estimator) else estimator
    if "module_" not in final.__dict__ and not _is_ensemble(final):
        raise TypeError(
            f"save_checkpoint saves a ContinualClassifier, a MonthlyAveragingClassifier "
            f"or a ContinualPipeline ending in one, got a {type(estimator).__name__}"
            f"{'' if final is estimator else ' ending in a ' + type(final).__name__}")
    return final


def latest_checkpoint(directory):
    """Return the newest checkpoint of ``directory`` (most months), or None.

    Parameters
    ----------
    directory : str or path-like
        A directory written by :func:`save_checkpoint`; it need not exist.

    Returns
    -------
    path : pathlib.Path or None
        The checkpoint with the highest month count, ``None`` if there is none.

    Examples
    --------
    >>> import tempfile
    >>> from skcl.checkpoint import latest_checkpoint
    >>> print(latest_checkpoint(tempfile.mkdtemp()))  # before the first month
    None
    """
    found = _checkpoints(Path(directory))
    return found[-1] if found else None


def load_checkpoint(estimator, path):
    """Continue from a checkpoint: put its complete state into ``estimator``.

    ``estimator`` must be built with the parameters of the one that saved the
    checkpoint (same ``module`` and ``module__*``, same strategy classes,
    ``update`` and ``keep_snapshots``); other parameters (``lr``,
    ``max_epochs``, a strategy's ``lam``, ...) may differ and apply from the
    next month, as they would in an uninterrupted run. The file is read and
    checked completely before the estimator changes; if anything is wrong the
    estimator is left exactly as it was. Nothing in the file is executed.

    Parameters
    ----------
    estimator : ContinualClassifier, MonthlyAveragingClassifier or ContinualPipeline
        The estimator to load into (typically freshly constructed); its
        previous state is replaced.
    path : str or path-like
        A checkpoint file, or a directory: its :func:`latest_checkpoint`.

    Returns
    -------
    estimator : ContinualClassifier
        The estimator, ready to predict and to train on the next month.

    Raises
    ------
    ValueError
        If the file is not a checkpoint (a pickle, a damaged or edited file,
        one naming a class the estimator does not use), or does not match the
        estimator's parameters; the message names the file and the fix.
    FileNotFoundError
        If ``path`` does not exist or a directory holds no checkpoint.

    See Also
    --------
    save_checkpoint : Write a checkpoint.

    Examples
    --------
    >>> import tempfile
    >>> from skcl import ContinualClassifier, RehearsalBuffer
    >>> from skcl.checkpoint import load_checkpoint, save_checkpoint
    >>> from skcl.datasets import make_drifting_stream
    >>> X, y, months = make_drifting_stream(n_months=2, n_samples_per_month=100,
    ...                                     random_state=0)
    >>> def make_model():
    ...     return ContinualClassifier(rehearsal=RehearsalBuffer(capacity=50),
    ...                                max_epochs=1, random_state=0)
    >>> directory = tempfile.mkdtemp()
    >>> clf = make_model().partial_fit(X[months == 0], y[months == 0])
    >>> path = save_checkpoint(clf, directory)
    >>> resumed = load_checkpoint(make_model(), directory)
    >>> len(resumed.rehearsal_.y_)  # the replay rows came back too
    50
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{str(path)!r} does not exist, so there is no checkpoint to load; check "
            "the path, or start the stream (latest_checkpoint returns None then)")
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(
                f"{str(path)!r} holds no checkpoint-NNNNNN.npz file; train the first "
                "month and save_checkpoint it, or pass a checkpoint file")
        path = latest
    meta, arrays = _read(path)
    restore = _save_state(estimator)
    try:
        _restore(estimator, meta, arrays, path)
    except BaseException as exc:
        restore()
        if isinstance(exc, (KeyError, TypeError, IndexError, AttributeError)):
            raise ValueError(
                f"{str(path)!r} is a checkpoint file with inconsistent contents "
                f"({type(exc).__name__}: {exc}); it was damaged or edited: load an "
                "earlier checkpoint or write it again with save_checkpoint") from exc
        raise
    return estimator


def _save_state(estimator):
    """Record what loading can change; return the function putting it back."""
    if _is_pipeline(estimator):
        final = estimator.steps[-1][1]
        restores = [_save_state(final)]
        for _, step in estimator.steps[:-1]:
            if not _passthrough(step):
                saved = copy.deepcopy(step.__dict__)
                restores.append(lambda step=step, saved=saved: (
                    step.__dict__.clear(), step.__dict__.update(saved)))
        return lambda: [restore() for restore in restores]
    return saved_state(estimator)


# ----------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------
def _payload(estimator):
    encoder = _Encoder()
    meta = {"format": _FORMAT, "estimator": type(estimator).__name__,
            "structure": _structure(estimator), **_estimator_meta(estimator, encoder)}
    arrays = dict(encoder.arrays)
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _estimator_meta(estimator, encoder):
    """The fitted state of a network, a model average, or a pipeline ending in one."""
    if _is_pipeline(estimator):
        # the transformers' fitted attributes (their parameters are the
        # loader's), then the final step in full
        final = estimator.steps[-1][1]
        return {"transformers": [[name, None if _passthrough(step) else
                                  {k: encoder.encode(v, f"{name}.{k}")
                                   for k, v in _fitted_attributes(step).items()}]
                                 for name, step in estimator.steps[:-1]],
                "final": {"estimator": type(final).__name__,
                          **_estimator_meta(final, encoder)}}
    if _is_ensemble(estimator):
        # model averaging: its own state, and each month's network in full
        return {"state": _encode_state(estimator, encoder, skip={"estimators_"}),
                "members": [dict(_net_meta(member, encoder),
                                 random_state=encoder.encode(member.random_state, "member"))
                            for member in estimator.estimators_]}
    return _net_meta(estimator, encoder)


def _is_pipeline(estimator):
    return isinstance(getattr(estimator, "steps", None), list) and hasattr(
        estimator, "named_steps")


def _passthrough(step):
    return step is None or (isinstance(step, str) and step == "passthrough")


def _fitted_attributes(step):
    return {k: v for k, v in vars(step).items() if k.endswith("_") and not k.startswith("__")}


def _is_ensemble(estimator):
    """Model averaging (``estimators_`` of continual classifiers), not one network."""
    return "module_" not in estimator.__dict__ and "estimators_" in estimator.__dict__


def _encode_state(estimator, encoder, skip=()):
    return {name: encoder.encode(value, name)
            for name, value in estimator.__dict__.items()
            if name not in _REBUILT and name not in skip and not name.startswith("__")
            and (name.endswith("_") or name == "_sparse_input")}


def _net_meta(estimator, encoder):
    """One ContinualClassifier's fitted state, its network's as state dicts."""
    return {
        "state": _encode_state(estimator, encoder),
        "module": encoder.encode(estimator.module_.state_dict(), "module_"),
        "criterion": encoder.encode(estimator.criterion_.state_dict(), "criterion_"),
        "optimizer": encoder.encode(estimator.optimizer_.state_dict(), "optimizer_"),
        "history": encoder.encode(list(estimator.history_), "history_"),
    }


def _structure(estimator):
    """What the loading estimator must agree on: classes and values, as text."""
    params = estimator.get_params(deep=False)
    described = {}
    for name in _STRUCTURAL:
        value = params.get(name)
        if isinstance(value, type):
            described[name] = value.__qualname__
        elif value is None or isinstance(value, bool | int | float | str):
            described[name] = value
        else:
            described[name] = type(value).__qualname__
    module_params = {k: v for k, v in params.items() if k.startswith("module__")}
    described["module__*"] = {k: repr(v) for k, v in sorted(module_params.items())}
    if _is_pipeline(estimator):
        described["steps"] = [[name, "passthrough" if _passthrough(step)
                               else type(step).__qualname__]
                              for name, step in estimator.steps]
        described["final"] = _structure(estimator.steps[-1][1])
    return described


class _Encoder:
    """Turn fitted state into JSON values, setting arrays aside for the ``.npz``."""

    def __init__(self):
        self.arrays = {}

    def _array(self, array):
        key = f"a{len(self.arrays)}"
        # (not ascontiguousarray: it turns a 0-d array, Adam's step, into 1-d)
        self.arrays[key] = np.array(array, copy=True, order="C")
        return key

    def encode(self, value, where):  # noqa: C901 (one case per type, flat)
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int | float) and not isinstance(value, np.generic):
            return {"$float": repr(value)} if isinstance(value, float) else value
        if isinstance(value, np.generic):
            return self._scalar(value, where)
        if isinstance(value, torch.Tensor):
            tensor = value.detach().to("cpu")
            stored = tensor.view(torch.int16) if tensor.dtype == torch.bfloat16 else tensor
            return {"$tensor": self._array(stored.numpy()), "dtype": str(tensor.dtype),
                    "device": value.device.type, "requires_grad": value.requires_grad}
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                return {"$objects": [self.encode(v, where) for v in value.ravel().tolist()],
                        "shape": list(value.shape)}
            return {"$array": self._array(np.asarray(value)),
                    "readonly": not value.flags.writeable}
        if sp.issparse(value):
            if value.format != "csr":
                raise TypeError(f"cannot checkpoint {where}: a {value.format} matrix "
                                "(only CSR is stored)")
            return {"$csr": [self._array(np.asarray(a)) for a in
                             (value.data, value.indices, value.indptr)],
                    "shape": list(value.shape), "array": isinstance(value, sp.sparray),
                    "readonly": not value.data.flags.writeable}
        if isinstance(value, dict):
            return {"$dict": [[self.encode(k, where), self.encode(v, f"{where}[{k!r}]")]
                              for k, v in value.items()]}
        if isinstance(value, History):
            return {"$history": [self.encode(v, where) for v in value]}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple | set | frozenset):
            tag = "$tuple" if isinstance(value, tuple) else "$set"
            return {tag: [self.encode(v, where) for v in value]}
        label = _encode_date(value)
        if label is not None:
            return label
        if isinstance(value, np.dtype):
            if value.hasobject:
                raise TypeError(f"cannot checkpoint {where}: dtype object")
            return {"$dtype": value.str}
        if isinstance(value, np.random.Generator):
            bit_generator = value.bit_generator
            return {"$generator": type(bit_generator).__name__,
                    "state": self.encode(bit_generator.state, where)}
        if isinstance(value, np.random.RandomState):
            return {"$randomstate": self.encode(value.get_state(legacy=False), where)}
        if isinstance(value, torch.nn.Module):
            return {"$module": self.encode(value.state_dict(), where),
                    "training": [sub.training for sub in value.modules()],
                    "requires_grad": [p.requires_grad for p in value.parameters()]}
        if isinstance(value, torch.Generator):
            return {"$torch_generator": self._array(value.get_state().numpy())}
        state_of = getattr(value, "__getstate__", None)
        if state_of is not None and hasattr(value, "__dict__"):
            state = state_of()
            if isinstance(state, dict):
                return {"$object": _class_name(type(value)),
                        "state": self.encode(state, where)}
        raise TypeError(
            f"cannot checkpoint {where}: a {type(value).__module__}."
            f"{type(value).__qualname__}, which the checkpoint format does not hold; "
            "keep such state out of fitted attributes, or save the estimator with "
            "joblib (trusted files only)")

    def _scalar(self, value, where):
        if value.dtype.kind in "mM":
            return {"$np": value.dtype.str, "i": int(value.view(np.int64))}
        if value.dtype.kind in "biuf":
            item = value.item()
            return {"$np": value.dtype.str, "v": repr(item) if isinstance(item, float) else item}
        if value.dtype.kind == "U":
            return {"$np": "U", "v": str(value)}
        raise TypeError(f"cannot checkpoint {where}: a numpy {value.dtype} scalar")


def _encode_date(value):
    """Tagged JSON for date-like month labels, or None for anything else."""
    try:
        import pandas as pd
    except ImportError:  # pandas is optional
        pd = None
    if pd is not None and isinstance(value, pd.Timestamp):
        return {"$timestamp": value.isoformat(), "tz": None if value.tz is None else str(value.tz)}
    if pd is not None and isinstance(value, pd.Period):
        return {"$period": str(value), "freq": value.freqstr}
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"$date": value.isoformat()}
    return None


def _class_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _checkpoints(directory):
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), directory / name) for name in os.listdir(directory)
             if (m := _NAME.match(name))]
    return [path for _, path in sorted(found)]


# ----------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------
def _read(path):
    """The JSON document and the arrays of a checkpoint, read without running code."""
    fix = "load an earlier checkpoint or write it again with save_checkpoint"
    try:
        # the file is opened here, not by numpy, so that a damaged archive
        # is closed too (np.load leaves it open when the zip cannot be read)
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise
    except ValueError as exc:
        # numpy refuses object arrays, whose loading would unpickle them
        raise ValueError(
            f"{str(path)!r} is not a checkpoint: {exc} (a pickled object could run "
            f"code, so it was not loaded); {fix}") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(
            f"{str(path)!r} is not a checkpoint written by save_checkpoint, or is "
            f"damaged or truncated ({exc}); {fix}. A joblib file loads with "
            "joblib.load, and only from a source you trust") from exc
    meta_bytes = arrays.pop(_META, None)
    try:
        if meta_bytes is None or meta_bytes.dtype != np.uint8:
            raise ValueError("no skcl-checkpoint.json entry")
        meta = json.loads(meta_bytes.tobytes().decode())
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise ValueError(f"its format is not {_FORMAT!r}")
        _check_meta(meta)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{str(path)!r} is not a checkpoint written by save_checkpoint ({exc}); "
            f"{fix}") from exc
    return meta, arrays


def _check_meta(meta):
    """The keys a network's, a model average's or a pipeline's document must have."""
    for key in ("estimator", "structure"):
        if key not in meta:
            raise ValueError(f"{key!r} is missing")
    if "final" in meta:
        if not isinstance(meta.get("transformers"), list) or not isinstance(meta["final"], dict):
            raise ValueError("'transformers' or 'final' is malformed")
        return _check_meta({"structure": None, **meta["final"]})
    required = ("state", *(("members",) if "members" in meta else
                           ("module", "criterion", "optimizer", "history")))
    for key in required:
        if key not in meta:
            raise ValueError(f"{key!r} is missing")
    if "members" in meta and not isinstance(meta["members"], list):
        raise ValueError("'members' is not a list")
    if not isinstance(meta["state"], dict):
        raise ValueError("'state' is not a mapping")


def _restore(estimator, meta, arrays, path):
    name = type(estimator).__name__
    if meta["estimator"] != name:
        raise ValueError(
            f"{str(path)!r} holds a {meta['estimator']}, not a {name}; load it into a "
            f"{meta['estimator']} built with the same parameters")
    expected, saved = _structure(estimator), meta["structure"]
    differ = [f"{key}={saved.get(key)!r} in the file, {expected[key]!r} here"
              for key in expected if saved.get(key) != expected[key]]
    if differ:
        raise ValueError(
            f"{str(path)!r} was saved by an estimator built differently: "
            f"{'; '.join(differ)}. Build the estimator with the parameters of the one "
            "that saved it (other parameters may change between months)")
    _restore_fitted(estimator, meta, arrays, path)


def _restore_fitted(estimator, meta, arrays, path):
    if "final" in meta:
        _restore_pipeline(estimator, meta, arrays, path)
    elif "members" in meta:
        _restore_ensemble(estimator, meta, arrays, path)
    else:
        _restore_net(estimator, meta, arrays, path)


def _restore_pipeline(estimator, meta, arrays, path):
    decoder = _Decoder(arrays, _allowed_classes(estimator), "cpu", path)
    saved = meta["transformers"]
    if [name for name, _ in saved] != [name for name, _ in estimator.steps[:-1]]:
        raise ValueError(f"{str(path)!r}: the pipeline's steps differ from the file's")
    # decode every transformer's state before anything changes
    states = [None if state is None else {k: decoder.decode(v) for k, v in state.items()}
              for _, state in saved]
    _restore_fitted(estimator.steps[-1][1], meta["final"], arrays, path)
    for (_, step), state in zip(estimator.steps[:-1], states):
        if state is not None:
            for key in _fitted_attributes(step):
                del step.__dict__[key]
            step.__dict__.update(state)


def _restore_ensemble(estimator, meta, arrays, path):
    from sklearn.base import clone

    from .classifier import ContinualClassifier

    members = []
    for member_meta in meta["members"]:
        member = (ContinualClassifier() if estimator.estimator is None
                  else clone(estimator.estimator))
        decoder = _Decoder(arrays, _allowed_classes(member), member.device, path)
        member.set_params(random_state=decoder.decode(member_meta["random_state"]))
        _restore_net(member, member_meta, arrays, path)
        members.append(member)
    decoder = _Decoder(arrays, _allowed_classes(estimator), "cpu", path)
    state = {key: decoder.decode(value) for key, value in meta["state"].items()}
    for key in [k for k in estimator.__dict__ if k.endswith("_") and not k.startswith("__")]:
        del estimator.__dict__[key]
    estimator.__dict__.update(state)
    estimator.estimators_ = members


def _restore_net(estimator, meta, arrays, path):
    """Put one ContinualClassifier's saved state into ``estimator``."""
    estimator._check_params()
    decoder = _Decoder(arrays, _allowed_classes(estimator), estimator.device, path)
    state = {key: decoder.decode(value) for key, value in meta["state"].items()
             if key not in ("regularizer_", "rehearsal_", "snapshots_")}
    # the weights are overwritten: seed 0 only keeps module construction quiet
    rebuild_network(estimator, state["classes_"], state["n_features_in_"],
                    bool(state.get("_sparse_input", False)), decoder.decode(meta["module"]),
                    seed=0)
    estimator.criterion_.load_state_dict(decoder.decode(meta["criterion"]))
    estimator.optimizer_.load_state_dict(decoder.decode(meta["optimizer"]))
    decoder.module_template = estimator.module_
    for key in ("regularizer_", "rehearsal_", "snapshots_"):
        if key in meta["state"]:
            state[key] = decoder.decode(meta["state"][key])
    estimator.__dict__.update(state)
    estimator.history_ = History(decoder.decode(meta["history"]))
    # rows kept on disk go back to disk, in this estimator's directories (a
    # file never chooses where anything is written)
    if isinstance(estimator.__dict__.get("past_data_"), RowStore):
        estimator.past_data_.memmap_dir = estimator.memmap_dir
        _to_disk(estimator.past_data_, "_X_chunks", estimator.memmap_dir)
    for fitted, wanted in ((estimator.rehearsal_, estimator.rehearsal),
                           (getattr(estimator.regularizer_, "memory_", None),
                            getattr(estimator.regularizer, "memory", None))):
        if fitted is not None and "memmap_dir" in fitted.__dict__:
            fitted.memmap_dir = getattr(wanted, "memmap_dir", None)
            if "X_" in fitted.__dict__:
                _to_disk(fitted, "X_", fitted.memmap_dir)


class _Decoder:
    """The inverse of :class:`_Encoder`, over a closed vocabulary of tags."""

    def __init__(self, arrays, allowed, device, path):
        self.arrays, self.allowed, self.device, self.path = arrays, allowed, device, path
        self.module_template = None

    def _array(self, key):
        if not isinstance(key, str) or key not in self.arrays:
            raise ValueError(f"{str(self.path)!r} refers to a missing array {key!r}; it "
                             "was damaged or edited: write it again with save_checkpoint")
        return np.array(self.arrays[key], copy=True)

    def decode(self, value):  # noqa: C901 (one case per tag, flat)
        if value is None or isinstance(value, bool | int | str):
            return value
        if isinstance(value, float):
            return value
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict) or len(value) == 0:
            raise ValueError(f"{str(self.path)!r} holds an unknown value {value!r}; it was "
                             "damaged or edited: write it again with save_checkpoint")
        tag = next(iter(value))
        if tag == "$float":
            return float(value[tag])
        if tag == "$np":
            dtype = np.dtype(value["$np"])
            if dtype.kind in "mM":
                return np.int64(value["i"]).view(dtype)
            if dtype.kind == "U":
                return np.str_(value["v"])
            if dtype.kind not in "biuf":
                raise ValueError(f"{str(self.path)!r}: unknown numpy scalar {dtype}")
            v = value["v"]
            return dtype.type(float(v) if isinstance(v, str) else v)
        if tag == "$tensor":
            array = self._array(value["$tensor"])
            dtype = getattr(torch, value["dtype"].removeprefix("torch."))
            if not isinstance(dtype, torch.dtype):
                raise ValueError(f"{str(self.path)!r}: unknown tensor dtype {value['dtype']!r}")
            tensor = torch.from_numpy(array)
            tensor = tensor.view(dtype) if dtype == torch.bfloat16 else tensor.to(dtype)
            device = "cpu" if value["device"] == "cpu" else self.device
            tensor = tensor.to(device)
            if value.get("requires_grad"):
                tensor.requires_grad_(True)
            return tensor
        if tag == "$array":
            array = self._array(value["$array"])
            if value.get("readonly"):
                array.flags.writeable = False
            return array
        if tag == "$objects":
            items = [self.decode(v) for v in value["$objects"]]
            array = np.empty(len(items), dtype=object)
            array[:] = items
            return array.reshape([int(n) for n in value["shape"]])
        if tag == "$csr":
            data, indices, indptr = (self._array(k) for k in value["$csr"])
            kind = sp.csr_array if value.get("array") else sp.csr_matrix
            matrix = kind((data, indices, indptr), shape=tuple(int(n) for n in value["shape"]))
            try:
                # a crafted structure would read out of bounds later: check it whole
                matrix.check_format(full_check=True)
            except ValueError as exc:
                raise ValueError(
                    f"{str(self.path)!r} holds a sparse matrix with a broken structure "
                    f"({exc}); it was damaged or edited: write it again with "
                    "save_checkpoint") from exc
            if value.get("readonly"):
                for part in (matrix.data, matrix.indices, matrix.indptr):
                    part.flags.writeable = False
            return matrix
        if tag == "$dict":
            return {self.decode(k): self.decode(v) for k, v in value["$dict"]}
        if tag == "$history":
            return History(self.decode(v) for v in value["$history"])
        if tag == "$tuple":
            return tuple(self.decode(v) for v in value["$tuple"])
        if tag == "$set":
            return {self.decode(v) for v in value["$set"]}
        if tag in ("$timestamp", "$period", "$datetime", "$date"):
            return _decode_date(tag, value)
        if tag == "$dtype":
            dtype = np.dtype(value["$dtype"])
            if dtype.hasobject:
                raise ValueError(f"{str(self.path)!r}: object dtype refused")
            return dtype
        if tag == "$generator":
            if value["$generator"] not in _BIT_GENERATORS:
                raise ValueError(f"{str(self.path)!r}: unknown bit generator "
                                 f"{value['$generator']!r}")
            bit_generator = getattr(np.random, value["$generator"])()
            bit_generator.state = self.decode(value["state"])
            return np.random.Generator(bit_generator)
        if tag == "$randomstate":
            random_state = np.random.RandomState()
            random_state.set_state(self.decode(value["$randomstate"]))
            return random_state
        if tag == "$torch_generator":
            generator = torch.Generator()
            generator.set_state(torch.from_numpy(self._array(value["$torch_generator"])))
            return generator
        if tag == "$module":
            return self._module(value)
        if tag == "$object":
            return self._object(value)
        raise ValueError(f"{str(self.path)!r} holds an unknown tag {tag!r}; it was damaged "
                         "or edited: write it again with save_checkpoint")

    def _module(self, value):
        if self.module_template is None:
            raise ValueError(f"{str(self.path)!r}: a module outside a strategy")
        module = copy.deepcopy(self.module_template)
        module.load_state_dict(self.decode(value["$module"]))
        for sub, training in zip(module.modules(), value["training"], strict=True):
            sub.training = bool(training)
        for parameter, requires_grad in zip(module.parameters(), value["requires_grad"],
                                            strict=True):
            parameter.requires_grad_(bool(requires_grad))
        return module

    def _object(self, value):
        name = value["$object"]
        cls = self.allowed.get(name)
        if cls is None:
            raise ValueError(
                f"{str(self.path)!r} asks for an object of class {name!r}, which this "
                "estimator does not use (only its own strategy classes and skcl's are "
                "rebuilt, so a file cannot choose what runs); build the estimator with "
                "the strategies of the one that saved it")
        obj = cls.__new__(cls)
        state = self.decode(value["state"])
        if not isinstance(state, dict):
            raise ValueError(f"{str(self.path)!r}: the state of {name!r} is not a mapping")
        if hasattr(obj, "__setstate__"):
            obj.__setstate__(state)
        else:
            obj.__dict__.update(state)
        return obj


def _to_disk(obj, name, memmap_dir):
    """Put rows read from the file back in ``memmap_dir``, where they lived."""
    if memmap_dir is None:
        return
    value = getattr(obj, name)

    def mapped(X):
        if sp.issparse(X) or not isinstance(X, np.ndarray) or isinstance(X, np.memmap):
            return X
        X = _to_memmap(X, memmap_dir)
        X.flags.writeable = False
        return X

    setattr(obj, name, [mapped(X) for X in value] if isinstance(value, list) else mapped(value))


def _decode_date(tag, value):
    if tag in ("$timestamp", "$period"):
        import pandas as pd

        if tag == "$period":
            return pd.Period(value["$period"], freq=value["freq"])
        stamp = pd.Timestamp(value["$timestamp"])
        return stamp if value.get("tz") is None else stamp.tz_convert(value["tz"])
    if tag == "$datetime":
        return datetime.datetime.fromisoformat(value["$datetime"])
    return datetime.date.fromisoformat(value["$date"])


def _allowed_classes(estimator):
    """The classes a checkpoint may rebuild: skcl's, and those the estimator uses."""
    import skcl

    classes = [getattr(skcl, name) for name in skcl.__all__]
    classes += [RowStore]
    for value in estimator.get_params(deep=True).values():
        if not isinstance(value, type) and hasattr(value, "get_params"):
            classes.append(type(value))
    return {_class_name(cls): cls for cls in classes if isinstance(cls, type)}

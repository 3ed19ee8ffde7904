"""One rank of the distributed tests: ``python tests/_distributed_worker.py OUT NAME...``.

Started by ``tests/test_distributed.py`` with the environment torchrun sets
(``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR=127.0.0.1``, ``MASTER_PORT``); trains
each named scenario with ``distributed=True`` and saves what the tests
compare in ``OUT/<name>-rank<RANK>.pt``. The test module builds the same
scenarios in one process with :func:`make_estimator` and :func:`stream`.
"""

import os
import sys

import numpy as np
import scipy.sparse
import torch

from skcl import AGEM, EWC, MAS, SI, ContinualClassifier, DERpp, LwF, RehearsalBuffer
from skcl.datasets import make_drifting_stream
from skcl.modules import MLP

N_MONTHS = 3
# 121 rows in batches of 40: the last batch of each epoch has one row, so rank 1
# takes an empty share there (the stand-in row path)
ROWS_PER_MONTH = 121
BATCH_SIZE = 40
CLASSES = ["benign", "malware"]
DEVICE = "cpu"   # the worker's: init_distributed's answer

SCENARIOS = {
    "ewc_rehearsal": dict(regularizer=EWC(lam=100.0),
                          rehearsal=RehearsalBuffer(capacity=150, replay_ratio=0.5)),
    "ewc_subsampled": dict(regularizer=EWC(lam=50.0, max_samples=60)),
    "ewc_variance": dict(regularizer=EWC(lam=50.0, fisher="variance")),
    "si": dict(regularizer=SI(lam=1.0)),
    "mas": dict(regularizer=MAS(lam=1.0, max_samples=90)),
    "lwf": dict(regularizer=LwF(lam=1.0)),
    "agem": dict(regularizer=AGEM(sample_size=32)),
    "derpp": dict(regularizer=DERpp(batch_size=16)),
    "retrain": dict(update="retrain"),
    # a third class arrives in the last month: the head grows on every rank
    "grow": dict(regularizer=EWC(lam=100.0), new_classes="grow",
                 rehearsal=RehearsalBuffer(capacity=150, replay_ratio=0.5)),
    # hashed-feature users: CSR months, batches gathered as sparse tensors
    "sparse": dict(regularizer=EWC(lam=100.0),
                   rehearsal=RehearsalBuffer(capacity=150, replay_ratio=0.5)),
}


def stream(name=None):
    """The tiny stream every scenario trains on: (X, y, months); CSR for "sparse"."""
    X, y, months = make_drifting_stream(n_months=N_MONTHS,
                                        n_samples_per_month=ROWS_PER_MONTH, random_state=0)
    # string labels in an object array: their bytes differ between processes
    y = np.array(CLASSES, dtype=object)[y]
    if name == "grow":
        y[(months == N_MONTHS - 1) & (np.arange(len(y)) % 3 == 0)] = "variant"
    if name == "sparse":
        X = scipy.sparse.csr_matrix(np.where(np.abs(X) > 1.0, X, 0.0))
    return X, y, months


def make_estimator(name, distributed, **extra):
    """The scenario's classifier (the same on every rank and in one process)."""
    params = dict(module__hidden_units=(16,), max_epochs=2, batch_size=BATCH_SIZE,
                  lr=1e-2, random_state=0, distributed=distributed,
                  device=DEVICE if distributed else "cpu")
    params.update(SCENARIOS.get(name, {}))
    params.update(extra)
    return ContinualClassifier(**params)


def summary(clf):
    """What the tests compare: weights, strategy state, history, counters."""
    result = {
        "state": {k: v.detach().cpu().clone() for k, v in clf.module_.state_dict().items()},
        "train_loss": [row["train_loss"] for row in clf.history_],
        "n_samples_processed": clf.n_samples_processed_,
        "months": list(clf.months_),
    }
    regularizer = clf.regularizer_
    if regularizer is not None and "penalty_weight_" in vars(regularizer):
        weight = regularizer.penalty_weight_
        result["importance"] = None if weight is None else weight.detach().cpu().clone()
    if clf.rehearsal_ is not None:
        result["buffer_y"] = np.asarray(clf.rehearsal_.y_).copy()
    return result


class _FailingModule(MLP):
    """An MLP whose forward raises on one rank from a given training step on."""

    def forward(self, X):
        if self.training and os.environ.get("SKCL_TEST_FAIL") == "step":
            _FailingModule.calls = getattr(_FailingModule, "calls", 0) + 1
            if os.environ["RANK"] == "1" and _FailingModule.calls > 3:
                raise RuntimeError("injected failure on rank 1")
        return super().forward(X)


class _FailingEWC(EWC):
    """EWC whose importance estimate raises on rank 1 when asked to."""

    def estimate_importance(self, net, X, y):
        if os.environ.get("SKCL_TEST_FAIL") == "consolidate" and os.environ["RANK"] == "1":
            raise RuntimeError("injected consolidation failure on rank 1")
        return super().estimate_importance(net, X, y)


def _months(X, y, months):
    for month in range(N_MONTHS):
        yield X[months == month], y[months == month], month


def run_parity(name, out):
    X, y, months = stream(name)
    clf = make_estimator(name, distributed=True)
    for X_m, y_m, month in _months(X, y, months):
        clf.partial_fit(X_m, y_m, classes=None if name == "grow" else CLASSES, month=month)
    clf.save_weights(os.path.join(out, f"{name}.weights"))
    return summary(clf)


def run_failure(kind, out):
    """Two months, then a third that fails on rank 1 only: every rank must roll back."""
    X, y, months = stream()
    if kind == "step":
        clf = make_estimator("ewc_rehearsal", distributed=True, module=_FailingModule,
                             module__hidden_units=(16,))
    else:
        clf = make_estimator("ewc_rehearsal", distributed=True, regularizer=_FailingEWC())
    months_data = list(_months(X, y, months))
    for X_m, y_m, month in months_data[:2]:
        clf.partial_fit(X_m, y_m, classes=CLASSES, month=month)
    before = summary(clf)
    os.environ["SKCL_TEST_FAIL"] = kind
    X_m, y_m, month = months_data[2]
    try:
        clf.partial_fit(X_m, y_m, month=month)
        error = None
    except Exception as exc:  # what the test checks
        error = f"{type(exc).__name__}: {exc}"
    os.environ.pop("SKCL_TEST_FAIL")
    after = summary(clf)
    # the rolled-back estimator trains on: the ranks are still in step
    clf.partial_fit(X_m, y_m, month=month)
    return {"error": error, "before": before, "after": after, "resumed": summary(clf)}


def run_mismatch(out):
    """Rank 1 is given another month than rank 0: both must refuse it."""
    X, y, months = stream()
    clf = make_estimator("ewc_rehearsal", distributed=True)
    month = 1 if os.environ["RANK"] == "1" else 0
    try:
        clf.partial_fit(X[months == month], y[months == month], classes=CLASSES)
        error = None
    except ValueError as exc:
        error = str(exc)
    return {"error": error, "fitted": hasattr(clf, "n_months_seen_")}


def run_save_failure(out):
    """save_weights to a folder that does not exist: rank 0 fails, rank 1 must hear it."""
    X, y, months = stream()
    clf = make_estimator("ewc_rehearsal", distributed=True, max_epochs=1)
    clf.partial_fit(X[months == 0], y[months == 0], classes=CLASSES)
    try:
        clf.save_weights(os.path.join(out, "missing-folder", "model.weights"))
        error = None
    except Exception as exc:  # what the test checks
        error = f"{type(exc).__name__}: {exc}"
    return {"error": error}


def main(out, names):
    global DEVICE
    from skcl.distributed import init_distributed

    torch.set_num_threads(1)
    DEVICE = init_distributed(backend=os.environ.get("SKCL_TEST_BACKEND", "gloo"),
                              timeout=60)
    rank = int(os.environ["RANK"])
    for name in names:
        if name.startswith("failure_"):
            result = run_failure(name.removeprefix("failure_"), out)
        elif name == "mismatch":
            result = run_mismatch(out)
        elif name == "save_failure":
            result = run_save_failure(out)
        else:
            result = run_parity(name, out)
        torch.save(result, os.path.join(out, f"{name}-rank{rank}.pt"))
    # no rank tears gloo down while the other is still in a collective (one
    # that exits first can leave the other's gloo threads to std::terminate)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

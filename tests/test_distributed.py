"""Data-parallel training: 2 gloo processes on localhost against one process.

The two ranks run ``tests/_distributed_worker.py`` as torchrun would start
it (its environment variables, a free localhost port); one launch trains
several scenarios, and the tests compare what each rank saved with the same
scenario trained here, in one process, with the same global batch.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

import skcl
from skcl import EWC, ContinualClassifier, DERpp
from skcl._distributed import shard_bounds
from skcl.distributed import init_distributed, is_main_process

sys.path.insert(0, str(Path(__file__).parent))
import _distributed_worker as worker  # noqa: E402

REPO = Path(skcl.__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("_distributed_worker.py")
# float32 sums in another order: the weights agree to a few ulps of their scale
ATOL = 2e-6

# one launch of two processes for the default suite (starting them is most of
# its time); the other strategies in a slow one
DEFAULT_SCENARIOS = ["ewc_rehearsal", "failure_step", "mismatch", "save_failure"]
SLOW_SCENARIOS = ["si", "mas", "ewc_subsampled", "ewc_variance", "lwf", "agem", "derpp",
                  "retrain", "sparse", "grow"]


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(out, names, world_size=2, backend="gloo", timeout=240):
    """Run the worker on ``world_size`` local ranks; return {name: [result per rank]}."""
    port = _free_port()
    processes = []
    for rank in range(world_size):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank),
                   WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), OMP_NUM_THREADS="1",
                   SKCL_TEST_BACKEND=backend,
                   PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        processes.append(subprocess.Popen(
            [sys.executable, str(WORKER), str(out), *names], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = []
    try:
        for process in processes:
            logs.append(process.communicate(timeout=timeout)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for rank, (process, log) in enumerate(zip(processes, logs)):
        assert process.returncode == 0, f"rank {rank} failed:\n{log[-3000:]}"
    return {name: [torch.load(out / f"{name}-rank{rank}.pt", weights_only=False)
                   for rank in range(world_size)] for name in names}


def single_process(name):
    """The scenario trained here, in one process, month by month."""
    X, y, months = worker.stream(name)
    clf = worker.make_estimator(name, distributed=False)
    for month in range(worker.N_MONTHS):
        classes = None if name == "grow" else worker.CLASSES
        clf.partial_fit(X[months == month], y[months == month], classes=classes,
                        month=month)
    return clf


def assert_same_training(result, reference, atol=ATOL):
    for key, value in reference["state"].items():
        np.testing.assert_allclose(result["state"][key], value, atol=atol, rtol=1e-5,
                                   err_msg=key)
    np.testing.assert_allclose(result["train_loss"], reference["train_loss"], rtol=1e-5)
    assert result["n_samples_processed"] == reference["n_samples_processed"]
    assert result["months"] == reference["months"]
    if reference.get("importance") is not None:
        np.testing.assert_allclose(result["importance"], reference["importance"],
                                   rtol=1e-4, atol=1e-7 * float(reference["importance"].max()))
    if "buffer_y" in reference:
        np.testing.assert_array_equal(result["buffer_y"], reference["buffer_y"])


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    return out, launch(out, DEFAULT_SCENARIOS)


def test_two_ranks_train_as_one_process(two_ranks):
    # the parity test: 2 gloo ranks and 1 process, the same global
    # batch (the last batch of every epoch has one row: rank 1's share is
    # empty), EWC (its Fisher estimated on each rank's half, then reduced)
    # and rehearsal (one buffer, drawn from one seed, each rank its share)
    _, results = two_ranks
    reference = worker.summary(single_process("ewc_rehearsal"))
    rank0, rank1 = results["ewc_rehearsal"]
    assert_same_training(rank0, reference)
    # every rank holds the same state, bit for bit
    assert_same_training(rank1, rank0, atol=0)


def test_saved_weights_load_in_one_process(two_ranks):
    out, _ = two_ranks
    reference = single_process("ewc_rehearsal")
    loaded = worker.make_estimator("ewc_rehearsal", distributed=False).load_weights(
        out / "ewc_rehearsal.weights")
    X, _, _ = worker.stream()
    np.testing.assert_allclose(loaded.predict_proba(X), reference.predict_proba(X),
                               atol=1e-5)
    # written once, atomically: no temporary file of another rank is left
    assert sorted(p.name for p in out.glob("*.weights")) == ["ewc_rehearsal.weights"]
    assert not list(out.glob(".skcl-*"))


def test_a_failing_rank_rolls_back_every_rank(two_ranks):
    _, results = two_ranks
    check_rolled_back_everywhere(*results["failure_step"])


def check_rolled_back_everywhere(rank0, rank1):
    assert "injected" in rank1["error"]
    assert rank0["error"].startswith("RankFailedError: rank(s) [1] failed")
    assert "injected" in rank0["error"]   # the failing rank's message, on rank 0
    for result in (rank0, rank1):
        assert_same_training(result["after"], result["before"], atol=0)
        assert result["resumed"]["months"] == [0, 1, 2]
    assert_same_training(rank1["resumed"], rank0["resumed"], atol=0)


def test_ranks_given_different_months_refuse_to_train(two_ranks):
    _, results = two_ranks
    for result in results["mismatch"]:
        assert result["error"].startswith("rank 1 called ContinualClassifier with a "
                                          "different month or model than rank 0 "
                                          "(data checksum:")
        assert not result["fitted"]


def test_a_failed_write_on_rank_0_raises_on_every_rank(two_ranks):
    _, results = two_ranks
    rank0, rank1 = results["save_failure"]
    assert rank0["error"].startswith("FileNotFoundError")
    assert rank1["error"].startswith("RankFailedError: rank 0, which writes the file, "
                                     "failed (FileNotFoundError")


@pytest.mark.slow
def test_every_strategy_trains_as_one_process(tmp_path):
    results = launch(tmp_path, [*SLOW_SCENARIOS, "failure_consolidate"])
    for name in SLOW_SCENARIOS:
        reference = worker.summary(single_process(name))
        assert_same_training(results[name][0], reference)
        assert_same_training(results[name][1], results[name][0], atol=0)
    # a failure between the steps (rank 1's importance estimate) is agreed at
    # the month's end
    check_rolled_back_everywhere(*results["failure_consolidate"])


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2 or not dist.is_nccl_available(),
                    reason="needs 2 CUDA devices and NCCL")
def test_nccl_ranks_train_as_one_process(tmp_path):
    results = launch(tmp_path, ["ewc_rehearsal"], backend="nccl")
    reference = worker.summary(single_process("ewc_rehearsal"))
    # CUDA kernels round differently from the CPU's
    assert_same_training(results["ewc_rehearsal"][0], reference, atol=1e-4)
    assert_same_training(results["ewc_rehearsal"][1], results["ewc_rehearsal"][0], atol=0)


# ----------------------------------------------------------------------
# in this process: checks and helpers
# ----------------------------------------------------------------------
@pytest.fixture
def one_rank_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}",
                            rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _month():
    X, y, months = worker.stream()
    return X[months == 0], y[months == 0]


def test_distributed_needs_a_process_group():
    X, y = _month()
    with pytest.raises(ValueError, match="distributed=True needs an initialized"):
        ContinualClassifier(distributed=True).partial_fit(X, y)


def test_one_rank_group_trains_as_one_process(one_rank_group):
    X, y = _month()
    params = dict(module__hidden_units=(8,), max_epochs=1, batch_size=40, random_state=0,
                  regularizer=EWC(lam=10.0))
    alone = ContinualClassifier(**params).partial_fit(X, y).partial_fit(X, y)
    grouped = ContinualClassifier(distributed=True, **params).partial_fit(X, y)
    grouped.partial_fit(X, y)
    for key, value in alone.module_.state_dict().items():
        torch.testing.assert_close(grouped.module_.state_dict()[key], value)
    assert is_main_process() and dist.get_rank() == 0


@pytest.mark.parametrize("params, match", [
    (dict(step="compiled"), "step='compiled' does not reduce gradients"),
    (dict(regularizer=DERpp()), r"DERpp\(batch_size=None\) replays as many rows"),
])
def test_unsupported_settings_are_refused(one_rank_group, params, match):
    X, y = _month()
    with pytest.raises(ValueError, match=match):
        ContinualClassifier(distributed=True, **params).partial_fit(X, y)


def test_distributed_false_ignores_the_group(one_rank_group):
    clf = ContinualClassifier(max_epochs=1, distributed=False, step="compiled")
    clf._check_params()   # no distributed check: compiled is fine alone


def test_init_distributed_follows_an_existing_groups_backend(one_rank_group):
    # a gloo group already started: its device is the CPU, whatever was asked
    assert init_distributed(backend="nccl") == "cpu"


def test_init_distributed_without_a_launcher(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match=r"the environment lacks \['RANK'"):
        init_distributed(backend="gloo")
    with pytest.raises(ValueError, match="backend='mpi' is not supported"):
        init_distributed(backend="mpi")
    assert is_main_process()


@pytest.mark.parametrize("n_rows, world_size", [(121, 2), (1, 2), (7, 3), (0, 2)])
def test_shards_cover_every_row_once(n_rows, world_size):
    bounds = [shard_bounds(n_rows, rank, world_size) for rank in range(world_size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n_rows
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1

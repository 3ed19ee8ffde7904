"""A job you can watch: the month's log line, month-labelled epochs, repr, warm_start."""

import re

import numpy as np
import pandas as pd
import pytest
import torch

from skcl import AGEM, EWC, ContinualClassifier, ContinualPipeline, RehearsalBuffer
from skcl.datasets import make_drifting_stream

LABELS = [pd.Period("2024-01", "M"), pd.Period("2024-02", "M"), pd.Period("2024-03", "M")]
LINE = re.compile(r"^month (\S+): ([\d,]+) rows, ([\d,]+) replayed, (\d+) epochs?, "
                  r"train_loss (\d+\.\d{4}), (\d+\.\d) s$")


@pytest.fixture(scope="module")
def stream():
    return make_drifting_stream(n_months=3, n_samples_per_month=80, random_state=0)


def _clf(**params):
    return ContinualClassifier(max_epochs=2, batch_size=32, random_state=0,
                               module__hidden_units=(8,), **params)


def _month_lines(text):
    return [LINE.match(line) for line in text.splitlines() if line.startswith("month ")]


@pytest.mark.parametrize("params, replayed", [
    ({}, [0, 0, 0]),
    # a buffer replays from the second month: round(0.5 * 80) rows x 2 epochs
    ({"rehearsal": RehearsalBuffer(capacity=40)}, [0, 80, 80]),
    # "grow": 80 * 0.5 / 0.5 = 80 extra rows per epoch
    ({"rehearsal": RehearsalBuffer(capacity=40, epoch_size="grow")}, [0, 160, 160]),
    # retraining revisits every past row each epoch
    ({"update": "retrain"}, [0, 160, 320]),
])
def test_verbose_logs_one_line_per_month(params, replayed, stream, capsys):
    X, y, index = stream
    clf = _clf(verbose=1, **params)
    for code, label in enumerate(LABELS):
        clf.partial_fit(X[index == code], y[index == code], classes=[0, 1], month=label)
    lines = _month_lines(capsys.readouterr().out)
    assert len(lines) == 3 and all(lines)
    for code, line in enumerate(lines):
        assert line[1] == str(LABELS[code])
        assert int(line[2]) == 80
        assert int(line[3].replace(",", "")) == replayed[code]
        assert int(line[4]) == 2
        month_epochs = [row for row in clf.history_ if row["month"] == str(LABELS[code])]
        assert line[5] == f"{month_epochs[-1]['train_loss']:.4f}"


def test_epoch_lines_are_labelled_with_their_month(stream, capsys):
    X, y, index = stream
    months = np.array(["2024-01", "2024-02", "2024-03"])[index]
    clf = _clf(verbose=1).fit(X, y, months=months)
    assert [row["month"] for row in clf.history_] == ["2024-01"] * 2 + ["2024-02"] * 2 + \
        ["2024-03"] * 2
    out = capsys.readouterr().out
    assert re.search(r"epoch\s+month\s+train_loss", out)
    epoch_lines = [line.split() for line in out.splitlines() if re.match(r"^\s+\d+\s", line)]
    assert [(fields[0], fields[1]) for fields in epoch_lines] == [
        ("1", "2024-01"), ("2", "2024-01"), ("3", "2024-02"), ("4", "2024-02"),
        ("5", "2024-03"), ("6", "2024-03")]


def test_silent_at_verbose_0(stream, capsys):
    X, y, index = stream
    _clf().partial_fit(X[index == 0], y[index == 0], classes=[0, 1])
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("clf, expected", [
    (ContinualClassifier(), "ContinualClassifier()"),
    (ContinualClassifier(regularizer=EWC(lam=10)), "ContinualClassifier(regularizer=EWC(lam=10))"),
    (ContinualClassifier(rehearsal=RehearsalBuffer(capacity=50, policy="per_month"),
                         max_epochs=3),
     "ContinualClassifier(max_epochs=3, rehearsal=RehearsalBuffer(capacity=50, "
     "policy='per_month'))"),
    (ContinualClassifier(regularizer=AGEM(memory=RehearsalBuffer(capacity=10))),
     "ContinualClassifier(regularizer=AGEM(memory=RehearsalBuffer(capacity=10)))"),
    (ContinualClassifier(module__hidden_units=(8,), warm_start=True,
                         optimizer=torch.optim.SGD),
     "ContinualClassifier(module__hidden_units=(8,), optimizer=<class "
     "'torch.optim.sgd.SGD'>, warm_start=True)"),
])
def test_repr_shows_every_changed_parameter(clf, expected):
    assert " ".join(repr(clf).split()) == expected
    # nested in a pipeline, as scikit-learn prints it
    pipe = " ".join(repr(ContinualPipeline([("clf", clf)])).split())
    assert pipe == f"ContinualPipeline(steps=[('clf', {expected})])"


def test_repr_of_a_fitted_estimator_is_its_parameters(stream):
    X, y, index = stream
    clf = _clf(regularizer=EWC(lam=10)).partial_fit(X[index == 0], y[index == 0],
                                                   classes=[0, 1])
    assert " ".join(repr(clf).split()) == (
        "ContinualClassifier(batch_size=32, max_epochs=2, module__hidden_units=(8,), "
        "random_state=0, regularizer=EWC(lam=10))")


def test_warm_start_continues_the_stream(stream):
    X, y, index = stream
    first, later = index < 2, index == 2
    warm = _clf(warm_start=True).fit(X[first], y[first], months=index[first])
    warm.fit(X[later], y[later], months=index[later])
    stepwise = _clf()
    for code in range(3):
        stepwise.partial_fit(X[index == code], y[index == code], classes=[0, 1], month=code)
    assert warm.months_ == [0, 1, 2] and warm.n_months_seen_ == 3
    for a, b in zip(warm.module_.state_dict().values(), stepwise.module_.state_dict().values()):
        assert torch.equal(a, b)


def test_without_warm_start_fit_starts_over(stream):
    X, y, index = stream
    clf = _clf().fit(X[index < 2], y[index < 2], months=index[index < 2])
    clf.fit(X[index == 2], y[index == 2], months=index[index == 2])
    assert clf.months_ == [2]


def test_warm_start_refuses_labels_outside_classes(stream):
    X, y, index = stream
    clf = _clf(warm_start=True).fit(X[index == 0], y[index == 0], months=index[index == 0])
    with pytest.raises(ValueError, match=r"not in classes_"):
        clf.fit(X[index == 1], y[index == 1] + 5, months=index[index == 1])
    assert clf.months_ == [0]


class _Stream:
    """A text stream that says whether it is a terminal."""

    def __init__(self, tty):
        self.tty, self.parts = tty, []

    def isatty(self):
        return self.tty

    def write(self, text):
        self.parts.append(text)

    def flush(self):
        pass


def _result(strategy):
    return {"strategy": strategy, "seed": 0, "tune_seconds": 0.0, "best_params": {},
            "records": [{"n_months_trained": 1, "score": 0.75, "fit_seconds": 1.0}]}


def test_benchmark_progress_is_a_bar_with_eta_on_a_terminal():
    pytest.importorskip("tqdm")
    from skcl._benchmark.runner import TaskProgress

    stream = _Stream(tty=True)
    progress = TaskProgress(2, stream=stream)
    progress.done(_result("naive"))
    progress.close()
    text = "".join(stream.parts)
    assert "naive seed 0: mean 0.7500" in text
    assert re.search(r"1/2 \[\d\d:\d\d<\d\d:\d\d", text)  # elapsed<remaining: the ETA


def test_benchmark_progress_is_one_line_per_task_in_a_log():
    from skcl._benchmark.runner import TaskProgress

    stream = _Stream(tty=False)
    progress = TaskProgress(2, stream=stream)
    progress.done(_result("naive"))
    progress.done(_result("retrain"))
    lines = "".join(stream.parts).splitlines()
    assert len(lines) == 2
    assert re.match(r"^\[1/2\] naive seed 0: mean 0.7500, 1.0 s; about \d+ s left$", lines[0])
    assert lines[1].startswith("[2/2] retrain") and lines[1].endswith("about 0 s left")

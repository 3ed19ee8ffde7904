"""Class-incremental streams: the family labels, evaluate_stream's scores, the CLI."""

import numpy as np
import pytest

from skcl import ContinualClassifier, RehearsalBuffer
from skcl._class_incremental import class_summary
from skcl.benchmark import main
from skcl.datasets import make_drifting_stream
from skcl.evaluation import evaluate_stream


def test_family_labels_arrive_as_new_classes_on_the_same_rows():
    X, y, months = make_drifting_stream(n_months=6, n_samples_per_month=120,
                                        labels="family", random_state=0)
    X_bin, y_bin, _ = make_drifting_stream(n_months=6, n_samples_per_month=120,
                                           random_state=0)
    np.testing.assert_array_equal(X, X_bin)
    np.testing.assert_array_equal(y > 0, y_bin == 1)
    arrival = [min(m for m in range(6) if label in y[months == m])
               for label in range(1, 7) if label in y]
    assert arrival == sorted(arrival) and len(set(arrival)) > 2   # one after another
    assert set(np.unique(y[months == 0]).tolist()) == {0, 1}
    with pytest.raises(ValueError, match="labels must be 'binary' or 'family'"):
        make_drifting_stream(labels="families")


def test_class_summary_forgetting_per_class():
    records = [{"n_months_trained": step, "class": label, "class_accuracy": score}
               for step, label, score in [(1, 0, 0.9), (1, 1, 0.8), (2, 0, 0.7),
                                          (2, 1, 0.9), (2, 2, 0.5), (3, 0, 0.6),
                                          (3, 1, 0.95), (3, 2, 0.2), (3, 3, 0.4)]]
    summary = class_summary(records, [0.85, 0.7, 0.55])
    assert summary["class_forgetting"] == pytest.approx({0: 0.3, 1: -0.05, 2: 0.3})
    assert summary["mean_class_forgetting"] == pytest.approx(0.55 / 3)
    assert summary["max_class_forgetting"] == pytest.approx(0.3)
    assert summary["average_incremental_accuracy"] == pytest.approx(0.7)
    assert summary["final_seen_accuracy"] == pytest.approx(0.55)


def test_evaluate_stream_class_incremental_scores():
    X, y, months = make_drifting_stream(n_months=4, n_samples_per_month=60,
                                        n_features=9, n_families=3, labels="family",
                                        random_state=0)
    base = dict(module__hidden_units=(8,), max_epochs=1, random_state=0,
                new_classes="grow")
    result = evaluate_stream(
        {"naive": ContinualClassifier(**base),
         "rehearsal": ContinualClassifier(rehearsal=RehearsalBuffer(capacity=30), **base)},
        X, y, months, random_state=0, class_incremental=True)
    final = result.estimators["naive"]
    assert final.classes_.tolist() == np.unique(y).tolist()   # grown month by month
    assert len(result.seen_accuracy["naive"]) == 4
    seen_by_step = {}
    for row in result.class_records:
        if row["strategy"] == "naive":
            seen_by_step.setdefault(row["n_months_trained"], set()).add(row["class"])
    for step in range(1, 5):
        trained = set(np.unique(y[months < step]).tolist())
        assert seen_by_step[step] <= trained and 0 in seen_by_step[step]
    row = result.summary[0]
    assert row["average_incremental_accuracy"] == pytest.approx(
        np.mean(result.seen_accuracy["naive"]))
    assert set(row["class_forgetting"]) <= set(np.unique(y).tolist())
    frame = pytest.importorskip("pandas") and result.summary_frame()
    assert "mean_class_forgetting" in frame.columns
    # without the option nothing changes: no class scores
    plain = evaluate_stream({"naive": ContinualClassifier(**base)}, X, y, months,
                            random_state=0)
    assert plain.class_records is None and "class_forgetting" not in plain.summary[0]


def test_error_mode_estimator_is_refused_by_a_class_incremental_evaluation():
    X, y, months = make_drifting_stream(n_months=4, n_samples_per_month=100,
                                        n_features=12, n_families=4, labels="family",
                                        random_state=0)
    with pytest.raises(ValueError, match="new_classes='grow'"):
        evaluate_stream({"naive": ContinualClassifier(max_epochs=1)}, X, y, months,
                        random_state=0, class_incremental=True)


@pytest.mark.slow  # a whole (quick) benchmark run: ~8 s on 2 shared cores
def test_benchmark_new_classes_writes_the_class_table(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--quick", "--new-classes", "--strategies", "retrain,naive,derpp",
                 "--out", str(out)]) == 0
    table = (out / "class_incremental.md").read_text()
    assert table.splitlines()[0].startswith("| strategy | avg incr. acc")
    assert {line.split("|")[1].strip() for line in table.splitlines()[2:]} == {
        "retrain", "naive", "derpp"}
    assert "labels='family'" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--quick", "--new-classes", "--metric", "roc_auc", "--out", str(out)])

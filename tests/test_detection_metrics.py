"""Detection at a fixed false-positive rate (tpr_at_fpr in skcl/scoring.py)."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_curve

from skcl import ContinualClassifier, ForgettingScorer, evaluate_stream
from skcl.benchmark import main
from skcl.datasets import make_drifting_stream
from skcl.scoring import get_metric_scorer, make_tpr_at_fpr_scorer, tpr_at_fpr

# 10 negatives, 5 positives; scores sorted by hand:
#   negatives 0.05 .. 0.50 (step 0.05) plus one high negative 0.93 in place of 0.50
#   positives 0.20, 0.60, 0.90, 0.95, 0.99
NEGATIVES = [0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.93]
POSITIVES = [0.20, 0.60, 0.90, 0.95, 0.99]
Y = np.array(["benign"] * 10 + ["malicious"] * 5)
SCORE = np.array(NEGATIVES + POSITIVES)


@pytest.mark.parametrize("max_fpr, expected", [
    # thresholds from the top: 0.99 (tp 1), 0.95 (tp 2), 0.93 (fp 1 -> fpr 0.1),
    # 0.90 (tp 3), 0.60 (tp 4), 0.45 (fp 2 -> fpr 0.2), ...
    (0.01, 2 / 5),    # no false positive allowed: stop above 0.93
    (0.05, 2 / 5),
    (0.10, 4 / 5),    # one false positive (0.93) buys 0.90 and 0.60
    (0.15, 4 / 5),
    (0.60, 4 / 5),    # down to 0.25: 6 negatives flagged; 0.20 is a tie of both
    (0.70, 1.0),      # threshold 0.20 flags the tied pair: fpr 0.7, tpr 1
    (1.0, 1.0),
])
def test_tpr_at_fpr_equals_a_hand_computation(max_fpr, expected):
    assert tpr_at_fpr(Y, SCORE, max_fpr=max_fpr, pos_label="malicious") == expected
    # the greater label is the default positive
    assert tpr_at_fpr(Y, SCORE, max_fpr=max_fpr) == expected


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("max_fpr", [0.001, 0.01, 0.1])
def test_tpr_at_fpr_equals_sklearns_roc_curve(seed, max_fpr):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 2000)
    score = rng.normal(y * 1.5, 1.0).round(2)  # ties included
    fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)
    assert tpr_at_fpr(y, score, max_fpr=max_fpr) == tpr[fpr <= max_fpr].max()


def test_the_positive_label_chooses_which_class_is_detected():
    # detecting "benign" on -score: from the top, benign -0.05, -0.10, -0.15
    # (tpr 3/10), then the tie at -0.20 of a benign and a malicious row (fpr
    # 1/5), then benign down to -0.45 (tpr 9/10) before the next malicious.
    assert tpr_at_fpr(Y, -SCORE, max_fpr=0.19, pos_label="benign") == 3 / 10
    assert tpr_at_fpr(Y, -SCORE, max_fpr=0.2, pos_label="benign") == 9 / 10


@pytest.mark.parametrize("kwargs, match", [
    ({"max_fpr": 0}, r"max_fpr=0 must be in \(0, 1\]"),
    ({"max_fpr": 1.5}, r"max_fpr=1.5 must be in \(0, 1\]"),
    ({"max_fpr": True}, r"max_fpr=True must be in"),
    ({"pos_label": "evil"}, r"pos_label='evil' is not one of the classes \['benign', "
                            r"'malicious'\]"),
])
def test_bad_arguments_are_refused_with_the_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tpr_at_fpr(Y, SCORE, **kwargs)


def test_a_single_class_is_refused():
    with pytest.raises(ValueError, match=r"needs both classes in y_true, got \['benign'\]"):
        tpr_at_fpr(Y[:10], SCORE[:10])


def test_scorer_scores_the_positive_class_column():
    X = SCORE.reshape(-1, 1)
    model = LogisticRegression().fit(X, Y)
    proba = model.predict_proba(X)
    for label, column in (("malicious", 1), ("benign", 0)):
        scorer = make_tpr_at_fpr_scorer(0.1, pos_label=label)
        assert scorer(model, X, Y) == tpr_at_fpr(Y, proba[:, column], max_fpr=0.1,
                                                 pos_label=label)
    assert make_tpr_at_fpr_scorer(0.1, pos_label="benign")(model, X, Y) != \
        make_tpr_at_fpr_scorer(0.1)(model, X, Y)


@pytest.mark.parametrize("name, max_fpr, pos_label", [
    ("tpr_at_fpr", 0.01, None), ("tpr_at_fpr=0.001", 0.001, None),
    ("tpr_at_fpr=0.05@malicious", 0.05, "malicious"), ("tpr_at_fpr@1", 0.01, 1),
])
def test_metric_names(name, max_fpr, pos_label):
    scorer = get_metric_scorer(name)
    assert scorer._kwargs["max_fpr"] == max_fpr
    assert scorer._kwargs.get("pos_label") == pos_label


@pytest.mark.parametrize("name", ["tpr_at_fpr=abc", "tpr_at_fpr=0", "tpr_at_fpr=2@x"])
def test_bad_metric_names_are_refused(name):
    with pytest.raises(ValueError, match="tpr_at_fpr|max_fpr"):
        get_metric_scorer(name)


@pytest.fixture(scope="module")
def detector():
    X, y, months = make_drifting_stream(n_months=3, n_samples_per_month=200, random_state=0)
    labels = np.where(y == 1, "malicious", "benign")
    clf = ContinualClassifier(max_epochs=2, random_state=0, module__hidden_units=(16,))
    clf.fit(X, labels, months=months)
    return clf, X, labels, months


def test_forgetting_scorer_with_tpr_at_fpr_is_the_mean_of_hand_values(detector):
    clf, X, labels, months = detector
    proba = clf.predict_proba(X)[:, list(clf.classes_).index("malicious")]
    by_hand = [tpr_at_fpr(labels[months == m], proba[months == m], max_fpr=0.05,
                          pos_label="malicious") for m in range(3)]
    score = ForgettingScorer(metric="tpr_at_fpr=0.05@malicious")(clf, X, labels,
                                                                  months=months)
    assert score == pytest.approx(np.mean(by_hand))
    benign = ForgettingScorer(metric="tpr_at_fpr=0.05@benign")(clf, X, labels, months=months)
    assert benign != score
    with pytest.raises(ValueError, match="pos_label='evil'"):
        ForgettingScorer(metric="tpr_at_fpr@evil")(clf, X, labels, months=months)


def test_evaluate_stream_scores_tpr_at_fpr(detector):
    _, X, labels, months = detector
    clf = ContinualClassifier(max_epochs=1, random_state=0, module__hidden_units=(8,))
    result = evaluate_stream({"naive": clf}, X, labels, months, metric="tpr_at_fpr=0.01",
                             random_state=0)
    assert result.metric == "tpr_at_fpr=0.01"
    scores = result.matrix("naive")
    assert scores.shape == (3, 3) and np.all((scores >= 0) & (scores <= 1))
    final = result.estimators["naive"]
    # the last row equals a hand computation on each month's test part
    records = [r for r in result.records if r["n_months_trained"] == 3]
    assert len(records) == 3 and all(r["metric"] == "tpr_at_fpr=0.01" for r in records)
    assert final.classes_.tolist() == ["benign", "malicious"]


def _detector_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for month in ("2024-01", "2024-02", "2024-03"):
        for row in range(60):
            label = "malicious" if row % 3 == 0 else "benign"
            rows.append([month, *rng.normal(label == "malicious", 1, 3), label])
    frame = pd.DataFrame(rows, columns=["month", "a", "b", "c", "label"])
    frame.to_csv(tmp_path / "d.csv", index=False)
    return tmp_path / "d.csv"


def test_cli_metric_tpr_at_fpr(tmp_path):
    path = _detector_csv(tmp_path)
    assert main(["--data", str(path), "--quick", "--strategies", "naive", "--seeds", "1",
                 "--metric", "tpr_at_fpr=0.1@malicious", "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["metric"] == "tpr_at_fpr=0.1@malicious"


@pytest.mark.parametrize("metric, message", [
    ("tpr_at_fpr=zero", "is not a number"),
    ("f1", "is not a metric"),
    ("tpr_at_fpr@evil", "the positive label 'evil' is not a class"),
])
def test_cli_refuses_bad_detection_metrics(metric, message, tmp_path, capsys):
    path = _detector_csv(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["--data", str(path), "--quick", "--strategies", "naive", "--metric", metric,
              "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    assert message in capsys.readouterr().err

"""ContinualPipeline (skcl/pipeline.py): transformers and a continual classifier, month by month."""

import numpy as np
import pandas as pd
import pytest
import sklearn
import torch
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.feature_extraction import FeatureHasher
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from skcl import (
    EWC,
    ContinualClassifier,
    ContinualPipeline,
    ForgettingScorer,
    MonthlyKFold,
    RehearsalBuffer,
    evaluate_stream,
)
from skcl.checkpoint import load_checkpoint, save_checkpoint
from skcl.datasets import make_drifting_stream
from skcl.pipeline import make_continual_pipeline

MONTHS = ["2024-01", "2024-02", "2024-03"]


@pytest.fixture(scope="module")
def stream():
    X, y, index = make_drifting_stream(n_months=3, n_samples_per_month=80, random_state=0)
    return X * 5 + 3, y, index  # off-scale, so that scaling matters


def _tokens(X, y):
    """Token lists a hasher takes: a few tokens per row, from its features and label."""
    rng = np.random.default_rng(0)
    rows = []
    for features, label in zip(X, y):
        tokens = [f"f{j}" for j in np.flatnonzero(features > 3)]
        tokens += [f"api{rng.integers(20)}", "net" if label else "file"]
        rows.append(tokens)
    return rows


def _clf(**params):
    return ContinualClassifier(max_epochs=2, batch_size=32, random_state=0,
                               module__hidden_units=(8,), **params)


def _weights(model):
    return list(model.module_.state_dict().values())


def _equal_weights(a, b):
    return all(torch.equal(u, v) for u, v in zip(_weights(a), _weights(b)))


@pytest.mark.parametrize("update", ["first_month", "each_month"])
def test_scaler_is_fitted_on_the_first_month_then_frozen_or_updated(update, stream):
    X, y, index = stream
    pipe = ContinualPipeline([("scale", StandardScaler()), ("clf", _clf())],
                             update_transformers=update)
    by_hand_scaler, by_hand = StandardScaler(), _clf()
    for code, month in enumerate(MONTHS):
        X_m, y_m = X[index == code], y[index == code]
        pipe.partial_fit(X_m, y_m, classes=[0, 1], month=month)
        if code == 0:
            by_hand_scaler.fit(X_m)
        elif update == "each_month":
            by_hand_scaler.partial_fit(X_m)
        by_hand.partial_fit(by_hand_scaler.transform(X_m), y_m, classes=[0, 1], month=month)
    scaler = pipe.named_steps["scale"]
    assert scaler.n_samples_seen_ == (80 if update == "first_month" else 240)
    np.testing.assert_array_equal(scaler.mean_, by_hand_scaler.mean_)
    assert _equal_weights(pipe.named_steps["clf"], by_hand)
    assert pipe.months_ == MONTHS and pipe.n_months_seen_ == 3
    np.testing.assert_array_equal(pipe.predict_proba(X),
                                  by_hand.predict_proba(by_hand_scaler.transform(X)))


@pytest.mark.parametrize("update", ["first_month", "each_month"])
def test_fit_equals_partial_fit_month_by_month(update, stream):
    X, y, index = stream
    months = np.array(MONTHS)[index]

    def steps():
        return [("scale", StandardScaler()), ("pca", IncrementalPCA(n_components=5)),
                ("clf", _clf(regularizer=EWC()))]

    fitted = ContinualPipeline(steps(), update_transformers=update).fit(X, y, months=months)
    stepwise = ContinualPipeline(steps(), update_transformers=update)
    for code, month in enumerate(MONTHS):
        stepwise.partial_fit(X[index == code], y[index == code], classes=[0, 1], month=month)
    assert _equal_weights(fitted.named_steps["clf"], stepwise.named_steps["clf"])
    np.testing.assert_array_equal(fitted.named_steps["pca"].components_,
                                  stepwise.named_steps["pca"].components_)
    # fit starts over
    fitted.fit(X, y, months=months)
    assert fitted.months_ == MONTHS


@pytest.mark.parametrize("hasher, as_input", [
    (FeatureHasher(n_features=256, input_type="string"), lambda tokens: tokens),
    (HashingVectorizer(n_features=256), lambda tokens: [" ".join(t) for t in tokens]),
])
def test_stateless_hashers_transform_every_month(hasher, as_input, stream):
    X, y, index = stream
    tokens = as_input(_tokens(X, y))
    labels = np.where(y == 1, "malicious", "benign")
    clf = _clf(rehearsal=RehearsalBuffer(capacity=50), lr=0.01)
    clf.set_params(max_epochs=10)
    # stateless steps: nothing to update, even with "each_month"
    pipe = ContinualPipeline([("hash", hasher), ("clf", clf)], update_transformers="each_month")
    for code, month in enumerate(MONTHS):
        rows = np.flatnonzero(index == code)
        pipe.partial_fit([tokens[i] for i in rows], labels[rows],
                         classes=["benign", "malicious"], month=month)
    clf = pipe.named_steps["clf"]
    assert clf.n_features_in_ == 256 and clf.rehearsal_.X_.shape[1] == 256
    assert pipe.score(tokens, labels) > 0.9  # "net"/"file" give the label away
    assert set(pipe.predict(tokens[:10])) <= {"benign", "malicious"}


def test_function_transformer_is_stateless(stream):
    X, y, index = stream
    pipe = make_continual_pipeline(FunctionTransformer(np.log1p), _clf())
    pipe.partial_fit(np.abs(X[index == 0]), y[index == 0], classes=[0, 1])
    pipe.partial_fit(np.abs(X[index == 1]), y[index == 1])
    assert pipe.n_months_seen_ == 2


def test_each_month_refuses_a_transformer_without_partial_fit(stream):
    X, y, index = stream
    pipe = ContinualPipeline([("pca", PCA(n_components=3)), ("clf", _clf())],
                             update_transformers="each_month")
    with pytest.raises(ValueError, match=r"step 'pca' \(PCA\) has none; use an incremental"):
        pipe.partial_fit(X[index == 0], y[index == 0], classes=[0, 1])
    assert not hasattr(pipe.named_steps["pca"], "components_")  # nothing trained
    frozen = ContinualPipeline([("pca", PCA(n_components=3)), ("clf", _clf())])
    frozen.partial_fit(X[index == 0], y[index == 0], classes=[0, 1])
    components = frozen.named_steps["pca"].components_.copy()
    frozen.partial_fit(X[index == 1], y[index == 1])
    np.testing.assert_array_equal(components, frozen.named_steps["pca"].components_)


def test_a_failed_month_leaves_every_step_as_it_was(stream):
    X, y, index = stream
    pipe = ContinualPipeline([("scale", StandardScaler()), ("clf", _clf())],
                             update_transformers="each_month")
    pipe.partial_fit(X[index == 0], y[index == 0], classes=[0, 1], month="2024-01")
    mean = pipe.named_steps["scale"].mean_.copy()
    weights = [t.clone() for t in _weights(pipe.named_steps["clf"])]
    with pytest.raises(ValueError, match="not in classes_"):
        pipe.partial_fit(X[index == 1], y[index == 1] + 7, month="2024-02")
    np.testing.assert_array_equal(mean, pipe.named_steps["scale"].mean_)
    assert pipe.named_steps["scale"].n_samples_seen_ == 80
    assert all(torch.equal(a, b) for a, b in zip(weights, _weights(pipe.named_steps["clf"])))
    assert pipe.months_ == ["2024-01"]


@pytest.mark.parametrize("params, match", [
    ({"update_transformers": "sometimes"}, "update_transformers"),
    ({"memory": "/tmp/cache"}, "memory"),
])
def test_bad_parameters_are_refused(params, match, stream):
    X, y, index = stream
    pipe = ContinualPipeline([("scale", StandardScaler()), ("clf", _clf())], **params)
    with pytest.raises(ValueError, match=match):
        pipe.partial_fit(X[index == 0], y[index == 0], classes=[0, 1])


def test_a_final_step_without_partial_fit_is_refused(stream):
    from sklearn.svm import SVC

    X, y, index = stream
    with pytest.raises(TypeError, match="must train month by month"):
        ContinualPipeline([("scale", StandardScaler()), ("svc", SVC())]).partial_fit(
            X[index == 0], y[index == 0])


def test_evaluate_stream_accepts_a_pipeline_of_token_lists(stream):
    X, y, index = stream
    tokens = _tokens(X, y)
    months = pd.PeriodIndex(np.array([pd.Period(m, "M") for m in MONTHS])[index])
    pipe = ContinualPipeline([("hash", FeatureHasher(n_features=128, input_type="string")),
                              ("clf", _clf())])
    result = evaluate_stream({"hashed": pipe}, tokens, y, months, random_state=0)
    assert result.matrix("hashed").shape == (3, 3)
    assert result.estimators["hashed"].months_ == list(months.unique())
    # the pipeline's cost is its classifier's
    final = [r for r in result.records if r["n_months_trained"] == 3][0]
    assert final["samples_processed"] == result.estimators["hashed"].n_samples_processed_


def test_grid_search_tunes_steps_through_step_params(stream):
    X, y, index = stream
    pipe = ContinualPipeline([("scale", StandardScaler()), ("clf", _clf(regularizer=EWC()))])
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(pipe, {"clf__regularizer__lam": [1.0, 100.0]},
                              cv=MonthlyKFold(n_splits=2), scoring=ForgettingScorer())
        search.fit(X, y, months=index)
    assert search.best_params_["clf__regularizer__lam"] in (1.0, 100.0)
    assert search.best_estimator_.months_ == [0, 1, 2]
    best = search.best_estimator_.named_steps["clf"].regularizer_
    assert best.lam == search.best_params_["clf__regularizer__lam"]


def test_grid_search_without_routing_passes_months_to_fit(stream):
    X, y, index = stream
    pipe = ContinualPipeline([("scale", StandardScaler()), ("clf", _clf())])
    search = GridSearchCV(pipe, {"clf__lr": [1e-3, 1e-2]}, cv=MonthlyKFold(n_splits=2))
    search.fit(X, y, groups=index, months=index)
    assert search.best_estimator_.months_ == [0, 1, 2]


@pytest.mark.parametrize("update", ["first_month", "each_month"])
def test_a_pipeline_checkpoint_resumes_every_step(update, stream, tmp_path):
    X, y, index = stream

    def make():
        return ContinualPipeline([("scale", StandardScaler()),
                                  ("pca", IncrementalPCA(n_components=5)),
                                  ("clf", _clf(rehearsal=RehearsalBuffer(capacity=40)))],
                                 update_transformers=update)

    uninterrupted = make()
    for code, month in enumerate(MONTHS):
        uninterrupted.partial_fit(X[index == code], y[index == code], classes=[0, 1],
                                  month=month)
    stopped = make()
    for code, month in enumerate(MONTHS[:2]):
        stopped.partial_fit(X[index == code], y[index == code], classes=[0, 1], month=month)
    path = save_checkpoint(stopped, tmp_path)
    assert path.name == "checkpoint-000002.npz"
    resumed = load_checkpoint(make(), tmp_path)
    np.testing.assert_array_equal(resumed.named_steps["scale"].mean_,
                                  stopped.named_steps["scale"].mean_)
    resumed.partial_fit(X[index == 2], y[index == 2], month=MONTHS[2])
    for name in ("scale", "pca"):
        for key, value in vars(uninterrupted.named_steps[name]).items():
            if key.endswith("_"):
                np.testing.assert_array_equal(value, vars(resumed.named_steps[name])[key])
    assert _equal_weights(uninterrupted.named_steps["clf"], resumed.named_steps["clf"])
    np.testing.assert_array_equal(uninterrupted.predict_proba(X), resumed.predict_proba(X))


def test_a_pipeline_checkpoint_must_match_its_steps(stream, tmp_path):
    X, y, index = stream
    pipe = ContinualPipeline([("scale", StandardScaler()), ("clf", _clf())])
    save_checkpoint(pipe.partial_fit(X[index == 0], y[index == 0], classes=[0, 1]), tmp_path)
    other = ContinualPipeline([("pca", IncrementalPCA(n_components=3)), ("clf", _clf())])
    with pytest.raises(ValueError, match="built differently: steps="):
        load_checkpoint(other, tmp_path)
    assert not hasattr(other.named_steps["pca"], "components_")


def _token_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for month in ("2024-01", "2024-02", "2024-03"):
        for row in range(60):
            bad = row % 2
            tokens = " ".join([f"api{rng.integers(30)}" for _ in range(4)]
                              + (["connect", "inject"] if bad else ["open", "read"]))
            rows.append([month, tokens, rng.normal(bad, 1), "malicious" if bad else "benign"])
    path = tmp_path / "tokens.csv"
    pd.DataFrame(rows, columns=["month", "calls", "size", "label"]).to_csv(path, index=False)
    return path


def test_cli_hashes_text_columns(tmp_path):
    import json

    from skcl.benchmark import main

    path = _token_csv(tmp_path)
    out = tmp_path / "out"
    assert main(["--data", str(path), "--label-column", "label", "--hash-features", "64",
                 "--quick", "--strategies", "naive,rehearsal-fixed", "--seeds", "1",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["n_features"] == 64
    assert "hashed to 64 features" in summary["config"]["data"]


def test_hashing_equals_a_feature_hasher_step():
    from skcl._hashing import hash_columns

    frame = pd.DataFrame({"calls": ["open read read", "net"], "size": [1.5, -2.0]})
    X = hash_columns(frame, ["calls"], 32)
    expected = FeatureHasher(n_features=32, input_type="dict").transform(
        [{"calls=open": 1.0, "calls=read": 2.0, "size": 1.5},
         {"calls=net": 1.0, "size": -2.0}])
    np.testing.assert_array_equal(X.toarray(), expected.toarray())
    assert X.dtype == np.float32


@pytest.mark.parametrize("argv, message", [
    ([], "are not (encode or drop them, or hash them with --hash-features N)"),
    (["--hash-features", "1"], "too small"),
])
def test_cli_text_columns_without_hashing_are_refused(argv, message, tmp_path, capsys):
    from skcl.benchmark import main

    path = _token_csv(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["--data", str(path), "--label-column", "label", "--quick", *argv,
              "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_hash_features_needs_a_table(tmp_path, capsys):
    from skcl.benchmark import main

    with pytest.raises(SystemExit):
        main(["--quick", "--hash-features", "64", "--out", str(tmp_path / "out")])
    assert "pass --data PATH" in capsys.readouterr().err

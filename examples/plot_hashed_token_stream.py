"""
The monthly job of a detection team, on hashed tokens
=====================================================

A malware team receives every month a batch of files, each described by the
tokens a sandbox saw (API calls, strings), labelled ``"benign"`` or
``"malicious"``. New malware families appear and old ones fade. Every month
the job loads the latest checkpoint, hashes the month's tokens, measures the
current model on the month before training on it (what deployment sees),
trains, and saves a rotated checkpoint.

This example runs that job end to end on a synthetic token stream with dated
months (``pandas.Period``), a :class:`~skcl.ContinualPipeline` (a stateless
``FeatureHasher`` then a :class:`~skcl.ContinualClassifier` with a replay
buffer), detection at a fixed false-positive rate
(:func:`~skcl.scoring.tpr_at_fpr`), and checkpoints
(:func:`~skcl.checkpoint.save_checkpoint`) that resume bit for bit in a new
process. It then compares the job with and without replay using
:func:`~skcl.evaluate_stream`.

Read more in the :ref:`User Guide <monthly_job>`.
"""

# %%
# A stream of token lists
# -----------------------
# Six months. Benign files call common APIs; each malware family has its own
# tokens, and a new family appears every two months while older ones become
# rarer: a model that forgets old families stops detecting their returns.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.feature_extraction import FeatureHasher

from skcl import ContinualClassifier, ContinualPipeline, RehearsalBuffer, evaluate_stream
from skcl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from skcl.scoring import tpr_at_fpr

rng = np.random.default_rng(0)
MONTHS = pd.period_range("2025-01", periods=6, freq="M")
COMMON = [f"api_{i}" for i in range(60)]
FAMILIES = [[f"fam{f}_{i}" for i in range(8)] for f in range(3)]


def make_month(index, n_rows=400):
    tokens, labels = [], []
    # family f appears at month 2f and fades by half every month after
    active = [f for f in range(len(FAMILIES)) if 2 * f <= index]
    weights = np.array([0.5 ** (index - 2 * f) for f in active])
    for _ in range(n_rows):
        row = list(rng.choice(COMMON, size=6))
        if rng.random() < 0.3:
            family = FAMILIES[rng.choice(active, p=weights / weights.sum())]
            row += list(rng.choice(family, size=2))
            labels.append("malicious")
        else:
            if rng.random() < 0.05:  # benign software sharing a family's token
                row += [rng.choice(FAMILIES[rng.integers(len(FAMILIES))])]
            labels.append("benign")
        tokens.append(row)
    return tokens, np.array(labels)


stream = [make_month(index) for index in range(len(MONTHS))]

# %%
# The job
# -------
# The same function runs every month, in a fresh process: it builds the
# model with fixed parameters, loads the latest checkpoint (if any), scores
# the new month at a 1% false-positive budget, trains, and saves. Only the
# three newest checkpoints are kept.
checkpoints = tempfile.mkdtemp()


def make_model():
    return ContinualPipeline([
        ("hash", FeatureHasher(n_features=2**12, input_type="string")),
        ("clf", ContinualClassifier(rehearsal=RehearsalBuffer(capacity=1000),
                                    max_epochs=5, lr=1e-2, random_state=0)),
    ])


def detection_rate(model, tokens, labels):
    proba = model.predict_proba(tokens)[:, list(model.classes_).index("malicious")]
    return tpr_at_fpr(labels, proba, max_fpr=0.01, pos_label="malicious")


def monthly_job(tokens, labels, month):
    model = make_model()
    if latest_checkpoint(checkpoints) is not None:
        load_checkpoint(model, checkpoints)
        rate = detection_rate(model, tokens, labels)
        print(f"{month}: detection at 1% FPR before training: {rate:.2f}")
    model.partial_fit(tokens, labels, classes=["benign", "malicious"], month=month)
    save_checkpoint(model, checkpoints, keep_last=3)
    return model


for month, (tokens, labels) in zip(MONTHS, stream):
    model = monthly_job(tokens, labels, month)

# %%
# Detection before training drops in 2025-03 and 2025-05, the months in which
# a new family appears: the model has not met it yet. Training on the month
# brings it back.

print("months trained:", model.months_)
print("checkpoints kept:", sorted(path.name for path in Path(checkpoints).iterdir()))

# %%
# The checkpoint holds the whole pipeline's state (the hasher has none, the
# classifier everything: weights, optimizer, replay rows, months). Running the
# same months without ever stopping gives the very same model:
uninterrupted = make_model()
for month, (tokens, labels) in zip(MONTHS, stream):
    uninterrupted.partial_fit(tokens, labels, classes=["benign", "malicious"], month=month)
all_tokens = [row for tokens, _ in stream for row in tokens]
print("resumed == uninterrupted:",
      np.array_equal(model.predict_proba(all_tokens), uninterrupted.predict_proba(all_tokens)))

# %%
# With and without replay
# -----------------------
# :func:`~skcl.evaluate_stream` holds out 30% of every month and scores each
# intermediate model on every month's held-out part, here as the detection
# rate at a 1% false-positive budget. The first families fade after their
# first months: without replay, the final model stops detecting them.
all_labels = np.concatenate([labels for _, labels in stream])
all_months = np.repeat(MONTHS, [len(labels) for _, labels in stream])
naive = make_model().set_params(clf__rehearsal=None)
result = evaluate_stream({"replay": make_model(), "naive": naive}, all_tokens, all_labels,
                         all_months, metric="tpr_at_fpr=0.01@malicious",
                         reference=None, random_state=0)
print(result.format_summary())

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for name in ("replay", "naive"):
    ax.plot([str(m) for m in result.months], result.matrix(name)[-1], marker="o", label=name)
ax.set_xlabel("test month")
ax.set_ylabel("TPR at 1% FPR, final model")
ax.set_ylim(0, 1.05)
ax.legend()
fig.tight_layout()

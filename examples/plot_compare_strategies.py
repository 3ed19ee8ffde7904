"""
Comparing strategies against full retraining
============================================

Which strategy forgets least on *your* stream, and at what cost? This example
runs the main strategies of skcl on the embedded drifting stream with
:func:`~skcl.evaluate_stream`: every strategy is trained month by
month, every intermediate model is scored on the held-out part of every month,
and the training cost is counted in rows processed. Full retraining is the
reference and naive fine-tuning the floor.

Read more in the :ref:`User Guide <measuring_forgetting>`.
"""

# %%
# The strategies
# --------------
# All share one network, one learning rate and one seed, so they start from
# the same model after the first month and differ only in what they do after
# it. The buffer holds about a quarter of the stream's training rows.
import matplotlib.pyplot as plt
import numpy as np

from skcl import (
    EWC,
    ContinualClassifier,
    MonthlyAveragingClassifier,
    RehearsalBuffer,
)
from skcl.datasets import make_drifting_stream
from skcl.evaluation import evaluate_stream
from skcl.scoring import backward_transfer, forgetting

X, y, months = make_drifting_stream(n_months=8, n_samples_per_month=500, random_state=0)


def classifier(**params):
    return ContinualClassifier(module__hidden_units=(64, 64), max_epochs=4, lr=1e-3,
                               random_state=0, **params)


def buffer(epoch_size="fixed"):
    return RehearsalBuffer(capacity=700, replay_ratio=0.5, epoch_size=epoch_size)


strategies = {
    "retrain": classifier(update="retrain"),
    "naive": classifier(),
    "averaging": MonthlyAveragingClassifier(classifier(), random_state=0),
    "rehearsal (fixed)": classifier(rehearsal=buffer("fixed")),
    "rehearsal (grow)": classifier(rehearsal=buffer("grow")),
    "EWC": classifier(regularizer=EWC(lam=100.0)),
    "rehearsal + EWC": classifier(rehearsal=buffer("fixed"), regularizer=EWC(lam=10.0)),
}
result = evaluate_stream(strategies, X, y, months, test_size=0.3, random_state=0)

# %%
# The summary
# -----------
# One line per strategy, best mean first: the final model's mean, worst and
# first-month scores, how much of the first month it forgot, its gap to
# retraining, and its cost (rows processed, absolute and relative to
# retraining, and seconds).
print(result.format_summary())

# %%
# The per-month view
# ------------------
# The final model of every strategy on every month. Retraining and rehearsal
# keep the oldest months, which naive fine-tuning loses. EWC holds them a
# little better than naive fine-tuning at the same cost, and pays for it on
# the newest months. On this stream, benign software drifts *towards* the old
# malware, so old patterns partly contradict new ones: only strategies that
# see old rows (retraining, rehearsal) can tell them apart. Averaging never
# forgets a month, but dilutes each one among the others.
fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
# the two bounds in black and red, every other strategy in a color of its own
palette = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown",
                "tab:pink", "tab:cyan"])
style = {name: dict(color=next(palette), linewidth=1.3) for name in result.strategies
         if name not in ("retrain", "naive")}
style.update(retrain=dict(color="black", linewidth=2.4),
             naive=dict(color="tab:red", linewidth=2.0))
for name in result.strategies:
    ax.plot(result.months, result.matrix(name)[-1], marker="o", label=name, **style[name])
ax.set(xlabel="evaluated month", ylabel="accuracy of the final model",
       title="Each strategy's final model on every month")
ax.grid(alpha=0.3)
ax.legend(fontsize="small", ncol=2)
plt.show()

# %%
# Quality against cost
# --------------------
# Mean accuracy over months against the rows processed (every epoch, replayed
# rows and retraining's repeats included), relative to full retraining.
summary = {row["strategy"]: row for row in result.summary}
fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
for name, row in summary.items():
    ax.scatter(row["relative_cost"], row["mean_score"], s=40, color=style[name]["color"])
    ax.annotate(name, (row["relative_cost"], row["mean_score"]),
                textcoords="offset points", xytext=(5, 4), fontsize="small")
ax.set(xscale="log", xlabel="rows processed, relative to retraining",
       ylabel="mean accuracy over months", title="What each strategy buys")
ax.grid(alpha=0.3, which="both")
plt.show()

# %%
# The accuracy matrix of one strategy
# -----------------------------------
# ``result.matrix(name)[i, j]`` is the score on month ``j`` after training up
# to month ``i``: the raw material of forgetting, backward and forward
# transfer (see :mod:`skcl.scoring`).
for name in ("naive", "rehearsal (fixed)", "retrain"):
    R = result.matrix(name)
    print(f"{name:>18}: forgetting {forgetting(R):.3f}, "
          f"backward transfer {backward_transfer(R):+.3f}")

fig, ax = plt.subplots(figsize=(5, 4.2), layout="constrained")
image = ax.imshow(result.matrix("naive"), vmin=0.3, vmax=1.0, cmap="viridis")
ax.set(title="naive fine-tuning", xlabel="evaluated month j",
       ylabel="trained up to month i",
       xticks=np.arange(len(result.months)), yticks=np.arange(len(result.months)))
fig.colorbar(image, label="accuracy R[i, j]")
plt.show()

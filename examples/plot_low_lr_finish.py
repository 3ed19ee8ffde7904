"""
Learning rates: a lower rate after the first month, low-rate finishing epochs
=============================================================================

The cheapest strategies change nothing but the optimizer. ``finetune_lr``
trains every month after the first at a lower learning rate, so the weights
move less far from what earlier months learned; ``finish_epochs`` closes each
month with a few epochs at a tenth of the month's rate, which settles the
weights near a minimum of the month's loss. Neither needs old data nor extra
memory. This example measures both against naive fine-tuning and full
retraining with :func:`~skcl.evaluate_stream`.

Read more in the :ref:`User Guide <learning_rate_strategy>`.
"""

# %%
# Four strategies, one stream
# ---------------------------
# :func:`~skcl.evaluate_stream` splits every month into a training
# and a held-out part (the same split for every strategy), trains each
# strategy month by month, and scores every intermediate model on every
# month.
import matplotlib.pyplot as plt

from skcl import ContinualClassifier
from skcl.datasets import make_drifting_stream
from skcl.evaluation import evaluate_stream

X, y, months = make_drifting_stream(n_months=8, n_samples_per_month=600, random_state=0)

common = dict(max_epochs=5, lr=1e-3, random_state=0)
strategies = {
    "retrain": ContinualClassifier(update="retrain", **common),
    "naive": ContinualClassifier(**common),
    "finetune_lr=1e-4": ContinualClassifier(finetune_lr=1e-4, **common),
    "finetune_lr=3e-4 + finish": ContinualClassifier(
        finetune_lr=3e-4, finish_epochs=2, **common),
}
result = evaluate_stream(strategies, X, y, months, test_size=0.3, random_state=0)
print(result.format_summary())

# %%
# The final model on every month
# ------------------------------
# Each curve is the score of a strategy's final model on the held-out part of
# every month. A lower rate keeps more of the oldest months than naive
# fine-tuning, and pays for it on the newest ones: it learns new malware
# families more slowly. Finishing epochs sit in between.
fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
styles = {"retrain": dict(color="black", linewidth=2.2),
          "naive": dict(color="tab:red", linewidth=1.8)}
others = iter(["tab:blue", "tab:orange", "tab:green", "tab:purple"])
styles.update({name: dict(color=next(others)) for name in result.strategies
               if name not in styles})
for name in result.strategies:
    ax.plot(result.months, result.matrix(name)[-1], marker="o", label=name,
            **styles[name])
ax.set(xlabel="evaluated month", ylabel="accuracy of the final model",
       title="Learning-rate strategies against the two bounds")
ax.grid(alpha=0.3)
ax.legend(fontsize="small")
plt.show()

# %%
# Plasticity against stability
# ----------------------------
# The diagonal of the accuracy matrix (each month scored right after it was
# learned) shows the price of a low rate: new months are learned less well.
# Choose the rate with a search that scores every month, as in
# :ref:`sphx_glr_auto_examples_plot_grid_search.py`.
fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
for name in result.strategies:
    ax.plot(result.months, result.matrix(name).diagonal(), marker="o", label=name,
            **styles[name])
ax.set(xlabel="month", ylabel="accuracy right after training on it",
       title="Learning each new month")
ax.grid(alpha=0.3)
ax.legend(fontsize="small")
plt.show()

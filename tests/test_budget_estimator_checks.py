"""scikit-learn's estimator checks with the issue-21 strategies switched on together."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skcl import MAS, ContinualClassifier, DiverseRehearsalBuffer

# about 70 s on two cores: the default estimator's checks run in
# test_estimator_checks.py; these add the new strategies' code paths
pytestmark = pytest.mark.slow

EXPECTED_FAILED_CHECKS = {
    "check_no_attributes_set_in_init": (
        "skorch's NeuralNet.__init__ sets history_, initialized_ and virtual_params_, "
        "which its own machinery reads before fit"
    ),
}


@parametrize_with_checks(
    [
        ContinualClassifier(update="cumulative", history_fraction=0.5, lr_schedule="cosine",
                            warmup_fraction=0.1, final_lr_fraction=0.3,
                            weight_averaging="ema", regularizer=MAS(accumulate="mean",
                                                                    normalize=True),
                            max_epochs=30, lr=1e-2, batch_size=32, random_state=0),
        ContinualClassifier(rehearsal=DiverseRehearsalBuffer(capacity=50, n_strata=2),
                            weight_averaging="interpolate", lr_schedule="linear",
                            max_epochs=30, lr=1e-2, batch_size=32, random_state=0),
    ],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_budget_strategies_are_sklearn_compatible(estimator, check):
    check(estimator)

"""skcl: scikit-learn-compatible continual learning on skorch and PyTorch."""

from .averaging import MonthlyAveragingClassifier
from .classifier import ContinualClassifier
from .diverse_rehearsal import DiverseRehearsalBuffer
from .evaluation import evaluate_stream
from .model_selection import MonthlyKFold, TemporalSplit
from .modules import MLP
from .pipeline import ContinualPipeline
from .regularizers import (
    AGEM,
    EWC,
    L2,
    MAS,
    SI,
    DERpp,
    ImportanceRegularizer,
    LwF,
    OnlineEWC,
    Regularizer,
)
from .rehearsal import RehearsalBuffer
from .scoring import ForgettingScorer
from .storage import RowStore

__version__ = "0.1.0.dev0"

__all__ = [
    "AGEM",
    "ContinualClassifier",
    "ContinualPipeline",
    "DERpp",
    "DiverseRehearsalBuffer",
    "EWC",
    "ForgettingScorer",
    "ImportanceRegularizer",
    "L2",
    "LwF",
    "MAS",
    "MLP",
    "MonthlyAveragingClassifier",
    "MonthlyKFold",
    "OnlineEWC",
    "RehearsalBuffer",
    "Regularizer",
    "RowStore",
    "SI",
    "TemporalSplit",
    "__version__",
    "evaluate_stream",
]

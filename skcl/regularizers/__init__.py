"""Loss- and gradient-level continual-learning strategies.

A strategy is a small scikit-learn-style parameter object passed as
``ContinualClassifier(regularizer=...)`` and tuned as ``regularizer__<param>``.
It implements ``consolidate(net, X, y)`` (after every month) and the training
hooks it needs (see :class:`Regularizer`):

* weight penalties, the quadratic family built on :class:`ImportanceRegularizer`
  (one method, ``estimate_importance``): :class:`L2`, :class:`EWC`,
  :class:`OnlineEWC`, :class:`SI`, :class:`MAS`;
* batch loss terms: :class:`LwF` (distillation to last month's model),
  :class:`DERpp` (replayed logits and labels);
* gradient hooks: :class:`AGEM` (projection against a memory's gradient).

The helpers a custom strategy needs are re-exported here, so it imports them
from one place: :func:`trainable_parameters` and :func:`evaluation_mode` (from
:mod:`skcl.module_utils`), :func:`per_sample_loss` (from :mod:`skcl.fisher`)
and the row helpers of :mod:`skcl.rows` (:func:`row_chunks`,
:func:`take_rows`, :func:`concat_rows`, :func:`to_host_rows`). The importance
estimators live in :mod:`skcl.fisher`.
"""

from ..fisher import per_sample_loss
from ..module_utils import evaluation_mode, trainable_parameters
from ..rows import concat_rows, row_chunks, take_rows, to_host_rows
from ._base import Regularizer
from ._ewc import EWC, OnlineEWC
from ._lwf import LwF
from ._mas import MAS
from ._quadratic import L2, ImportanceRegularizer
from ._replay import AGEM, DERpp
from ._si import SI

__all__ = [
    "AGEM",
    "DERpp",
    "EWC",
    "ImportanceRegularizer",
    "L2",
    "LwF",
    "MAS",
    "OnlineEWC",
    "Regularizer",
    "SI",
    "concat_rows",
    "evaluation_mode",
    "per_sample_loss",
    "row_chunks",
    "take_rows",
    "to_host_rows",
    "trainable_parameters",
]

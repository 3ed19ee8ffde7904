"""The parts of ``skcl-benchmark`` (:mod:`skcl.benchmark` is its command line).

``strategies``: the registry of compared strategies and their tuning grids;
``runner``: one (strategy, seed) task, its tuning and its costs, run serially,
with joblib processes or on a dask cluster; ``findings``: intervals over seeds
and the original study's claims judged from them; ``report``: the table, the
files and the figure.
"""

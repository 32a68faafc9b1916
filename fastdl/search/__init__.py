"""Hyper-parameter search on Dask: random search (the book's section 6.5) and successive halving.

::

    from fastdl.search import SearchSpace, LogUniform, Choice, search

    space = SearchSpace({"lr": LogUniform(1e-6, 1e-2), "weight_decay": LogUniform(1e-8, 1e-4),
                         "optimizer": Choice(["sgd", "adam"])})
    result = search(space, "digits", trials=100, epochs=50, results="search.jsonl")
    print(result.best)

Pieces: :mod:`~fastdl.search.space` (distributions, per-trial seeds), :mod:`~fastdl.search.trial`
(one trial on a worker), :mod:`~fastdl.search.policy` (random search, ASHA),
:mod:`~fastdl.search.store` (the fsynced JSON-lines results file), :mod:`~fastdl.search.engine`
(cluster, executors, the loop), :mod:`~fastdl.search.report` (table and figures) and the
``fastdl search`` command (:mod:`~fastdl.search.cli`). See ``docs/search.md``.
"""

from __future__ import annotations

from .engine import SearchResult, connect, load_data, search, summarize
from .policy import ASHA, RandomSearch, rungs
from .space import PARAMETERS, Choice, IntUniform, LogUniform, SearchSpace, Uniform, book_space, trial_seeds
from .store import ResultsStore, read
from .trial import run_trial

__all__ = ["ASHA", "PARAMETERS", "Choice", "IntUniform", "LogUniform", "RandomSearch", "ResultsStore", "SearchResult",
           "SearchSpace", "Uniform", "book_space", "connect", "load_data", "read", "run_trial", "rungs", "search",
           "summarize", "trial_seeds"]

"""What to run next: the book's random search, and asynchronous successive halving (ASHA).

A policy hands out jobs (``next_job``) and learns from finished ones (``report``). The engine keeps
``in_flight`` jobs running; a policy never sees a worker, only results, so the same policy runs in
one process or on a cluster.

Random search
    Every trial ``0 .. trials-1`` runs once for ``epochs`` epochs; order and worker count change
    nothing in the results.

ASHA (Li et al., "A System for Massively Parallel Hyperparameter Tuning", 2020)
    Rungs at ``min_epochs * eta**i`` epochs, capped at ``epochs`` (the last rung). When a job
    finishes, the policy looks for a promotion from the highest rung down: a trial is promoted from
    rung ``i`` when it is among the best ``floor(n_i / eta)`` of the ``n_i`` results rung ``i`` has
    so far and was not promoted yet; otherwise the next new trial starts at rung 0. A promoted
    trial is trained again from its seed up to the next rung's epochs (no checkpoint travels between
    workers; its first epochs are the same numbers again), which costs about ``1 / (eta - 1)`` more
    epochs than resuming would and keeps every job independent and retryable.

    Deterministic when jobs finish in the order they were handed out (one worker, or the
    sequential executor): the same seed gives the same promotions and the same records. With
    several workers the order in which results arrive decides which trials are promoted, so the
    set of trials reaching the top rung may differ between runs; each job's own numbers (a trial
    trained to ``e`` epochs) are still bit-identical.
"""

from __future__ import annotations

import math

from .. import _checks

__all__ = ["ASHA", "RandomSearch", "make_policy", "rungs"]


def _score(record: dict) -> float:
    """Ranking value of a finished job: its final validation accuracy (-inf when failed/unmeasured)."""
    v = record.get("final_val_acc")
    if record.get("status") == "failed" or v is None or not math.isfinite(v):
        return -math.inf
    return float(v)


def rungs(epochs: int, min_epochs: int, eta: int) -> list[int]:
    """Epoch budgets of the rungs: ``min_epochs * eta**i`` below ``epochs``, then ``epochs``.

    Parameters
    ----------
    epochs : int
        Full budget (the last rung).
    min_epochs : int
        First rung.
    eta : int
        Reduction factor (>= 2).

    Returns
    -------
    list of int
        Increasing budgets ending with ``epochs``.
    """
    out = []
    e = min_epochs
    while e < epochs:
        out.append(e)
        e *= eta
    out.append(epochs)
    return out


class RandomSearch:
    """Each trial once, for the full number of epochs.

    Parameters
    ----------
    trials : int
        Trials ``0 .. trials-1``.
    epochs : int
        Epochs per trial.
    """

    name = "random"

    def __init__(self, trials: int, epochs: int) -> None:
        self.trials, self.epochs = trials, epochs
        self.done: set[int] = set()
        self._next = 0
        self.in_flight = None  # the engine may keep every job in flight

    def next_job(self) -> tuple[int, int, int] | None:
        """``(trial, rung, epochs)`` of the next job, or None when nothing is left to start."""
        while self._next < self.trials and self._next in self.done:
            self._next += 1
        if self._next >= self.trials:
            return None
        k = self._next
        self._next += 1
        return k, 0, self.epochs

    def report(self, record: dict) -> None:
        """Learn a finished job (successful records only count as done)."""
        if record.get("status") != "failed":
            self.done.add(int(record["trial"]))

    def expected_jobs(self) -> int:
        return self.trials


class ASHA:
    """Asynchronous successive halving over ``trials`` trials (see the module notes).

    Parameters
    ----------
    trials, epochs : int
        Trials and the full budget.
    min_epochs : int
        Epochs of the first rung.
    eta : int
        Reduction factor: about one in ``eta`` trials of a rung goes on to the next.
    """

    name = "asha"

    def __init__(self, trials: int, epochs: int, min_epochs: int = 1, eta: int = 3) -> None:
        where = "ASHA"
        if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
            _checks.fail(where, "eta", "an integer >= 2", repr(eta))
        if isinstance(min_epochs, bool) or not isinstance(min_epochs, int) or not 1 <= min_epochs <= epochs:
            _checks.fail(where, "min_epochs", f"an integer in [1, epochs={epochs}]", repr(min_epochs))
        self.trials, self.epochs, self.min_epochs, self.eta = trials, epochs, min_epochs, eta
        self.budgets = rungs(epochs, min_epochs, eta)
        self.results: list[dict[int, float]] = [{} for _ in self.budgets]  # rung -> trial -> score
        self.promoted: list[set[int]] = [set() for _ in self.budgets]  # trials handed on from rung i
        self._next = 0
        self._started: set[int] = set()
        self.in_flight = "workers"  # one job per worker: decisions as late as possible

    def _promotable(self, i: int) -> int | None:
        scores = self.results[i]
        n_top = len(scores) // self.eta
        if n_top == 0:
            return None
        ranked = sorted(scores, key=lambda k: (-scores[k], k))[:n_top]
        for k in ranked:
            if k not in self.promoted[i] and scores[k] > -math.inf:
                return k
        return None

    def next_job(self) -> tuple[int, int, int] | None:
        """A promotion if one is due (highest rung first), else a new trial at rung 0, else None."""
        for i in range(len(self.budgets) - 2, -1, -1):
            k = self._promotable(i)
            if k is not None:
                self.promoted[i].add(k)
                return k, i + 1, self.budgets[i + 1]
        while self._next < self.trials and self._next in self._started:
            self._next += 1
        if self._next < self.trials:
            k = self._next
            self._next += 1
            self._started.add(k)
            return k, 0, self.budgets[0]
        return None

    def report(self, record: dict) -> None:
        """Learn a finished job (on resume, the file's records other than failed ones are replayed here)."""
        k, i = int(record["trial"]), int(record["rung"])
        self._started.add(k)
        for j in range(i):  # a job at rung i means it was promoted from every lower rung
            self.promoted[j].add(k)
        if record.get("status") == "failed":  # final in this run (a resumed search runs it again)
            return
        self.results[i][k] = _score(record)
        if record.get("status") == "diverged":
            self.promoted[i].add(k)  # never promote a diverged run

    def expected_jobs(self) -> int:
        return sum(self.trials // self.eta**i for i in range(len(self.budgets)))


def make_policy(algorithm: str, trials: int, epochs: int, min_epochs: int = 1, eta: int = 3):
    """``'random'`` -> :class:`RandomSearch`; ``'asha'`` -> :class:`ASHA`."""
    if algorithm == "random":
        return RandomSearch(trials, epochs)
    if algorithm == "asha":
        return ASHA(trials, epochs, min_epochs, eta)
    _checks.fail("search", "algorithm", "'random' or 'asha'", repr(algorithm))

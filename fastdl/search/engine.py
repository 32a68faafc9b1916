"""The search loop: data split, cluster, executors, durable results, progress.

:func:`search` draws each trial's settings in the client (from the trial's own seed), hands jobs to
an executor, and appends each finished job to the results file before it does anything else with
it. Executors:

``'dask'`` (default)
    An existing cluster when ``scheduler`` (or ``$DASK_SCHEDULER_ADDRESS``) names one, else an
    embedded ``LocalCluster`` on 127.0.0.1 with one single-threaded worker process per core,
    started with the spawn method and closed at the end. The data set is sent to every worker once
    (``client.scatter(..., broadcast=True)``); jobs carry only their settings. A job whose worker
    dies is run again by Dask on another worker, at most ``retries`` times (the scheduler's
    ``allowed-failures`` for the embedded cluster; ``retries=`` for exceptions), then recorded as
    ``failed``.
``'sequential'``
    Every job in this process, in order: the yardstick the cluster's results are compared with.

A job that raises inside the trial (bad settings, say) is recorded as ``failed`` with its error and
not retried (it would fail again); ``--resume`` runs failed trials again.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _checks
from .policy import make_policy
from .space import SearchSpace, book_space, trial_seeds
from .store import ResultsStore
from .trial import run_trial

__all__ = ["SearchResult", "connect", "load_data", "search", "summarize"]

EXECUTORS = ("dask", "sequential")


# -- data ---------------------------------------------------------------------------------------------------
def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def load_data(data="digits", *, train_size: int | None = None, validation_ratio: float = 0.2, seed: int = 0,
              dtype="float64", where: str = "search") -> tuple[dict, dict]:
    """The training data of a search, split into training and validation parts (never the test set).

    Parameters
    ----------
    data : {'digits', 'mnist'} or tuple
        A built-in data set (its *training* part) or ``(x, t)`` arrays.
    train_size : int, optional
        Use only the first this-many samples before the split (the book: 500); None: all.
    validation_ratio : float
        Share held out for validation (the book: 0.2).
    seed : int
        Seed of the split's shuffle (:func:`fastdl.datasets.train_val_split`).
    dtype : str
        ``x`` is cast once to this dtype.

    Returns
    -------
    tuple
        ``(arrays, description)``: ``x_train``, ``t_train``, ``x_val``, ``t_val``, ``n_classes``;
        and a JSON-ready description (name, sizes, a digest of the split) stored in the results file.
    """
    from ..datasets import load_digits, load_mnist, train_val_split

    dtype = np.dtype(dtype)
    if dtype not in _checks.FLOAT_DTYPES:
        _checks.fail(where, "dtype", "float32 or float64", str(dtype), TypeError)
    if isinstance(data, str):
        if data == "digits":
            (x, t), _ = load_digits(normalize=True)
        elif data == "mnist":
            (x, t), _ = load_mnist(normalize=True)
        else:
            _checks.fail(where, "data", "'digits', 'mnist' or an (x, t) pair of arrays", repr(data))
        name = data
    else:
        if not isinstance(data, tuple | list) or len(data) != 2:
            _checks.fail(where, "data", "'digits', 'mnist' or an (x, t) pair of arrays", _checks.describe(data),
                         TypeError)
        x, t = np.asarray(data[0]), np.asarray(data[1])
        if x.ndim != 2 or t.ndim not in (1, 2) or x.shape[0] != t.shape[0]:
            _checks.fail(where, "data", "x of shape (N, D) and t of shape (N,) or (N, classes)",
                         f"shapes {x.shape} and {t.shape}")
        name = "arrays"
    if train_size is not None:
        if isinstance(train_size, bool) or not isinstance(train_size, int | np.integer) or train_size < 2:
            _checks.fail(where, "train_size", "an integer >= 2 or None", repr(train_size))
        x, t = x[:train_size], t[:train_size]
    (x_tr, t_tr), (x_val, t_val) = train_val_split(x, t, validation_ratio, seed=seed)
    x_tr = np.ascontiguousarray(x_tr, dtype=dtype)
    x_val = np.ascontiguousarray(x_val, dtype=dtype)
    labels = t if t.ndim == 1 else np.argmax(t, axis=1)
    n_classes = int(t.shape[1]) if t.ndim == 2 else int(np.max(labels)) + 1
    arrays = {"x_train": x_tr, "t_train": np.ascontiguousarray(t_tr), "x_val": x_val,
              "t_val": np.ascontiguousarray(t_val), "n_classes": n_classes}
    description = {"name": name, "train_size": None if train_size is None else int(train_size),
                   "validation_ratio": float(validation_ratio), "n_train": int(x_tr.shape[0]),
                   "n_val": int(x_val.shape[0]), "features": int(x_tr.shape[1]), "n_classes": n_classes,
                   "digest": _digest(x_tr, t_tr, x_val, t_val)}
    return arrays, description


# -- cluster -------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _sigint_ignored():
    """Ignore SIGINT while worker processes are spawned (only the main thread may change handlers)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def connect(scheduler: str | None = None, workers: int | None = None, retries: int = 2, quiet: bool = False):
    """A Dask client: to ``scheduler`` (or ``$DASK_SCHEDULER_ADDRESS``), else to an embedded cluster.

    The embedded ``LocalCluster`` listens on 127.0.0.1 only, runs ``workers`` (default: one per
    core) worker processes of one thread each, started with the spawn method (a fork after OpenMP
    ran can hang), with ``OMP/MKL/OPENBLAS/NUMBA_NUM_THREADS=1`` in their environment, and lets a
    job run on ``retries + 1`` workers that die before it is declared failed. It is closed on exit.

    Parameters
    ----------
    scheduler : str, optional
        ``tcp://HOST:8786`` of a running ``dask scheduler``.
    workers : int, optional
        Worker processes of the embedded cluster (default ``os.cpu_count()``).
    retries : int
        Restarts of a job whose worker died (embedded cluster).
    quiet : bool
        Do not print the dashboard line.

    Yields
    ------
    distributed.Client
    """
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("fastdl.search on Dask needs dask.distributed: pip install 'fastdl[search]'") from None
    import logging

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    # worker-saturation 1.0: a worker holds only the task it runs, so a worker that dies takes the blame for
    # one trial, not for a queued bystander too (allowed-failures counts every task the dead worker held)
    settings = {"distributed.worker.multiprocessing-method": "spawn",
                "distributed.scheduler.allowed-failures": int(retries),
                "distributed.scheduler.worker-saturation": 1.0}
    with dask.config.set(settings):
        if address:
            client = Client(address)
            cluster = None
        else:
            n = workers or os.cpu_count() or 1
            env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "NUMBA_NUM_THREADS": "1"}
            import importlib.util

            dashboard = "127.0.0.1:8787" if importlib.util.find_spec("bokeh") is not None else "127.0.0.1:0"
            with _sigint_ignored():  # the workers inherit it: Ctrl-C reaches only the client, which closes them
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=dashboard, silence_logs=logging.ERROR, env=env)
            client = Client(cluster)
        try:
            if not quiet:
                print(_dashboard_line(client, cluster is not None), file=sys.stderr)
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _dashboard_line(client, embedded: bool) -> str:
    """Where the Dask dashboard is (it needs bokeh where the scheduler runs)."""
    import importlib.util

    if embedded and importlib.util.find_spec("bokeh") is None:
        return f"Dask scheduler {client.scheduler.address}; no dashboard (pip install bokeh to get one)"
    return f"Dask dashboard: {client.dashboard_link}"


class _Sequential:
    """Runs the jobs in this process, first in first out."""

    def __init__(self, data: dict, runner) -> None:
        self.data, self.runner = data, runner
        self.queue: deque = deque()
        self.n_workers = 1

    def submit(self, job: dict) -> None:
        self.queue.append(job)

    def pending(self) -> int:
        return len(self.queue)

    def wait(self) -> tuple[dict, dict]:
        job = self.queue.popleft()
        return job, self.runner(job, self.data)

    def cancel(self) -> None:
        self.queue.clear()


class _Dask:
    """Jobs as Dask futures; the data scattered to every worker once."""

    def __init__(self, client, data: dict, runner, retries: int) -> None:
        from distributed import as_completed

        self.client, self.runner, self.retries = client, runner, retries
        try:
            client.wait_for_workers(1, timeout=120)
        except TimeoutError:
            _checks.fail("search", "the Dask cluster", "one with workers",
                         f"none after 120 s at {client.scheduler.address}", TimeoutError)
        [self.data] = client.scatter([data], broadcast=True, hash=False)
        self.completed = as_completed()
        self.jobs: dict = {}
        self.futures: dict = {}
        self.token = uuid.uuid4().hex[:8]

    @property
    def n_workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def submit(self, job: dict) -> None:
        key = f"fastdl-trial-{job['trial']}-rung-{job['rung']}-{self.token}"
        future = self.client.submit(self.runner, job, self.data, key=key, pure=False, retries=self.retries)
        self.jobs[future.key] = job
        self.futures[future.key] = future
        self.completed.add(future)

    def pending(self) -> int:
        return len(self.jobs)

    def wait(self) -> tuple[dict, dict]:
        future = next(self.completed)
        job = self.jobs.pop(future.key)
        self.futures.pop(future.key, None)
        try:
            record = future.result()
        except Exception as exc:  # KilledWorker (the worker died retries+1 times), lost scheduler, ...
            record = dict(job, status="failed", stop_reason="error", val_acc=[], val_loss=[], train_acc=[],
                          train_loss=[], final_val_acc=None, wall_time_s=None, worker=None,
                          error=f"{type(exc).__name__}: {exc}")
        future.release()
        return job, record

    def cancel(self) -> None:
        if self.futures:
            self.client.cancel(list(self.futures.values()))
        self.jobs.clear()
        self.futures.clear()


# -- results -------------------------------------------------------------------------------------------------
def _rank_key(record: dict):
    failed = record.get("status") == "failed"
    acc = record.get("final_val_acc")
    acc = -math.inf if acc is None or failed else acc
    return (not failed, record.get("epochs", 0) if not failed else 0, acc, -int(record["trial"]))


def summarize(records: list[dict]) -> list[dict]:
    """One record per trial (its furthest successful job), best first.

    Ranking: successful before failed, more epochs before fewer (a trial that reached a higher
    successive-halving rung ranks above one stopped earlier), then higher final validation accuracy,
    then lower trial number.

    Parameters
    ----------
    records : list of dict
        Job records (any order, several per trial allowed).

    Returns
    -------
    list of dict
    """
    best: dict[int, dict] = {}
    for r in records:
        k = int(r["trial"])
        if k not in best or _rank_key(r)[:2] > _rank_key(best[k])[:2]:
            best[k] = r
    return sorted(best.values(), key=_rank_key, reverse=True)


@dataclass
class SearchResult:
    """What a search found.

    Attributes
    ----------
    trials : list of dict
        One record per trial (see :func:`summarize`), best first.
    records : list of dict
        Every job record in the results file (earlier sessions included), in file order.
    path : pathlib.Path or None
        The results file.
    spec : dict
        The search's settings (as in the file's header).
    wall_time_s : float
        This session, from the first job handed out to the last result.
    jobs_run : int
        Jobs run in this session.
    n_workers : int
        Worker threads the executor had.
    busy_fraction : float
        Sum of this session's job times / (``n_workers`` x ``wall_time_s``): 1 means no idle worker.
    """

    trials: list
    records: list
    path: Path | None
    spec: dict
    wall_time_s: float = 0.0
    jobs_run: int = 0
    n_workers: int = 1
    busy_fraction: float = 0.0
    epochs_trained: int = 0

    @property
    def best(self) -> dict:
        """The best trial's record."""
        return self.trials[0]


def _spec_compare(stored: dict, spec: dict) -> None:
    """A resumed search must be the same search; only ``trials`` may grow."""
    a = {k: v for k, v in stored.items() if k != "trials"}
    b = {k: v for k, v in spec.items() if k != "trials"}
    if a != b:
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        _checks.fail("search", "the resumed search", "the same as the file's (only trials may change)",
                     "different " + ", ".join(diff))


def _count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        _checks.fail("search", name, f"an integer >= {minimum}", repr(value))
    return int(value)


def search(space: SearchSpace | None = None, data="digits", *, trials: int = 100, epochs: int = 50, seed: int = 0,
           validation_ratio: float = 0.2, train_size: int | None = None, dtype="float64",
           algorithm: str = "random", min_epochs: int = 1, eta: int = 3, backend: str | None = None,
           results=None, resume: bool = False,
           executor: str = "dask", scheduler: str | None = None, workers: int | None = None, retries: int = 2,
           client=None, warmup: bool | None = None, progress: bool = True, on_result=None,
           runner=run_trial) -> SearchResult:
    """Run a hyper-parameter search: random (the book's) or with successive halving (ASHA).

    Parameters
    ----------
    space : SearchSpace, optional
        Distributions over the trial settings (default :func:`book_space`).
    data : {'digits', 'mnist'} or (x, t)
        Training data; the validation part is split off it (:func:`load_data`), never the test set.
    trials, epochs, seed : int
        Trial ``k`` draws its settings and trains from seeds of ``SeedSequence([seed, k])``.
    validation_ratio, train_size, dtype :
        See :func:`load_data`.
    algorithm : {'random', 'asha'}
        ``'asha'`` stops poor trials at rungs ``min_epochs * eta**i`` (see :mod:`fastdl.search.policy`).
    min_epochs, eta : int
        ASHA's first rung and reduction factor.
    backend : {None, 'fastdl', 'reference'}
        Layers and optimizers of the trials (None: fastdl's compiled ones).
    results : path-like, optional
        JSON-lines results file (see :mod:`fastdl.search.store`); None keeps results in memory only.
    resume : bool
        Continue ``results``: jobs already in it are not run again (failed ones are).
    executor : {'dask', 'sequential'}
        Dask (cluster or embedded) or this process.
    scheduler : str, optional
        Address of an existing Dask scheduler (else ``$DASK_SCHEDULER_ADDRESS``, else embedded).
    workers : int, optional
        Worker processes of the embedded cluster (default: one per core).
    retries : int
        Bounded re-runs of a job whose worker died or that raised outside the trial code.
    client : distributed.Client, optional
        Use this client (its cluster is left running).
    warmup : bool, optional
        Compile/load fastdl's kernels in this process before the embedded workers start, so they
        load them from the shared cache instead of compiling each (default: on for the embedded
        cluster).
    progress : bool
        tqdm bar with the best validation accuracy so far.
    on_result : callable, optional
        Called with each job record after it is written.
    runner : callable
        ``runner(job, data) -> record`` (default :func:`fastdl.search.trial.run_trial`).

    Returns
    -------
    SearchResult
    """
    space = book_space() if space is None else space
    if not isinstance(space, SearchSpace):
        _checks.fail("search", "space", "a SearchSpace", _checks.describe(space), TypeError)
    trials, epochs = _count(trials, "trials"), _count(epochs, "epochs")
    seed, retries = _count(seed, "seed", 0), _count(retries, "retries", 0)
    if executor not in EXECUTORS:
        _checks.fail("search", "executor", f"one of {EXECUTORS}", repr(executor))
    if backend not in (None, "fastdl", "reference"):
        _checks.fail("search", "backend", "None, 'fastdl' or 'reference'", repr(backend))
    if resume and results is None:
        _checks.fail("search", "results", "a file to resume from when resume=True", "None")
    policy = make_policy(algorithm, trials, epochs, min_epochs, eta)
    arrays, data_desc = load_data(data, train_size=train_size, validation_ratio=validation_ratio, seed=seed,
                                  dtype=dtype)
    dtype = np.dtype(dtype).name
    spec = {"space": space.to_dict(), "data": data_desc, "trials": trials, "epochs": epochs, "seed": seed,
            "dtype": dtype, "algorithm": algorithm}
    if algorithm == "asha":
        spec.update(min_epochs=min_epochs, eta=eta)
    if backend == "reference":
        spec["backend"] = backend
    embedded = executor == "dask" and client is None and not (scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS"))
    store = ResultsStore(results, spec, resume=resume, compare=_spec_compare) if results is not None else None
    records = list(store.records) if store is not None else []
    for r in records:
        if r.get("status") != "failed" and int(r["trial"]) < trials:
            policy.report(r)

    def make_job(k: int, rung: int, budget: int) -> dict:
        config_seed, train_seed = trial_seeds(seed, k)
        config = space.sample(np.random.default_rng(config_seed))
        return {"trial": k, "rung": rung, "epochs": budget, "max_epochs": epochs, "config": config,
                "config_seed": config_seed, "train_seed": train_seed, "dtype": dtype, "backend": backend}

    session: list[dict] = []
    t0 = time.perf_counter()
    n_workers = 1
    try:
        if warmup if warmup is not None else embedded:
            from ..benchmark import warmup as _warm

            _warm(dtype)
        with contextlib.ExitStack() as stack:
            if executor == "dask":
                if client is None:
                    client = stack.enter_context(connect(scheduler, workers, retries, quiet=not progress))
                ex = _Dask(client, arrays, runner, retries)
            else:
                ex = _Sequential(arrays, runner)
            n_workers = ex.n_workers
            stack.callback(ex.cancel)
            limit = n_workers if policy.in_flight == "workers" else max(2 * n_workers, n_workers + 4)
            bar = None
            if progress:
                from tqdm.auto import tqdm

                done_before = len(records)
                bar = stack.enter_context(tqdm(total=max(policy.expected_jobs(), done_before), initial=done_before,
                                               desc=f"search ({algorithm}, {n_workers} worker"
                                               f"{'s' if n_workers > 1 else ''})", unit="job",
                                               dynamic_ncols=True, file=sys.stderr))
            best = max((r["final_val_acc"] for r in records if r.get("final_val_acc") is not None), default=None)
            t0 = time.perf_counter()

            def fill() -> None:
                while ex.pending() < limit:
                    nxt = policy.next_job()
                    if nxt is None:
                        return
                    ex.submit(make_job(*nxt))

            fill()
            while ex.pending():
                _, record = ex.wait()
                if store is not None:
                    store.append(record)
                records.append(record)
                session.append(record)
                policy.report(record)
                acc = record.get("final_val_acc")
                if acc is not None and (best is None or acc > best):
                    best = acc
                if bar is not None:
                    if bar.n + 1 > bar.total:
                        bar.total = bar.n + 1
                    bar.set_postfix({"best_val_acc": "-" if best is None else f"{best:.3f}",
                                     "failed": sum(r.get("status") == "failed" for r in session)}, refresh=False)
                    bar.update(1)
                if on_result is not None:
                    on_result(record)
                fill()
    finally:
        if store is not None:
            store.close()
    wall = time.perf_counter() - t0
    busy = sum(r.get("wall_time_s") or 0.0 for r in session)
    return SearchResult(trials=summarize([r for r in records if int(r["trial"]) < trials]), records=records,
                        path=Path(results) if results is not None else None, spec=spec, wall_time_s=wall,
                        jobs_run=len(session), n_workers=n_workers,
                        busy_fraction=busy / (n_workers * wall) if wall > 0 else 0.0,
                        epochs_trained=sum(len(r.get("val_acc") or []) for r in session))

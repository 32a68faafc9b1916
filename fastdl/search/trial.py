"""One trial: build the network a configuration describes, train it, record the validation curve.

:func:`run_trial` is what a Dask worker (or the client, in a sequential search) executes. It
builds a :class:`~fastdl.nets.MultiLayerNetExtend` and a :class:`~fastdl.trainer.Trainer` with the
validation split as its "test" data, seeds NumPy's global generator with the trial's training seed
(as the book's code draws weights, mini-batches and dropout masks from it), and calls
:meth:`~fastdl.trainer.Trainer.train_step` until ``job['epochs']`` evaluations are done. The
Trainer is built for ``job['max_epochs']`` whatever ``job['epochs']`` is, so a trial stopped at
epoch ``e`` (successive halving) has exactly the first ``e`` points of the full run's curve, and a
full run's curve is that of ``Trainer.train()`` with the same seed.

After each evaluation the validation loss (``network.loss`` in evaluation mode, the L2 term
included) is added; evaluation changes no state, so it does not change the training numbers.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
import warnings

import numpy as np

__all__ = ["single_threaded", "run_trial"]

_THREADS_LIMITED = False
#: one trial at a time per process: trials seed and draw from NumPy's global generator (as the book's code
#: does), so two threads of one worker (``dask worker --nthreads 2``) would interleave their draws
_TRIAL_LOCK = threading.Lock()


def single_threaded() -> None:
    """Run this process's BLAS and fastdl's kernels on one thread (a search runs one trial per core).

    BLAS: ``threadpoolctl.threadpool_limits(1)`` once per process (process-wide). fastdl:
    :func:`fastdl.runtime.set_num_threads` ``(1)``, which Numba keeps per thread, so it is called on
    every trial, in the thread that runs it.
    """
    global _THREADS_LIMITED
    from .. import runtime

    if not _THREADS_LIMITED:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn and the search extra
            pass
        else:
            threadpool_limits(1)
        _THREADS_LIMITED = True
    runtime.set_num_threads(1)


def _where_am_i() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return "local"


def run_trial(job: dict, data: dict) -> dict:
    """Train one configuration for ``job['epochs']`` epochs and return its record.

    Parameters
    ----------
    job : dict
        ``trial`` (number), ``rung``, ``epochs`` (evaluations to run), ``max_epochs`` (the
        Trainer's ``epochs``), ``config`` (from :meth:`SearchSpace.sample`), ``train_seed``,
        ``dtype``, ``backend`` (None: fastdl).
    data : dict
        ``x_train``, ``t_train``, ``x_val``, ``t_val`` arrays (``x`` already in ``job['dtype']``).

    Returns
    -------
    dict
        ``job`` plus ``status`` (``'ok'``, ``'diverged'`` when the Trainer stopped on a non-finite
        loss, ``'failed'`` when the trial raised), per-epoch ``val_acc``, ``val_loss``,
        ``train_acc``, ``train_loss`` (mean mini-batch loss of the epoch), ``final_val_acc``,
        ``wall_time_s``, ``cpu_time_s`` (CPU seconds of the whole process meanwhile: about
        ``wall_time_s`` when the trial ran on one thread), ``worker``, ``host``, ``pid``,
        ``stop_reason``, ``error``.

    Notes
    -----
    Trials of one process run one at a time (a lock): they seed and draw from NumPy's global
    generator, as the book's code does.
    """
    with _TRIAL_LOCK:
        return _run(job, data)


def _run(job: dict, data: dict) -> dict:
    t0, cpu0 = time.perf_counter(), time.process_time()
    record = dict(job)
    record.update(status="ok", val_acc=[], val_loss=[], train_acc=[], train_loss=[], final_val_acc=None,
                  stop_reason="completed", error=None, worker=_where_am_i(), host=socket.gethostname(),
                  pid=os.getpid())
    try:
        single_threaded()
        from .. import runtime
        from ..nets import MultiLayerNetExtend
        from ..trainer import Trainer

        c = job["config"]
        dtype = np.dtype(job.get("dtype", "float64"))
        x_train, t_train, x_val, t_val = data["x_train"], data["t_train"], data["x_val"], data["t_val"]
        n_classes = int(data.get("n_classes", int(max(np.max(t_train), np.max(t_val))) + 1))
        np.random.seed(job["train_seed"])
        net = MultiLayerNetExtend(x_train.shape[1], list(c["hidden"]), n_classes, activation=c["activation"],
                                  weight_init_std=c["weight_init"], weight_decay_lambda=c["weight_decay"],
                                  use_dropout=c["dropout"] > 0, dropout_ratio=c["dropout"] or 0.5,
                                  use_batchnorm=c["batchnorm"], dtype=dtype, backend=job.get("backend"))
        trainer = Trainer(net, x_train, t_train, x_val, t_val, epochs=job["max_epochs"],
                          mini_batch_size=c["batch_size"], optimizer=c["optimizer"],
                          optimizer_param={"lr": c["lr"]}, verbose=False, backend=job.get("backend"))
        target = job["epochs"]
        with warnings.catch_warnings(), runtime.errstate("ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # a diverging trial is recorded, not shouted
            while (trainer.current_epoch < target and trainer.current_iter < trainer.max_iter
                   and not trainer.stopped):
                before = trainer.current_epoch
                trainer.train_step()
                if trainer.current_epoch != before:
                    record["val_loss"].append(float(net.loss(x_val, t_val)))
        for e in trainer.history.epochs:
            record["val_acc"].append(e["test_acc"])
            record["train_acc"].append(e["train_acc"])
            record["train_loss"].append(e["train_loss"])
        if trainer.stopped:
            record["status"] = "diverged"
            record["stop_reason"] = trainer.history.stop_reason
        record["final_val_acc"] = record["val_acc"][-1] if record["val_acc"] else None
    except Exception as exc:  # the trial is recorded as failed; the search goes on
        record["status"] = "failed"
        record["stop_reason"] = "error"
        record["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
    record["wall_time_s"] = time.perf_counter() - t0
    record["cpu_time_s"] = time.process_time() - cpu0
    return record

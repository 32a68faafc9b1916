"""``hparam-search``: random search of learning rate and weight decay on a validation split (figure 6-24).

As the book: 500 training samples, 20 % of them held out for validation; each trial draws
``lr = 10**U(-6, -2)`` and ``weight_decay = 10**U(-8, -4)``, trains a 6-hidden-layer ReLU network of
100 units with SGD for 50 epochs and records validation and training accuracy. The figure shows
the 20 best trials' curves (validation solid, training dashed) and every trial's final validation
accuracy over (lr, weight decay): good runs sit at the high learning rates, weight decay matters little.

It runs on :func:`fastdl.search.search` (an embedded Dask cluster, one worker per core, when
``dask.distributed`` is installed; else in this process): trial ``k`` draws from seeds of
``SeedSequence([seed, k])``, so its numbers do not depend on the number of workers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..search import LogUniform, SearchSpace, search
from ..search.report import draw_curves, draw_scatter
from . import _common


def run(dataset: str = "digits", out=None, seed: int = 0, trials: int = 100, epochs: int = 50,
        train_size: int = 500, validation_ratio: float = 0.2, best: int = 20,
        lr_range=(-6, -2), weight_decay_range=(-8, -4), dtype=np.float64, backend=None,
        executor: str | None = None, workers: int | None = None, scheduler: str | None = None):
    """Random search; returns every trial's curves and plots the best ones and the (lr, decay) scatter.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        Data; the first ``train_size`` training samples are split into training and validation.
    out : path-like, optional
        Output directory for ``hparam-search.png`` and the results file ``hparam-search.jsonl``
        (rewritten on every run).
    seed : int
        Search seed: the split, and trial ``k``'s draws and training (``SeedSequence([seed, k])``).
    trials, epochs : int
        The book: 100 trials of 50 epochs.
    train_size : int
        Samples before the split (the book: 500).
    validation_ratio : float
        Held-out share (the book: 0.2).
    best : int
        Curves drawn (the book: 20).
    lr_range, weight_decay_range : tuple of float
        Exponent ranges of the log-uniform draws.
    dtype : numpy dtype
        Network dtype (float32 halves the GEMM time; the book uses float64).
    backend : None or str
        Layers and optimizer (``None``: fastdl; ``'reference'``: plain NumPy).
    executor : {'dask', 'sequential'}, optional
        Default: ``'dask'`` when ``dask.distributed`` is installed, else ``'sequential'``.
    workers, scheduler :
        See :func:`fastdl.search.search`.

    Returns
    -------
    data : dict
        ``trials``: list of dicts (``trial``, ``lr``, ``weight_decay``, ``val_acc``, ``train_acc`` per
        epoch, ``final_val_acc``) sorted best first; ``best_lr``, ``best_weight_decay``; ``search``
        (the :class:`fastdl.search.SearchResult`).
    fig : matplotlib.figure.Figure
    """
    where = "hparam-search"
    trials = _common.check_count(trials, "trials", where)
    epochs = _common.check_count(epochs, "epochs", where)
    best = _common.check_count(best, "best", where)
    if dataset not in _common.DATASETS:
        raise ValueError(f"{where}: dataset must be one of {_common.DATASETS}; got {dataset!r}")
    if executor is None:
        executor = "dask" if importlib.util.find_spec("distributed") is not None else "sequential"
    space = SearchSpace({"lr": LogUniform(10.0 ** lr_range[0], 10.0 ** lr_range[1]),
                         "weight_decay": LogUniform(10.0 ** weight_decay_range[0], 10.0 ** weight_decay_range[1])})
    results = _common.out_dir(out) / f"{where}.jsonl"
    Path(results).unlink(missing_ok=True)
    result = search(space, dataset, trials=trials, epochs=epochs, seed=seed, validation_ratio=validation_ratio,
                    train_size=train_size, dtype=np.dtype(dtype).name, backend=backend, results=results,
                    executor=executor, workers=workers, scheduler=scheduler, progress=True)
    ranked = result.trials
    rows = [{"trial": r["trial"], "lr": r["config"]["lr"], "weight_decay": r["config"]["weight_decay"],
             "val_acc": np.array(r["val_acc"]), "train_acc": np.array(r["train_acc"]),
             "final_val_acc": r["final_val_acc"] if r["final_val_acc"] is not None else float("nan")}
            for r in ranked]

    shown = min(best, len(ranked))
    rows_of_panels = int(np.ceil(shown / min(5, shown)))
    fig = _common.figure(figsize=(17, max(4.5, 1.9 * rows_of_panels + 1)))
    left, right = fig.subfigures(1, 2, width_ratios=[5, 2.4])
    draw_curves(left, ranked, ["lr", "weight_decay"], best=best)
    left.suptitle(f"Best {shown} of {trials} trials")
    draw_scatter(right, ranked, "lr", "weight_decay", best=best)
    d = result.spec["data"]
    workers = f"{result.n_workers} worker{'s' if result.n_workers > 1 else ''}"
    fig.suptitle(f"Hyper-parameter random search on {dataset}: {d['n_train']} train / {d['n_val']} "
                 f"validation samples, {epochs} epochs, SGD ({workers}, {result.wall_time_s:.1f} s)")
    path = _common.save(fig, out, where)
    top = rows[0]
    print(f"{where}: best of {trials}: validation accuracy {top['final_val_acc']:.3f} at lr {top['lr']:.2e}, "
          f"weight decay {top['weight_decay']:.2e} -> {path} (results: {results})")
    data = {"trials": rows, "best_lr": top["lr"], "best_weight_decay": top["weight_decay"], "png": str(path),
            "search": result}
    return data, fig

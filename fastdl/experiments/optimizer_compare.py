"""``optimizer-compare``: training loss of SGD, Momentum, AdaGrad and Adam (the book's figure 6-9).

A 4-hidden-layer ReLU network of 100 units (He init) per optimizer, all with the book's default
hyper-parameters, stepping on the same mini-batches of 128; the loss after each update is smoothed
with the book's ``smooth_curve``. SGD learns slowest; Momentum, AdaGrad and Adam leave it behind.
"""

from __future__ import annotations

import numpy as np

from ..nets import MultiLayerNet
from ..trainer import make_optimizer
from . import _common

OPTIMIZERS = ("SGD", "Momentum", "AdaGrad", "Adam")
MARKERS = {"SGD": "o", "Momentum": "x", "AdaGrad": "s", "Adam": "D"}


def run(dataset: str = "digits", out=None, seed: int = 0, iterations: int = 2000, batch_size: int = 128,
        backend=None):
    """Train one network per optimizer on the same mini-batches and plot the smoothed losses.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        Training data.
    out : path-like, optional
        Output directory for ``optimizer-compare.png``.
    seed : int
        ``np.random.seed`` before the weights and batches are drawn.
    iterations : int
        Steps per optimizer (the book: 2000).
    batch_size : int
        Mini-batch size (the book: 128).
    backend : None, str or module
        Layers and optimizers (``None``: fastdl).

    Returns
    -------
    data : dict
        ``loss`` (name -> loss per step), ``smoothed``, ``final`` (name -> mean of the last 10 % of steps).
    fig : matplotlib.figure.Figure
    """
    where = "optimizer-compare"
    iterations = _common.check_count(iterations, "iterations", where)
    batch_size = _common.check_count(batch_size, "batch_size", where)
    (x_train, t_train), _ = _common.load(dataset, where)
    np.random.seed(seed)
    networks = {key: MultiLayerNet(x_train.shape[1], [100, 100, 100, 100], 10, backend=backend) for key in OPTIMIZERS}
    optimizers = {key: make_optimizer(key, {}, backend, where) for key in OPTIMIZERS}
    losses = _common.train_loss_curves(dataset, where, networks, optimizers, iterations, batch_size, x_train, t_train)
    tail = max(1, iterations // 10)
    final = {key: float(np.mean(v[-tail:])) for key, v in losses.items()}

    fig = _common.figure(figsize=(8, 5))
    ax = fig.subplots()
    _common.plot_loss_curves(ax, losses, MARKERS, ylim=(0, 1))
    ax.set_title(f"Optimizers on {dataset}: 4x100 ReLU net, batch {batch_size} (book's default settings)")
    path = _common.save(fig, out, where)
    print(f"{where}: mean loss over the last {tail} steps: " + ", ".join(f"{k} {v:.3f}" for k, v in final.items())
          + f" -> {path}")
    data = {"loss": losses, "smoothed": {k: _common.smooth_curve(v) for k, v in losses.items()}, "final": final,
            "iterations": iterations, "png": str(path)}
    return data, fig

"""``weight-init-compare``: training loss with std 0.01, Xavier and He initialisation (the book's figure 6-15).

A 4-hidden-layer ReLU network of 100 units per initialisation, plain SGD (lr 0.01), the same
mini-batches of 128. With std 0.01 the signal vanishes and the loss barely moves; He (and, less
so, Xavier) learn quickly.
"""

from __future__ import annotations

import numpy as np

from ..nets import MultiLayerNet
from ..trainer import make_optimizer
from . import _common

#: label -> weight_init_std as the book passes it
INITS = {"std=0.01": 0.01, "Xavier": "sigmoid", "He": "relu"}
MARKERS = {"std=0.01": "o", "Xavier": "s", "He": "D"}


def run(dataset: str = "digits", out=None, seed: int = 0, iterations: int = 2000, batch_size: int = 128,
        lr: float = 0.01, backend=None):
    """Train one ReLU network per initialisation with SGD and plot the smoothed losses.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        Training data.
    out : path-like, optional
        Output directory for ``weight-init-compare.png``.
    seed : int
        ``np.random.seed`` before the weights and batches are drawn.
    iterations : int
        Steps (the book: 2000).
    batch_size : int
        Mini-batch size (the book: 128).
    lr : float
        SGD learning rate (the book: 0.01).
    backend : None, str or module
        Layers and optimizer (``None``: fastdl).

    Returns
    -------
    data : dict
        ``loss`` (label -> loss per step), ``smoothed``, ``final`` (label -> mean of the last 10 % of steps).
    fig : matplotlib.figure.Figure
    """
    where = "weight-init-compare"
    iterations = _common.check_count(iterations, "iterations", where)
    batch_size = _common.check_count(batch_size, "batch_size", where)
    (x_train, t_train), _ = _common.load(dataset, where)
    np.random.seed(seed)
    networks = {key: MultiLayerNet(x_train.shape[1], [100, 100, 100, 100], 10, weight_init_std=std, backend=backend)
                for key, std in INITS.items()}
    optimizers = {key: make_optimizer("sgd", {"lr": lr}, backend, where) for key in INITS}
    losses = _common.train_loss_curves(dataset, where, networks, optimizers, iterations, batch_size, x_train, t_train)
    tail = max(1, iterations // 10)
    final = {key: float(np.mean(v[-tail:])) for key, v in losses.items()}

    fig = _common.figure(figsize=(8, 5))
    ax = fig.subplots()
    _common.plot_loss_curves(ax, losses, MARKERS, ylim=(0, 2.5))
    ax.set_title(f"Weight initialisation on {dataset}: 4x100 ReLU net, SGD lr={lr}")
    path = _common.save(fig, out, where)
    print(f"{where}: mean loss over the last {tail} steps: " + ", ".join(f"{k} {v:.3f}" for k, v in final.items())
          + f" -> {path}")
    data = {"loss": losses, "smoothed": {k: _common.smooth_curve(v) for k, v in losses.items()}, "final": final,
            "iterations": iterations, "png": str(path)}
    return data, fig

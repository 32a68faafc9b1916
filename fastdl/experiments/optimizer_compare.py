"""``optimizer-compare``: training loss of every registered optimizer (the book's figure 6-9).

A 4-hidden-layer ReLU network of 100 units (He init) per optimizer of :data:`fastdl.optim.RULES`
(the book's six, then AdaMax, Nadam, AdamW, then any registered from outside), all with their
default hyper-parameters, stepping on the same mini-batches of 128; the loss after each update is
smoothed with the book's ``smooth_curve``. The figure has one small panel per optimizer, its curve
in colour over the others in grey, on a shared log scale down to 1e-6 (the loss's resolution).
SGD learns slowest; Momentum, Nesterov, AdaGrad, RMSprop and the Adam family leave it behind.
"""

from __future__ import annotations

import math

import numpy as np

from .. import optim
from ..nets import MultiLayerNet
from ..trainer import make_optimizer
from . import _common

#: Panels per row of the figure.
COLUMNS = 3
#: Bottom of the loss axis: the cross-entropy adds 1e-7 inside the log, so a loss below this is noise
#: (it can even be slightly negative); smaller values are drawn at the floor.
FLOOR = 1e-6


def optimizer_names() -> tuple[str, ...]:
    """Class names of :data:`fastdl.optim.RULES`, in the table's order."""
    return tuple(rule.class_name for rule in optim.RULES.values())


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
        ``loss`` (class name -> loss per step), ``smoothed``, ``final`` (name -> mean of the last 10 % of steps).
    fig : matplotlib.figure.Figure
    """
    where = "optimizer-compare"
    iterations = _common.check_count(iterations, "iterations", where)
    batch_size = _common.check_count(batch_size, "batch_size", where)
    (x_train, t_train), _ = _common.load(dataset, where)
    names = optimizer_names()
    np.random.seed(seed)
    networks = {key: MultiLayerNet(x_train.shape[1], [100, 100, 100, 100], 10, backend=backend) for key in names}
    optimizers = {key: make_optimizer(key, {}, backend, where) for key in names}
    losses = _common.train_loss_curves(dataset, where, networks, optimizers, iterations, batch_size, x_train, t_train)
    tail = max(1, iterations // 10)
    final = {key: float(np.mean(v[-tail:])) for key, v in losses.items()}
    smoothed = {k: _common.smooth_curve(v) for k, v in losses.items()}

    fig = _common.figure(figsize=(4.0 * COLUMNS, 2.5 * math.ceil(len(names) / COLUMNS) + 0.8))
    axes = _common.panel_grid(fig, len(names), COLUMNS)
    steps = np.arange(1, iterations + 1)
    drawn = {k: np.maximum(v, FLOOR) for k, v in smoothed.items()}

    def shown(value: float) -> str:
        return f"{value:.2g}" if value >= FLOOR else f"< {FLOOR:g}"

    for ax, name in zip(axes, names):
        for other in names:
            if other != name:
                ax.plot(steps, drawn[other], color="0.8", lw=0.8)
        ax.plot(steps, drawn[name], color="tab:blue", lw=1.6, label="this optimizer")
        ax.set_title(f"{name}: {shown(final[name])}", fontsize=10)
        ax.set_yscale("log")
        ax.set_ylim(FLOOR / 1.5, 4.0)
        ax.grid(True, which="major", lw=0.3)
    axes[0].plot([], [], color="0.8", lw=0.8, label="the other optimizers")
    _common.finish_grid(fig, axes, len(names), COLUMNS, "iterations", "loss (smoothed)")
    fig.suptitle(f"Optimizers on {dataset}: 4x100 ReLU net, batch {batch_size}, default settings "
                 f"(title: mean loss of the last {tail} steps)",
                 fontsize=11)
    path = _common.save(fig, out, where)
    print(f"{where}: mean loss over the last {tail} steps: " + ", ".join(f"{k} {v:.3f}" for k, v in final.items())
          + f" -> {path}")
    data = {"loss": losses, "smoothed": smoothed, "final": final, "iterations": iterations, "png": str(path)}
    return data, fig

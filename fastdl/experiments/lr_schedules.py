"""``lr-schedules``: every learning-rate schedule of :mod:`fastdl.schedules`, its curve and its training loss.

Top: each schedule of :data:`fastdl.schedules.SCHEDULES` (and a constant rate for comparison)
over the steps of the run, one small panel each (1cycle's momentum on a second axis).
Bottom: the same 2x100 ReLU network (He init, same seed) trained with Momentum on the same
mini-batches of digits under each schedule: the smoothed training loss per step (log scale) and
the test accuracy at the end. Every schedule starts at (or warms up to) the same peak rate
``lr``; the settings (:func:`schedules_for`) spread each one's decay over the run, as
Géron's ch. 11 figures do.
"""

from __future__ import annotations

import math

import numpy as np

from ..nets import MultiLayerNet
from ..schedules import SCHEDULES, get_schedule
from ..trainer import make_optimizer
from . import _common

#: Panels per row of the schedule grid.
COLUMNS = 3
#: Bottom of the loss axis (the cross-entropy adds 1e-7 inside the log).
FLOOR = 1e-6


def schedules_for(lr: float, total_steps: int) -> dict:
    """Name -> schedule (or the constant ``lr``) for a run of ``total_steps`` updates peaking at ``lr``.

    Every entry of :data:`fastdl.schedules.SCHEDULES` gets settings that spread its decay over the
    run (a schedule added to the table later gets ``get_schedule(name, initial_learning_rate=lr,
    decay_steps=total_steps)``).
    """
    n = total_steps
    settings = {
        "exponential": {"initial_learning_rate": lr, "decay_steps": n, "decay_rate": 0.02},
        "inverse-time": {"initial_learning_rate": lr, "decay_steps": max(1, n // 10), "decay_rate": 1.0},
        "power": {"initial_learning_rate": lr, "decay_steps": max(1, n // 5), "power": 2.0},
        "polynomial": {"initial_learning_rate": lr, "decay_steps": n, "end_learning_rate": lr / 100, "power": 2.0},
        "piecewise": {"boundaries": [n // 2, (3 * n) // 4], "values": [lr, lr / 10, lr / 100]},
        "cosine": {"initial_learning_rate": lr / 10, "decay_steps": n - max(1, n // 10), "warmup_target": lr,
                   "warmup_steps": max(1, n // 10)},
        "cosine-restarts": {"initial_learning_rate": lr, "first_decay_steps": max(1, math.ceil(n / 7)), "t_mul": 2.0},
        "one-cycle": {"max_lr": lr, "total_steps": n},
    }
    out: dict = {"constant": lr}
    for name in SCHEDULES:
        out[name] = get_schedule(name, **settings.get(name, {"initial_learning_rate": lr, "decay_steps": n}))
    return out


def run(dataset: str = "digits", out=None, seed: int = 0, epochs: int = 20, batch_size: int = 64, lr: float = 0.1,
        hidden=(100, 100), optimizer: str = "Momentum", progress: bool = True):
    """Draw every schedule's curve and train the same network under each; plot losses and accuracies.

    Parameters
    ----------
    dataset : {'digits', 'mnist'}
        Training data.
    out : path-like, optional
        Output directory for ``lr-schedules.png``.
    seed : int
        ``np.random.seed`` before each network's weights (the same weights for every schedule) and
        before the mini-batches are drawn.
    epochs : int
        Length of the run in epochs (``epochs * ceil(train size / batch_size)`` updates).
    batch_size : int
        Mini-batch size.
    lr : float
        Peak learning rate of every schedule (and the constant rate).
    hidden : sequence of int
        Hidden layer sizes.
    optimizer : str
        Optimizer name (one for all schedules; 1cycle cycles its ``momentum``/``beta1`` when it has one).
    progress : bool
        A tqdm bar over the steps.

    Returns
    -------
    data : dict
        ``lr`` (name -> rate per step), ``momentum`` (1cycle's per step), ``loss`` (name -> loss per
        step), ``smoothed``, ``test_acc`` (name -> test accuracy after the run), ``steps``, ``png``.
    fig : matplotlib.figure.Figure
    """
    where = "lr-schedules"
    epochs = _common.check_count(epochs, "epochs", where)
    batch_size = _common.check_count(batch_size, "batch_size", where)
    from .._checks import positive_number

    lr = positive_number(lr, "lr", where)
    (x_train, t_train), (x_test, t_test) = _common.load(dataset, where)
    steps = epochs * math.ceil(x_train.shape[0] / batch_size)
    schedules = schedules_for(lr, steps)
    networks, optimizers = {}, {}
    for name, schedule in schedules.items():
        np.random.seed(seed)
        networks[name] = MultiLayerNet(x_train.shape[1], list(hidden), 10)
        optimizers[name] = make_optimizer(optimizer, {"lr": schedule}, None, where)
    np.random.seed(seed)
    losses = _common.train_loss_curves(dataset, where, networks, optimizers, steps, batch_size, x_train, t_train,
                                       progress=progress)
    test_acc = {name: float(net.accuracy(x_test, t_test)) for name, net in networks.items()}
    t = np.arange(steps)
    rates = {name: np.array([s(int(i)) for i in t]) if callable(s) else np.full(steps, s)
             for name, s in schedules.items()}
    cycle = schedules.get("one-cycle")
    momentum = np.array([cycle.momentum(int(i)) for i in t]) if callable(getattr(cycle, "momentum", None)) else None
    smoothed = {k: _common.smooth_curve(v) for k, v in losses.items()}

    names = list(schedules)
    colors = {name: f"C{i}" for i, name in enumerate(names)}
    styles = {name: ("-", "--", "-.", ":")[i % 4] for i, name in enumerate(names)}
    rows = math.ceil(len(names) / COLUMNS)
    fig = _common.figure(figsize=(13, 2.0 * rows + 5.2))
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.0 * rows, 5.0])
    axes = _common.panel_grid(top, len(names), COLUMNS)
    for ax, name in zip(axes, names):
        ax.plot(t, rates[name], color=colors[name], lw=1.6)
        ax.set_title(name, fontsize=10)
        ax.grid(True, lw=0.3)
        if name == "one-cycle" and momentum is not None:
            twin = ax.twinx()
            twin.plot(t, momentum, color="0.5", lw=1, ls="--")
            twin.set_ylabel("momentum (dashed)", fontsize=8, color="0.4")
            twin.tick_params(labelsize=7, colors="0.4")
    _common.finish_grid(top, axes, len(names), COLUMNS, "step", "learning rate", legend=False)
    top.suptitle(f"Learning-rate schedules over {steps} steps ({epochs} epochs), peak rate {lr:g}")

    ax_loss, ax_acc = bottom.subplots(1, 2, width_ratios=[2.3, 1])
    for name in names:
        ax_loss.plot(t + 1, np.maximum(smoothed[name], FLOOR), color=colors[name], ls=styles[name], lw=1.4,
                     label=name)
    ax_loss.set_yscale("log")
    low = max(FLOOR, min(float(np.min(v)) for v in smoothed.values()))
    ax_loss.set(xlabel="step", ylabel="training loss (smoothed)", ylim=(low / 2, 4.0))
    ax_loss.grid(True, which="major", lw=0.3)
    ax_loss.legend(fontsize=8, ncols=3, loc="lower left")
    ax_loss.set_title("training loss (same net, same seed, same batches)", fontsize=10)
    order = sorted(names, key=lambda n: test_acc[n])
    ax_acc.barh(range(len(order)), [test_acc[n] for n in order], color=[colors[n] for n in order])
    ax_acc.set_yticks(range(len(order)), order, fontsize=9)
    ax_acc.set_xlim(max(0.0, min(test_acc.values()) - 0.05), 1.0)
    for i, n in enumerate(order):
        ax_acc.text(test_acc[n], i, f" {test_acc[n]:.3f}", va="center", fontsize=8)
    ax_acc.set(xlabel="test accuracy after the run")
    ax_acc.set_title("test accuracy", fontsize=10)
    sizes = "-".join(map(str, [x_train.shape[1], *hidden, 10]))
    bottom.suptitle(f"{optimizer} on {dataset}: {sizes} ReLU net, batch {batch_size}")
    path = _common.save(fig, out, where)
    print(f"{where}: test accuracy after {steps} steps: " + ", ".join(f"{k} {v:.3f}" for k, v in test_acc.items())
          + f" -> {path}")
    data = {"lr": rates, "momentum": momentum, "loss": losses, "smoothed": smoothed, "test_acc": test_acc,
            "steps": steps, "png": str(path)}
    return data, fig

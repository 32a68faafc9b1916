"""``optimizer-paths``: every registered optimizer on ``f(x, y) = x²/20 + y²`` (the book's figure 6-8).

Each optimizer of :data:`fastdl.optim.RULES` (the book's six, then AdaMax, Nadam, AdamW, then any
registered from outside) starts at (-7, 2) and takes 30 steps; the figure draws each path over
the contour lines of ``f``, one small panel per optimizer. The book's learning rates for its four
(SGD 0.95, Momentum 0.1, AdaGrad 1.5, Adam 0.3); for the others rates of the same family chosen
so that each reaches the valley floor in 30 steps (:data:`LEARNING_RATES`), the rule's default
for a rule not listed there. SGD zig-zags along the steep y direction, Momentum and Nesterov roll
like a ball (Nesterov damps the swing), AdaGrad damps the y steps at once, the Adam family moves
like a damped ball.
"""

from __future__ import annotations

import math

import numpy as np

from .. import optim
from ..trainer import make_optimizer
from . import _common

#: Class name -> learning rate: the book's four, then ours for the rules the book lacks.
LEARNING_RATES = {"SGD": 0.95, "Momentum": 0.1, "Nesterov": 0.1, "AdaGrad": 1.5, "RMSprop": 0.15, "Adam": 0.3,
                  "AdaMax": 0.3, "Nadam": 0.3, "AdamW": 0.3}
START = (-7.0, 2.0)
#: Panels per row of the figure.
COLUMNS = 3


def f(x, y):
    """``x**2 / 20 + y**2``."""
    return x**2 / 20.0 + y**2


def df(x, y):
    """Gradient of :func:`f`: ``(x / 10, 2 * y)``."""
    return x / 10.0, 2.0 * y


def learning_rates() -> dict[str, float]:
    """Class name -> learning rate for every rule of :data:`fastdl.optim.RULES`, in the table's order."""
    rates = {}
    for rule in optim.RULES.values():
        rates[rule.class_name] = LEARNING_RATES.get(rule.class_name, rule.defaults.get("lr", 0.01))
    return rates


def run(dataset: str = "digits", out=None, seed: int = 0, steps: int = 30, backend=None):
    """Trace every optimizer's path on ``f`` and draw them over its contours, one panel each.

    Parameters
    ----------
    dataset : str
        Unused (the study needs no data); accepted so every experiment has the same call.
    out : path-like, optional
        Output directory for ``optimizer-paths.png``.
    seed : int
        Unused (the paths are deterministic); accepted for the common call.
    steps : int
        Steps per optimizer (the book: 30).
    backend : None, str or module
        Where the optimizers come from (``None``: :mod:`fastdl.optim`; ``'reference'``: the rules'
        :mod:`fastdl.reference` twins).

    Returns
    -------
    data : dict
        ``paths`` (class name -> ``(steps, 2)`` positions, before each update, as the book records
        them), ``final`` (name -> position after the last step), ``final_f`` (name -> ``f`` there), ``lr``.
    fig : matplotlib.figure.Figure
    """
    where = "optimizer-paths"
    steps = _common.check_count(steps, "steps", where)
    rates = learning_rates()
    paths, final = {}, {}
    for name, lr in rates.items():
        optimizer = make_optimizer(name, {"lr": lr}, backend, where)
        params = {"x": np.array([START[0]]), "y": np.array([START[1]])}
        grads = {"x": np.zeros(1), "y": np.zeros(1)}
        trace = np.empty((steps, 2))
        for i in range(steps):
            trace[i] = params["x"][0], params["y"][0]
            gx, gy = df(params["x"][0], params["y"][0])
            grads["x"][0], grads["y"][0] = gx, gy
            optimizer.update(params, grads)
        paths[name] = trace
        final[name] = (float(params["x"][0]), float(params["y"][0]))
    final_f = {name: float(f(*pos)) for name, pos in final.items()}

    fig = _common.figure(figsize=(4.0 * COLUMNS, 2.6 * math.ceil(len(paths) / COLUMNS) + 0.6))
    axes = _common.panel_grid(fig, len(paths), COLUMNS)
    xs, ys = np.arange(-10, 10, 0.05), np.arange(-5, 5, 0.05)
    X, Y = np.meshgrid(xs, ys)
    Z = f(X, Y)
    Z[Z > 7] = 0  # the book hides the outer contour lines this way
    for ax, (name, trace) in zip(axes, paths.items()):
        ax.contour(X, Y, Z, levels=12, cmap="Greys", linewidths=0.6)
        ax.plot(trace[:, 0], trace[:, 1], "o-", color="tab:red", ms=2.5, lw=1, label="path")
        ax.plot(0, 0, "+", color="tab:blue", ms=10, mew=2, label="minimum")
        ax.set_title(f"{name} (lr={rates[name]:g}): f = {final_f[name]:.2g}", fontsize=10)
        ax.set(xlim=(-10, 10), ylim=(-4, 4))
    _common.finish_grid(fig, axes, len(paths), COLUMNS, "x", "y")
    fig.suptitle(f"Optimizer paths on f(x, y) = x²/20 + y² from (-7, 2), {steps} steps (f after the last step)")
    path = _common.save(fig, out, where)
    print(f"{where}: f after {steps} steps: " + ", ".join(f"{k} {v:.3g}" for k, v in final_f.items()) + f" -> {path}")
    data = {"paths": paths, "final": final, "final_f": final_f, "lr": rates, "steps": steps, "png": str(path)}
    return data, fig

"""``optimizer-paths``: SGD, Momentum, AdaGrad and Adam on ``f(x, y) = x²/20 + y²`` (the book's figure 6-8).

Each optimizer starts at (-7, 2) and takes 30 steps with the book's learning rates (0.95, 0.1, 1.5,
0.3); the figure draws each path over the contour lines of ``f``, one panel per optimizer. SGD
zig-zags along the steep y direction, Momentum rolls like a ball, AdaGrad damps the y steps at
once, Adam moves like a damped ball.
"""

from __future__ import annotations

import numpy as np

from ..trainer import make_optimizer
from . import _common

#: The book's settings: name -> learning rate.
LEARNING_RATES = {"SGD": 0.95, "Momentum": 0.1, "AdaGrad": 1.5, "Adam": 0.3}
START = (-7.0, 2.0)


def f(x, y):
    """``x**2 / 20 + y**2``."""
    return x**2 / 20.0 + y**2


def df(x, y):
    """Gradient of :func:`f`: ``(x / 10, 2 * y)``."""
    return x / 10.0, 2.0 * y


def run(dataset: str = "digits", out=None, seed: int = 0, steps: int = 30, backend=None):
    """Trace the four optimizers' paths on ``f`` and draw them over its contours.

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
        Where the optimizers come from (``None``: :mod:`fastdl.optim`).

    Returns
    -------
    data : dict
        ``paths`` (name -> ``(steps, 2)`` positions, before each update, as the book records them),
        ``final`` (name -> position after the last step), ``final_f`` (name -> ``f`` there), ``lr``.
    fig : matplotlib.figure.Figure
    """
    where = "optimizer-paths"
    steps = _common.check_count(steps, "steps", where)
    paths, final = {}, {}
    for name, lr in LEARNING_RATES.items():
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

    fig = _common.figure(figsize=(10, 8))
    axes = fig.subplots(2, 2).ravel()
    xs, ys = np.arange(-10, 10, 0.05), np.arange(-5, 5, 0.05)
    X, Y = np.meshgrid(xs, ys)
    Z = f(X, Y)
    Z[Z > 7] = 0  # the book hides the outer contour lines this way
    for ax, (name, trace) in zip(axes, paths.items()):
        ax.contour(X, Y, Z, levels=12, cmap="Greys", linewidths=0.8)
        ax.plot(trace[:, 0], trace[:, 1], "o-", color="red", ms=3, lw=1,
                label=f"{name} path (lr={LEARNING_RATES[name]})")
        ax.plot(0, 0, "+", color="blue", ms=12, mew=2, label="minimum (0, 0)")
        ax.set(xlim=(-10, 10), ylim=(-10, 10), xlabel="x", ylabel="y",
               title=f"{name}: f = {final_f[name]:.2g} after {steps} steps")
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"Optimizer paths on f(x, y) = x²/20 + y² from (-7, 2), {steps} steps")
    path = _common.save(fig, out, where)
    print(f"{where}: f after {steps} steps: " + ", ".join(f"{k} {v:.3g}" for k, v in final_f.items()) + f" -> {path}")
    data = {"paths": paths, "final": final, "final_f": final_f, "lr": dict(LEARNING_RATES), "steps": steps,
            "png": str(path)}
    return data, fig

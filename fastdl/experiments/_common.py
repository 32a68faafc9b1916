"""Shared pieces of the experiments: data, output paths, figures, the book's ``smooth_curve``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATASETS = ("digits", "mnist")


def load(dataset: str, where: str):
    """``((x_train, t_train), (x_test, t_test))`` of ``'digits'`` or ``'mnist'`` (normalized, labels)."""
    from .. import datasets

    if dataset == "digits":
        return datasets.load_digits(normalize=True)
    if dataset == "mnist":
        return datasets.load_mnist(normalize=True)
    raise ValueError(f"{where}: dataset must be one of {DATASETS}; got {dataset!r}")


def out_dir(out) -> Path:
    """The output directory (created); ``None`` means :data:`fastdl.experiments.DEFAULT_OUT`."""
    from . import DEFAULT_OUT

    path = Path(out) if out is not None else DEFAULT_OUT
    path.mkdir(parents=True, exist_ok=True)
    return path


def figure(**kwargs):
    """A matplotlib Figure not attached to pyplot (no GUI backend, freed when dropped)."""
    from matplotlib.figure import Figure

    kwargs.setdefault("layout", "constrained")
    return Figure(**kwargs)


def panel_grid(fig, n: int, columns: int) -> np.ndarray:
    """``n`` small panels (shared axes) in rows of ``columns`` on ``fig`` (a Figure or SubFigure), as a flat array."""
    rows = -(-n // columns)
    return np.atleast_1d(fig.subplots(rows, columns, sharex=True, sharey=True)).ravel()


def finish_grid(fig, axes, n: int, columns: int, xlabel: str, ylabel: str, legend: bool = True) -> None:
    """Hide the panels past ``n``, label the outer axes, and (``legend``) put the first panel's legend under ``fig``."""
    for ax in axes[n:]:
        ax.set_visible(False)
    rows = -(-n // columns)
    for ax in axes[(rows - 1) * columns:]:
        ax.set_xlabel(xlabel)
    for ax in axes[::columns]:
        ax.set_ylabel(ylabel)
    if legend:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=9)


def save(fig, out, name: str) -> Path:
    """Write ``fig`` as ``<out>/<name>.png`` and return the path."""
    path = out_dir(out) / f"{name}.png"
    fig.savefig(path, dpi=100)
    return path


def smooth_curve(x) -> np.ndarray:
    """The book's loss smoothing (``common/util.smooth_curve``): an 11-point Kaiser window, same length out."""
    x = np.asarray(x, dtype=float)
    window_len = 11
    if x.size < window_len:
        return x.copy()
    s = np.r_[x[window_len - 1:0:-1], x, x[-1:-window_len:-1]]
    w = np.kaiser(window_len, 2)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[5:len(y) - 5]


def check_count(value, name: str, where: str, minimum: int = 1) -> int:
    """A positive (>= minimum) integer option, or a ValueError/TypeError in the house wording."""
    from .._checks import count

    return count(value, name, where, minimum)


def train_loss_curves(dataset: str, where: str, networks: dict, optimizers: dict, iterations: int,
                      batch_size: int, x_train, t_train, progress: bool = True) -> dict[str, list[float]]:
    """The book's comparison loop: each network steps on the same mini-batch; loss after the update.

    ``progress``: a tqdm bar over the iterations (on stderr).
    """
    from tqdm.auto import tqdm

    train_size = x_train.shape[0]
    losses: dict[str, list[float]] = {key: [] for key in networks}
    for _ in tqdm(range(iterations), desc=where, unit="step", disable=not progress, leave=False):
        batch_mask = np.random.choice(train_size, batch_size)
        x_batch, t_batch = x_train[batch_mask], t_train[batch_mask]
        for key, net in networks.items():
            grads = net.gradient(x_batch, t_batch)
            optimizers[key].update(net.trainable_params, grads)
            losses[key].append(float(net.loss(x_batch, t_batch)))
    return losses


def plot_loss_curves(ax, losses: dict, markers: dict, ylim) -> None:
    """Smoothed loss per key, markers every tenth of the run (the book's figures 6-9 and 6-15)."""
    for key, values in losses.items():
        x = np.arange(1, len(values) + 1)
        ax.plot(x, smooth_curve(values), marker=markers.get(key), markevery=max(1, len(values) // 20), label=key)
    ax.set(xlabel="iterations", ylabel="loss (smoothed)", ylim=ylim)
    ax.legend()

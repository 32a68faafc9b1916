"""A training run's record (:class:`History`: per-epoch metrics, timing, stop reason; JSON) and its figure.

:class:`fastdl.Trainer` fills a :class:`History`; :func:`plot_history` draws loss and accuracy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import _io
from .metrics import r2_score

__all__ = ["History", "plot_history", "plot_predictions"]


class History:
    """What a training run did: per-epoch metrics, timing, and why it stopped.

    Attributes
    ----------
    epochs : list of dict
        One dict per evaluation: ``epoch``, ``iteration``, ``train_loss`` (mean over the steps since the
        previous evaluation), ``train_acc``, ``test_acc``, ``elapsed_s`` (wall time since the start),
        ``samples_per_s`` (training samples per second of step time in that epoch).
    train_loss : list of float
        The loss of every step (the book's ``train_loss_list``).
    config : dict
        Network, optimizer and run settings.
    final_test_acc : float or None
        Accuracy on the whole test set at the end (None for a regression network).
    final_test_r2 : float or None
        A regression network's R² on the whole test set at the end (None for a classifier; in
        :meth:`to_dict` only when set).
    stop_reason : str
        ``'completed'``, or why the run stopped early.
    best_epoch : int or None
        Epoch of the best monitored value (with early stopping).
    wall_time_s, train_time_s : float
        Whole run, and the part spent in training steps (no evaluation).
    samples_per_s : float
        Training samples per second of step time.
    iterations : int
        Steps taken.
    """

    def __init__(self, config: dict | None = None) -> None:
        self.config: dict = dict(config or {})
        self.epochs: list[dict] = []
        self.train_loss: list[float] = []
        self.final_test_acc: float | None = None
        self.final_test_r2: float | None = None
        self.stop_reason = "not started"
        self.best_epoch: int | None = None
        self.wall_time_s = 0.0
        self.train_time_s = 0.0
        self.samples_per_s = 0.0
        self.iterations = 0

    def metric(self, name: str) -> list:
        """The per-epoch values of ``name`` (``'test_acc'``, ``'train_loss'``, ...).

        Parameters
        ----------
        name : str
            A key of the per-epoch dicts.

        Returns
        -------
        list
        """
        return [e[name] for e in self.epochs]

    def to_dict(self) -> dict:
        """Plain JSON-ready dict of everything recorded.

        Returns
        -------
        dict
        """
        out = {
            "config": self.config,
            "stop_reason": self.stop_reason,
            "final_test_acc": self.final_test_acc,
            "best_epoch": self.best_epoch,
            "iterations": self.iterations,
            "wall_time_s": self.wall_time_s,
            "train_time_s": self.train_time_s,
            "samples_per_s": self.samples_per_s,
            "epochs": self.epochs,
            "train_loss": self.train_loss,
        }
        if self.final_test_r2 is not None:
            out["final_test_r2"] = self.final_test_r2
        return out

    def save_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON (non-finite numbers as ``null``); create parent directories.

        Parameters
        ----------
        path : str or Path
            Target file.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_json_ready(self.to_dict()), indent=1, allow_nan=False).encode()
        return _io.atomic_write(path, lambda fh: fh.write(text))

    def __repr__(self) -> str:
        return (f"History({len(self.epochs)} epochs, {self.iterations} steps, final_test_acc={self.final_test_acc}, "
                f"stop_reason={self.stop_reason!r})")


def _json_ready(obj):
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_ready(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return str(obj)


def plot_history(history: History, path: str | Path | None = None, title: str | None = None):
    """Loss per step (and per-epoch mean) beside train/test accuracy (a regression run's R²) per epoch.

    Parameters
    ----------
    history : History
        A finished run's history.
    path : str or Path, optional
        Where to save the PNG.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    steps = np.arange(1, len(history.train_loss) + 1)
    ax_loss.plot(steps, history.train_loss, lw=0.8, alpha=0.6, label="mini-batch loss")
    r2 = bool(history.epochs) and "test_r2" in history.epochs[0]
    metric = "r2" if r2 else "acc"
    if history.epochs:
        ax_loss.plot(history.metric("iteration"), history.metric("train_loss"), "o-", ms=3, label="epoch mean")
        epochs = history.metric("epoch")
        ax_acc.plot(epochs, history.metric(f"train_{metric}"), "o-", ms=3, label="train")
        ax_acc.plot(epochs, history.metric(f"test_{metric}"), "s--", ms=3, label="test")
    ax_loss.set(xlabel="step", ylabel="loss", title="training loss (mini-batch, after each update)")
    finite = np.asarray(history.train_loss, dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
        ax_loss.set_yscale("log")
    ax_loss.legend()
    if r2:  # (R² is unbounded below: show from -1 at most)
        low = min([0.0, *history.metric("train_r2"), *history.metric("test_r2")])
        ax_acc.set(xlabel="epoch", ylabel="R²", title="R² (1 - SS_res / SS_tot)", ylim=(max(low, -1.0) - 0.02, 1.02))
    else:
        ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    from matplotlib.ticker import MaxNLocator

    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax_acc.legend(loc="lower right")
    fig.suptitle(title or history.config.get("network", "training"))
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _io.atomic_write(path, lambda fh: fig.savefig(fh, dpi=110, format=Path(path).suffix.lstrip(".") or "png"))
    return fig


def plot_predictions(t, y, path: str | Path | None = None, title: str | None = None):
    """Predicted against true values of a regression test set (one panel per output), with the line ``y = t``.

    Parameters
    ----------
    t, y : numpy.ndarray
        Targets and predictions, ``(N,)`` or ``(N, D)`` of one shape.
    path : str or Path, optional
        Where to save the PNG (written atomically).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    t2 = np.asarray(t, dtype=float).reshape(len(t), -1)
    y2 = np.asarray(y, dtype=float).reshape(t2.shape)
    d = t2.shape[1]
    fig = Figure(figsize=(max(4.6 * d, 6.4), 5.0), layout="constrained")
    for j, ax in enumerate(np.atleast_1d(fig.subplots(1, d))):
        tj, yj = t2[:, j], y2[:, j]
        lo, hi = min(tj.min(), yj.min()), max(tj.max(), yj.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = t")
        ax.scatter(tj, yj, s=14, alpha=0.7, label=f"test samples ({len(tj)})")
        rmse = float(np.sqrt(np.mean((yj - tj) ** 2)))
        r2 = r2_score(tj, yj)
        ax.set(xlabel="true", ylabel="predicted", aspect="equal",
               title=f"output {j}: RMSE {rmse:.4g}, R² {r2:.3f}" if d > 1 else f"RMSE {rmse:.4g}, R² {r2:.3f}")
        ax.legend(loc="upper left")
    fig.suptitle(title or "predicted vs true", fontsize="medium", wrap=True)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _io.atomic_write(path, lambda fh: fig.savefig(fh, dpi=110, format=Path(path).suffix.lstrip(".") or "png"))
    return fig

"""Trainer callbacks: performance-based learning-rate scheduling (Keras' ``ReduceLROnPlateau``).

A callback is any object with some of these methods, called by :class:`fastdl.Trainer`:

``on_train_begin(trainer)``
    before the first step of ``train()``;
``on_epoch_end(epoch, logs, trainer)``
    after each epoch's evaluation; ``epoch`` counts from 0 and ``logs`` maps the epoch's metrics
    (``train_loss``, ``train_acc``, ``test_acc``, and ``val_loss``/``val_acc`` when the Trainer has
    validation data) to numbers; a callback may add entries (``ReduceLROnPlateau`` adds
    ``learning_rate``, as Keras does).

Callbacks with ``state_dict()``/``load_state_dict()`` have their state saved in checkpoints, so
a resumed run continues their counters.
"""

from __future__ import annotations

import math
import warnings

from . import _checks

__all__ = ["Callback", "ReduceLROnPlateau"]


class Callback:
    """Base class with no-op hooks (subclassing it is optional: the Trainer looks methods up by name)."""

    def on_train_begin(self, trainer) -> None:
        """Called once before training starts."""

    def on_epoch_end(self, epoch: int, logs: dict, trainer) -> None:
        """Called after each epoch's evaluation."""


class ReduceLROnPlateau(Callback):
    """Multiply the optimizer's ``lr`` by ``factor`` when ``monitor`` stops improving (Keras' semantics).

    After each epoch: an improvement is ``current < best - min_delta`` (mode ``'min'``) or
    ``current > best + min_delta`` (mode ``'max'``); ``'auto'`` picks ``'max'`` for accuracies
    (names ending in ``acc``/``accuracy``) and ``'min'`` otherwise. While in cooldown the wait counter
    stays 0. Otherwise, after ``patience`` epochs without improvement, if ``lr > min_lr`` the rate
    becomes ``max(lr * factor, min_lr)`` and a cooldown of ``cooldown`` epochs starts.

    The optimizer's ``lr`` must be a number (a schedule already decides the rate by itself; Keras
    refuses the combination too).

    Parameters
    ----------
    monitor : str, default 'val_loss'
        A metric the Trainer logs each epoch.
    factor : float, default 0.1
        In (0, 1).
    patience : int, default 10
        Epochs without improvement before reducing.
    mode : {'auto', 'min', 'max'}, default 'auto'
    min_delta : float, default 1e-4
        Smallest change counted as an improvement.
    cooldown : int, default 0
        Epochs to wait after a reduction before counting again.
    min_lr : float, default 0.0
        Lower bound on the rate.
    verbose : int, default 0
        1 prints a line on each reduction.
    """

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, mode: str = "auto",
                 min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0, verbose: int = 0) -> None:
        where = "ReduceLROnPlateau"
        if not isinstance(monitor, str) or not monitor:
            _checks.fail(where, "monitor", "a metric name such as 'val_loss'", _checks.describe(monitor), TypeError)
        self.factor = _checks.positive_number(factor, "factor", where, upper=1.0)
        for name, value in (("patience", patience), ("cooldown", cooldown)):
            if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) < 0:
                _checks.fail(where, name, "an integer >= 0", _checks.describe(value))
        if mode not in ("auto", "min", "max"):
            _checks.fail(where, "mode", "'auto', 'min' or 'max'", repr(mode))
        self.monitor, self.mode = monitor, mode
        self.patience, self.cooldown = int(patience), int(cooldown)
        self.min_delta = _checks.positive_number(min_delta, "min_delta", where, allow_zero=True)
        self.min_lr = _checks.positive_number(min_lr, "min_lr", where, allow_zero=True)
        self.verbose = int(verbose)
        self._reset()

    @property
    def maximize(self) -> bool:
        """True when larger values of ``monitor`` are better."""
        if self.mode != "auto":
            return self.mode == "max"
        name = self.monitor.removeprefix("val_").removeprefix("train_").removeprefix("test_")
        return name in ("acc", "accuracy")

    def _reset(self) -> None:
        self.best: float | None = None
        self.wait = 0
        self.cooldown_counter = 0

    def on_train_begin(self, trainer) -> None:
        self._reset()

    def _improved(self, current: float) -> bool:
        if self.best is None:
            return True
        if self.maximize:
            return current - self.min_delta > self.best
        return current + self.min_delta < self.best

    def on_epoch_end(self, epoch: int, logs: dict, trainer) -> None:
        optimizer = trainer.optimizer
        lr = getattr(optimizer, "lr", None)
        if callable(lr) or lr is None:
            _checks.fail("ReduceLROnPlateau", "optimizer.lr", "a number (a schedule sets the rate itself)",
                         _checks.describe(lr), TypeError)
        logs["learning_rate"] = float(lr)
        current = logs.get(self.monitor)
        if current is None or not math.isfinite(float(current)):
            warnings.warn(f"ReduceLROnPlateau: metric {self.monitor!r} is not available this epoch "
                          f"(the Trainer logs {', '.join(sorted(logs))})", RuntimeWarning, stacklevel=2)
            return
        current = float(current)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and float(lr) > self.min_lr:
                new_lr = max(float(lr) * self.factor, self.min_lr)
                optimizer.lr = new_lr
                logs["learning_rate"] = new_lr
                if self.verbose:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def get_config(self) -> dict:
        return {"monitor": self.monitor, "factor": self.factor, "patience": self.patience, "mode": self.mode,
                "min_delta": self.min_delta, "cooldown": self.cooldown, "min_lr": self.min_lr,
                "verbose": self.verbose}

    def state_dict(self) -> dict:
        """The counters a resumed run continues from."""
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s counters (validated before anything changes)."""
        where = "ReduceLROnPlateau.load_state_dict"
        try:
            best = None if state["best"] is None else float(state["best"])
            wait, cooldown_counter = int(state["wait"]), int(state["cooldown_counter"])
        except (KeyError, TypeError, ValueError):
            _checks.fail(where, "state", "a dict from state_dict() (best, wait, cooldown_counter)",
                         _checks.describe(state), TypeError)
        self.best, self.wait, self.cooldown_counter = best, wait, cooldown_counter

    def __repr__(self) -> str:
        return f"ReduceLROnPlateau({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"

"""The book's ``Trainer`` (``common/trainer.py``) with a progress bar, early stopping and a history.

What is the book's, kept as it is
    The arguments, ``train_step()``/``train()``, the lists ``train_loss_list`` (one entry per step:
    the loss of the mini-batch *after* the update, in evaluation mode), ``train_acc_list`` and
    ``test_acc_list`` (one entry per epoch, the first taken after the first step), mini-batches drawn
    with replacement by ``np.random.choice`` from NumPy's global generator, and
    ``max_iter = int(epochs * max(train_size / batch, 1))``: a seeded run draws the book's batches.

What is new
    ``optimizer`` may be an instance or any registry name (case-insensitive; the book's ``'rmsprpo'``
    typo works too); a tqdm progress bar with loss and accuracy (none with ``verbose=False``); ``seed``;
    early stopping (``patience``, ``min_delta``, ``monitor``, ``restore_best_weights``); a run stops on a
    non-finite loss and says so; :class:`History` with per-epoch metrics, wall time, samples/s and
    :meth:`History.save_json`; checkpoints (``checkpoint_dir``, Ctrl-C) and :meth:`Trainer.resume`, which
    continues a run bit for bit (see :mod:`fastdl.checkpoint`).

One deliberate fix: the book tests ``current_iter % iter_per_epoch == 0`` with a float
``iter_per_epoch``, which is never true again when the training size is not a multiple of the batch
size (1,437 digits / 100). Here an epoch ends whenever ``current_iter`` crosses a multiple of
``iter_per_epoch``; for whole numbers (MNIST's 600) that is exactly the book's schedule.
"""

from __future__ import annotations

import math
import operator
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import _checks, optim
from .history import History, plot_history, plot_predictions
from .schedules import schedule_config

__all__ = ["MONITORS", "History", "Trainer", "make_optimizer", "plot_history", "plot_predictions"]

#: Metrics early stopping can watch, and whether larger is better.
MONITORS = {"test_acc": True, "train_acc": True, "train_loss": False, "val_acc": True, "val_loss": False,
            "test_r2": True, "train_r2": True, "val_r2": True}


def _optimizer_classes(module) -> dict[str, type]:
    """Lower-case class name -> optimizer class for a module that has no ``get_optimizer``."""
    found = getattr(module, "OPTIMIZERS", None)
    if isinstance(found, dict):
        return {k.lower(): v for k, v in found.items()}
    return {name.lower(): obj for name, obj in vars(module).items()
            if isinstance(obj, type) and callable(getattr(obj, "update", None))}


def make_optimizer(optimizer: str | Any, optimizer_param: dict | None = None, backend=None,
                   where: str = "make_optimizer"):
    """An optimizer instance from a name (any case) or an existing instance.

    Parameters
    ----------
    optimizer : str or object
        A name such as ``'sgd'``, ``'Adam'`` (the registry of :mod:`fastdl.optim`, or of
        :mod:`fastdl.reference` with ``backend='reference'``), or an object with ``update(params, grads)``.
    optimizer_param : dict, optional
        Keyword arguments for the class (not allowed with an instance).
    backend : None, str or module
        ``None``/``'fastdl'``: :mod:`fastdl.optim`; ``'reference'``: :mod:`fastdl.reference`; or a module.
    where : str
        Caller name for error messages.

    Returns
    -------
    object
        The optimizer.
    """
    if not isinstance(optimizer, str):
        if not callable(getattr(optimizer, "update", None)):
            _checks.fail(where, "optimizer", "a name such as 'adam' or an object with update(params, grads)",
                         _checks.describe(optimizer), TypeError)
        if optimizer_param:
            _checks.fail(where, "optimizer_param", "empty when optimizer is an instance (configure the instance)",
                         repr(optimizer_param))
        return optimizer
    params = dict(optimizer_param or {})
    name = optim.ALIASES.get(optimizer.lower(), optimizer.lower())  # the book's aliases ('rmsprpo') are in the table
    if backend is None or backend == "fastdl" or backend == "reference":
        known = optim.RULES if backend == "reference" else optim.OPTIMIZERS  # (the reference twins: the rules')
        if name not in known:
            _checks.fail(where, "optimizer", f"one of {tuple(sorted(known))} (any case) or an instance",
                         repr(optimizer))
        classes = {name: optim.RULES[name].reference_class() if backend == "reference" else optim.OPTIMIZERS[name]}
    elif isinstance(backend, str):
        _checks.fail(where, "backend", "'fastdl', 'reference', None or a module", repr(backend))
    else:
        classes = _optimizer_classes(backend)
        if name not in classes:
            getter = getattr(backend, "get_optimizer", None)
            if callable(getter):  # the registry may know more names than its classes
                try:
                    return getter(name, **params)
                except (KeyError, ValueError):
                    pass
            _checks.fail(where, "optimizer", f"one of {tuple(sorted(classes))} (any case) or an instance",
                         repr(optimizer))
    try:
        return classes[name](**params)
    except TypeError as exc:
        _checks.fail(where, "optimizer_param", f"keyword arguments accepted by {classes[name].__name__}",
                     f"{params!r} ({exc})", TypeError)


def _count(value, name: str, where: str, allow_none: bool = False, minimum: int = 1):
    if value is None and allow_none:
        return None
    try:
        v = operator.index(value)
    except TypeError:
        _checks.fail(where, name, f"an integer >= {minimum}", _checks.describe(value), TypeError)
    if isinstance(value, bool) or v < minimum:
        _checks.fail(where, name, f"an integer >= {minimum}", repr(value))
    return v


class Trainer:
    """Train a book-style network with mini-batch gradient descent (the book's ``Trainer``, extended).

    Parameters
    ----------
    network : object
        Has ``params``, ``gradient(x, t)``, ``loss(x, t)`` and ``accuracy(x, t)`` (a :mod:`fastdl.nets`
        network, or the book's own).
    x_train, t_train, x_test, t_test : numpy.ndarray
        Data; ``x`` is cast once to the network's ``dtype`` when it has one.
    epochs : int
        Number of epochs.
    mini_batch_size : int
        Samples per step.
    optimizer : str or object
        Registry name (any case) or an optimizer instance.
    optimizer_param : dict, optional
        Arguments of the optimizer class (default ``{'lr': 0.01}`` for a name, as the book).
    evaluate_sample_num_per_epoch : int, optional
        Evaluate accuracy on only the first this-many samples of each set per epoch.
    verbose : bool
        Progress bar and the book's per-epoch lines; ``False`` prints nothing.
    seed : int, optional
        ``np.random.seed(seed)`` at the start of :meth:`train` (mini-batches and dropout masks).
    patience : int, optional
        Stop after this many evaluations without an improvement of ``monitor`` by more than
        ``min_delta``; ``None`` disables early stopping.
    min_delta : float
        Smallest change that counts as an improvement.
    monitor : {'test_acc', 'train_acc', 'train_loss', 'val_acc', 'val_loss', 'test_r2', 'train_r2', 'val_r2'}
        Watched metric (``'test_acc'`` is the accuracy on the data given as the test set; the
        ``val_`` metrics need ``validation_data`` and keep the test set unseen). For a regression
        network (``loss_name == 'mse'``) the accuracies are its R² (``network.score``), recorded as
        ``train_r2``/``test_r2``/``val_r2``; an ``_acc`` monitor then watches the ``_r2`` metric.
    restore_best_weights : bool
        On early stopping, copy the best parameters (and batch-norm running statistics) back
        into the network's arrays, in place, so its layers keep their references.
    backend : None, str or module
        Where optimizer names are looked up (``None``: :mod:`fastdl.optim`).
    checkpoint_dir : str or Path, optional
        Write checkpoints here (see :mod:`fastdl.checkpoint`): every ``checkpoint_every`` epochs,
        at the end, and on Ctrl-C (SIGINT: the current step finishes, the checkpoint is written,
        then ``KeyboardInterrupt`` is raised). Needs a :mod:`fastdl.nets` network and an optimizer
        with ``state_dict()``; a directory that already holds checkpoints is refused (continue
        that run with :meth:`resume`). ``None`` (default): no checkpoints, Ctrl-C as usual.
    checkpoint_every : int
        Epochs between checkpoints (default 1).
    checkpoint_keep : int
        Checkpoint files kept (default 2: the latest and the one before).
    validation_data : tuple (x_val, t_val), optional
        Evaluated after every epoch as ``val_loss`` (the network's ``loss``, weight decay included,
        as Keras' ``val_loss`` includes regularization) and ``val_acc``; take it from the training
        data (:func:`fastdl.datasets.train_val_split`), never from the test set.
    callbacks : list, optional
        Objects with ``on_train_begin(trainer)`` and/or ``on_epoch_end(epoch, logs, trainer)``
        (see :mod:`fastdl.callbacks`, e.g. ``ReduceLROnPlateau``), called in order after each
        epoch's evaluation and before early stopping; ``logs`` holds the epoch's metrics. What a
        callback adds to ``logs`` (``learning_rate``) is recorded in the history. Callbacks with
        ``state_dict()`` are saved in checkpoints as ``'callbacks[i]'``.
    weight_constraint : callable, optional
        Applied in place to every weight matrix (``W1``, ``W2``, ...) after each update, e.g.
        :class:`fastdl.constraints.MaxNorm` (max-norm regularization).

    Attributes
    ----------
    train_loss_list, train_acc_list, test_acc_list : list
        The book's lists (for a regression network the accuracy lists hold the R² per epoch).
    history : History
        Per-epoch metrics, timing, stop reason.
    optimizer : object
        The optimizer instance.
    checkpoint_objects : dict
        Name -> object with ``state_dict()``/``load_state_dict(d)`` (a learning-rate schedule, a
        callback) saved in every checkpoint; give the same names to :meth:`resume`.
    checkpoint_extra : dict
        JSON-ready values stored in every checkpoint and restored by :meth:`resume`.
    last_checkpoint : Path or None
        The newest checkpoint this trainer wrote or resumed from.
    """

    def __init__(self, network, x_train, t_train, x_test, t_test, epochs: int = 20, mini_batch_size: int = 100,
                 optimizer: str | Any = "SGD", optimizer_param: dict | None = None,
                 evaluate_sample_num_per_epoch: int | None = None, verbose: bool = True, *,
                 seed: int | None = None, patience: int | None = None, min_delta: float = 0.0,
                 monitor: str = "test_acc", restore_best_weights: bool = False, backend=None,
                 checkpoint_dir=None, checkpoint_every: int = 1, checkpoint_keep: int = 2,
                 validation_data: tuple | None = None, callbacks: list | None = None,
                 weight_constraint=None) -> None:
        where = "Trainer"
        for attr in ("params", "gradient", "loss", "accuracy"):
            if not hasattr(network, attr):
                _checks.fail(where, "network", "a network with params, gradient, loss and accuracy",
                             f"{type(network).__name__} without {attr}", TypeError)
        self.network = network
        #: 'r2' for a regression network (its score), else 'acc' (its accuracy)
        self.metric = "r2" if getattr(network, "loss_name", None) == "mse" else "acc"
        if self.metric == "r2" and not callable(getattr(network, "score", None)):
            _checks.fail(where, "network", "a regression network with score(x, t)", type(network).__name__, TypeError)
        self.verbose = bool(verbose)
        dtype = getattr(network, "dtype", None)
        self.x_train, self.t_train = self._data(x_train, t_train, "x_train", "t_train", dtype, where)
        self.x_test, self.t_test = self._data(x_test, t_test, "x_test", "t_test", dtype, where)
        self.x_val = self.t_val = None
        if validation_data is not None:
            if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
                _checks.fail(where, "validation_data", "a pair (x_val, t_val)", _checks.describe(validation_data),
                             TypeError)
            self.x_val, self.t_val = self._data(*validation_data, "x_val", "t_val", dtype, where)
        if weight_constraint is not None and not callable(weight_constraint):
            _checks.fail(where, "weight_constraint", "a callable such as fastdl.constraints.MaxNorm(2.0)",
                         _checks.describe(weight_constraint), TypeError)
        self.weight_constraint = weight_constraint
        self.callbacks = list(callbacks or [])
        for i, cb in enumerate(self.callbacks):
            if not any(callable(getattr(cb, m, None)) for m in ("on_train_begin", "on_epoch_end")):
                _checks.fail(where, f"callbacks[{i}]", "an object with on_train_begin and/or on_epoch_end",
                             _checks.describe(cb), TypeError)
        self.epochs = _count(epochs, "epochs", where)
        self.batch_size = _count(mini_batch_size, "mini_batch_size", where)
        self.evaluate_sample_num_per_epoch = _count(evaluate_sample_num_per_epoch, "evaluate_sample_num_per_epoch",
                                                    where, allow_none=True)
        if isinstance(optimizer, str) and optimizer_param is None:
            optimizer_param = {"lr": 0.01}
        if optimizer_param is not None and not isinstance(optimizer_param, dict):
            _checks.fail(where, "optimizer_param", "a dict such as {'lr': 0.01}", _checks.describe(optimizer_param),
                         TypeError)
        self.optimizer = make_optimizer(optimizer, optimizer_param, backend, where)
        self.seed = None if seed is None else _count(seed, "seed", where, minimum=0)
        self.patience = _count(patience, "patience", where, allow_none=True)
        self.min_delta = _checks.positive_number(min_delta, "min_delta", where, allow_zero=True)
        if monitor not in MONITORS:
            _checks.fail(where, "monitor", f"one of {tuple(MONITORS)}", repr(monitor))
        if self.metric == "r2" and monitor.endswith("_acc"):
            monitor = monitor[:-len("acc")] + "r2"
        elif self.metric == "acc" and monitor.endswith("_r2"):
            _checks.fail(where, "monitor", "an accuracy or loss metric for a classifier ('_r2' needs a regression "
                         "network, loss='mse')", repr(monitor))
        if monitor.startswith("val_") and self.x_val is None:
            _checks.fail(where, "monitor", "a metric the trainer computes ('val_...' needs validation_data)",
                         repr(monitor))
        self.monitor = monitor
        self.restore_best_weights = bool(restore_best_weights)

        self.train_size = self.x_train.shape[0]
        self.iter_per_epoch = max(self.train_size / self.batch_size, 1)
        self.max_iter = int(self.epochs * self.iter_per_epoch)
        self.current_iter = 0
        self.current_epoch = 0
        self.train_loss_list: list = []
        self.train_acc_list: list = []
        self.test_acc_list: list = []
        self.history = History({
            "network": repr(network),
            "optimizer": type(self.optimizer).__name__,
            "optimizer_param": {k: schedule_config(v) if k == "lr" and callable(v) else v  # (JSON-ready)
                                for k, v in (optimizer_param or {}).items()},
            "epochs": self.epochs,
            "mini_batch_size": self.batch_size,
            "train_size": int(self.train_size),
            "test_size": int(self.x_test.shape[0]),
            "validation_size": None if self.x_val is None else int(self.x_val.shape[0]),
            "callbacks": [_callback_config(cb) for cb in self.callbacks],
            "weight_constraint": None if weight_constraint is None else _callback_config(weight_constraint),
            "max_iter": self.max_iter,
            "seed": self.seed,
            "patience": self.patience,
            "min_delta": self.min_delta,
            "monitor": self.monitor,
            "restore_best_weights": self.restore_best_weights,
        })
        self.stopped = False
        self._best = None
        self._best_state = None
        self._bad_epochs = 0
        self._epoch_losses: list[float] = []
        self._epoch_step_time = 0.0
        self._epoch_samples = 0
        self._bar = None
        self._start = None
        self.checkpoint_every = _count(checkpoint_every, "checkpoint_every", where)
        self.checkpoint_keep = _count(checkpoint_keep, "checkpoint_keep", where)
        self.checkpoint_dir = None
        if checkpoint_dir is not None:
            from .checkpoint import check_target

            self.checkpoint_dir = check_target(self, checkpoint_dir, where)
        self.checkpoint_objects: dict = {f"callbacks[{i}]": cb for i, cb in enumerate(self.callbacks)
                                         if callable(getattr(cb, "state_dict", None))}
        self.checkpoint_extra: dict = {}
        self.last_checkpoint = None
        self._last_checkpoint_iter = None
        self._resume_state = None
        self._fingerprint = None

    @classmethod
    def resume(cls, checkpoint, x_train, t_train, x_test, t_test, *, verbose: bool = True,
               checkpoint_objects: dict | None = None, validation_data: tuple | None = None,
               callbacks: list | None = None, weight_constraint=None) -> Trainer:
        """A trainer in the state of a checkpoint: :meth:`train` continues the run where it stopped.

        Network, optimizer and settings come from the checkpoint; the data must be the same (shapes,
        dtypes, CRC-32 checked). :meth:`train` restores NumPy's global random state, so the run
        prints and records the numbers of a run never interrupted, bit for bit (history, losses,
        final weights). New checkpoints go to the checkpoint's directory.

        Parameters
        ----------
        checkpoint : str or Path
            A checkpoint directory (its ``latest``) or one ``ckpt-NNNNNN.npz`` file.
        x_train, t_train, x_test, t_test : numpy.ndarray
            The run's data.
        verbose : bool
            Progress bar and per-epoch lines.
        checkpoint_objects : dict, optional
            The objects saved with the run under the same names (a learning-rate schedule ...):
            each gets ``load_state_dict(saved)``.
        validation_data : tuple, optional
            The run's validation data (checked like the rest).
        callbacks : list, optional
            New instances of the run's callbacks, in the same order: those with ``state_dict()``
            get their saved state (``on_train_begin`` is not called again on resume).
        weight_constraint : callable, optional
            The run's weight constraint. A :class:`~fastdl.constraints.MaxNorm` is rebuilt from the
            checkpoint when not given; any other constraint the run used must be given again.

        Returns
        -------
        Trainer

        Raises
        ------
        fastdl.CheckpointError
            No checkpoint, or a truncated, corrupted or inconsistent one: the message names the file
            and the previous good checkpoint. Nothing is changed (all is read and checked first).
        """
        from . import checkpoint as _checkpoint

        return _checkpoint.restore(cls, checkpoint, x_train, t_train, x_test, t_test, verbose=verbose,
                                   checkpoint_objects=checkpoint_objects, validation_data=validation_data,
                                   callbacks=callbacks, weight_constraint=weight_constraint)

    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the current state to ``checkpoint_dir`` now (see :mod:`fastdl.checkpoint`).

        Returns
        -------
        pathlib.Path
            The new file.
        """
        from .checkpoint import save

        return save(self)

    def _elapsed(self) -> float:
        return time.perf_counter() - self._start if self._start else 0.0

    @staticmethod
    def _data(x, t, xname: str, tname: str, dtype, where: str):
        x, t = np.asarray(x), np.asarray(t)
        if x.ndim < 2 or x.shape[0] == 0:
            _checks.fail(where, xname, "a non-empty array with samples along the first axis", f"shape {x.shape}")
        if t.ndim not in (1, 2) or t.shape[0] != x.shape[0]:
            _checks.fail(where, tname, f"labels (N,) or one-hot (N, classes) with N = {x.shape[0]} as in {xname}",
                         f"shape {t.shape}")
        if dtype is not None and x.dtype != dtype and x.dtype.kind in "fiub":
            x = x.astype(dtype)
        return x, t

    # -- one step ---------------------------------------------------------------------------------------
    def train_step(self) -> float:
        """One mini-batch step (the book's), then an evaluation when an epoch ends.

        Returns
        -------
        float
            The mini-batch loss after the update. A non-finite loss stops the run (see ``stopped``).
        """
        t0 = time.perf_counter()
        # the book's np.random.choice(train_size, batch_size): legacy NumPy draws it as this randint (the same
        # numbers and random state, a frozen stream), which skips choice's argument handling (~5 us a step)
        batch_mask = np.random.randint(0, self.train_size, size=self.batch_size)
        x_batch = self.x_train[batch_mask]
        t_batch = self.t_train[batch_mask]
        try:
            grads = self.network.gradient(x_batch, t_batch)
            trainable = getattr(self.network, "trainable_params", self.network.params)  # (frozen keys left out)
            self.optimizer.update(trainable, grads)
            if self.weight_constraint is not None:  # every trainable W1, W2, ... the network holds now
                for key, W in trainable.items():
                    if key[:1] == "W" and key[1:].isdigit():
                        self.weight_constraint(W)
            loss = self.network.loss(x_batch, t_batch)
        except FloatingPointError as exc:  # errstate(nonfinite='raise')
            loss = float("nan")
            self._stop(f"non-finite values at step {self.current_iter + 1} (epoch {self.current_epoch}): {exc}")
        self._epoch_step_time += time.perf_counter() - t0
        self._epoch_samples += self.batch_size
        self.train_loss_list.append(loss)
        loss_f = float(loss)
        self._epoch_losses.append(loss_f)
        if not self.stopped and not math.isfinite(loss_f):
            self._stop(f"non-finite loss ({loss_f}) at step {self.current_iter + 1} (epoch {self.current_epoch}); "
                       "the parameters diverged: try a smaller learning rate")
        if self._bar is not None:
            self._bar.update(1)
        if not self.stopped and self._epoch_ends(self.current_iter):
            self._evaluate()
        self.current_iter += 1
        return loss

    def _epoch_ends(self, i: int) -> bool:
        if i == 0:
            return True
        return math.floor(i / self.iter_per_epoch) > math.floor((i - 1) / self.iter_per_epoch)

    def _evaluate(self) -> None:
        self.current_epoch += 1
        x_tr, t_tr, x_te, t_te = self.x_train, self.t_train, self.x_test, self.t_test
        n = self.evaluate_sample_num_per_epoch
        if n is not None:
            x_tr, t_tr, x_te, t_te = x_tr[:n], t_tr[:n], x_te[:n], t_te[:n]
        metric = self.metric
        score = self.network.score if metric == "r2" else self.network.accuracy
        train_acc = score(x_tr, t_tr)
        test_acc = score(x_te, t_te)
        self.train_acc_list.append(train_acc)
        self.test_acc_list.append(test_acc)
        record = {
            "epoch": self.current_epoch,
            "iteration": self.current_iter + 1,
            "train_loss": float(np.mean(self._epoch_losses)),
            f"train_{metric}": float(train_acc),
            f"test_{metric}": float(test_acc),
        }
        if self.x_val is not None:
            record["val_loss"] = float(self.network.loss(self.x_val, self.t_val))
            record[f"val_{metric}"] = float(score(self.x_val, self.t_val))
        lr = getattr(self.optimizer, "lr", None)
        if isinstance(lr, int | float | np.floating) and not isinstance(lr, bool):
            record["learning_rate"] = float(lr)  # the rate of this epoch's steps
        elif callable(lr) and isinstance(getattr(self.optimizer, "iterations", None), int):
            record["learning_rate"] = float(lr(max(self.optimizer.iterations - 1, 0)))  # a schedule: the last step's
        if self.callbacks:
            logs = dict(record)
            for cb in self.callbacks:
                hook = getattr(cb, "on_epoch_end", None)
                if callable(hook):
                    hook(self.current_epoch - 1, logs, self)
            new_lr = logs.get("learning_rate")
            if new_lr is not None and new_lr != record.get("learning_rate"):
                record["next_learning_rate"] = float(new_lr)  # set by a callback for the next epoch
        record["elapsed_s"] = time.perf_counter() - self._start if self._start else 0.0
        record["samples_per_s"] = (self._epoch_samples / self._epoch_step_time if self._epoch_step_time > 0
                                   else 0.0)
        self.history.epochs.append(record)
        self.history.train_time_s += self._epoch_step_time
        self._epoch_losses, self._epoch_step_time, self._epoch_samples = [], 0.0, 0
        if self._bar is not None and metric == "r2":
            self._bar.set_postfix({"loss": f"{record['train_loss']:.4g}", "train_r2": f"{train_acc:.3f}",
                                   "test_r2": f"{test_acc:.3f}"}, refresh=False)
            self._bar.write(f"=== epoch:{self.current_epoch}, train loss:{record['train_loss']:.4f}, "
                            f"train R2:{train_acc:.4f}, test R2:{test_acc:.4f} ===")
        elif self._bar is not None:
            self._bar.set_postfix({"loss": f"{record['train_loss']:.4f}", "train_acc": f"{train_acc:.3f}",
                                   "test_acc": f"{test_acc:.3f}"}, refresh=False)
            self._bar.write(f"=== epoch:{self.current_epoch}, train acc:{train_acc:.4f}, test acc:{test_acc:.4f} ===")
        if self.patience is not None:
            self._early_stopping(record)

    # -- early stopping ---------------------------------------------------------------------------------
    def _snapshot(self) -> dict:
        state = {("param", k): np.array(v, copy=True) for k, v in self.network.params.items()}
        for name, layer in getattr(self.network, "layers", {}).items():
            for attr in ("running_mean", "running_var"):
                value = getattr(layer, attr, None)
                if isinstance(value, np.ndarray):
                    state[(name, attr)] = value.copy()
        return state

    def _restore(self, state: dict) -> None:
        layers = getattr(self.network, "layers", {})
        for (owner, key), value in state.items():
            if owner == "param":
                np.copyto(self.network.params[key], value)
            else:
                current = getattr(layers[owner], key, None)
                if isinstance(current, np.ndarray) and current.shape == value.shape:
                    np.copyto(current, value)
                else:
                    setattr(layers[owner], key, value.copy())

    def _early_stopping(self, record: dict) -> None:
        value = record[self.monitor]
        larger_is_better = MONITORS[self.monitor]
        if self._best is None:
            improved = True
        elif larger_is_better:
            improved = value > self._best + self.min_delta
        else:
            improved = value < self._best - self.min_delta
        if improved:
            self._best = value
            self._bad_epochs = 0
            self.history.best_epoch = record["epoch"]
            if self.restore_best_weights:
                self._best_state = self._snapshot()
            return
        self._bad_epochs += 1
        if self._bad_epochs >= self.patience:
            message = (f"early stopping: {self.monitor} did not improve by more than {self.min_delta} for "
                       f"{self.patience} epochs (best {self._best:.4f} at epoch {self.history.best_epoch})")
            if self.restore_best_weights and self._best_state is not None:
                self._restore(self._best_state)
                message += "; best weights restored"
            self._stop(message)

    def _stop(self, reason: str) -> None:
        self.stopped = True
        self.history.stop_reason = reason
        if self.verbose:
            (self._bar.write if self._bar is not None else print)(reason)

    def _final_note(self) -> str:
        """Where the final accuracy stands against the last epoch line (the book evaluates at epoch starts)."""
        if not self.history.epochs:
            return ""
        later = self.history.iterations - self.history.epochs[-1]["iteration"]
        if later <= 0:
            return ""
        return (f" (after all {self.history.iterations} steps: {later} more than the epoch-"
                f"{self.history.epochs[-1]['epoch']} line above)")

    # -- the loop ---------------------------------------------------------------------------------------
    def train(self) -> History:
        """Run all steps (or until a stop), then measure the test accuracy on the whole test set.

        Returns
        -------
        History
            Also available as ``self.history``.
        """
        resume, self._resume_state = self._resume_state, None
        if resume is not None:  # Trainer.resume: the saved random state instead of the seed
            np.random.set_state(resume["random_state"])
            self.stopped = resume["stopped"]
        else:
            if self.seed is not None:
                np.random.seed(self.seed)
            self.stopped = False
        if not self.stopped:
            self.history.stop_reason = "running"
        if resume is None:
            for cb in self.callbacks:
                hook = getattr(cb, "on_train_begin", None)
                if callable(hook):
                    hook(self)
        self._start = time.perf_counter() - (resume["elapsed_s"] if resume is not None else 0.0)
        if self.verbose:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.max_iter, initial=self.current_iter, desc="train", unit="step",
                             dynamic_ncols=True, leave=True)
            if resume is not None:
                self._bar.write(f"resumed from {resume['path']} (step {self.current_iter}, epoch "
                                f"{self.current_epoch})")
        try:
            if self.checkpoint_dir is None:
                while self.current_iter < self.max_iter and not self.stopped:
                    self.train_step()
            else:
                from .checkpoint import InterruptGuard, after_step

                with InterruptGuard() as guard:
                    while self.current_iter < self.max_iter and not self.stopped:
                        epoch = self.current_epoch
                        self.train_step()
                        after_step(self, epoch, guard)
                    after_step(self, None, guard)
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
        h = self.history
        h.train_time_s += self._epoch_step_time
        h.iterations = self.current_iter
        h.samples_per_s = h.iterations * self.batch_size / h.train_time_s if h.train_time_s > 0 else 0.0
        if self.metric == "r2":
            test_acc = self.network.score(self.x_test, self.t_test)
            h.final_test_r2 = float(test_acc)
        else:
            test_acc = self.network.accuracy(self.x_test, self.t_test)
            h.final_test_acc = float(test_acc)
        h.train_loss = [float(v) for v in self.train_loss_list]
        if not self.stopped:
            h.stop_reason = "completed"
        h.wall_time_s = time.perf_counter() - self._start
        if self.verbose and self.metric == "r2":
            print("=============== Final Test R2 ===============")
            print("test R2:" + str(test_acc) + self._final_note())
        elif self.verbose:
            print("=============== Final Test Accuracy ===============")
            print("test acc:" + str(test_acc) + self._final_note())
        return h


def _callback_config(cb) -> dict | str:
    """What the history records of a callback: its class and ``get_config()`` where it has one."""
    get_config = getattr(cb, "get_config", None)
    if callable(get_config):
        return {"class_name": type(cb).__name__, "config": get_config()}
    return type(cb).__name__

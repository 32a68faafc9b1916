"""Trainer checkpoints: what a :class:`~fastdl.Trainer` saves, where, and how a run resumes.

A checkpoint is one pickle-free ``.npz`` (see :mod:`fastdl._archive`) holding everything the rest of
the run depends on:

* the network: constructor arguments, every parameter, batch-norm running statistics and momenta,
  any dropout ``Generator`` state (the entries :meth:`fastdl.nets.MultiLayerNetExtend.save` writes,
  so :func:`fastdl.nets.load` reads the network of a checkpoint too);
* the optimizer's ``state_dict()`` (hyper-parameters, step counters, state arrays);
* the ``state_dict()`` of every object in ``trainer.checkpoint_objects`` (the protocol for
  learning-rate schedules and callbacks: ``state_dict()`` returns numbers, strings, lists, dicts
  and arrays; ``load_state_dict(d)`` takes them back);
* the trainer: settings, counters (step, epoch, the partial epoch's losses), the book's three lists,
  the :class:`~fastdl.trainer.History`, early-stopping state (best value, epochs without
  improvement, the best weights when ``restore_best_weights``);
* NumPy's global random state (``np.random.get_state()``: mini-batches and the book's dropout
  masks) and a fingerprint (shape, dtype, CRC-32) of the four data arrays;
* ``trainer.checkpoint_extra``: JSON-ready values of the caller's (``fastdl train`` keeps its
  arguments there).

Directory layout::

    DIR/ckpt-000001.npz, DIR/ckpt-000002.npz, ...   numbered in the order written
    DIR/latest                                       the newest complete file's name

Each file and then ``latest`` are written atomically (temporary file in DIR, flush, fsync,
``os.replace``); older files are pruned only after ``latest`` names the new one, keeping the newest
``keep`` (default 2: the latest and the one before). A crash at any moment leaves ``latest``
naming a complete checkpoint. One trainer writes to a directory at a time.

When: ``Trainer.train`` writes one after every ``checkpoint_every``-th epoch's evaluation, one at
the end of the run, and on SIGINT (Ctrl-C): its handler, installed only while ``train`` runs and
only in the main thread, lets the current step finish, writes the checkpoint and raises
``KeyboardInterrupt`` (a second Ctrl-C interrupts at once). ``Trainer.save_checkpoint()`` writes one
on demand.

Resume: ``Trainer.resume(DIR, x_train, t_train, x_test, t_test)`` rebuilds the network, optimizer
and trainer, and ``train()`` restores NumPy's random state instead of seeding: the resumed run
draws the same mini-batches and dropout masks and prints, records and ends with the same numbers
as a run never interrupted, bit for bit. Reading verifies everything before anything is used; a
damaged checkpoint raises :class:`CheckpointError` naming it and the newest earlier checkpoint
that passes the same checks.
"""

from __future__ import annotations

import math
import os
import re
import signal
import threading
import zlib
from pathlib import Path

import numpy as np

from . import _archive, _checks, _netio, nets, runtime
from ._archive import CheckpointError

__all__ = ["CheckpointError", "InterruptGuard", "capture", "files", "latest", "read", "restore", "save", "write"]

FORMAT = "fastdl.checkpoint"
VERSION = 1
DOC = "__checkpoint__"
LATEST = "latest"
_FILE = re.compile(r"ckpt-(\d{6,})\.npz")
_SETTINGS = ("epochs", "batch_size", "evaluate_sample_num_per_epoch", "seed", "patience", "min_delta", "monitor",
             "restore_best_weights", "checkpoint_every", "checkpoint_keep")
_DATA = ("x_train", "t_train", "x_test", "t_test", "x_val", "t_val")
_COUNTERS = ("current_iter", "current_epoch", "max_iter", "stopped", "best", "bad_epochs", "epoch_losses",
             "epoch_step_time", "epoch_samples", "elapsed_s")


# -- the directory ------------------------------------------------------------------------------------------
def files(directory: str | os.PathLike) -> list[Path]:
    """The checkpoint files in ``directory``, oldest first (by their number)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _FILE.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def latest(directory: str | os.PathLike) -> Path | None:
    """The file ``directory/latest`` names (else the highest-numbered one); None when there is none."""
    directory = Path(directory)
    try:
        name = (directory / LATEST).read_text().strip()
    except OSError:
        name = None
    if name is not None and _FILE.fullmatch(name):
        return directory / name
    found = files(directory)
    return found[-1] if found else None


def write(directory: str | os.PathLike, net, doc: dict, arrays: dict, keep: int) -> Path:
    """Write a new numbered checkpoint, then point ``latest`` at it, then prune to ``keep`` files."""
    directory = Path(directory)
    existing = files(directory)
    number = int(_FILE.fullmatch(existing[-1].name).group(1)) + 1 if existing else 1
    path = directory / f"ckpt-{number:06d}.npz"
    net_doc, net_arrays = _netio.state(net)
    _archive.write(path, {_netio.DOC: net_doc, DOC: doc}, {**net_arrays, **arrays})
    _archive.write_atomic(directory / LATEST, lambda fh: fh.write(f"{path.name}\n".encode()))
    for old in files(directory)[:-keep]:
        old.unlink(missing_ok=True)
    for stale in [*directory.glob("ckpt-*.npz.*.part"), *directory.glob(f"{LATEST}.*.part")]:  # killed writes
        stale.unlink(missing_ok=True)
    return path


def read(source: str | os.PathLike, where: str) -> tuple[Path, dict, dict]:
    """``(path, docs, arrays)`` of the checkpoint ``source`` names (a file, or a directory's latest).

    Raises
    ------
    CheckpointError
        No checkpoint there, or a damaged one: the message names the file and the newest earlier
        checkpoint that reads cleanly (or says there is none).
    """
    source = Path(source)
    if not source.exists():
        raise CheckpointError(f"{where}: {source} must be a checkpoint directory or file; it does not exist")
    path = latest(source) if source.is_dir() else source
    if path is None:
        raise CheckpointError(f"{where}: {source} must hold a checkpoint (ckpt-NNNNNN.npz and latest); "
                              "found none")
    try:
        docs, arrays = _archive.read(path, (_netio.DOC, DOC))
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: {exc}; {_previous_good(path)}") from None
    return path, docs, arrays


def _previous_good(bad: Path) -> str:
    m = _FILE.fullmatch(bad.name)
    number = int(m.group(1)) if m else math.inf
    for candidate in reversed(files(bad.parent)):
        if int(_FILE.fullmatch(candidate.name).group(1)) >= number or candidate == bad:
            continue
        try:
            _prepare(candidate, *_archive.read(candidate, (_netio.DOC, DOC)))
        except CheckpointError:
            continue
        return f"the previous good checkpoint is {candidate} (resume from that file)"
    return f"there is no earlier good checkpoint in {bad.parent}"


def _check_format(doc: dict, path) -> None:
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise CheckpointError(f"{path}: must be a {FORMAT} file of version {VERSION}; got format "
                              f"{doc.get('format')!r} version {doc.get('version')!r}")


# -- the trainer's side ---------------------------------------------------------------------------------
def save(trainer) -> Path:
    """``Trainer.save_checkpoint``: write the trainer's state to its ``checkpoint_dir`` now."""
    if trainer.checkpoint_dir is None:
        _checks.fail("Trainer.save_checkpoint", "checkpoint_dir", "set (Trainer(..., checkpoint_dir=...))", "None")
    doc, arrays = capture(trainer)
    trainer.last_checkpoint = write(trainer.checkpoint_dir, trainer.network, doc, arrays, trainer.checkpoint_keep)
    trainer._last_checkpoint_iter = trainer.current_iter
    return trainer.last_checkpoint


def adopt_run_args(args, names: tuple[str, ...], added: tuple[str, ...] = ()) -> None:
    """``fastdl train --resume``: take the run's arguments ``names`` from its checkpoint.

    An argument also given on the command line must agree with the run's (``--out`` may differ).
    Names in ``added`` (arguments newer than some checkpoints) take their default where a checkpoint
    lacks them.
    """
    _, docs, arrays = read(args.resume, "fastdl train --resume")
    saved = _archive.unpack_tree(docs[DOC].get("extra"), arrays)
    saved = saved.get("fastdl_train") if isinstance(saved, dict) else None
    if isinstance(saved, dict):
        saved = {**{key: args.run_defaults[key] for key in added}, **saved}
    if not isinstance(saved, dict) or set(names) - set(saved):
        _checks.fail("fastdl train", "--resume", "a checkpoint directory of `fastdl train` (resume other runs "
                     "with Trainer.resume)", str(args.resume))
    for key in names:
        given, default = getattr(args, key), args.run_defaults[key]
        if key != "out" and given != default and given != saved[key]:
            _checks.fail("fastdl train --resume", f"--{key.replace('_', '-')}",
                         f"left out or the run's {saved[key]!r}", repr(given))
        if key != "out" or given == default:
            setattr(args, key, saved[key])


def check_target(trainer, directory, where: str) -> Path:
    """``directory`` as a Path when ``trainer`` can write checkpoints there (else the house error)."""
    directory = Path(directory)
    if files(directory):
        _checks.fail(where, "checkpoint_dir", "a new or empty directory (continue the run saved there with "
                     "Trainer.resume(checkpoint_dir, ...))", f"{directory} holding checkpoints")
    try:
        _netio.config(trainer.network)
    except (AttributeError, TypeError) as exc:
        _checks.fail(where, "network", "a fastdl.nets network on the 'fastdl' or 'reference' backend when "
                     "checkpoint_dir is given", f"{type(trainer.network).__name__} ({exc})", TypeError)
    if not callable(getattr(trainer.optimizer, "state_dict", None)):
        _checks.fail(where, "optimizer", "an optimizer with state_dict() (the fastdl.optim classes) when "
                     "checkpoint_dir is given", type(trainer.optimizer).__name__, TypeError)
    problem = runtime.writable_dir_problem(directory)  # last (it creates the directory); before training
    if problem:
        _checks.fail(where, "checkpoint_dir", "a writable directory", f"{str(directory)!r} ({problem})")
    return directory


def after_step(trainer, epoch_before: int | None, guard: InterruptGuard) -> None:
    """Checkpoints in ``Trainer.train``: on a pending Ctrl-C (then raise KeyboardInterrupt), at every
    ``checkpoint_every``-th epoch end, and at the end of the loop (``epoch_before=None``)."""
    if guard.requested:
        path = trainer.save_checkpoint()
        raise KeyboardInterrupt(f"training interrupted after step {trainer.current_iter} (epoch "
                                f"{trainer.current_epoch}); checkpoint {path}: continue with "
                                f"Trainer.resume({str(trainer.checkpoint_dir)!r}, ...) or "
                                f"fastdl train --resume {trainer.checkpoint_dir}")
    if trainer._last_checkpoint_iter != trainer.current_iter and (
            epoch_before is None or (trainer.current_epoch != epoch_before
                                     and trainer.current_epoch % trainer.checkpoint_every == 0)):
        trainer.save_checkpoint()


def data_fingerprint(trainer) -> dict:
    """The fingerprints of the trainer's data arrays (computed once per trainer; None: no validation data)."""
    if trainer._fingerprint is None:
        trainer._fingerprint = {n: None if getattr(trainer, n, None) is None else fingerprint(getattr(trainer, n))
                                for n in _DATA}
    return trainer._fingerprint


# -- what goes in -------------------------------------------------------------------------------------------
def fingerprint(a: np.ndarray) -> list:
    """``[shape, dtype, crc32]`` of an array's values (resuming on other data is refused)."""
    c = np.ascontiguousarray(a)
    return [list(c.shape), c.dtype.str, zlib.crc32(c.reshape(-1).view(np.uint8))]


def capture(trainer) -> tuple[dict, dict]:
    """``(description, arrays)`` of everything in ``trainer`` a resumed run needs (copies)."""
    arrays: dict = {}
    h = trainer.history
    lists = {}
    for name in ("train_loss_list", "train_acc_list", "test_acc_list"):
        values = getattr(trainer, name)
        kinds = {type(v) for v in values}
        dtype = np.asarray(values[0]).dtype if len(kinds) == 1 and isinstance(values[0], np.floating) else None
        arrays[f"checkpoint.{name}"] = np.asarray(values, dtype=dtype or np.float64).reshape(-1)
        lists[name] = "numpy" if dtype is not None else "float"
    best = None
    if trainer._best_state is not None:
        best = [[owner, key, _archive.pack_tree(v, "checkpoint.best", arrays)]
                for (owner, key), v in trainer._best_state.items()]
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "settings": {k: getattr(trainer, k) for k in _SETTINGS},
        "counters": {
            "current_iter": trainer.current_iter, "current_epoch": trainer.current_epoch,
            "max_iter": trainer.max_iter, "stopped": trainer.stopped, "best": trainer._best,
            "bad_epochs": trainer._bad_epochs, "epoch_losses": [float(v) for v in trainer._epoch_losses],
            "epoch_step_time": trainer._epoch_step_time, "epoch_samples": trainer._epoch_samples,
            "elapsed_s": trainer._elapsed(),
        },
        "lists": lists,
        "history": {"config": _archive.pack_tree(h.config, "checkpoint.history", arrays),
                    "epochs": h.epochs, "stop_reason": h.stop_reason, "best_epoch": h.best_epoch,
                    "train_time_s": h.train_time_s},
        "best_state": best,
        "optimizer": _archive.pack_tree(trainer.optimizer.state_dict(), "checkpoint.opt", arrays),
        "objects": {name: _archive.pack_tree(obj.state_dict(), "checkpoint.obj", arrays)
                    for name, obj in trainer.checkpoint_objects.items()},
        "random_state": _archive.pack_tree(list(np.random.get_state()), "checkpoint.rng", arrays),
        "data": data_fingerprint(trainer),
        "extra": _archive.pack_tree(trainer.checkpoint_extra, "checkpoint.extra", arrays),
    }
    return doc, arrays


# -- what comes out -----------------------------------------------------------------------------------------
def _prepare(path: Path, docs: dict, arrays: dict) -> dict:
    """Everything in a verified archive that does not depend on the caller: new network and optimizer,
    the parsed trainer state, all checked. Raises CheckpointError naming ``path``."""
    doc = docs[DOC]

    def bad(reason: str):
        raise CheckpointError(f"{path}: {reason}")

    _check_format(doc, path)
    net = _netio.build(docs[_netio.DOC], arrays, path, nets.NET_CLASSES)
    try:
        prep = {"net": net, "doc": doc, "counters": {k: doc["counters"][k] for k in _COUNTERS},
                "history": {k: doc["history"][k] for k in ("config", "epochs", "stop_reason", "best_epoch",
                                                           "train_time_s")},
                "settings": {k: doc["settings"][k] for k in _SETTINGS}, "kinds": doc["lists"],
                "lists": {name: arrays[f"checkpoint.{name}"] for name in doc["lists"]},
                "opt_state": _archive.unpack_tree(doc["optimizer"], arrays),
                "config": _archive.unpack_tree(doc["history"]["config"], arrays),
                "objects": {k: _archive.unpack_tree(v, arrays) for k, v in doc["objects"].items()},
                "random_state": tuple(_archive.unpack_tree(doc["random_state"], arrays)),
                "extra": _archive.unpack_tree(doc["extra"], arrays), "best": None}
        if doc["best_state"] is not None:
            prep["best"] = {(o, k): _archive.unpack_tree(v, arrays) for o, k, v in doc["best_state"]}
        opt_state, opt_class = prep["opt_state"], prep["opt_state"]["class"]
    except (KeyError, TypeError, ValueError) as exc:
        bad(f"the checkpoint description is incomplete ({type(exc).__name__}: {exc})")
    try:
        np.random.RandomState().set_state(prep["random_state"])  # validates without touching the global state
    except (TypeError, ValueError) as exc:
        bad(f"random_state is not a NumPy MT19937 state ({exc})")
    from .optim import OPTIMIZERS

    classes = {c.__name__: c for c in OPTIMIZERS.values()}
    if opt_class not in classes:
        bad(f"optimizer class must be one of {tuple(classes)}; got {opt_class!r}")
    saved_lr = opt_state.get("hyper", {}).get("lr") if isinstance(opt_state.get("hyper"), dict) else None
    kwargs = {}
    if isinstance(saved_lr, dict):  # a schedule's config (fastdl.schedules.schedule_config): rebuilt by name
        from .schedules import get_schedule

        try:
            kwargs["lr"] = get_schedule(saved_lr.get("class_name"), **saved_lr.get("config", {}))
        except (TypeError, ValueError) as exc:
            bad(f"optimizer schedule: {exc}")
    prep["optimizer"] = optimizer = classes[opt_class](**kwargs)
    try:
        optimizer.load_state_dict(opt_state)
    except (TypeError, ValueError) as exc:
        bad(f"optimizer state: {exc}")
    for name, store in opt_state["state"].items():
        if store is not None and not set(store) <= set(net.params):  # (frozen keys may have none)
            bad(f"optimizer state {name!r} must have keys of the network's {list(net.params)}; got {list(store)}")
        for key, a in (store or {}).items():
            p = net.params[key]
            if a.shape != p.shape or a.dtype != p.dtype:
                bad(f"optimizer state[{name!r}][{key!r}] must have shape {p.shape} and dtype {p.dtype} like "
                    f"params[{key!r}]; got shape {a.shape} and dtype {a.dtype}")
    counters, lists = prep["counters"], prep["lists"]
    n_steps, n_epochs = counters["current_iter"], counters["current_epoch"]
    if not (isinstance(n_steps, int) and isinstance(n_epochs, int) and 0 <= n_steps <= counters["max_iter"]
            and len(lists["train_loss_list"]) == n_steps and len(lists["train_acc_list"]) == n_epochs
            and len(lists["test_acc_list"]) == n_epochs and len(prep["history"]["epochs"]) == n_epochs):
        bad(f"the step and epoch counts ({n_steps}, {n_epochs}) must match the lengths of the saved lists")
    return prep


def restore(cls, source, x_train, t_train, x_test, t_test, *, verbose: bool = True, checkpoint_objects=None,
            validation_data=None, callbacks=None, weight_constraint=None, where: str = "Trainer.resume"):
    """A ``cls`` (:class:`~fastdl.Trainer`) in the state of the checkpoint ``source``; see ``Trainer.resume``.

    Everything is read and checked into new objects first (network, optimizer, trainer, the state
    of ``checkpoint_objects``, the random state); only then are the caller's ``checkpoint_objects``
    given their state, and NumPy's global random state is set when :meth:`train` starts.
    """
    path, docs, arrays = read(source, where)
    try:
        prep = _prepare(path, docs, arrays)
        settings = prep["settings"]
        trainer = cls(prep["net"], x_train, t_train, x_test, t_test, epochs=settings["epochs"],
                      mini_batch_size=settings["batch_size"], optimizer=prep["optimizer"],
                      evaluate_sample_num_per_epoch=settings["evaluate_sample_num_per_epoch"], verbose=verbose,
                      seed=settings["seed"], patience=settings["patience"], min_delta=settings["min_delta"],
                      monitor=settings["monitor"], restore_best_weights=settings["restore_best_weights"],
                      checkpoint_every=settings["checkpoint_every"], checkpoint_keep=settings["checkpoint_keep"],
                      validation_data=validation_data, callbacks=callbacks,
                      weight_constraint=_constraint(prep["config"], weight_constraint))
    except (CheckpointError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: {exc}; {_previous_good(path)}") from None

    def bad(reason: str):  # the caller's arguments do not fit the checkpoint
        raise CheckpointError(f"{where}: {reason} ({path})")

    doc, counters, hist, lists, kinds = prep["doc"], prep["counters"], prep["history"], prep["lists"], prep["kinds"]
    objects, best, config = prep["objects"], prep["best"], prep["config"]
    extra, random_state = prep["extra"], prep["random_state"]
    fp = data_fingerprint(trainer)
    for name in _DATA:
        if fp[name] != doc["data"].get(name):  # (a checkpoint without validation data has None for x_val)
            bad(f"{name} must be the data the run was trained on (shape, dtype, CRC-32 {doc['data'].get(name)}); "
                f"got {fp[name]}")
    if counters["max_iter"] != trainer.max_iter:
        bad(f"max_iter must be {trainer.max_iter} for these settings and data; got {counters['max_iter']}")
    n_steps, n_epochs = counters["current_iter"], counters["current_epoch"]
    objects_given = {**trainer.checkpoint_objects, **dict(checkpoint_objects or {})}  # callbacks[i] included
    if set(objects_given) != set(objects):
        bad(f"checkpoint_objects must have the names {sorted(objects)} (the objects saved with the run); "
            f"got {sorted(objects_given)}")
    for name, obj in objects_given.items():
        if not callable(getattr(obj, "load_state_dict", None)):
            bad(f"checkpoint_objects[{name!r}] must have load_state_dict()")
    # everything read and checked: assign
    for name, obj in objects_given.items():
        obj.load_state_dict(objects[name])
    trainer.checkpoint_objects = objects_given
    trainer.checkpoint_dir = path.parent
    trainer.checkpoint_extra = extra
    for name, values in lists.items():
        as_numpy = kinds[name] == "numpy"
        setattr(trainer, name, list(values) if as_numpy else [float(v) for v in values])
    trainer.current_iter, trainer.current_epoch = n_steps, n_epochs
    trainer._best, trainer._bad_epochs, trainer._best_state = counters["best"], counters["bad_epochs"], best
    trainer._epoch_losses = list(counters["epoch_losses"])
    trainer._epoch_step_time, trainer._epoch_samples = counters["epoch_step_time"], counters["epoch_samples"]
    h = trainer.history
    h.config, h.epochs, h.stop_reason = config, hist["epochs"], hist["stop_reason"]
    h.best_epoch, h.train_time_s = hist["best_epoch"], hist["train_time_s"]
    trainer._resume_state = {"random_state": random_state, "stopped": bool(counters["stopped"]),
                             "elapsed_s": float(counters["elapsed_s"]), "path": path}
    trainer._last_checkpoint_iter = n_steps
    trainer.last_checkpoint = path
    return trainer


def _constraint(config, given):
    """The run's weight constraint: ``given``, or a :class:`~fastdl.constraints.MaxNorm` rebuilt from its config."""
    saved = (config or {}).get("weight_constraint")
    if saved is None:
        return given
    name = saved["class_name"] if isinstance(saved, dict) else saved  # (the history's _callback_config)
    if given is not None:
        if type(given).__name__ != name:
            raise ValueError(f"weight_constraint must be a {name} like the run's; got {type(given).__name__}")
        return given
    if name == "MaxNorm" and isinstance(saved, dict):
        from .constraints import MaxNorm

        return MaxNorm(**saved["config"])
    raise ValueError(f"weight_constraint must be given: the run used a {name}, which a checkpoint cannot rebuild")


# -- Ctrl-C -------------------------------------------------------------------------------------------------
class InterruptGuard:
    """While active (``with``), SIGINT only sets :attr:`requested`; a second SIGINT raises at once.

    Installed only in the main thread (the only one that receives signals); the previous handler
    is restored on exit.
    """

    def __init__(self) -> None:
        self.requested = False
        self._old = None
        self._installed = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._old if self._old is not None else signal.SIG_DFL)
            self._installed = False

"""A learning-rate range test (Smith 2015; Géron's *Hands-On ML* ch. 10): one short sweep, then a suggested rate.

:func:`lr_find` takes ``steps`` mini-batch steps with the learning rate growing exponentially from
``start_lr`` to ``end_lr``::

    lr_i = start_lr * (end_lr / start_lr) ** (i / (steps - 1))          i = 0 .. steps - 1

and records each mini-batch's loss, smoothed with a bias-corrected exponential moving average
(``beta = smoothing``)::

    avg_i = beta * avg_{i-1} + (1 - beta) * loss_i        avg_{-1} = 0
    smoothed_i = avg_i / (1 - beta ** (i + 1))

It stops early when a loss is NaN/Inf or ``smoothed_i > diverge_factor * min(smoothed_0..i)``. The
suggested rate is Géron's rule (fastai's ``lr_min``): a tenth of the learning rate at which the
smoothed loss was lowest, i.e. well below the point where the loss turns up. The rate of steepest
descent of the smoothed loss over ``log10(lr)`` (Smith's and fastai's ``steep``) is reported too.

Afterwards the network is exactly as before: every ``params`` array (the same objects, written
back in place), the batch-norm running statistics (``None`` again where they were ``None``) and
NumPy's global random state (which dropout draws from). An optimizer instance is never stepped: the
sweep runs on a :func:`copy.deepcopy` of it, so its state (moments, step counter, ``lr``) is untouched.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np

from . import _checks, optim, runtime

__all__ = ["LRFinderResult", "lr_find"]

_RUNNING = ("running_mean", "running_var")


@dataclass
class LRFinderResult:
    """What :func:`lr_find` measured.

    Attributes
    ----------
    lrs : numpy.ndarray
        Learning rate of each step taken.
    losses : numpy.ndarray
        Smoothed, bias-corrected loss of each step.
    raw_losses : numpy.ndarray
        The mini-batch losses as computed (before each update).
    suggestion : float
        ``lr_min / 10`` (Géron's rule).
    lr_min : float
        Learning rate at the lowest smoothed loss.
    lr_steep : float
        Learning rate where the smoothed loss falls fastest per decade of lr, between the first
        tenth of the sweep (its start is noise over a flat curve) and the minimum.
    stop_reason : str
        ``'completed'`` or why the sweep stopped early.
    optimizer : str
        The optimizer's class name.
    """

    lrs: np.ndarray
    losses: np.ndarray
    raw_losses: np.ndarray
    suggestion: float
    lr_min: float
    lr_steep: float
    stop_reason: str
    optimizer: str = ""
    settings: dict = field(default_factory=dict)

    def plot(self, ax=None, label: str | None = None, color=None):
        """Smoothed loss against the learning rate (log x), the suggestion marked.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw (a new figure when omitted).
        label : str, optional
            Curve label (default: the optimizer's name).
        color : optional
            Matplotlib colour of the curve and its marks.

        Returns
        -------
        matplotlib.axes.Axes
        """
        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(7, 4.5), layout="constrained").subplots()
        name = label or self.optimizer
        (line,) = ax.plot(self.lrs, self.losses, color=color, label=f"{name} (smoothed loss)")
        c = line.get_color()
        y_s = float(np.interp(np.log(self.suggestion), np.log(self.lrs), self.losses))
        ax.plot([self.suggestion], [y_s], "o", color=c, ms=8, mec="black",
                label=f"{name} suggestion {self.suggestion:.2g} (lr_min/10)")
        ax.axvline(self.lr_min, color=c, ls=":", lw=1)
        ax.set_xscale("log")
        ax.set(xlabel="learning rate (log scale)", ylabel="training loss (smoothed)")
        return ax


def _network_state(network) -> tuple[list, list]:
    """Copies of every parameter array, and (layer, attribute, copy or None) of the batch-norm statistics."""
    params = [(v, v.copy()) for v in network.params.values() if isinstance(v, np.ndarray)]
    running = []
    for layer in getattr(network, "layers", {}).values():
        for attr in _RUNNING:
            if hasattr(layer, attr):
                value = getattr(layer, attr)
                running.append((layer, attr, value, value.copy() if isinstance(value, np.ndarray) else value))
    return params, running


def _restore_network_state(network, state: tuple[list, list]) -> None:
    params, running = state
    for array, saved in params:
        np.copyto(array, saved)
    for layer, attr, original, saved in running:
        if isinstance(original, np.ndarray):
            np.copyto(original, saved)  # the very array it held (a fused step may own it)
        setattr(layer, attr, original)


def _steepest(lrs: np.ndarray, losses: np.ndarray, skip: int) -> float:
    """lr of the most negative slope d(loss)/d(log10 lr) on the way down: after ``skip`` steps, up to the minimum."""
    stop = int(np.argmin(losses)) + 1
    lo = min(skip, max(stop - 3, 0))
    if stop - lo < 3:
        return float(lrs[stop - 1])
    slope = np.gradient(losses[lo:stop], np.log10(lrs[lo:stop]))
    return float(lrs[lo + int(np.argmin(slope))])


def lr_find(network, x, t, optimizer="sgd", start_lr: float = 1e-6, end_lr: float = 10.0, steps: int = 100,
            batch_size: int = 100, smoothing: float = 0.98, diverge_factor: float = 4.0, seed: int | None = None,
            *, optimizer_param: dict | None = None, verbose: bool = True) -> LRFinderResult:
    """Learning-rate range test: sweep lr exponentially over mini-batch steps, suggest a rate, restore the net.

    Parameters
    ----------
    network : object
        A book-style network: ``params``, ``gradient(x, t)`` and ``last_layer.loss`` (the loss of the
        last forward) or ``loss(x, t)``; batch-norm layers in ``network.layers`` have their running
        statistics restored.
    x, t : numpy.ndarray
        Training data ``(N, ...)`` and labels ``(N,)`` or one-hot targets ``(N, classes)``.
    optimizer : str or object
        A :mod:`fastdl.optim` name, or an instance with a settable ``lr`` (its deep copy is used).
    start_lr, end_lr : float
        First and last learning rate, ``0 < start_lr < end_lr``.
    steps : int
        Steps of the sweep (>= 2), one mini-batch each.
    batch_size : int
        Samples per step (at most ``N``: batches walk through random permutations of the data).
    smoothing : float
        ``beta`` of the exponential moving average of the loss, in ``[0, 1)``.
    diverge_factor : float
        Stop when the smoothed loss exceeds this many times its minimum so far (> 1).
    seed : int, optional
        Seed of the batches (``np.random.default_rng``; the global generator is left as it was).
    optimizer_param : dict, optional
        Constructor arguments for a named optimizer (``lr`` is set by the sweep).
    verbose : bool
        tqdm progress bar.

    Returns
    -------
    LRFinderResult
        Learning rates, smoothed and raw losses, the suggestion (``lr_min / 10``) and ``lr_steep``.

    Notes
    -----
    The loss of a step is the one its gradient call computed, before the update, in training mode
    (``last_layer.loss``: the data loss, without the weight-decay term). NaN/Inf met while the loss
    explodes end the sweep silently (no :class:`~fastdl.NonFiniteWarning`).
    """
    where = "lr_find"
    for attr in ("params", "gradient"):
        if not hasattr(network, attr):
            _checks.fail(where, "network", "a network with params and gradient(x, t)",
                         f"{type(network).__name__} without {attr}", TypeError)
    start_lr = _checks.positive_number(start_lr, "start_lr", where)
    end_lr = _checks.positive_number(end_lr, "end_lr", where)
    if end_lr <= start_lr:
        _checks.fail(where, "end_lr", f"larger than start_lr ({start_lr})", repr(end_lr))
    steps = _checks.count(steps, "steps", where, minimum=2)
    batch_size = _checks.count(batch_size, "batch_size", where)
    smoothing = _checks.positive_number(smoothing, "smoothing", where, allow_zero=True, upper=1.0)
    diverge_factor = _checks.positive_number(diverge_factor, "diverge_factor", where)
    if diverge_factor <= 1:
        _checks.fail(where, "diverge_factor", "a number > 1", repr(diverge_factor))
    seed = None if seed is None else _checks.count(seed, "seed", where, minimum=0)
    x = _checks.float_array(x, "x", where, min_ndim=2)
    t = np.asarray(t)
    n = x.shape[0]
    if n == 0:
        _checks.fail(where, "x", "a non-empty array with samples along the first axis", f"shape {x.shape}")
    if t.ndim not in (1, 2) or t.shape[0] != n:
        _checks.fail(where, "t", f"labels (N,) or one-hot (N, classes) with N = {n} as in x", f"shape {t.shape}")
    dtype = getattr(network, "dtype", None)
    if dtype is not None and x.dtype != dtype:
        x = x.astype(dtype)
    if optimizer_param is not None and not isinstance(optimizer_param, dict):
        _checks.fail(where, "optimizer_param", "a dict such as {'momentum': 0.9}", _checks.describe(optimizer_param),
                     TypeError)
    params = {k: v for k, v in (optimizer_param or {}).items() if k != "lr"}
    opt = optim.get_optimizer(optimizer, **params) if isinstance(optimizer, str) else optimizer
    if not isinstance(optimizer, str):
        if params:
            _checks.fail(where, "optimizer_param", "empty when optimizer is an instance", repr(optimizer_param))
        if not callable(getattr(opt, "update", None)) or not hasattr(opt, "lr"):
            _checks.fail(where, "optimizer", "a name such as 'sgd' or an optimizer with update() and lr",
                         _checks.describe(opt), TypeError)
        opt = copy.deepcopy(opt)  # the caller's optimizer is never stepped

    batch = min(batch_size, n)
    lrs_all = start_lr * (end_lr / start_lr) ** (np.arange(steps) / (steps - 1))
    rng = np.random.default_rng(seed)
    state = _network_state(network)
    global_rng = np.random.get_state()
    lrs, raw, smooth = [], [], []
    avg, best = 0.0, math.inf
    stop_reason = "completed"
    bar = None
    if verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="lr_find", unit="step", dynamic_ncols=True, leave=False)
    perm, pos = rng.permutation(n), 0
    try:
        with runtime.errstate("ignore"), np.errstate(all="ignore"):
            for i, lr in enumerate(lrs_all):
                if pos + batch > n:
                    perm, pos = rng.permutation(n), 0
                idx = perm[pos:pos + batch]
                pos += batch
                xb, tb = x[idx], t[idx]
                opt.lr = float(lr)
                grads = network.gradient(xb, tb)
                last = getattr(network, "last_layer", None)
                loss = getattr(last, "loss", None)
                loss = float(loss) if loss is not None else float(network.loss(xb, tb))
                if not math.isfinite(loss):
                    stop_reason = f"non-finite loss at lr {lr:.3g} (step {i + 1})"
                    break
                avg = smoothing * avg + (1 - smoothing) * loss
                s = avg / (1 - smoothing ** (i + 1))
                lrs.append(float(lr))
                raw.append(loss)
                smooth.append(s)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({"lr": f"{lr:.2e}", "loss": f"{s:.4f}"}, refresh=False)
                if s > diverge_factor * best:
                    stop_reason = (f"loss exploded at lr {lr:.3g} (step {i + 1}): "
                                   f"{s:.4g} > {diverge_factor} x {best:.4g}")
                    break
                best = min(best, s)
                opt.update(getattr(network, "trainable_params", network.params), grads)
    finally:
        if bar is not None:
            bar.close()
        _restore_network_state(network, state)
        np.random.set_state(global_rng)
    if not lrs:
        raise FloatingPointError(f"{where}: the first step's loss must be finite; got {stop_reason} "
                                 "(check the data and the network's weights)")
    lrs_a, smooth_a = np.array(lrs), np.array(smooth)
    lr_min = float(lrs_a[int(np.argmin(smooth_a))])
    return LRFinderResult(lrs=lrs_a, losses=smooth_a, raw_losses=np.array(raw), suggestion=lr_min / 10,
                          lr_min=lr_min, lr_steep=_steepest(lrs_a, smooth_a, steps // 10), stop_reason=stop_reason,
                          optimizer=type(opt).__name__,
                          settings={"start_lr": start_lr, "end_lr": end_lr, "steps": steps, "batch_size": batch,
                                    "smoothing": smoothing, "diverge_factor": diverge_factor, "seed": seed})

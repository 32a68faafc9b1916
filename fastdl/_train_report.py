"""What ``fastdl train`` measures beside the run: kernel warm-up before it, a fastdl-vs-NumPy step after it.

Both work on copies (``copy.deepcopy`` of the network and optimizer) on a fixed batch (the first
``batch_size`` training samples) and restore NumPy's global random state afterwards, so the trained
network, its optimizer state and the run's random draws (mini-batches, dropout masks) are exactly
those of a run without them: every trained number stays the same.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np

from .profiler import _median
from .warmup import _kernel_counts

__all__ = ["StepComparison", "compare_step", "kernels_loaded", "warm_up"]


def kernels_loaded() -> int:
    """How many kernel signatures this process has compiled or loaded so far (0 in a fresh process)."""
    return sum(compiled + loaded for compiled, loaded in _kernel_counts().values())


def _steps(network, optimizer, x: np.ndarray, t: np.ndarray, n: int) -> None:
    for _ in range(n):
        optimizer.update(network.params, network.gradient(x, t))


def warm_up(network, optimizer, x: np.ndarray, t: np.ndarray, x_eval: np.ndarray | None = None,
            t_eval: np.ndarray | None = None) -> tuple[float, int, int]:
    """Run one training step and an evaluation on copies so that their kernels are compiled or loaded.

    Parameters
    ----------
    network, optimizer : object
        The run's network and optimizer; neither is changed (copies do the work).
    x, t : numpy.ndarray
        One mini-batch.
    x_eval, t_eval : numpy.ndarray, optional
        The evaluation set (default ``x, t``): at its size some kernels take their parallel twins
        (``runtime.get_crossovers()``), which are then compiled too.

    Returns
    -------
    (seconds, compiled, loaded) : (float, int, int)
        Wall time and the kernel signatures Numba compiled versus loaded from its on-disk cache.
    """
    state = np.random.get_state()
    before = _kernel_counts()
    t0 = time.perf_counter()
    try:
        net, opt = copy.deepcopy(network), copy.deepcopy(optimizer)
        _steps(net, opt, x, t, 1)
        net.loss(x, t)
        score = net.score if getattr(net, "loss_name", None) == "mse" else net.accuracy  # as the Trainer
        score(x if x_eval is None else x_eval, t if t_eval is None else t_eval)
    finally:
        np.random.set_state(state)
    seconds = time.perf_counter() - t0
    after = _kernel_counts()
    compiled = sum(after[k][0] - before.get(k, (0, 0))[0] for k in after)
    loaded = sum(after[k][1] - before.get(k, (0, 0))[1] for k in after)
    return seconds, compiled, loaded


def _block(network, optimizer, x: np.ndarray, t: np.ndarray, n: int) -> float:
    """Seconds per step of ``n`` consecutive steps."""
    t0 = time.perf_counter()
    _steps(network, optimizer, x, t, n)
    return (time.perf_counter() - t0) / n


def _step_times(sides: list[tuple], x: np.ndarray, t: np.ndarray, budget_s: float,
                repeats: int) -> list[float]:
    """Median seconds per warm ``gradient()+update()`` step of each ``(network, optimizer)`` side.

    Each side runs 3 untimed steps (first-call allocations, optimizer state), then a 3-step block
    sizes its blocks (``budget_s`` shared by all blocks); the sides' blocks alternate, so a burst of
    load from other processes falls on both rather than on one. Rounds stop early once they have
    taken twice ``budget_s`` (steps slowed down by other processes).
    """
    sizes = []
    for net, opt in sides:
        _steps(net, opt, x, t, 3)
        one = max(_block(net, opt, x, t, 3), 1e-7)
        sizes.append(max(1, min(500, int(budget_s / len(sides) / repeats / one))))
    blocks: list[list[float]] = [[] for _ in sides]
    t0 = time.perf_counter()
    for _ in range(repeats):
        for k, (net, opt) in enumerate(sides):
            blocks[k].append(_block(net, opt, x, t, sizes[k]))
        if time.perf_counter() - t0 > 2 * budget_s:  # a loaded machine: stop at twice the budget
            break
    return [_median(b) for b in blocks]


@dataclass
class StepComparison:
    """Steady-state seconds per training step (``gradient()+update()``) of fastdl and the NumPy reference."""

    fastdl_s: float
    reference_s: float

    @property
    def speedup(self) -> float:
        return self.reference_s / self.fastdl_s if self.fastdl_s > 0 else float("nan")

    def __str__(self) -> str:
        return (f"training step: fastdl {self.fastdl_s * 1e3:.2f} ms, NumPy reference {self.reference_s * 1e3:.2f} ms "
                f"({self.speedup:.1f}x)")


def compare_step(network, optimizer, reference_network, reference_optimizer, x: np.ndarray, t: np.ndarray, *,
                 budget_s: float = 0.8, repeats: int = 5) -> StepComparison:
    """Time warm training steps of a fastdl network and its NumPy-reference twin on the same batch.

    The reference network gets copies of ``network``'s parameters first (same weights), so both run
    the same arithmetic. Each side: three untimed steps, then ``repeats`` blocks of ``n`` steps (``n``
    sized from a short block so that each side's blocks take about ``budget_s / 2``), alternating
    with the other side's; the figure is the median of the block means. Copies do the work (see the
    module notes): the arguments are not changed.

    Parameters
    ----------
    network, optimizer : object
        The trained fastdl network and its optimizer.
    reference_network, reference_optimizer : object
        The same architecture and rule on ``backend='reference'``.
    x, t : numpy.ndarray
        One mini-batch.
    budget_s : float
        Rough total time of the timed blocks of both sides.
    repeats : int
        Timed blocks per side.

    Returns
    -------
    StepComparison
    """
    state = np.random.get_state()
    try:
        net, opt = copy.deepcopy(network), copy.deepcopy(optimizer)
        ref, ref_opt = copy.deepcopy(reference_network), copy.deepcopy(reference_optimizer)
        for key, value in net.params.items():
            np.copyto(ref.params[key], value)
        fast, slow = _step_times([(net, opt), (ref, ref_opt)], x, t, budget_s, repeats)
    finally:
        np.random.set_state(state)
    return StepComparison(fast, slow)

"""Timing: median seconds per call, implementations timed in rotating blocks.

Every figure is a median over samples of several calls each (a sample lasts about ``sample_time``),
after untimed warm-up calls, so compilation never lands in a number; all ratios come from one run.
Why blocks rotate rather than calls alternate: ``docs/design-notes.md``, *Benchmark methodology*.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from .. import runtime
from .tables import Unavailable, torch_module


def configure_torch_threads(n: int | None = None) -> None:
    """Give torch the same thread count as fastdl (default: Numba's thread count), if torch is installed."""
    try:
        torch = torch_module()
    except Unavailable:
        return
    torch.set_num_threads(n or runtime.get_num_threads())


def measure(fn: Callable[[], object], *, warmup: int = 2, min_time: float = 0.2, min_samples: int = 5,
            max_samples: int = 50, sample_time: float = 1e-2) -> float:
    """Median seconds per call of ``fn`` after ``warmup`` untimed calls.

    Each sample runs enough calls to last about ``sample_time``; sampling stops after ``min_time``
    seconds once ``min_samples`` are taken (or at ``max_samples``).
    """
    return measure_group({"fn": fn}, warmup=warmup, min_time=min_time, min_samples=min_samples,
                         max_samples=max_samples, sample_time=sample_time)["fn"]


def calibrate(fn: Callable[[], object], warmup: int, sample_time: float) -> int:
    """Calls per sample so that one sample takes about ``sample_time``."""
    for _ in range(max(1, warmup)):
        fn()
    t0 = time.perf_counter()
    fn()
    return max(1, int(sample_time / max(time.perf_counter() - t0, 1e-9)))


def run_block(fn: Callable[[], object], number: int, warmup: int, min_samples: int, max_samples: int,
              block_time: float) -> list[float]:
    """One timed block: ``warmup`` untimed calls, then samples of ``number`` calls (seconds per call)."""
    clock = time.perf_counter
    for _ in range(max(1, warmup)):
        fn()
    out: list[float] = []
    start = clock()
    while len(out) < min_samples or (clock() - start < block_time and len(out) < max_samples):
        t0 = clock()
        for _ in range(number):
            fn()
        out.append((clock() - t0) / number)
    return out


def measure_group(fns: dict[str, Callable[[], object]], *, warmup: int = 2, min_time: float = 0.2,
                  min_samples: int = 5, max_samples: int = 50, sample_time: float = 1e-2,
                  passes: int = 3, remote: dict | None = None) -> dict[str, float]:
    """Median seconds per call of each callable, in interleaved blocks.

    Each implementation takes its samples in a contiguous block (``warmup`` untimed calls, then
    samples of about ``sample_time`` each), and the blocks rotate over ``passes`` passes (A B C A B
    C ...), so a burst of load from elsewhere hits every implementation while each is timed in its
    own steady state.

    ``remote`` maps more names to :class:`~fastdl.benchmark.peer.RemotePeer` objects holding a case
    in another process; each takes its block in every pass after the local ones (this process
    waits, idle, meanwhile).
    """
    remote = remote or {}
    numbers = {name: calibrate(fn, warmup, sample_time) for name, fn in fns.items()}
    for name, peer in remote.items():
        numbers[name] = peer.calibrate(warmup, sample_time)
    per_pass_min = -(-min_samples // passes)
    per_pass_max = max(per_pass_min, max_samples // passes)
    samples: dict[str, list[float]] = {name: [] for name in numbers}
    for _ in range(passes):
        for name, fn in fns.items():
            samples[name] += run_block(fn, numbers[name], warmup, per_pass_min, per_pass_max, min_time / passes)
        for name, peer in remote.items():
            samples[name] += peer.block(numbers[name], warmup, per_pass_min, per_pass_max, min_time / passes)
    return {name: statistics.median(v) for name, v in samples.items()}

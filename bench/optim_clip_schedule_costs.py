"""Quick costs of issue 11's options (not a benchmark suite; see docs/design-notes.md, issue 11).

    python bench/optim_clip_schedule_costs.py

1. ``opt.update`` on one 1M-value array (replay path), best of 30 x 20 calls: no clipping, clipvalue,
   global_clipnorm, for SGD and Adam in float32/float64 (run it with ``PYTHONPATH`` on another checkout to
   compare the unclipped rows).
2. What a schedule adds in Python per update: the optimizer's ``_tick`` with ``lr`` a number vs an
   ``ExponentialDecay``, best of 30 x 20000 calls, interleaved.
"""

from __future__ import annotations

import timeit

import numpy as np

from fastdl import optim
from fastdl.schedules import ExponentialDecay


def update_costs() -> None:
    rng = np.random.default_rng(0)
    for name in ("SGD", "Adam"):
        for dtype in (np.float32, np.float64):
            for kw in ({}, {"clipvalue": 0.5}, {"global_clipnorm": 1.0}):
                opt = getattr(optim, name)(lr=1e-3, **kw)
                p = {"W": rng.standard_normal(1_000_000).astype(dtype)}
                g = {"W": rng.standard_normal(1_000_000).astype(dtype)}
                opt.update(p, g)
                t = min(timeit.repeat(lambda: opt.update(p, g), number=20, repeat=30)) / 20 * 1e6  # noqa: B023
                print(f"update 1M {name:4s} {np.dtype(dtype).name} {str(kw):26s} {t:8.0f} us")


def schedule_costs() -> None:
    schedule = ExponentialDecay(0.01, 1000, 0.96)
    for name in ("SGD", "Adam", "Nadam"):
        ticks = {label: getattr(optim, name)(lr=lr)._tick for label, lr in (("number", 0.01), ("schedule", schedule))}
        best = dict.fromkeys(ticks, float("inf"))
        for _ in range(30):
            for label, tick in ticks.items():
                best[label] = min(best[label], timeit.timeit(tick, number=20000) / 20000 * 1e6)
        print(f"_tick {name:5s}: lr a number {best['number']:.3f} us, ExponentialDecay {best['schedule']:.3f} us, "
              f"difference {best['schedule'] - best['number']:+.3f} us")


if __name__ == "__main__":
    update_costs()
    schedule_costs()

"""SGD + global_clipnorm against SGD alone at 8M values (issue 11's target: <= 1.5x; traffic 16/12 bytes in float32).

    python bench/optim_clip_8m.py            # one line per dtype, the load average beside it

Paired and interleaved in one process: ``opt.update`` on one 8M-value float32/float64 array (the
replay path, as a training loop calls it) for SGD, SGD with ``global_clipnorm`` and with ``clipvalue``,
and the norm pass alone (the compiled sum of squares, parallel above the threshold); best of 15
rounds x 3 repeats x 5 calls, the variants taking turns in every round. The clipped update is the
norm pass plus the unchanged SGD pass (one more read of the gradient, no extra write); its ratio to
SGD is the read-only pass's bandwidth against the update's.
"""

from __future__ import annotations

import os
import timeit

import numpy as np

from fastdl import optim, runtime
from fastdl.kernels import optim as kernels


def main(n: int = 8 << 20, rounds: int = 15) -> None:
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        p = {"W": rng.standard_normal(n).astype(dtype)}
        g = {"W": (0.01 * rng.standard_normal(n)).astype(dtype)}
        opts = {"sgd": optim.SGD(lr=1e-6), "sgd+global_clipnorm": optim.SGD(lr=1e-6, global_clipnorm=1.0),
                "sgd+clipvalue": optim.SGD(lr=1e-6, clipvalue=0.005)}
        flat = g["W"]
        calls = {k: (lambda o=o, p=p, g=g: o.update(p, g)) for k, o in opts.items()}
        calls["norm pass"] = lambda f=flat: (kernels.sumsq_parallel(f, runtime.chunks(n)) if runtime.use_parallel(n)
                                             else kernels.sumsq(f))
        for call in calls.values():
            call()
        best = dict.fromkeys(calls, float("inf"))
        load0 = os.getloadavg()[0]
        for _ in range(rounds):
            for k, call in calls.items():
                best[k] = min(best[k], min(timeit.repeat(call, number=5, repeat=3)) / 5)
        load1 = os.getloadavg()[0]
        ratio = best["sgd+global_clipnorm"] / best["sgd"]
        print(f"8M {np.dtype(dtype).name}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in best.items())
              + f"; global_clipnorm / sgd = {ratio:.2f}x (target <= 1.5x); load {load0:.1f}-{load1:.1f}, "
              f"{runtime.get_num_threads()} threads")


if __name__ == "__main__":
    main()

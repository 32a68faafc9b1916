"""fastdl forced serial, forced parallel and under the crossover table, beside PyTorch (2 threads), in one run.

Run ``python bench/parallel_policy.py [--size 256x1024] [--params 1M] [--only relu,adam]`` to print one Markdown
row per op and dtype: every registered activation's forward + backward at ``--size`` and every optimizer's
update at ``--params`` values, timed by ``fastdl.benchmark.measure_group`` (warm-up, rotating blocks, medians)
with fastdl's kernels forced serial (``runtime.parallel_threshold(2**62)``), forced parallel (``(0)``), under
the stored crossover table (the default), and torch. The columns after the times are torch's time over
fastdl's (> 1: fastdl faster). torch is imported first (fastdl's ``GOMP_SPINCOUNT`` would slow it; see
docs/design-notes.md). Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch  # noqa: F401  (first: see the docstring)

from fastdl import activations, optim, runtime
from fastdl import benchmark as B

POLICIES = {"serial": 2**62, "parallel": 0, "table": None}


def _under(fn, threshold):
    def run():
        if threshold is None:
            runtime.reset_parallel_threshold()
        else:
            runtime.set_parallel_threshold(threshold)
        fn()
    return run


def _pair(case_f, case_b):
    def run():
        case_f()
        case_b()
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="256x1024", help="activation size (a label of the bench's layer sizes)")
    parser.add_argument("--params", default="1M", help="optimizer size (10K, 1M or 8M)")
    parser.add_argument("--only", default="", help="comma-separated activation/optimizer names (default: all)")
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds of samples per variant")
    args = parser.parse_args(argv)
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    B.configure_torch_threads(2)
    print(f"# {runtime.info()['processor']}, {runtime.get_num_threads()} threads, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", file=sys.stderr)
    print("| op | size | dtype | serial us | parallel us | table us | torch us | x torch serial | x torch parallel "
          "| x torch table |\n|---|---|---|---|---|---|---|---|---|---|")
    rows = [("act", n) for n in activations.names()] + [("opt", n) for n in optim.OPTIMIZERS]
    for kind, name in rows:
        if only and name not in only:
            continue
        for dtype in ("float32", "float64"):
            if kind == "act":
                size = args.size
                made = {impl: [B.make_case(f"{name}-{d}", size, dtype, impl) for d in ("forward", "backward")]
                        for impl in ("fastdl", "torch")}
                fast, slow = _pair(*(c.fn for c in made["fastdl"])), _pair(*(c.fn for c in made["torch"]))
            else:
                size = args.params
                try:
                    made = {impl: B.make_case(f"{name}-update", size, dtype, impl) for impl in ("fastdl", "torch")}
                except B.Unavailable:
                    continue
                fast, slow = made["fastdl"].fn, made["torch"].fn
            fns = {p: _under(fast, th) for p, th in POLICIES.items()}
            fns["torch"] = slow
            t = B.measure_group(fns, warmup=3, min_time=args.min_time)
            runtime.reset_parallel_threshold()
            us = {k: v * 1e6 for k, v in t.items()}
            print(f"| {name} | {size} | {dtype} | {us['serial']:.0f} | {us['parallel']:.0f} | {us['table']:.0f} | "
                  f"{us['torch']:.0f} | {t['torch'] / t['serial']:.2f} | {t['torch'] / t['parallel']:.2f} | "
                  f"{t['torch'] / t['table']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Batch norm forward+backward in the layer, forced serial / forced parallel / under the crossover table, and torch.

Run ``python bench/batchnorm_policy.py``: one line per dtype and size, us per forward+backward (median,
``fastdl.benchmark.measure``), torch with 2 threads imported first. The design notes quote it (section
"Serial vs parallel crossovers"). Not collected by pytest (no ``test_`` prefix).
"""
import torch  # noqa: F401  (first: fastdl's GOMP_SPINCOUNT must not slow it)

from fastdl import benchmark as B
from fastdl import runtime


def main() -> None:
    B.configure_torch_threads(2)
    for dtype in ("float32", "float64"):
        for size in ("1024x4096", "256x1024"):
            out = []
            for pol, thr in (("serial", 2**62), ("parallel", 0), ("table", None)):
                with runtime.parallel_threshold(thr):
                    t = sum(B.measure(B.make_case(f"batchnorm-{d}", size, dtype, "fastdl").fn, warmup=3,
                                      min_time=0.4) for d in ("forward", "backward"))
                out.append(f"{pol} {t * 1e6:.0f}")
            tt = sum(B.measure(B.make_case(f"batchnorm-{d}", size, dtype, "torch").fn, warmup=3, min_time=0.4)
                     for d in ("forward", "backward"))
            print(dtype, size, *out, f"torch {tt * 1e6:.0f}", flush=True)


if __name__ == "__main__":
    main()

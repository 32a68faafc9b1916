"""fastdl timings under the environment's GOMP_SPINCOUNT: one JSON line (us per call), no torch imported.

Run ``for s in 1000 10000 30000 100000 300000; do NUMBA_THREADING_LAYER=omp GOMP_SPINCOUNT=$s python
bench/spin_probe.py; done`` (the spin count only matters on Numba's ``omp`` layer; fastdl prefers ``tbb``): the
interleaved GEMM loops (``make_interleave_case``) under each threading policy, and a few elementwise kernels
and Adam forced serial and forced parallel. The design notes quote the table (section "Threads, BLAS and
memory"). Not collected by pytest (no ``test_`` prefix).
"""
import json
import os

from fastdl import benchmark as B
from fastdl import runtime

res = {"spin": os.environ.get("GOMP_SPINCOUNT")}


def t(case, key):
    res[key] = B.measure(case.fn, warmup=3, min_time=0.4) * 1e6


for dtype in ("float32", "float64"):
    for pol in ("parallel", "serial", "default"):
        t(B.make_interleave_case("interleave-step-bn", dtype, pol), f"step-bn {dtype} {pol}")
        t(B.make_interleave_case("interleave-affine-bn-relu", dtype, pol), f"affine-bn-relu {dtype} {pol}")
    for pol, thr in (("parallel", 0), ("serial", 2**62)):
        with runtime.parallel_threshold(thr):
            for op in ("relu-forward", "relu-backward", "elu-forward", "sigmoid-forward"):
                t(B.make_case(op, "256x1024", dtype, "fastdl"), f"{op} 256x1024 {dtype} {pol}")
            t(B.make_case("adam-update", "1M", dtype, "fastdl"), f"adam 1M {dtype} {pol}")
print(json.dumps(res))

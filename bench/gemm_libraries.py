"""GEMM libraries on the book's shapes: OpenBLAS (NumPy's) with 1 and 2 threads, MKL and BLIS from their wheels.

Run ``python bench/gemm_libraries.py`` (options: ``--dtypes float32,float64``, ``--min-time SECONDS``).
Prints two Markdown tables and the 1-minute load average beside them:

* every GEMM of the book's 784-100x5-10 network at batch 100 (widths 784 -> 100, 100 -> 100, 100 -> 10;
  forward ``x @ W``, backward ``dout @ W.T`` and ``x.T @ dout``), in us per call, one column per library;
* the whole training step (``gradient()`` + Adam ``update()`` of ``fastdl.nets.MultiLayerNetExtend``,
  without and with batch norm) with the fused step's GEMM call swapped for each library's, in us, and
  OpenBLAS-2-threads / library (> 1: the library is faster).

Libraries: ``openblas-1t``/``openblas-2t`` are ``np.dot(a, b, out=)`` with NumPy's OpenBLAS held at that
many threads (threadpoolctl's controller, set before each call: a C call); ``mkl-1t``/``mkl-2t`` call
``cblas_?gemm`` of ``libmkl_rt`` (``pip install mkl``; GNU OpenMP threading, the runtime Numba uses) through
ctypes; ``blis`` is ``blis.py.gemm`` (``pip install blis``; cython-blis, single-threaded; its float64
``gemm`` ignores the transpose flags, so a transposed float64 operand is copied first, inside the
timing). A library not
installed has no column. Each group of calls is timed by ``fastdl.benchmark.measure_group`` (the
libraries' blocks rotate, so load from elsewhere hits all of them). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import sys

os.environ.setdefault("MKL_THREADING_LAYER", "GNU")  # (before libmkl_rt loads: one OpenMP runtime, Numba's)

import numpy as np  # noqa: E402
from threadpoolctl import ThreadpoolController  # noqa: E402

from fastdl import benchmark as B  # noqa: E402
from fastdl import nets, optim  # noqa: E402
from fastdl.benchmark.cases import step_data  # noqa: E402

BATCH = 100
WIDTHS = ((784, 100), (100, 100), (100, 10))
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _openblas(threads: int):
    ctl = ThreadpoolController().select(internal_api="openblas")
    libs = ctl.lib_controllers
    if not libs:
        return None

    def gemm(a, b, out):
        for lib in libs:
            lib.set_num_threads(threads)
        return np.dot(a, b, out=out)

    return gemm


def _mkl(threads: int):
    paths = sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))
    if not paths:
        return None
    lib = ctypes.CDLL(paths[0])
    setter = lib.MKL_Set_Num_Threads
    setter.argtypes = [ctypes.c_int]
    funcs = {}
    for dt, name, scalar in ((np.float32, "cblas_sgemm", ctypes.c_float), (np.float64, "cblas_dgemm", ctypes.c_double)):
        f = getattr(lib, name)
        f.restype = None
        f.argtypes = [ctypes.c_int] * 6 + [scalar, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                           scalar, ctypes.c_void_p, ctypes.c_int]
        funcs[np.dtype(dt)] = f

    def operand(a):  # (trans flag, leading dimension) of a C- or F-contiguous 2-D array in row-major terms
        return (_NO_TRANS, a.shape[1]) if a.flags.c_contiguous else (_TRANS, a.shape[0])

    def gemm(a, b, out):
        setter(threads)
        ta, lda = operand(a)
        tb, ldb = operand(b)
        m, k = a.shape
        n = b.shape[1]
        funcs[out.dtype](_ROW_MAJOR, ta, tb, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb, 0.0,
                         out.ctypes.data, n)
        return out

    return gemm


def _blis():
    try:
        from blis.py import gemm as blis_gemm
    except ImportError:
        return None

    def gemm(a, b, out):
        ta, tb = not a.flags.c_contiguous, not b.flags.c_contiguous
        if out.dtype == np.float64 and (ta or tb):  # the wheel's float64 path ignores trans1/trans2 (sizes
            a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)  # taken untransposed): copy, and say so
            ta = tb = False
        blis_gemm(a.T if ta else a, b.T if tb else b, out=out, trans1=ta, trans2=tb, alpha=1.0, beta=0.0)
        return out

    return gemm


def libraries() -> dict:
    """name -> ``gemm(a, b, out)`` (``out = a @ b``; a, b C- or F-contiguous, out C-contiguous)."""
    found = {"openblas-1t": _openblas(1), "openblas-2t": _openblas(2), "mkl-1t": _mkl(1), "mkl-2t": _mkl(2),
             "blis": _blis()}
    return {name: fn for name, fn in found.items() if fn is not None}


def products(dtype, rng):
    """(label, a, b) of every GEMM of one training step's layers (a transposed operand as a view)."""
    for d, h in WIDTHS:
        x = rng.standard_normal((BATCH, d)).astype(dtype)
        W = (0.1 * rng.standard_normal((d, h))).astype(dtype)
        dout = rng.standard_normal((BATCH, h)).astype(dtype)
        yield f"{d}->{h} x@W", x, W
        yield f"{d}->{h} dout@W.T", dout, W.T
        yield f"{d}->{h} x.T@dout", x.T, dout


def _check(libs: dict, a, b) -> None:
    ref = a.astype(np.float64) @ b.astype(np.float64)
    for name, gemm in libs.items():
        out = gemm(a, b, np.empty((a.shape[0], b.shape[1]), dtype=a.dtype))
        tol = 1e-4 if a.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * float(np.abs(ref).max()), err_msg=name)


def step_fn(dtype, use_bn: bool, gemm):
    x, t, (_, d, hidden, classes) = step_data(dtype, 0)
    np.random.seed(0)
    net = nets.MultiLayerNetExtend(d, list(hidden), classes, use_batchnorm=use_bn, dtype=np.dtype(dtype))
    opt = optim.get_optimizer("adam", lr=1e-3)
    expected = net.gradient(x, t)
    assert net._fused is not None
    used = []
    net._fused.calls.dot = lambda a, b, out: (used.append(1), gemm(a, b, out))[1]
    got = net.gradient(x, t)  # (the fused step runs this library's GEMM, to the same numbers within rounding)
    assert len(used) == 3 * len(hidden) + 2, len(used)  # (forward 6, dW 6, dx 5: none for the input)
    tol = 1e-3 if np.dtype(dtype) == np.float32 else 1e-8
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=tol, atol=tol * float(np.abs(expected[k]).max()))
    net._fused.calls.dot = gemm

    def step():
        opt.update(net.params, net.gradient(x, t))

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--min-time", type=float, default=0.3)
    args = ap.parse_args()
    libs = libraries()
    names = list(libs)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at start; libraries: {', '.join(names)}")
    print(f"\n| GEMM | dtype | {' | '.join(names)} | best / openblas-2t |\n|---|---|{'---|' * (len(names) + 1)}")
    rng = np.random.default_rng(0)
    for dtype in args.dtypes.split(","):
        for label, a, b in products(dtype, rng):
            _check(libs, a, b)
            out = np.empty((a.shape[0], b.shape[1]), dtype=dtype)
            t = B.measure_group({n: (lambda g=g, a=a, b=b, out=out: g(a, b, out)) for n, g in libs.items()}, warmup=3,
                                min_time=args.min_time, passes=3)
            best = min(t, key=t.get)
            print(f"| {label} | {dtype} | {' | '.join(f'{t[n] * 1e6:.1f}' for n in names)} | "
                  f"{best} {t['openblas-2t'] / t[best]:.2f}x |", flush=True)
    print(f"\n| training step | dtype | {' | '.join(names)} |\n|---|---|{'---|' * len(names)}")
    for use_bn in (False, True):
        for dtype in args.dtypes.split(","):
            fns = {n: step_fn(dtype, use_bn, g) for n, g in libs.items()}
            t = B.measure_group(fns, warmup=3, min_time=args.min_time * 3, passes=3)
            base = t["openblas-2t"]
            cells = " | ".join(f"{t[n] * 1e6:.0f} ({base / t[n]:.2f}x)" for n in names)
            print(f"| 784-100x5-10{' + BN' if use_bn else ''}, Adam | {dtype} | {cells} |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} (1 min) at end")


if __name__ == "__main__":
    main()

"""Probe: which vectorized-transcendental path wins on this machine (``python bench/vmath_probe.py``).

Times, per dtype (float32, float64) and size (100x100, 256x1024, 1024x4096), in interleaved blocks
(as :func:`fastdl.benchmark.timing.measure_group`: every variant takes a block in every pass; the median
and the 10th percentile over all samples), these variants of ``exp`` and of the forward passes of
sigmoid, tanh, SiLU and the row-wise softmax (rows of 100, 1024, 4096):

``numba-libm``   a Numba loop calling ``math.exp``/``math.tanh`` (scalar libm, does not vectorize)
``numpy``        NumPy's SIMD ufuncs in place (``np.exp(x, out=o)``; sigmoid/SiLU: the ufunc
                 passes the formula needs; sigmoid: fastdl's kernel of today, NumPy ``exp`` + one
                 compiled pass)
``numpy-2t``     the same split in two halves, one run by a worker thread (NumPy and fastdl's
                 kernels release the GIL), one by the calling thread
``poly``         :mod:`fastdl.kernels.vmath` (own vectorizable polynomial), one fused serial pass
``poly-2t``      the same, Numba ``prange`` over 2 chunks
``torch``        PyTorch (2 threads) in a separate process (imported before fastdl, its own
                 OpenMP spin count), taking its block in every pass as well
``torch-spin1k`` the same with ``GOMP_SPINCOUNT=1000``: on a loaded machine (more runnable threads
                 than cores) PyTorch's default OpenMP spin-wait made every 2-thread call wait for a
                 scheduler slice (measured ~20 ms per ``torch.exp`` of 10K..4M elements at load 12;
                 45 us .. 6 ms with the spin count 1000); the tables show both, the fairer peer is
                 the faster of the two

Softmax: ``numpy`` is fastdl's softmax of today (compiled shift, NumPy ``exp`` in place, compiled
normalize), ``poly`` one compiled pass per row. PyTorch's SiLU and softmax allocate their result;
every other variant writes into a preallocated array.

Then the crossover of ``numpy-2t`` over ``numpy`` for ``exp`` (sizes 2**10 .. 2**22), and the
memory-traffic comparison for sigmoid forward at 256x1024: NumPy's ``exp`` in place between two
compiled passes (negate, finish) against one fused compiled pass.

Options: ``--quick`` (shorter blocks, for a smoke run), ``--json FILE`` (all medians),
``--funcs exp,softmax`` (a subset), ``--no-extra`` (skip the crossover and traffic sections),
``--cpu`` (only the thread CPU time per call of the serial variants: what they cost when they
have a core, which a loaded machine's wall-clock medians do not show), ``--accuracy`` (only the
table of max ulp errors of NumPy, Numba's libm, vmath and PyTorch).
Prints Markdown tables (microseconds per call, median / 10th percentile) and the ``uptime`` load before and after.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--peer" in sys.argv:
    import torch  # noqa: F401  (before fastdl: its OpenMP keeps its own spin count)

import argparse
import json
import math
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import prange

from fastdl._jit import REDUCTION, jit
from fastdl.benchmark import timing
from fastdl.benchmark.peer import RemotePeer
from fastdl.kernels import activations, softmax, vmath

SHAPES = {"100x100": (100, 100), "256x1024": (256, 1024), "1024x4096": (1024, 4096)}
SIZES = {k: r * c for k, (r, c) in SHAPES.items()}
DTYPES = ("float32", "float64")
FUNCS = ("exp", "sigmoid", "tanh", "silu", "softmax", "softplus")


# --- Numba loops around scalar libm, and the fused polynomial SiLU -----------------------------------

LIBM = {"exp": 0, "sigmoid": 1, "tanh": 2, "silu": 3, "softplus": 4, "log1p": 5}


@jit
def _libm_map(x, out, op, one, zero):
    """Numba loops around scalar libm ``math.exp``/``tanh``/``log1p`` (``op`` from :data:`LIBM`)."""
    if op == 0:
        for i in range(x.size):
            out[i] = math.exp(x[i])
    elif op == 1:
        for i in range(x.size):
            out[i] = one / (one + math.exp(-x[i]))
    elif op == 2:
        for i in range(x.size):
            out[i] = math.tanh(x[i])
    elif op == 3:
        for i in range(x.size):
            out[i] = x[i] / (one + math.exp(-x[i]))
    elif op == 4:
        for i in range(x.size):
            v = x[i]
            out[i] = (v if v > zero else zero) + math.log1p(math.exp(-abs(v)))
    else:
        for i in range(x.size):
            out[i] = math.log1p(x[i])


def _libm(name):
    return lambda x, o: _libm_map(x, o, LIBM[name], x.dtype.type(1), x.dtype.type(0))


@jit
def _poly_silu(x, out, lo, hi):
    xs, os = x[lo:hi], out[lo:hi]
    for i in range(xs.size):
        v = xs[i]
        os[i] = v * vmath.vsigmoid(v)


@jit(parallel=True)
def _poly_silu_p(x, out, nchunks):
    n = x.size
    for c in prange(nchunks):
        _poly_silu(x, out, c * n // nchunks, (c + 1) * n // nchunks)


@jit(fastmath=REDUCTION)
def _poly_softmax(x, y, lo, hi):
    """Row-wise softmax in one pass per row: max, ``vexp(x - max)`` stored and summed (float64), divide.

    ``fastmath=REDUCTION`` (reassociation) lets the row max and the sum vectorize.
    """
    c = x.shape[1]
    s_typed = np.empty(1, dtype=y.dtype)
    for i in range(lo, hi):
        xr, yr = x[i], y[i]
        mx = xr[0]
        for j in range(1, c):
            if xr[j] > mx:
                mx = xr[j]
        s = 0.0
        for j in range(c):
            e = vmath.vexp(xr[j] - mx)
            yr[j] = e
            s += e
        s_typed[0] = s
        st = s_typed[0]
        for j in range(c):
            yr[j] = yr[j] / st


@jit(parallel=True)
def _poly_softmax_p(x, y, nchunks):
    n = x.shape[0]
    for k in prange(nchunks):
        _poly_softmax(x, y, k * n // nchunks, (k + 1) * n // nchunks)


@jit(fastmath=REDUCTION)
def _libm_softmax(x, y):
    c = x.shape[1]
    for i in range(x.shape[0]):
        mx = x[i, 0]
        for j in range(1, c):
            if x[i, j] > mx:
                mx = x[i, j]
        s = 0.0
        for j in range(c):
            e = math.exp(x[i, j] - mx)
            y[i, j] = e
            s += e
        for j in range(c):
            y[i, j] = y[i, j] / s


@jit
def _negate(x, out, lo, hi):
    xs, os = x[lo:hi], out[lo:hi]
    for i in range(xs.size):
        os[i] = -xs[i]


@jit
def _copy(x, out, lo, hi):
    xs, os = x[lo:hi], out[lo:hi]
    for i in range(xs.size):
        os[i] = xs[i]


# --- NumPy passes, whole or over a [lo, hi) range -----------------------------------------------------

def _np_exp(x, o, lo, hi):
    np.exp(x[lo:hi], out=o[lo:hi])


def _np_tanh(x, o, lo, hi):
    np.tanh(x[lo:hi], out=o[lo:hi])


def _np_sigmoid(x, o, lo, hi):
    """fastdl's sigmoid forward of today on a range: NumPy negate + exp in place, one compiled pass."""
    xs, os = x[lo:hi], o[lo:hi]
    with np.errstate(over="ignore"):
        np.negative(xs, out=os)
        np.exp(os, out=os)
    activations._sigmoid_finish(os, xs.dtype.type(1), 0, os.size)


def _np_silu(x, o, lo, hi):
    """``x / (1 + exp(-x))`` in NumPy ufunc passes, in place."""
    xs, os = x[lo:hi], o[lo:hi]
    with np.errstate(over="ignore"):
        np.negative(xs, out=os)
        np.exp(os, out=os)
    os += 1
    np.divide(xs, os, out=os)


def _np_softmax(x, o, lo, hi):
    """fastdl's softmax of today on rows [lo, hi): compiled shift, NumPy exp in place, compiled normalize."""
    softmax._shift_rows(x, o, lo, hi)
    np.exp(o[lo:hi], out=o[lo:hi])
    softmax._normalize_rows(o, lo, hi)


def _np_softplus(x, o, lo, hi):
    """``max(x, 0) + log1p(exp(-|x|))`` in NumPy ufunc passes, in place (4 passes and a temporary-free max)."""
    xs, os = x[lo:hi], o[lo:hi]
    np.abs(xs, out=os)
    np.negative(os, out=os)
    np.exp(os, out=os)
    np.log1p(os, out=os)
    os += np.maximum(xs, 0)


NP_PASSES = {"exp": _np_exp, "sigmoid": _np_sigmoid, "tanh": _np_tanh, "silu": _np_silu, "softmax": _np_softmax,
             "softplus": _np_softplus}


class Split2:
    """Run ``f(x, o, lo, hi)`` on two halves: one in a worker thread, one in the calling thread."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(1)

    def __call__(self, f, x, o):
        n = len(x)  # elements of a flat array, rows of a 2-D one
        h = n // 2
        fut = self.pool.submit(f, x, o, 0, h)
        f(x, o, h, n)
        fut.result()


def local_variants(func: str, x: np.ndarray, o: np.ndarray, split: Split2) -> dict:
    n = len(x)
    npf = NP_PASSES[func]
    if func == "softmax":
        def libm():
            _libm_softmax(x, o)
    else:
        libm_f = _libm(func)

        def libm():
            libm_f(x, o)
    op = {"exp": vmath.EXP, "sigmoid": vmath.SIGMOID, "tanh": vmath.TANH, "softplus": vmath.SOFTPLUS}.get(func)
    if op is None:
        serial, par = {"silu": (_poly_silu, _poly_silu_p), "softmax": (_poly_softmax, _poly_softmax_p)}[func]
    else:
        def serial(x, o, lo, hi, op=op):
            vmath._map_w(x, o, op, lo, hi)

        def par(x, o, nchunks, op=op):
            vmath._map_p(x, o, op, nchunks)
    return {
        "numba-libm": libm,
        "numpy": lambda: npf(x, o, 0, n),
        "numpy-2t": lambda: split(npf, x, o),
        "poly": lambda: serial(x, o, 0, n),
        "poly-2t": lambda: par(x, o, 2),
    }


def make_input(func: str, n: int, dtype: str) -> np.ndarray:
    """Standard normal draws times 3 (seed 0): the activations' working range; softmax: rows of 1024
    (100 for the 100x100 size), as the probe's shapes have them."""
    x = (3 * np.random.default_rng(0).standard_normal(n)).astype(dtype)
    if func == "softmax":
        cols = 100 if n == 100 * 100 else (1024 if n == 256 * 1024 else 4096)
        x = x.reshape(n // cols, cols)
    return x


# --- the PyTorch peer process ------------------------------------------------------------------------

def _peer_server() -> None:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    out, sys.stdout = sys.stdout, sys.stderr
    fn = None
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg["cmd"]
        result = None
        if cmd == "setup":
            x = torch.from_numpy(make_input(msg["func"], msg["n"], msg["dtype"]))
            o = torch.empty_like(x)
            fn = {"exp": lambda x=x, o=o: torch.exp(x, out=o), "sigmoid": lambda x=x, o=o: torch.sigmoid(x, out=o),
                  "tanh": lambda x=x, o=o: torch.tanh(x, out=o), "silu": lambda x=x: F.silu(x),
                  "softmax": lambda x=x: torch.softmax(x, 1),
                  "softplus": lambda x=x: F.softplus(x)}[msg["func"]]
        elif cmd == "calibrate":
            result = timing.calibrate(fn, msg["warmup"], msg["sample_time"])
        elif cmd == "block":
            result = timing.run_block(fn, msg["number"], msg["warmup"], msg["min_samples"], msg["max_samples"],
                                   msg["block_time"])
        out.write(json.dumps({"result": result}) + "\n")
        out.flush()


class TorchPeer(RemotePeer):
    """:class:`fastdl.benchmark.peer.RemotePeer` running this script's ``--peer`` server (torch 2 threads)."""

    def __init__(self, spincount: str | None = None) -> None:
        self.impl, self.seed, self.max_settle = "torch", 0, 1.0
        env = self.environment()
        if spincount is not None:
            env["GOMP_SPINCOUNT"] = spincount
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--peer"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1, env=env)

    def setup_func(self, func: str, n: int, dtype: str) -> None:
        self._ask({"cmd": "setup", "func": func, "n": n, "dtype": dtype})


# --- the probe -----------------------------------------------------------------------------------------

def measure_all(fns: dict, remote: dict | None = None, *, warmup: int = 2, min_time: float = 0.2,
                min_samples: int = 5, sample_time: float = 1e-2, passes: int = 3) -> dict:
    """Interleaved blocks as :func:`fastdl.benchmark.timing.measure_group`, keeping every sample.

    Returns name -> ``{"median": s, "p10": s}`` (seconds per call): on a loaded machine the median
    includes waiting for a core, the 10th percentile estimates the cost when the work had one.
    """
    remote = remote or {}
    numbers = {name: timing.calibrate(fn, warmup, sample_time) for name, fn in fns.items()}
    numbers.update({name: peer.calibrate(warmup, sample_time) for name, peer in remote.items()})
    lo = -(-min_samples // passes)
    samples: dict[str, list[float]] = {name: [] for name in numbers}
    for _ in range(passes):
        for name, fn in fns.items():
            samples[name] += timing.run_block(fn, numbers[name], warmup, lo, 4 * lo, min_time / passes)
        for name, peer in remote.items():
            samples[name] += peer.block(numbers[name], warmup, lo, 4 * lo, min_time / passes)
    return {name: {"median": float(np.median(v)), "p10": float(np.percentile(v, 10))} for name, v in samples.items()}


def cpu_table(funcs: list[str], rounds: int = 7) -> dict:
    """Thread CPU time per call of the single-threaded variants (immune to waiting for a core).

    ``rounds`` rounds, each timing every variant once over ~20 ms of calls in turn; the median
    over rounds. Cache and memory-bandwidth contention from other processes still count.
    """
    import time

    split = None
    results = {}
    print("\n### single-thread variants: thread CPU time per call, us (median of rounds)\n")
    cols = ["numba-libm", "numpy", "poly"]
    print("| function | size | dtype | " + " | ".join(cols) + " | numpy/poly |")
    print("|---|---|---|" + "---|" * (len(cols) + 1))
    for func in funcs:
        for size, n in SIZES.items():
            for dtype in DTYPES:
                x = make_input(func, n, dtype)
                o = np.empty_like(x)
                with np.errstate(over="ignore"):
                    fns = {k: v for k, v in local_variants(func, x, o, split).items() if k in cols}
                    numbers = {k: timing.calibrate(f, 2, 0.02) for k, f in fns.items()}
                    samples = {k: [] for k in fns}
                    for _ in range(rounds):
                        for k, f in fns.items():
                            t0 = time.thread_time()
                            for _ in range(numbers[k]):
                                f()
                            samples[k].append((time.thread_time() - t0) / numbers[k])
                med = {k: float(np.median(v)) for k, v in samples.items()}
                results[f"cpu/{func}/{size}/{dtype}"] = med
                print(f"| {func} | {size} | {dtype} | " + " | ".join(f"{med[c] * 1e6:.4g}" for c in cols)
                      + f" | {med['numpy'] / med['poly']:.2f} |")
    return results


def _book_sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _accuracy_cases(torch):
    """name -> (reference on the wide type, numpy, numba-libm or None, vmath driver, torch or None)."""
    return {
        "exp": (np.exp, np.exp, _libm("exp"), vmath.exp_into, torch and torch.exp),
        "expm1": (np.expm1, np.expm1, None, vmath.expm1_into, torch and torch.expm1),
        "tanh": (np.tanh, np.tanh, _libm("tanh"), vmath.tanh_into, torch and torch.tanh),
        "sigmoid": (_book_sigmoid, _book_sigmoid, _libm("sigmoid"),
                    vmath.sigmoid_into, torch and torch.sigmoid),
        "log1p": (np.log1p, np.log1p, _libm("log1p"), vmath.log1p_into, torch and torch.log1p),
        "softplus": (lambda v: np.logaddexp(0, v), lambda v: np.logaddexp(0, v),
                     _libm("softplus"), vmath.softplus_into, None),
    }


def accuracy_table() -> None:
    """Max ulp error of each implementation over 2.1e6 inputs per dtype (as tests/test_vmath.py draws them).

    No PyTorch column for softplus: it returns ``x`` above its threshold (20) by design, and without
    the threshold its ``log1p(exp(x))`` overflows.
    """
    rng = np.random.default_rng(1234)
    try:
        import torch
    except ImportError:
        torch = None
    print("\n### max ulp error vs a wider reference (np.longdouble for float64, float64 for float32)\n")
    print("| function | dtype | numpy | numba-libm | poly (vmath) | torch |")
    print("|---|---|---|---|---|---|")
    for name, (ref_f, np_f, libm_f, vm_f, torch_f) in _accuracy_cases(torch).items():
        for dtype in DTYPES:
            if name == "log1p":
                top = 700.0 if dtype == "float64" else 87.0
                x = np.concatenate([rng.uniform(-1, 1, 10**6), np.exp(rng.uniform(-top, top, 10**6)),
                                    rng.standard_normal(10**5) * 1e-4]).astype(dtype)
            else:
                wide = 760.0 if dtype == "float64" else 110.0
                x = np.concatenate([rng.uniform(-wide, wide, 10**6), rng.uniform(-4, 4, 10**6),
                                    rng.standard_normal(10**5) * 1e-4]).astype(dtype)
            ref_t = np.longdouble if dtype == "float64" else np.float64
            with np.errstate(over="ignore", invalid="ignore"):
                ref = ref_f(x.astype(ref_t))
                if name == "sigmoid":  # the book's formula gives 0 where exp(-x) overflows in the dtype
                    ref = np.where(np.isinf(np.exp(-x)), 0, ref)
                outs = {"numpy": np_f(x)}
            o = np.empty_like(x)
            if libm_f is not None:
                libm_f(x, o)
                outs["numba-libm"] = o.copy()
            vm_f(x, o)
            outs["poly (vmath)"] = o.copy()
            if torch_f is not None:
                outs["torch"] = torch_f(torch.from_numpy(x)).numpy()
            cells = []
            for impl in ("numpy", "numba-libm", "poly (vmath)", "torch"):
                if impl not in outs:
                    cells.append("-")
                    continue
                out = outs[impl]
                with np.errstate(over="ignore", invalid="ignore"):
                    rounded = ref.astype(dtype)
                    same = (out == rounded) | (np.isnan(out) & np.isnan(ref))
                    err = np.abs(out.astype(ref_t) - ref) / np.spacing(np.abs(rounded)).astype(ref_t)
                cells.append(f"{float(np.max(np.where(same, 0, err))):.2f}")
            print(f"| {name} | {dtype} | " + " | ".join(cells) + " |")


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "(uptime unavailable)"


def _table(title: str, rows: list[tuple[str, str, dict]], cols: list[str], bytes_per: int = 2) -> None:
    """Cells ``median / p10`` in us; the best by p10 and its GB/s (``bytes_per`` x size x itemsize moved)."""
    print(f"\n### {title}\n")
    print("| size | dtype | " + " | ".join(cols) + " | best (p10) | GB/s |")
    print("|---|---|" + "---|" * (len(cols) + 2))
    for size, dtype, med in rows:
        best = min((c for c in cols if c in med), key=lambda c: med[c]["p10"])
        gbs = bytes_per * SIZES.get(size, 0) * np.dtype(dtype).itemsize / med[best]["p10"] / 1e9
        cells = [f"{med[c]['median'] * 1e6:.4g} / {med[c]['p10'] * 1e6:.4g}" if c in med else "-" for c in cols]
        print(f"| {size} | {dtype} | " + " | ".join(cells) + f" | {best} | {gbs:.1f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short blocks (smoke run)")
    ap.add_argument("--json", help="write all medians to this file")
    ap.add_argument("--accuracy", action="store_true", help="only the max-ulp table of every implementation")
    ap.add_argument("--cpu", action="store_true", help="only the thread-CPU-time table of the serial variants")
    ap.add_argument("--no-extra", action="store_true", help="skip the crossover and memory-traffic sections")
    ap.add_argument("--funcs", default=",".join(FUNCS), help="comma-separated subset of " + ",".join(FUNCS))
    args = ap.parse_args(argv)
    kw = dict(min_time=0.05, passes=2, min_samples=3) if args.quick else dict(min_time=0.6, passes=5,
                                                                              min_samples=10)
    if args.accuracy:
        accuracy_table()
        return
    if args.cpu:
        print("load before:", _uptime())
        cpu_table(args.funcs.split(","))
        print("\nload after:", _uptime())
        return
    print("load before:", _uptime())
    split = Split2()
    peers = {"torch": TorchPeer(), "torch-spin1k": TorchPeer("1000")}
    results: dict = {}
    cols = ["numba-libm", "numpy", "numpy-2t", "poly", "poly-2t", "torch", "torch-spin1k"]
    try:
        for func in args.funcs.split(","):
            rows = []
            for size, n in SIZES.items():
                for dtype in DTYPES:
                    x = make_input(func, n, dtype)
                    o = np.empty_like(x)
                    for peer in peers.values():
                        peer.setup_func(func, n, dtype)
                    with np.errstate(over="ignore"):
                        med = measure_all(local_variants(func, x, o, split), remote=peers, **kw)
                    rows.append((size, dtype, med))
                    results[f"{func}/{size}/{dtype}"] = med
            _table(f"{func} forward, us per call (median / p10)", rows, cols)

        if not args.no_extra:
            # crossover of the 2-thread NumPy split for exp
            print("\n### exp: NumPy 1 thread vs split over 2 threads, us per call (median / p10)\n")
            print("| n | dtype | numpy | numpy-2t | ratio numpy/numpy-2t |")
            print("|---|---|---|---|---|")
            for k in range(10, 23, 2):
                for dtype in DTYPES:
                    x = make_input("exp", 2**k, dtype)
                    o = np.empty_like(x)
                    med = measure_all({"numpy": lambda x=x, o=o: _np_exp(x, o, 0, x.size),
                                       "numpy-2t": lambda x=x, o=o: split(_np_exp, x, o)}, **kw)
                    results[f"crossover/{2**k}/{dtype}"] = med
                    a, b = med["numpy"], med["numpy-2t"]
                    print(f"| 2^{k} | {dtype} | {a['median'] * 1e6:.1f} / {a['p10'] * 1e6:.1f} | "
                          f"{b['median'] * 1e6:.1f} / {b['p10'] * 1e6:.1f} | {a['median'] / b['median']:.2f} / "
                          f"{a['p10'] / b['p10']:.2f} |")

            # memory traffic: NumPy in place between two compiled passes vs one fused compiled pass
            rows = []
            n = SIZES["256x1024"]
            for dtype in DTYPES:
                x = make_input("sigmoid", n, dtype)
                o = np.empty_like(x)
                one = x.dtype.type(1)

                def three_pass(x=x, o=o, one=one):
                    _negate(x, o, 0, n)
                    np.exp(o, out=o)
                    activations._sigmoid_finish(o, one, 0, n)

                variants = {
                    "compiled+np.exp+compiled": three_pass,
                    "today (np.neg+np.exp+compiled)": lambda x=x, o=o: activations.sigmoid_forward(x, o),
                    "fused poly": lambda x=x, o=o: vmath._map_w(x, o, vmath.SIGMOID, 0, n),
                    "fused libm": lambda x=x, o=o, one=one: _libm_map(x, o, LIBM["sigmoid"], one, one - one),
                    "np.exp alone": lambda x=x, o=o: np.exp(x, out=o),
                    "compiled copy pass": lambda x=x, o=o: _copy(x, o, 0, n),
                }
                with np.errstate(over="ignore"):
                    med = measure_all(variants, **kw)
                results[f"traffic/256x1024/{dtype}"] = med
                rows.append(("256x1024", dtype, med))
            _table("sigmoid forward 256x1024: passes vs one fused pass, us per call (median / p10)", rows,
                   list(variants))
    finally:
        for peer in peers.values():
            peer.close()
        split.pool.shutdown()
    print("\nload after:", _uptime())
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, args.json)


if __name__ == "__main__":
    if "--peer" in sys.argv:
        _peer_server()
    else:
        main()

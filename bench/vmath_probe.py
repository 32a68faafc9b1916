"""Probe: which vectorized-transcendental path wins on this machine (``python bench/vmath_probe.py``).

Times, per dtype (float32, float64) and size (100x100, 256x1024, 1024x4096), in interleaved blocks
(:func:`fastdl.benchmark.measure_group`: every variant takes a block in every pass, medians over
all samples), these variants of ``exp`` and of the forward passes of sigmoid, tanh and SiLU:

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

Then the crossover of ``numpy-2t`` over ``numpy`` for ``exp`` (sizes 2**10 .. 2**22), and the
memory-traffic comparison for sigmoid forward at 256x1024: NumPy's ``exp`` in place between two
compiled passes (negate, finish) against one fused compiled pass.

Options: ``--quick`` (shorter blocks, for a smoke run), ``--json FILE`` (all medians).
Prints Markdown tables (microseconds per call, median) and the ``uptime`` load before and after.
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

from fastdl import benchmark as fb
from fastdl._jit import jit
from fastdl.kernels import activations, vmath

SIZES = {"100x100": 100 * 100, "256x1024": 256 * 1024, "1024x4096": 1024 * 4096}
DTYPES = ("float32", "float64")
FUNCS = ("exp", "sigmoid", "tanh", "silu")


# --- Numba loops around scalar libm, and the fused polynomial SiLU -----------------------------------

@jit
def _libm_exp(x, out):
    for i in range(x.size):
        out[i] = math.exp(x[i])


@jit
def _libm_sigmoid(x, out, one):
    for i in range(x.size):
        out[i] = one / (one + math.exp(-x[i]))


@jit
def _libm_tanh(x, out):
    for i in range(x.size):
        out[i] = math.tanh(x[i])


@jit
def _libm_silu(x, out, one):
    for i in range(x.size):
        v = x[i]
        out[i] = v / (one + math.exp(-v))


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


NP_PASSES = {"exp": _np_exp, "sigmoid": _np_sigmoid, "tanh": _np_tanh, "silu": _np_silu}


class Split2:
    """Run ``f(x, o, lo, hi)`` on two halves: one in a worker thread, one in the calling thread."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(1)

    def __call__(self, f, x, o):
        h = x.size // 2
        fut = self.pool.submit(f, x, o, 0, h)
        f(x, o, h, x.size)
        fut.result()


def local_variants(func: str, x: np.ndarray, o: np.ndarray, split: Split2) -> dict:
    one = x.dtype.type(1)
    n = x.size
    npf = NP_PASSES[func]
    libm = {"exp": lambda: _libm_exp(x, o), "sigmoid": lambda: _libm_sigmoid(x, o, one),
            "tanh": lambda: _libm_tanh(x, o), "silu": lambda: _libm_silu(x, o, one)}[func]
    serial, par = {"exp": (vmath._exp_w, vmath._exp_p), "sigmoid": (vmath._sigmoid_w, vmath._sigmoid_p),
                   "tanh": (vmath._tanh_w, vmath._tanh_p), "silu": (_poly_silu, _poly_silu_p)}[func]
    return {
        "numba-libm": libm,
        "numpy": lambda: npf(x, o, 0, n),
        "numpy-2t": lambda: split(npf, x, o),
        "poly": lambda: serial(x, o, 0, n),
        "poly-2t": lambda: par(x, o, 2),
    }


def make_input(func: str, n: int, dtype: str) -> np.ndarray:
    """Standard normal draws times 3 (seed 0): the activations' working range."""
    return (3 * np.random.default_rng(0).standard_normal(n)).astype(dtype)


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
                  "tanh": lambda x=x, o=o: torch.tanh(x, out=o), "silu": lambda x=x: F.silu(x)}[msg["func"]]
        elif cmd == "calibrate":
            result = fb._calibrate(fn, msg["warmup"], msg["sample_time"])
        elif cmd == "block":
            result = fb._run_block(fn, msg["number"], msg["warmup"], msg["min_samples"], msg["max_samples"],
                                   msg["block_time"])
        out.write(json.dumps({"result": result}) + "\n")
        out.flush()


class TorchPeer(fb.RemotePeer):
    """:class:`fastdl.benchmark.RemotePeer` running this script's ``--peer`` server (torch 2 threads)."""

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

def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "(uptime unavailable)"


def _table(title: str, rows: list[tuple[str, str, dict]], cols: list[str], bytes_per: int = 2) -> None:
    print(f"\n### {title}\n")
    print("| size | dtype | " + " | ".join(cols) + " | best | best GB/s |")
    print("|---|---|" + "---|" * (len(cols) + 2))
    for size, dtype, med in rows:
        best = min((c for c in cols if c in med), key=med.get)
        gbs = bytes_per * SIZES.get(size, 0) * np.dtype(dtype).itemsize / med[best] / 1e9
        cells = [f"{med[c] * 1e6:.1f}" if c in med else "-" for c in cols]
        print(f"| {size} | {dtype} | " + " | ".join(cells) + f" | {best} | {gbs:.1f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short blocks (smoke run)")
    ap.add_argument("--json", help="write all medians to this file")
    ap.add_argument("--funcs", default=",".join(FUNCS), help="comma-separated subset of " + ",".join(FUNCS))
    args = ap.parse_args(argv)
    kw = dict(min_time=0.05, passes=2, min_samples=3) if args.quick else dict(min_time=0.6, passes=5,
                                                                              min_samples=10)
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
                        med = fb.measure_group(local_variants(func, x, o, split), remote=peers, **kw)
                    rows.append((size, dtype, med))
                    results[f"{func}/{size}/{dtype}"] = med
            _table(f"{func} forward, us per call (median)", rows, cols)

        # crossover of the 2-thread NumPy split for exp
        print("\n### exp: NumPy 1 thread vs split over 2 threads, us per call\n")
        print("| n | dtype | numpy | numpy-2t | ratio |")
        print("|---|---|---|---|---|")
        for k in range(10, 23, 2):
            for dtype in DTYPES:
                x = make_input("exp", 2**k, dtype)
                o = np.empty_like(x)
                med = fb.measure_group({"numpy": lambda x=x, o=o: _np_exp(x, o, 0, x.size),
                                        "numpy-2t": lambda x=x, o=o: split(_np_exp, x, o)}, **kw)
                results[f"crossover/{2**k}/{dtype}"] = med
                print(f"| 2^{k} | {dtype} | {med['numpy'] * 1e6:.1f} | {med['numpy-2t'] * 1e6:.1f} | "
                      f"{med['numpy'] / med['numpy-2t']:.2f} |")

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
                "fused poly": lambda x=x, o=o: vmath._sigmoid_w(x, o, 0, n),
                "fused libm": lambda x=x, o=o, one=one: _libm_sigmoid(x, o, one),
                "np.exp alone": lambda x=x, o=o: np.exp(x, out=o),
                "compiled copy pass": lambda x=x, o=o: _copy(x, o, 0, n),
            }
            with np.errstate(over="ignore"):
                med = fb.measure_group(variants, **kw)
            results[f"traffic/256x1024/{dtype}"] = med
            rows.append(("256x1024", dtype, med))
        _table("sigmoid forward 256x1024: passes vs one fused pass, us per call", rows, list(variants))
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

"""Serial vs parallel crossovers per kernel family and dtype: measure them, and with ``--write`` store them.

Run ``python bench/crossovers.py`` to print the measured table (Markdown) and ``python bench/crossovers.py
--write`` to also write it to ``fastdl/_crossovers.py`` (atomically), the table :func:`fastdl.runtime.use_parallel`
reads. Run it on a quiet machine: on a loaded one the parallel twins wait for a busy core and the crossovers
come out late (or "never"). It takes about a minute on the 2-core development machine.

For every family, each of its *members* (one driver call that decides serial vs parallel once) is timed with
its serial and its parallel variant forced (``runtime.parallel_threshold(2**62)`` / ``(0)``) over a geometric
range of sizes, 16 KiB to 64 MiB moved per call, doubling. The two variants are timed in rotating blocks
(:func:`fastdl.benchmark.measure_group`: warm-up, then samples, medians; serial and parallel alternate, so a burst
of load from elsewhere hits both). A member's crossover is the smallest size from which the parallel variant is
at least ``--margin`` (default 5 %) faster at every size measured above it; the scan stops after ``--confirm``
(default 3) such sizes in a row. The family's crossover is the largest of its members' (parallel only where it
pays for every member). "Bytes moved" is counted as the drivers count it: the sum of the sizes of the arrays a
call reads and writes (an optimizer step: ``size * itemsize * rule.traffic``).
"""

from __future__ import annotations

import argparse
import ast
import datetime
import math
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import fastdl
from fastdl import _io, optim, runtime
from fastdl import benchmark as B
from fastdl.kernels import activations as KA
from fastdl.kernels import batchnorm as KB
from fastdl.kernels import constraints as KC
from fastdl.kernels import dispatch, numpy_map
from fastdl.kernels import optim as KO
from fastdl.kernels import smooth as KS
from fastdl.kernels import softmax as KX
from fastdl.optim import plan as P

NEVER = 2**62  # a crossover no call reaches: the family always runs serial
TABLE_PATH = Path(fastdl.__file__).parent / "_crossovers.py"
SIZES = [2**k for k in range(14, 27)]  # 16 KiB .. 64 MiB moved per call


def _rows(nbytes: int, width: int, per_element: float) -> int:
    """Rows of ``width`` elements so that one call moves about ``nbytes`` at ``per_element`` bytes per element."""
    return max(2, round(nbytes / (width * per_element)))


# Each member: (family, name, setup(nbytes, dtype) -> (fn, bytes the driver counts)). fn runs the driver once.

def _relu_forward(nbytes, dt):
    n = max(64, nbytes // (2 * dt.itemsize))
    x = np.random.default_rng(0).standard_normal(n).astype(dt)
    out = np.empty_like(x)
    return (lambda: KA.relu_forward_out(x, out)), x.nbytes + out.nbytes


def _relu_backward(nbytes, dt):
    n = max(64, nbytes // (3 * dt.itemsize))
    rng = np.random.default_rng(1)
    dout, y = rng.standard_normal(n).astype(dt), np.maximum(rng.standard_normal(n), 0).astype(dt)
    dx = np.empty_like(dout)
    return (lambda: KA.relu_backward_out(dout, y, dx)), dout.nbytes + y.nbytes + dx.nbytes


def _silu_forward(nbytes, dt):
    n = max(64, nbytes // (2 * dt.itemsize))
    x = np.random.default_rng(2).standard_normal(n).astype(dt)
    out = np.empty_like(x)
    return (lambda: KS.silu_forward(x, out)), 2 * x.nbytes


def _elu_backward(nbytes, dt):
    n = max(64, nbytes // (3 * dt.itemsize))
    rng = np.random.default_rng(3)
    x, dout = rng.standard_normal(n).astype(dt), rng.standard_normal(n).astype(dt)
    dx = np.empty_like(x)
    return (lambda: KS.elu_backward(dout, x, dx, dt.type(1.0))), 3 * x.nbytes


def _sigmoid_exp(nbytes, dt):
    n = max(64, nbytes // (2 * dt.itemsize))
    x = np.random.default_rng(11).standard_normal(n).astype(dt)
    out = np.empty_like(x)
    return (lambda: numpy_map(KA._exp_of_negative, x, out)), 2 * x.nbytes


def _tanh_forward(nbytes, dt):
    n = max(64, nbytes // (2 * dt.itemsize))
    x = np.random.default_rng(12).standard_normal(n).astype(dt)
    out = np.empty_like(x)
    return (lambda: KS.tanh_forward(x, out)), 2 * x.nbytes


_CLASSES = 1024  # softmax rows as in the bench's 256x1024 rows


def _softmax_xent(nbytes, dt):
    n = _rows(nbytes, _CLASSES, dt.itemsize)
    rng = np.random.default_rng(4)
    y = rng.random((n, _CLASSES)).astype(dt) + dt.type(0.5)  # the exps: positive
    labels = rng.integers(0, _CLASSES, n).astype(np.intp)
    eps = dt.type(1e-7)

    def fn():  # (normalises y in place: after the first call its rows sum to 1 and stay so)
        dispatch(KX._normalize_xent, KX._normalize_xent_par, n, y.size, y, labels, eps, family="softmax")

    return fn, y.nbytes + labels.nbytes


def _softmax_backward(nbytes, dt):
    n = _rows(nbytes, _CLASSES, 2 * dt.itemsize)
    rng = np.random.default_rng(5)
    y = rng.random((n, _CLASSES)).astype(dt)
    labels = rng.integers(0, _CLASSES, n).astype(np.intp)
    one = dt.type(1)
    return (lambda: KX.softmax_xent_backward(y, labels, one)), 2 * y.nbytes + labels.nbytes


_FEATURES = 1024  # batch-norm and max-norm widths


def _bn_train(nbytes, dt):
    n = _rows(nbytes, _FEATURES, 2 * dt.itemsize)
    x = np.random.default_rng(6).standard_normal((n, _FEATURES)).astype(dt)
    ones, zeros = np.ones(_FEATURES, dt), np.zeros(_FEATURES, dt)
    consts = KB.consts_for(dt, 1e-6, n, 0.9)
    stats, out = np.empty((6, _FEATURES), dt), np.empty_like(x)
    xn = KB.NO_XN[dt]  # as the layer calls it: xn is not stored (recomputed in backward)
    return (lambda: KB.train_forward_into(x, ones, zeros, zeros, ones, consts, stats, xn, out)), 2 * x.nbytes


def _bn_backward(nbytes, dt):
    n = _rows(nbytes, _FEATURES, 3 * dt.itemsize)
    rng = np.random.default_rng(7)
    dout, x = rng.standard_normal((n, _FEATURES)).astype(dt), rng.standard_normal((n, _FEATURES)).astype(dt)
    gamma, std = np.ones(_FEATURES, dt), np.ones(_FEATURES, dt)
    mu, inv = np.zeros(_FEATURES, dt), np.ones(_FEATURES, dt)
    grads, dx = np.empty((5, _FEATURES), dt), np.empty_like(dout)
    consts = KB.consts_for(dt, 0.0, n, 0.0)
    return (lambda: KB.backward_into(dout, x, mu, inv, gamma, std, grads, consts, dx)), 3 * dout.nbytes


def _optimizer(name: str, constants: tuple):
    def setup(nbytes, dt):
        rule = optim.RULES[name]
        n = max(64, nbytes // (dt.itemsize * rule.traffic))
        rng = np.random.default_rng(8)
        p, g = rng.standard_normal(n).astype(dt), rng.standard_normal(n).astype(dt)
        states = [np.zeros(n, dt) for _ in rule.state] + [p] * (3 - len(rule.state))
        c = P.cast(rule.constants(*constants), dt)
        return (lambda: P.launch(rule, p, g, *states, c)), n * dt.itemsize * rule.traffic
    return setup


def _clipnorm(nbytes, dt):
    n = max(64, nbytes // dt.itemsize)
    g = np.random.default_rng(9).standard_normal(n).astype(dt)
    use = runtime.use_parallel

    def fn():  # the decision of Optimizer._grad_sumsq
        return KO.sumsq_parallel(g, runtime.chunks(n)) if use(n, "clipnorm", g.nbytes, g.itemsize) else KO.sumsq(g)

    return fn, g.nbytes


def _maxnorm(nbytes, dt):
    n = _rows(nbytes, _FEATURES, dt.itemsize)
    w = np.random.default_rng(10).standard_normal((n, _FEATURES)).astype(dt)
    mv, eps = dt.type(1e9), dt.type(1e-7)  # a bound no column reaches: w keeps its values call after call
    return (lambda: KC.max_norm_columns(w, mv, eps)), w.nbytes


MEMBERS: list[tuple[str, str, Callable]] = [
    ("stream", "relu-forward", _relu_forward),
    ("stream", "relu-backward", _relu_backward),
    ("transcendental", "silu-forward", _silu_forward),
    ("transcendental", "elu-backward", _elu_backward),
    ("ufunc", "exp(-x)", _sigmoid_exp),
    ("ufunc", "tanh", _tanh_forward),
    ("softmax", "normalize+xent", _softmax_xent),
    ("softmax", "xent-backward", _softmax_backward),
    ("batchnorm", "train-forward", _bn_train),
    ("batchnorm", "backward", _bn_backward),
    ("optimizer", "sgd", _optimizer("sgd", (1e-9,))),
    ("optimizer", "adam", _optimizer("adam", (1e-9, 0.9, 0.999, 1e-7, 1))),
    ("clipnorm", "sumsq", _clipnorm),
    ("maxnorm", "columns", _maxnorm),
]


def _forced(fn: Callable, threshold: int, gemm: Callable | None = None) -> Callable:
    if gemm is None:
        def run():
            runtime.set_parallel_threshold(threshold)
            fn()
    else:
        def run():
            gemm()
            runtime.set_parallel_threshold(threshold)
            fn()
    return run


def _book_gemm(dtype: str) -> Callable:
    """The book's first-layer forward GEMM (100x784 @ 784x100, BLAS threads), for ``--between-gemms``."""
    rng = np.random.default_rng(13)
    a, b = rng.standard_normal((100, 784)).astype(dtype), rng.standard_normal((784, 100)).astype(dtype)
    c = np.empty((100, 100), dtype)
    return lambda: np.dot(a, b, out=c)


def crossover(points: list[tuple[int, float, float]], margin: float) -> int:
    """Smallest size from which parallel is at least ``margin`` faster at every point above it (else NEVER).

    ``points`` are ``(bytes, serial seconds, parallel seconds)`` in increasing size.
    """
    start = NEVER
    for nbytes, serial, parallel in reversed(points):
        if serial < (1.0 + margin) * parallel:
            break
        start = nbytes
    return start


def scan(setup: Callable, dtype: str, sizes: list[int], margin: float, confirm: int, min_time: float,
         between_gemms: bool = False) -> dict:
    """Time one member's serial and parallel variants over ``sizes`` (stopping after ``confirm`` wins in a row).

    With ``between_gemms`` each timed call follows a GEMM (the same in both variants, so it adds to
    both times: the margin is then judged on the sum). Returns ``{"crossover": bytes or NEVER,
    "points": [(bytes, serial_s, parallel_s), ...]}``.
    """
    dt = np.dtype(dtype)
    gemm = _book_gemm(dtype) if between_gemms else None
    points, wins = [], 0
    for target in sizes:
        fn, nbytes = setup(target, dt)
        t = B.measure_group({"serial": _forced(fn, NEVER, gemm), "parallel": _forced(fn, 0, gemm)}, warmup=2,
                            min_time=min_time, min_samples=6, max_samples=60, sample_time=2e-3)
        points.append((nbytes, t["serial"], t["parallel"]))
        wins = wins + 1 if t["serial"] >= (1.0 + margin) * t["parallel"] else 0
        if wins >= confirm:
            break
    return {"crossover": crossover(points, margin), "points": points}


def measure(families: list[str], dtypes: list[str], *, margin: float, confirm: int, min_time: float,
            between_gemms: bool = False, progress: bool = True) -> dict:
    """``{(family, member, dtype): scan result}`` for the chosen families and dtypes (threshold restored after)."""
    members = [m for m in MEMBERS if m[0] in families]
    jobs = [(m, dt) for m in members for dt in dtypes]
    out = {}
    old = runtime.get_parallel_threshold()
    try:
        for (family, name, setup), dt in tqdm(jobs, desc="crossovers", unit="member", disable=not progress,
                                              file=sys.stderr):
            out[(family, name, dt)] = scan(setup, dt, SIZES, margin, confirm, min_time, between_gemms)
    finally:
        if old is None:
            runtime.reset_parallel_threshold()
        else:
            runtime.set_parallel_threshold(old)
    return out


def family_table(results: dict) -> dict:
    """``{family: {dtype: bytes}}``: per family and dtype the largest crossover of its members."""
    table: dict = {}
    for (family, _name, dt), r in results.items():
        per = table.setdefault(family, {})
        per[dt] = max(per.get(dt, 0), r["crossover"])
    return table


def _fmt_bytes(n: int) -> str:
    if n >= NEVER:
        return "never"
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def markdown(results: dict) -> str:
    """One row per member and dtype: crossover, and serial time over parallel time (> 1: parallel faster) at
    256 KiB, 1 MiB, 4 MiB and 16 MiB moved ("-": the scan stopped before that size)."""
    marks = [2**18, 2**20, 2**22, 2**24]
    head = ("| family | member | dtype | crossover | "
            + " | ".join(f"serial/parallel at {_fmt_bytes(m)}" for m in marks) + " |")
    lines = [head, "|" + "---|" * (4 + len(marks))]
    for (family, name, dt), r in results.items():
        cells = []
        for m in marks:
            near = [p for p in r["points"] if abs(math.log2(p[0] / m)) < 0.5]
            cells.append(f"{near[0][1] / near[0][2]:.2f}" if near else "-")
        lines.append(f"| {family} | {name} | {dt} | {_fmt_bytes(r['crossover'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _stored(path: Path) -> tuple[dict, dict]:
    """``({layer: {family: {dtype: bytes}}}, {layer: provenance})`` already in ``path`` (empty when it is
    missing or not a table file)."""
    scope: dict = {}
    try:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                scope[node.targets[0].id] = ast.literal_eval(node.value)
    except (OSError, SyntaxError, ValueError):
        return {}, {}
    stored, measured = scope.get("CROSSOVERS"), scope.get("MEASURED")
    if not isinstance(stored, dict) or not isinstance(measured, dict):
        return {}, {}
    tables: dict = {}
    for family, per_layer in stored.items():
        if family in runtime.FAMILIES and isinstance(per_layer, dict):
            for layer, per_dtype in per_layer.items():
                tables.setdefault(layer, {})[family] = per_dtype
    return {k: v for k, v in tables.items() if k in measured}, measured


def write_table(table: dict, path: Path, note: str, mode: str = "standalone", layer: str | None = None) -> None:
    """Store ``table`` as threading layer ``layer``'s (default: the one in use) in ``path``, atomically.

    The other layers' tables in the file are kept; each carries where and when it was measured. The file
    holds ``CROSSOVERS[family][layer][dtype]`` (one line per family) and ``MEASURED[layer]``.
    """
    info = runtime.info()
    layer = layer or info["fastdl_threading_layer"]
    measured = {"when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "command": "python bench/crossovers.py --write", "processor": info["processor"],
                "threads": info["numba_threads"], "numba": info["numba"], "numpy": info["numpy"],
                "python": platform.python_version(), "load_before": note, "mode": mode}
    tables, provenance = _stored(path)
    tables[layer] = {f: {dt: int(table.get(f, {}).get(dt, NEVER)) for dt in ("float32", "float64")}
                     for f in runtime.FAMILIES}
    provenance[layer] = measured
    layers = sorted(tables)
    unmeasured = {"float32": NEVER, "float64": NEVER}  # (a family added after a layer's table was stored)
    cells = {f: ", ".join(f"{k!r}: {tables[k].get(f, unmeasured)!r}" for k in layers) for f in runtime.FAMILIES}
    rows = "".join(f"    {f!r}: {{{cells[f]}}},\n" for f in runtime.FAMILIES)
    where = "".join(f"    {k!r}: {provenance[k]!r},\n" for k in layers)
    text = (
        '"""Serial/parallel crossovers per kernel family, threading layer and dtype, in bytes moved per call (read\n'
        'by :mod:`fastdl.runtime`).\n\n'
        "Generated by ``python bench/crossovers.py --write`` (which replaces the table of the threading layer in\n"
        "use and keeps the others); do not edit by hand (rerun the script on a quiet machine instead). A kernel\n"
        "call runs its parallel variant from ``CROSSOVERS[family][layer][dtype]`` bytes (the sum of the sizes of\n"
        "the arrays it reads and writes); 2**62 means never. ``MEASURED[layer]`` records where and how.\n"
        '"""\n\n'
        f"CROSSOVERS = {{\n{rows}}}\n\n"
        f"MEASURED = {{\n{where}}}\n")
    compile(text, str(path), "exec")  # a broken table must never replace a good one
    _io.atomic_write(path, lambda fh: fh.write(text.encode()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"store the table in {TABLE_PATH}")
    parser.add_argument("--families", default=",".join(runtime.FAMILIES), help="comma-separated families")
    parser.add_argument("--dtypes", default="float32,float64", help="comma-separated dtypes")
    parser.add_argument("--margin", type=float, default=0.05, help="parallel must be this much faster (fraction)")
    parser.add_argument("--confirm", type=int, default=3, help="consecutive winning sizes that end a scan")
    parser.add_argument("--min-time", type=float, default=0.06, help="seconds of samples per variant and size")
    parser.add_argument("--between-gemms", action="store_true",
                        help="precede every timed call by the book's 100x784x100 GEMM (BLAS threads), as in training")
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    bad = [f for f in families if f not in runtime.FAMILIES] + [d for d in dtypes if d not in ("float32", "float64")]
    if bad:
        parser.error(f"unknown families/dtypes {bad}; families are {runtime.FAMILIES}, dtypes float32, float64")
    if args.write and (set(families) != set(runtime.FAMILIES) or set(dtypes) != {"float32", "float64"}):
        parser.error("--write needs every family and both dtypes (the stored table is written whole)")
    if not runtime.parallel_available() or runtime.get_num_threads() < 2:
        parser.error("needs a fast threading layer and at least two threads (there is nothing to cross over to)")
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    print(f"# {runtime.info()['processor']}, {runtime.get_num_threads()} threads, load average {load}",
          file=sys.stderr)
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5 * runtime.get_num_threads():
        print("# warning: the machine is loaded; parallel variants wait for busy cores and the crossovers come out "
              "late or 'never'. Store a table measured on a quiet machine.", file=sys.stderr)
    results = measure(families, dtypes, margin=args.margin, confirm=args.confirm, min_time=args.min_time,
                      between_gemms=args.between_gemms)
    print(markdown(results))
    table = family_table(results)
    print("\n| family | float32 | float64 |\n|---|---|---|")
    for f, per in table.items():
        print(f"| {f} | {_fmt_bytes(per.get('float32', NEVER))} | {_fmt_bytes(per.get('float64', NEVER))} |")
    if args.write:
        write_table(table, TABLE_PATH, load, "between GEMMs" if args.between_gemms else "standalone")
        print(f"\nwrote {TABLE_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

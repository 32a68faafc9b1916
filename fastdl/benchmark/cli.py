"""``fastdl bench``, ``fastdl bench report FILE.json`` and ``fastdl warmup``."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import time
from pathlib import Path

from .. import runtime
from .._cliargs import UsageError
from .._io import atomic_write
from ..warmup import warmup
from .cases import DTYPES
from .matrix import default_matrix, peak_needs, roofline_matrix, run_matrix
from .peaks import LLC_BYTES, measure_peaks
from .probes import measure_compile_cost, measure_startup, measure_step_profile
from .report import (
    format_activations,
    format_markdown,
    format_summary,
    format_table,
    load_benchmark_json,
    plot_results,
    run_info,
    table_rows,
)
from .roofline import annotate, shortfalls
from .timing import configure_torch_threads


def _emit(results: list[dict], peaks: dict | None, info: dict, args: argparse.Namespace, png: Path | None,
          startup: dict | None = None, step_profile: dict | None = None) -> None:
    """Print the tables (and the start-up and step-profile lines); write the plot to ``png`` if given."""
    main = [r for r in results if not r["op"].startswith("interleave")]
    inter = [r for r in results if r["op"].startswith("interleave")]
    if main:
        print(format_markdown(main, peaks, info) if args.markdown else format_table(main, peaks))
        rows = table_rows(main, peaks)
        acts = format_activations(rows, args.markdown)
        if acts:
            print("\nActivations, forward+backward: GB/s against the DRAM triad and the roofline limit"
                  + ("\n" if args.markdown else ""))
            print(acts)
        if any(r["fraction_of_limit"] is not None or r["speedup_vs_torch"] is not None for r in rows):
            print("\nRoofline summary (fastdl)" + ("\n" if args.markdown else ""))
            print(format_summary(rows))
    if startup:
        print("\nStart-up (fresh interpreters, float64 batch-norm net, one step + loss + accuracy): "
              + ", ".join(f"{k} {v:.2f} s" for k, v in startup.items()))
    for dt, prof in (step_profile or {}).items():
        phases = ", ".join(f"{k} {v * 1e6:.0f} us" for k, v in prof["phases"].items())
        print(f"\nTraining step 784-100x5-10 + BN, {dt} (fastdl profile --step, median of {prof['repeat']}): "
              f"{phases}; whole step {prof['step_s'] * 1e3:.3f} ms, outside the GEMMs "
              f"{100 * prof['non_gemm_share']:.1f}%")
    if inter:
        print("\nThreading policy: fastdl kernels between BLAS GEMMs, forced serial / parallel / default threshold"
              + (" (median per loop)\n" if args.markdown else ""))
        print(format_markdown(inter, None) if args.markdown else format_table(inter, None))
    if png is not None:
        png.parent.mkdir(parents=True, exist_ok=True)
        print(f"\nwrote {plot_results(results, png, peaks)}", file=sys.stderr)


def _check_out(out: str | None) -> None:
    """A bad ``--out`` is a one-line error before the work, not a traceback after it."""
    problem = out is not None and runtime.writable_dir_problem(out)
    if problem:
        raise UsageError(f"--out must be a writable directory; got {out!r} ({problem})")


def _cmd_report(args: argparse.Namespace) -> int:
    if not Path(args.file).is_file():
        raise UsageError(f"FILE.json must be an existing file (pytest-benchmark's --benchmark-json output); "
                         f"got {args.file!r}")
    _check_out(args.out)
    results, peaks, info = load_benchmark_json(args.file)
    if not results:
        print(f"{args.file}: no fastdl bench/ results (extra_info op/size/dtype/impl) found", file=sys.stderr)
        return 1
    src = Path(args.file)
    _emit(results, peaks, info, args, (Path(args.out) if args.out else src.parent) / f"{src.stem}.png")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if getattr(args, "bench_command", None) == "report":
        return _cmd_report(args)
    if getattr(args, "startup", False):
        from .startup import format_startup, measure_quickstart

        print("measuring the quickstart's start-up (fresh interpreters, ~30 s) ...", file=sys.stderr)
        print(format_startup(measure_quickstart()))
        return 0
    _check_out(args.out)
    dtypes = DTYPES if args.dtype == "all" else (args.dtype,)
    configure_torch_threads()
    if args.roofline:
        matrix = roofline_matrix(quick=args.quick, dtypes=dtypes, torch=not args.no_torch)
    else:
        matrix = default_matrix(quick=args.quick, dtypes=dtypes, torch=not args.no_torch)
    if args.only:  # glob patterns on the op names, comma-separated ('adamw-*,*clip*')
        patterns = [p.strip() for p in args.only.split(",") if p.strip()]
        matrix.entries = [(op, size) for op, size in matrix.entries
                          if any(fnmatch.fnmatchcase(op, p) for p in patterns)]
        if not matrix.entries:
            raise UsageError(f"--only must match some op of the matrix (e.g. 'adam-update,*clip*'); got {args.only!r}")
    curve_bytes, gemm_shapes = peak_needs(matrix)
    small = args.quick and not args.roofline
    print("measuring peaks ...", file=sys.stderr)
    peaks = measure_peaks(triad_bytes=LLC_BYTES // 4 if small else 4 * LLC_BYTES,
                          gemm_n=512 if args.quick else 2048, repeats=2 if args.quick else 5,
                          curve_bytes=curve_bytes, gemm_shapes=gemm_shapes, progress=not args.no_progress)
    info = run_info()
    load, cores = info.get("loadavg_at_start"), os.cpu_count() or 1
    if load is not None and load > 0.5 * cores:
        print(f"warning: load average {load} on {cores} cores: other processes compete for the cores, and "
              "multi-threaded BLAS GEMMs then wait for descheduled threads (milliseconds per call); "
              "the figures will be unreliable", file=sys.stderr)
    t0 = time.perf_counter()
    probes = [runtime.blas_probe()]
    results = run_matrix(matrix, progress=not args.no_progress)
    probes.append(runtime.blas_probe())
    info["matrix_seconds"] = time.perf_counter() - t0
    startup = None
    if not (args.quick or args.no_startup or args.roofline):
        print("measuring start-up (cold and warm kernel cache, fresh interpreters) ...", file=sys.stderr)
        startup = measure_startup()
    step_profile = None
    if not args.quick and ("train-step-bn", "784-100x5-10-b100") in matrix.entries:
        print("profiling the fused training step ...", file=sys.stderr)
        step_profile = measure_step_profile(dtypes)
    info["blas_probe_100x100_s"] = {"before": probes[0], "after": probes[1]}
    if max(probes) > 1e-3:
        print(f"warning: a 100x100 GEMM took {max(probes) * 1e3:.1f} ms (normally < 0.1 ms): BLAS threads "
              "stalled during this run (another process on the cores?); GEMM-bound figures are unreliable. "
              "Re-run on a quiet machine, or with OPENBLAS_NUM_THREADS=1.", file=sys.stderr)
    info["command"] = "fastdl " + " ".join(sys.argv[1:]) if sys.argv else None
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"info": info, "peaks": peaks, "results": annotate(results, peaks), "startup": startup,
                           "step_profile": step_profile}, indent=2)
        print(f"wrote {atomic_write(out / 'bench.json', lambda fh: fh.write(text.encode()))}", file=sys.stderr)
        rows = [r for r in table_rows(results, peaks) if not r["op"].startswith("interleave")]
        short = shortfalls(rows)
        keep = ("op", "size", "dtype", "median_s", "rate", "unit", "limit", "limit_level", "fraction_of_limit",
                "speedup_vs_torch")
        roof = json.dumps({"info": info, "threshold": short["threshold"],
                           "rows": [dict(r) for r in rows],
                           "below_limit": [{k: r[k] for k in keep} for r in short["below_limit"]],
                           "below_torch": [{k: r[k] for k in keep} for r in short["below_torch"]]}, indent=2)
        print(f"wrote {atomic_write(out / 'roofline.json', lambda fh: fh.write(roof.encode()))}", file=sys.stderr)
    _emit(results, peaks, info, args, out / "bench.png" if out is not None else None, startup, step_profile)
    return 0


def _cmd_warmup(args: argparse.Namespace) -> int:
    if args.measure:
        cost = measure_compile_cost(args.dtype)
        for label in ("cold", "warm"):
            c = cost[label]
            print(f"{label:5s} cache: warm-up {c['first_s']:.2f} s ({c['compiled']} signatures compiled, "
                  f"{c['loaded']} loaded), steady-state {c['steady_s'] * 1e3:.1f} ms, import {c['import_s']:.2f} s")
        return 0
    warmup(args.dtype, verbose=True, parallel=args.parallel)
    return 0


def register_cli(subparsers) -> None:
    """Add ``bench`` (with ``bench report FILE.json``) and ``warmup`` to the ``fastdl`` command."""
    bench = subparsers.add_parser(
        "bench", help="time reference / fastdl / torch on a fixed matrix, with machine peaks",
        description="Measure this machine's peaks, then time a fixed matrix of ops (about 3 minutes "
                    "on 2 cores) and print the table. With --out DIR it also writes DIR/bench.json and "
                    "DIR/bench.png. 'fastdl bench report FILE.json' formats a pytest --benchmark-json file.")
    bench.add_argument("--out", metavar="DIR", help="write bench.json and bench.png into DIR (default: no files)")
    bench.add_argument("--markdown", action="store_true", help="print markdown tables (for the README)")
    bench.add_argument("--quick", action="store_true",
                       help="a seconds-long subset (with --roofline: the same ops, shorter timing)")
    bench.add_argument("--roofline", action="store_true",
                       help="fastdl and torch on every op at 256x1024 and 1024x4096 and every optimizer at 1M "
                            "and 8M, each against its roofline limit; ends with the ops below 70%% of their "
                            "limit and below 1.0x torch (with --out: DIR/roofline.json)")
    bench.add_argument("--dtype", choices=("float32", "float64", "all"), default="all",
                       help="measure this floating-point type (default all)")
    bench.add_argument("--no-torch", action="store_true", help="leave torch out even if installed")
    bench.add_argument("--only", metavar="PATTERNS", default=None,
                       help="time only the ops matching these comma-separated globs, e.g. "
                            "'adamax-*,nadam-*,adamw-*,*clip*' (default: the whole matrix)")
    bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench.add_argument("--no-startup", action="store_true",
                       help="skip the start-up measurement (fresh interpreters, cold and warm cache; ~30 s)")
    bench.add_argument("--startup", action="store_true",
                       help="only the start-up section: the quickstart's Trainer overhead per step, first-run "
                            "kernel loads and `fastdl train` end to end (fresh interpreters, ~30 s)")
    bench.set_defaults(func=_cmd_bench)
    sub = bench.add_subparsers(dest="bench_command", metavar="report")
    report = sub.add_parser(
        "report", help="table and plot from a pytest --benchmark-json file of bench/",
        description="Print the table of a 'pytest bench/ --benchmark-json FILE.json' run and write its plot "
                    "as FILE.png beside FILE.json (or into --out DIR).")
    report.add_argument("file", metavar="FILE.json")
    report.add_argument("--out", metavar="DIR", help="write the plot FILE.png into DIR instead of beside FILE.json")
    report.add_argument("--markdown", action="store_true", help="print markdown tables (for the README)")
    report.set_defaults(func=_cmd_bench)

    wp = subparsers.add_parser(
        "warmup", help="compile (or load from cache) every kernel a training run uses",
        description="Run every layer, optimizer and training step once on tiny data, so that later runs "
                    "load compiled kernels from the cache instead of compiling them.")
    wp.add_argument("--dtype", choices=("float32", "float64", "all"), default="all",
                    help="kernels of this floating-point type (default all)")
    wp.add_argument("--measure", action="store_true",
                    help="measure cold compile and warm-cache load in fresh subprocesses (empty cache dir)")
    wp.add_argument("--parallel", action="store_true",
                    help="also compile every parallel kernel (used above the per-family crossovers; without "
                         "it only the optimizers' parallel step is)")
    wp.set_defaults(func=_cmd_warmup)

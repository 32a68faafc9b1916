"""The project's own performance targets (issue 5), judged against a saved bench run.

Not part of the library: ``fastdl bench`` and ``fastdl bench report`` print no target table. Run::

    python bench/targets.py bench-out/bench.json            # a 'fastdl bench --out bench-out' run
    python bench/targets.py pb.json --markdown               # or a 'pytest bench/ --benchmark-json' file

A ``fastdl bench`` JSON also carries the start-up and step-profile figures some targets need;
targets whose measurement is absent from the file print as "not measured".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path

from fastdl.benchmark import DTYPES, format_time, load_benchmark_json, table_rows

#: issue 5's table: (work, op, size, dtypes, criterion, bound). Criteria: 'time' (median <= bound s),
#: 'x torch' / 'x ref' (speed-up >= bound), 'of peak' (achieved / triad bandwidth >= bound),
#: 'non-GEMM share' (<= bound, from the profiler), 'startup' (the measure_startup key in ``op`` <= bound s).
TARGETS = (
    ("Adam update, 10K params", "adam-update", "10K", ("float32",), "time", 3e-6),
    ("Adam update, 10K params", "adam-update", "10K", ("float64",), "time", 6e-6),
    ("Adam update, 1M params", "adam-update", "1M", ("float32",), "x torch", 2.0),
    ("Adam update, 1M params", "adam-update", "1M", ("float64",), "x torch", 1.5),
    ("Adam update, 1M params", "adam-update", "1M", DTYPES, "x ref", 20.0),
    ("Adam update, 8M params", "adam-update", "8M", DTYPES, "of peak", 0.85),
    *((f"{op.split('-')[0]} update, 1M params", op, "1M", DTYPES, "x ref", 10.0)
      for op in ("sgd-update", "momentum-update", "nesterov-update", "adagrad-update", "rmsprop-update")),
    ("batch norm fwd+bwd (layer calls), 100x100", "batchnorm-fwd-bwd", "100x100", ("float64",), "time", 10e-6),
    ("batch norm fwd+bwd (layer calls), 100x100", "batchnorm-fwd-bwd", "100x100", DTYPES, "x ref", 10.0),
    ("batch norm fwd+bwd, 1024x4096", "batchnorm-fwd-bwd", "1024x4096", ("float32",), "time", 2.5e-3),
    ("batch norm fwd+bwd, 1024x4096", "batchnorm-fwd-bwd", "1024x4096", ("float64",), "time", 5e-3),
    ("batch norm fwd+bwd, 1024x4096", "batchnorm-fwd-bwd", "1024x4096", DTYPES, "x torch", 2.0),
    ("training step 784-100x5-10 + BN, b100, Adam", "train-step-bn", "784-100x5-10-b100", ("float64",), "time",
     1.05e-3),
    ("training step 784-100x5-10 + BN, b100, Adam", "train-step-bn", "784-100x5-10-b100", ("float32",), "time",
     0.6e-3),
    ("training step 784-100x5-10 + BN, b100, Adam", "train-step-bn", "784-100x5-10-b100", ("float64",),
     "x torch", 1.8),
    ("training step 784-100x5-10 + BN, b100, Adam", "train-step-bn", "784-100x5-10-b100", ("float32",),
     "x torch", 2.2),
    ("training step 784-100x5-10 + BN, b100, Adam", "train-step-bn", "784-100x5-10-b100", DTYPES, "x ref", 3.0),
    ("training step 784-100x5-10 + BN: work outside the GEMMs (profiler)", "non_gemm_share", "784-100x5-10-b100",
     DTYPES, "non-GEMM share", 0.15),
    ("start-up: import fastdl", "import_s", "-", ("-",), "startup", 0.5),
    ("start-up: warm cache, import + first training step (f64)", "warm_first_step_s", "-", ("-",), "startup", 1.5),
    ("start-up: cold cache, import + compile + first step (f64)", "cold_first_step_s", "-", ("-",), "startup", 20.0),
)


def _fmt_bound(criterion: str, bound: float) -> str:
    if criterion in ("time", "startup"):
        return f"<= {format_time(bound)}"
    if criterion == "of peak":
        return f">= {100 * bound:.0f}% of triad"
    if criterion == "non-GEMM share":
        return f"<= {100 * bound:.0f}% of the step"
    return f">= {bound:g}{criterion}"


def target_rows(results: Iterable[dict], peaks: dict | None = None, startup: dict | None = None,
                step_profile: dict | None = None) -> list[dict]:
    """Issue 5's targets against a run: one row per (target, dtype) with the measured value and met/missed.

    ``startup`` is :func:`fastdl.benchmark.measure_startup`'s dict, ``step_profile``
    :func:`fastdl.benchmark.measure_step_profile`'s. Targets whose measurement is absent (torch not
    installed, start-up not measured) get ``met=None``.
    """
    rows = {(r["op"], r["size"], r["dtype"]): r for r in table_rows(results, peaks)}
    out = []
    for work, op, size, dtypes, criterion, bound in TARGETS:
        for dt in dtypes:
            value = None
            if criterion == "startup":
                value = (startup or {}).get(op)
            elif criterion == "non-GEMM share":
                value = ((step_profile or {}).get(dt) or {}).get(op)
            elif (row := rows.get((op, size, dt))) is not None:
                value = {"time": row["median_s"].get("fastdl"), "x torch": row["speedup_vs_torch"],
                         "x ref": row["speedup_vs_reference"], "of peak": row["fraction_of_peak"]}.get(criterion)
            if value is None:
                met = None
            elif criterion in ("time", "startup", "non-GEMM share"):
                met = value <= bound
            else:
                met = value >= bound
            if criterion in ("time", "startup"):
                shown = format_time(value)
            elif criterion in ("of peak", "non-GEMM share") and value is not None:
                shown = f"{100 * value:.0f}%"
            else:
                shown = f"{value:.2f}x" if value is not None else "-"
            out.append({"work": work, "dtype": dt, "criterion": criterion, "bound": bound, "value": value,
                        "target": _fmt_bound(criterion, bound), "measured": shown if value is not None else "-",
                        "met": met})
    return out


def format_targets(rows: list[dict], markdown: bool = False) -> str:
    """The :func:`target_rows` as a plain-text or markdown table."""
    head = ["target (issue 5)", "dtype", "bound", "measured", "met"]
    body = [[r["work"], r["dtype"], r["target"], r["measured"],
             {True: "yes", False: "NO", None: "not measured"}[r["met"]]] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|---|---|---:|---|"]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(c) for c in col) for col in zip(head, *body)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body])


def load_run(path: str | Path) -> tuple[list[dict], dict | None, dict | None, dict | None]:
    """``(results, peaks, startup, step_profile)`` of a ``fastdl bench --out`` JSON or a pytest-benchmark JSON."""
    data = json.loads(Path(path).read_text())
    if "results" in data:  # fastdl bench --out DIR: DIR/bench.json
        return data["results"], data.get("peaks"), data.get("startup"), data.get("step_profile")
    results, peaks, _ = load_benchmark_json(path)
    return results, peaks, None, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/targets.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", metavar="FILE.json", help="bench.json of 'fastdl bench --out', or a "
                        "'pytest bench/ --benchmark-json' file")
    parser.add_argument("--markdown", action="store_true", help="a markdown table")
    parser.add_argument("--all", action="store_true", help="also the targets this run did not measure")
    args = parser.parse_args(argv)
    results, peaks, startup, step_profile = load_run(args.file)
    rows = target_rows(results, peaks, startup, step_profile)
    shown = rows if args.all else [r for r in rows if r["met"] is not None]
    if not shown:
        print(f"{args.file}: measures none of the targets (--all lists them)", file=sys.stderr)
        return 1
    print(format_targets(shown, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Reports: result rows, plain-text and markdown tables, the plot, and pytest-benchmark JSON import.

A *result* is a dict ``{op, size, dtype, impl, work, unit, median_s}`` (what
:func:`~fastdl.benchmark.run_matrix` returns and :func:`load_benchmark_json` reads); a *row*
(:func:`table_rows`) gathers the implementations of one ``(op, size, dtype)``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from .. import __version__, runtime
from .._io import atomic_write
from .cases import IMPLS, LAYER_SIZES, PARAM_SIZES
from .peaks import peak_for
from .roofline import THRESHOLD, activation_rows, limit_for, shortfalls
from .tables import Unavailable, torch_module


def run_info() -> dict:
    """Versions, threads, torch's version and thread count, time and load: recorded beside every run."""
    info = dict(runtime.info(), fastdl=__version__)
    try:
        torch = torch_module()
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except Unavailable:
        info["torch"] = None
    info["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if hasattr(os, "getloadavg"):
        info["loadavg_at_start"] = round(os.getloadavg()[0], 2)
    return info


def format_time(seconds: float | None) -> str:
    """``1.23 ms``, ``456 us``: three significant digits in the largest unit below the value."""
    if seconds is None:
        return "-"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def table_rows(results: Iterable[dict], peaks: dict | None = None) -> list[dict]:
    """One row per (op, size, dtype): median per impl, speed-ups of fastdl, fastdl's rate and share of peak.

    ``fraction_of_peak`` is fastdl's rate over the DRAM triad (GB/s rows) or the square-GEMM peak
    (GFLOP/s rows); the roofline (:func:`~fastdl.benchmark.roofline.limit_for`) adds ``limit`` (GB/s or
    GFLOP/s), ``limit_level`` (``'L1d'``, ``'L2'``, ``'L3'``, ``'DRAM'`` or ``'GEMM'``), ``limit_source``,
    ``traffic`` (the model's dict) and ``fraction_of_limit`` (fastdl's rate over the limit; None without one).
    """
    groups: dict[tuple, dict] = {}
    for r in results:
        key = (r["op"], r["size"], r["dtype"])
        g = groups.setdefault(key, {"op": r["op"], "size": r["size"], "dtype": r["dtype"],
                                    "unit": r.get("unit"), "work": r.get("work"), "median_s": {}})
        g["median_s"][r["impl"]] = r["median_s"]
    rows = []
    for g in groups.values():
        m = g["median_s"]
        fast = m.get("fastdl")
        g["speedup_vs_reference"] = m["reference"] / fast if fast and m.get("reference") else None
        g["speedup_vs_torch"] = m["torch"] / fast if fast and m.get("torch") else None
        rate = g["work"] / fast / 1e9 if fast and g.get("work") else None
        g["rate"] = rate
        peak = peak_for(g["unit"], g["dtype"], peaks)
        g["fraction_of_peak"] = rate / peak if rate and peak else None
        lim = limit_for(g["op"], g["size"], g["dtype"], peaks) if g["unit"] else None
        g["limit"] = lim["limit"] if lim else None
        g["limit_level"] = lim["level"] if lim else None
        g["limit_source"] = lim["source"] if lim else None
        g["traffic"] = lim["traffic"] if lim else None
        g["fraction_of_limit"] = rate / lim["limit"] if rate and lim else None
        rows.append(g)
    return rows


def _amount(row: dict) -> str:
    """What one call moves: ``2.36 MB`` or ``537 MFLOP``."""
    work = row.get("work")
    if not work:
        return "-"
    unit = "FLOP" if row.get("unit") == "GFLOP/s" else "B"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if work >= scale:
            return f"{work / scale:.3g} {prefix}{unit}"
    return f"{work:.3g} {unit}"


def _columns(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    seen = {i for r in rows for i in r["median_s"]}
    impls = [i for i in IMPLS if i in seen] + sorted(seen - set(IMPLS))
    head = ["op", "size", "dtype", *impls, "x ref", *(["x torch"] if "torch" in impls else []),
            "moves", "fastdl rate", "of peak", "limit", "of limit"]
    body = []
    for r in rows:
        line = [r["op"], r["size"], r["dtype"], *(format_time(r["median_s"].get(i)) for i in impls)]
        line.append(f"{r['speedup_vs_reference']:.2f}" if r["speedup_vs_reference"] else "-")
        if "torch" in impls:
            line.append(f"{r['speedup_vs_torch']:.2f}" if r["speedup_vs_torch"] else "-")
        line.append(_amount(r))
        line.append(f"{r['rate']:.3g} {r['unit']}" if r["rate"] else "-")
        line.append(f"{100 * r['fraction_of_peak']:.0f}%" if r["fraction_of_peak"] else "-")
        line.append(_limit_text(r))
        line.append(f"{100 * r['fraction_of_limit']:.0f}%" if r["fraction_of_limit"] else "-")
        body.append(line)
    return head, body


def _limit_text(r: dict) -> str:
    return f"{r['limit']:.3g} {r['unit']} {r['limit_level']}" if r.get("limit") else "-"


def _render(head: list[str], body: list[list[str]], markdown: bool, left: int = 3) -> list[str]:
    """Table lines: markdown (``|`` separated) or fixed-width; the first ``left`` columns left-aligned."""
    if markdown:
        return ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < left else "---:" for i in range(len(head)))
                + "|", *("| " + " | ".join(line) + " |" for line in body)]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    return ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths),
            *("  ".join(c.rjust(w) if i >= left else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths)))
              for line in body)]


def _peaks_line(peaks: dict | None) -> str:
    if not peaks:
        return "peaks: not measured"
    g = peaks.get("gemm_GFLOPs", {})
    return (f"peaks ({peaks.get('threads')} threads): triad {peaks['triad_GBps']:.1f} GB/s over "
            f"{peaks['triad_bytes'] / 2**20:.0f} MiB arrays; GEMM {peaks.get('gemm_n')}^2 "
            + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in g.items())
            + "".join(f"; {k}={v}" for k, v in (peaks.get("blas_env") or {}).items())
            + _caches_text(peaks))


def _size_text(nbytes: float) -> str:
    for scale, unit in ((2**30, "G"), (2**20, "M"), (2**10, "K")):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g}{unit}"
    return f"{nbytes:.0f}"


def _caches_text(peaks: dict) -> str:
    """``; caches (sysfs) L1d 48K, L2 2M per core, L3 480M shared by 2; bus GB/s by working set 48K 300, ...``."""
    caches, curve = peaks.get("caches"), peaks.get("bandwidth_curve")
    text = ""
    if caches:
        sources = sorted(set((caches.get("source") or {}).values())) or ["?"]
        text += f"; caches ({'/'.join(sources)}) " + ", ".join(
            f"{k} {_size_text(caches[k])}" + (" per core" if caches.get("shared", {}).get(k, 1) == 1
                                               else f" shared by {caches['shared'][k]}")
            for k in ("L1d", "L2", "L3") if k in caches)
    if curve:
        text += "; triad bus GB/s by working set " + ", ".join(f"{_size_text(b)} {g:.0f}" for b, g in curve)
    return text


def format_table(results: Iterable[dict], peaks: dict | None = None) -> str:
    """Plain-text table (fixed-width columns) of :func:`table_rows`."""
    head, body = _columns(table_rows(results, peaks))
    return "\n".join(([_peaks_line(peaks)] if peaks else []) + _render(head, body, False))


def format_markdown(results: Iterable[dict], peaks: dict | None = None, info: dict | None = None) -> str:
    """Markdown table (machine line, peaks line, then the table) for the README."""
    head, body = _columns(table_rows(results, peaks))
    out = []
    if info:
        out.append(f"Machine: {info.get('processor')}, {info.get('numba_threads')} threads "
                   f"({info.get('fastdl_threading_layer')}); Python {info.get('python')}, "
                   f"NumPy {info.get('numpy')}, Numba {info.get('numba')}"
                   + (f", torch {info['torch']}" if info.get("torch") else "")
                   + (f"; load average {info['loadavg_at_start']} at start" if "loadavg_at_start" in info else "")
                   + ".")
        out.append("")
    if peaks:
        out += [_peaks_line(peaks) + ".", ""]
    out += _render(head, body, True)
    return "\n".join(out)


def format_summary(rows: Iterable[dict], threshold: float = THRESHOLD) -> str:
    """The shortfalls (:func:`~fastdl.benchmark.roofline.shortfalls`) of :func:`table_rows`, one op a line."""
    s = shortfalls(rows, threshold)

    def label(r):
        return f"{r['op']} {r['size']} {r['dtype']}"

    lines = [f"Below {100 * threshold:.0f} % of the roofline limit ({len(s['below_limit'])}):"]
    lines += [f"  {label(r)}: {100 * r['fraction_of_limit']:.0f} % of {_limit_text(r)}"
              + (f", {r['speedup_vs_torch']:.2f}x torch" if r.get("speedup_vs_torch") else "")
              for r in s["below_limit"]] or ["  (none)"]
    lines.append(f"Below 1.0x PyTorch ({len(s['below_torch'])}):")
    lines += [f"  {label(r)}: {r['speedup_vs_torch']:.2f}x torch"
              + (f", {100 * r['fraction_of_limit']:.0f} % of {_limit_text(r)}" if r.get("fraction_of_limit") else "")
              for r in s["below_torch"]] or ["  (none)"]
    return "\n".join(lines)


def format_activations(rows: Iterable[dict], markdown: bool = False) -> str:
    """Forward+backward of every registered activation (:func:`~fastdl.benchmark.roofline.activation_rows`):
    fastdl's time, GB/s, share of the DRAM triad and of the roofline limit, speed-up over torch; '' if none."""
    sel = activation_rows(rows)
    if not sel:
        return ""
    head = ["activation fwd+bwd", "size", "dtype", "fastdl", "GB/s", "of triad", "limit", "of limit", "x torch"]
    body = [[r["op"][:-len("-fwd-bwd")], r["size"], r["dtype"], format_time(r["median_s"].get("fastdl")),
             f"{r['rate']:.3g}" if r.get("rate") else "-",
             f"{100 * r['fraction_of_peak']:.0f}%" if r.get("fraction_of_peak") else "-", _limit_text(r),
             f"{100 * r['fraction_of_limit']:.0f}%" if r.get("fraction_of_limit") else "-",
             f"{r['speedup_vs_torch']:.2f}" if r.get("speedup_vs_torch") else "-"] for r in sel]
    return "\n".join(_render(head, body, markdown))


def plot_results(results: Iterable[dict], path: str | os.PathLike, peaks: dict | None = None) -> Path:
    """Save a PNG: fastdl's speed-up over the reference (else over torch) against size per op, and achieved
    rate vs peak with each op's roofline limit."""
    import matplotlib  # here, not at the top: matplotlib's import costs ~0.3 s and only plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table_rows(results, peaks)
    bars = sum(1 for r in rows if r["unit"] == "GB/s" and r["rate"] and r["size"] not in ("100x100", "10K"))
    fig, axes = plt.subplots(2, 2, figsize=(16, max(13.0, 6.5 + 0.12 * bars)),
                             gridspec_kw={"height_ratios": (6.5, max(6.5, 0.12 * bars))})
    # speed-up over the reference; over torch in a run without a reference column (fastdl bench --roofline)
    key, against = (("speedup_vs_reference", "the NumPy reference") if any(r["speedup_vs_reference"] for r in rows)
                    else ("speedup_vs_torch", "PyTorch"))
    tiers = ("small", "medium", "large")
    panels = ((axes[0, 0], LAYER_SIZES, "layer ops (N x D)"), (axes[0, 1], PARAM_SIZES, "optimizer updates (W size)"))
    for ax, sizes, title in panels:
        index = {label: i for i, label in enumerate(sizes)}
        lines: dict[tuple, list] = {}
        for r in rows:
            if r[key] and r["size"] in index:
                lines.setdefault((r["op"], r["dtype"]), []).append(r)
        for (op, dtype), rs in sorted(lines.items()):
            rs.sort(key=lambda r: index[r["size"]])
            ax.plot([index[r["size"]] for r in rs], [r[key] for r in rs],
                    marker="o" if dtype == "float64" else "s", ls="-" if dtype == "float64" else "--",
                    label=f"{op} {dtype}")
        ax.set_xticks(range(len(sizes)), [f"{t}\n{label}" for t, label in zip(tiers, sizes)])
        ax.set_xlim(-0.3, len(sizes) - 0.7)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_yscale("log")
        ax.set_ylabel(f"fastdl speed-up over {against}")
        ax.set_title(f"Speed-up vs size: {title}")
        if lines:
            ax.legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    for ax, unit in ((axes[1, 0], "GB/s"), (axes[1, 1], "GFLOP/s")):
        sel = [r for r in rows if r["unit"] == unit and r["rate"]
               and (unit == "GFLOP/s" or r["size"] not in ("100x100", "10K"))]  # small ones run from cache
        labels = [f"{r['op']} {r['size']} {r['dtype'][-2:]}" for r in sel]
        ax.barh(range(len(sel)), [r["rate"] for r in sel],
                color=["tab:blue" if r["dtype"] == "float64" else "tab:orange" for r in sel])
        marks = [(i, r["limit"]) for i, r in enumerate(sel) if r.get("limit")]
        if marks:
            ax.scatter([m for _, m in marks], [i for i, _ in marks], marker="|", s=60, color="black", zorder=3,
                       label="the op's roofline limit")
        ax.set_yticks(range(len(sel)), labels, fontsize=6 if len(sel) > 20 else 8)
        ax.invert_yaxis()
        ax.set_xlabel(f"fastdl achieved {unit} (blue float64, orange float32)")
        if unit == "GB/s" and peak_for(unit, "float64", peaks):
            ax.axvline(peaks["triad_GBps"], color="red", ls="--", label="triad peak (DRAM)")
            ax.legend(fontsize=7)
            ax.set_title("Achieved bandwidth vs streaming peak and each op's limit (medium and large sizes)")
        elif unit == "GFLOP/s" and peaks:
            for dt, color in (("float32", "tab:orange"), ("float64", "tab:blue")):
                if peak_for(unit, dt, peaks):
                    ax.axvline(peaks["gemm_GFLOPs"][dt], color=color, ls="--", label=f"GEMM peak {dt}")
            ax.legend(fontsize=7)
            ax.set_title("Achieved GFLOP/s vs large-GEMM peak and each op's limit")
        else:
            ax.set_title(f"Achieved {unit}")
    fig.tight_layout()
    path = atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def load_benchmark_json(path: str | os.PathLike) -> tuple[list[dict], dict | None, dict]:
    """Read a ``pytest --benchmark-json`` file written by the ``bench/`` suites.

    Returns ``(results, peaks, info)`` in the form :func:`format_table` takes. Benchmarks without
    the suite's ``extra_info`` (op, size, dtype, impl) are skipped; the median comes from the
    file's stats. Peaks are read from ``machine_info['fastdl_peaks']`` when the suite recorded them.
    """
    data = json.loads(Path(path).read_text())
    results = []
    for bench in data.get("benchmarks", []):
        extra = bench.get("extra_info") or {}
        if not {"op", "size", "dtype", "impl"} <= set(extra):
            continue
        results.append({k: extra.get(k) for k in ("op", "size", "dtype", "impl", "work", "unit")}
                       | {"group": bench.get("group"), "median_s": bench["stats"]["median"]})
    machine = data.get("machine_info") or {}
    return results, machine.get("fastdl_peaks"), machine.get("fastdl_info") or machine

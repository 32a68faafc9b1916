"""The roofline column: each op's limit on this machine, the fraction reached, and the summary of shortfalls.

Memory-bound ops (:class:`~fastdl.benchmark.traffic.Traffic` with bytes): the limit is the triad
bandwidth measured at the op's working set (its ``footprint``), read off the bandwidth curve of
:func:`~fastdl.benchmark.peaks.measure_peaks` (so an op that fits a cache level is held to that
level's bandwidth, a larger one to the DRAM triad), scaled by ``bytes / bus_bytes`` (an op writing
fresh arrays pays a read for ownership of each line, as the triad does). Without a curve, the DRAM
triad. GEMM-bound ops (affine): the GFLOP/s of the same GEMM shapes timed alone with ``np.dot``;
without those, the square-GEMM peak. Training steps and interleave loops mix both and get none.
The reasoning and the measured figures: ``docs/design-notes.md``, *Roofline*.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

from . import cases
from .peaks import cache_level

#: an op below this fraction of its limit is listed in the summary
THRESHOLD = 0.7
#: a working set the OS places in L3 is labelled DRAM when the curve serves it within this factor of the triad
DRAM_LIKE = 1.25
#: the two sizes the performance issue judges every op at
ROOFLINE_LAYER_SIZES = ("256x1024", "1024x4096")
ROOFLINE_PARAM_SIZES = ("1M", "8M")


def bandwidth_at(footprint: float, peaks: dict) -> tuple[float | None, str]:
    """``(bus GB/s, source)`` for a working set of ``footprint`` bytes: the bandwidth curve (its upper
    envelope from the right: no size is slower than a larger one), log-log interpolated between its
    points (its ends beyond them), else the DRAM triad."""
    curve = sorted(peaks.get("bandwidth_curve") or [])
    if not curve:
        return peaks.get("triad_GBps"), "triad"
    # the upper envelope from the right: a working set is served at least as fast as any larger one (a
    # point pulled down by a burst of load elsewhere must not lower the limits of the smaller sizes)
    for i in range(len(curve) - 2, -1, -1):
        curve[i] = [curve[i][0], max(curve[i][1], curve[i + 1][1])]
    sizes = [s for s, _ in curve]
    i = bisect.bisect_left(sizes, footprint)
    if i == 0:
        return curve[0][1], "curve"
    if i == len(curve):
        return curve[-1][1], "curve"
    (s0, g0), (s1, g1) = curve[i - 1], curve[i]
    w = math.log(footprint / s0) / math.log(s1 / s0)
    return math.exp((1 - w) * math.log(g0) + w * math.log(g1)), "curve"


def _gemm_limit(traffic, dtype: str, peaks: dict) -> tuple[float | None, str]:
    rates = (peaks.get("gemm_shapes") or {}).get(dtype) or {}
    keys = [f"{m}x{k}x{n}" for m, k, n in traffic.gemms]
    if keys and all(rates.get(k) for k in keys):
        seconds = sum(2.0 * m * k * n / (rates[key] * 1e9) for (m, k, n), key in zip(traffic.gemms, keys))
        return traffic.flops / seconds / 1e9, "GEMM same shapes"
    square = (peaks.get("gemm_GFLOPs") or {}).get(dtype)
    return square, f"GEMM {peaks.get('gemm_n')}^2"


def limit_for(op: str, size: str, dtype: str, peaks: dict | None) -> dict | None:
    """The roofline of one (op, size, dtype), or None (no model, no peaks, or a mixed op).

    Returns
    -------
    dict or None
        ``{'limit': rate, 'unit', 'level': 'L1d' | 'L2' | 'L3' | 'DRAM' | 'GEMM', 'source', 'traffic':
        Traffic.to_dict()}``; for memory-bound ops also ``'bus_GBps'`` (the bandwidth at the footprint).
    """
    if not peaks:
        return None
    try:
        traffic = cases.traffic(op, size, dtype)
    except (KeyError, ValueError):  # an op or size this version does not know (an older JSON file)
        return None
    if traffic is None:
        return None
    if traffic.gemms:
        rate, source = _gemm_limit(traffic, dtype, peaks)
        if not rate:
            return None
        return {"limit": rate, "unit": "GFLOP/s", "level": "GEMM", "source": source, "traffic": traffic.to_dict()}
    bus, source = bandwidth_at(traffic.footprint, peaks)
    if not bus or not traffic.bus_bytes:
        return None
    caches = peaks.get("caches")
    level = cache_level(traffic.footprint, caches, peaks.get("threads") or 1) if caches else "DRAM"
    triad = peaks.get("triad_GBps")
    if level == "L3" and triad and bus <= DRAM_LIKE * triad:  # the OS's L3 may be a host's, shared with others
        level = "DRAM"
    return {"limit": bus * traffic.bytes / traffic.bus_bytes, "unit": "GB/s", "level": level,
            "source": source, "bus_GBps": bus, "traffic": traffic.to_dict()}


def annotate(results: Iterable[dict], peaks: dict | None) -> list[dict]:
    """The results with their roofline: ``limit`` (the :func:`limit_for` dict) and ``fraction_of_limit``
    (this timing's rate over it) on each result that has one; the others unchanged."""
    out = []
    cache: dict = {}
    for r in results:
        key = (r["op"], r["size"], r["dtype"])
        if key not in cache:
            cache[key] = limit_for(*key, peaks)
        lim = cache[key]
        r = dict(r)
        if lim is not None and r.get("median_s"):
            amount = lim["traffic"]["flops"] if lim["unit"] == "GFLOP/s" else lim["traffic"]["bytes"]
            r["limit"] = lim
            r["fraction_of_limit"] = amount / r["median_s"] / 1e9 / lim["limit"]
        out.append(r)
    return out


def shortfalls(rows: Iterable[dict], threshold: float = THRESHOLD) -> dict:
    """The summary: every row of :func:`~fastdl.benchmark.table_rows` below ``threshold`` of its limit,
    and every row below 1.0x PyTorch (each sorted, worst first)."""
    rows = list(rows)
    below_limit = sorted((r for r in rows if r.get("fraction_of_limit") is not None
                          and r["fraction_of_limit"] < threshold), key=lambda r: r["fraction_of_limit"])
    below_torch = sorted((r for r in rows if r.get("speedup_vs_torch") is not None and r["speedup_vs_torch"] < 1.0),
                         key=lambda r: r["speedup_vs_torch"])
    return {"threshold": threshold, "below_limit": below_limit, "below_torch": below_torch}


def activation_rows(rows: Iterable[dict]) -> list[dict]:
    """The forward+backward rows of registered activations (issue 10's GB/s against the triad)."""
    from .. import activations

    names = {f"{name}-fwd-bwd" for name in activations.names()}
    return [r for r in rows if r["op"] in names and r.get("unit") == "GB/s"]

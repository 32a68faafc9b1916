"""The roofline column of fastdl bench: traffic models written out by hand, cache sizes, limits, report columns.

Structure only: nothing here is timed (the figures come from ``fastdl bench --roofline``).
"""

from __future__ import annotations

import argparse
import json
import math
import os

import pytest

from fastdl import benchmark
from fastdl.benchmark import cases, peaks, roofline
from fastdl.benchmark.report import format_activations, format_summary

N = 256 * 1024  # values of a 256x1024 array


def _t(op, size, dtype):
    return cases.traffic(op, size, dtype)


# -- traffic models, by hand -----------------------------------------------------------------------------

def test_leaky_relu_forward_moves_x_in_y_and_its_mask_out():
    t = _t("leaky_relu-forward", "256x1024", "float32")
    # the record saves a one-byte mask: x read, y written, mask written (both fresh)
    assert t.read == 4 * N and t.written == 4 * N + N
    assert t.bytes == 2 * 4 * N + N and t.fresh == 4 * N + N and t.bus_bytes == 3 * 4 * N + 2 * N
    assert t.footprint == 2 * 4 * N + N and not t.gemms and t.unit == "GB/s"
    assert cases.work("leaky_relu-forward", "256x1024", "float32") == (t.bytes, "GB/s")


def test_leaky_relu_backward_reads_dout_and_the_mask():
    t = _t("leaky_relu-backward", "256x1024", "float32")
    assert (t.read, t.written, t.fresh) == (4 * N + N, 4 * N, 4 * N)


def test_relu_keeps_no_mask_its_backward_reads_y():
    fwd, bwd = _t("relu-forward", "256x1024", "float32"), _t("relu-backward", "256x1024", "float32")
    assert (fwd.read, fwd.written, fwd.fresh) == (4 * N, 4 * N, 4 * N)
    assert (bwd.read, bwd.written, bwd.fresh) == (2 * 4 * N, 4 * N, 4 * N)


def test_sigmoid_fwd_bwd_counts_y_once_in_the_footprint():
    t = _t("sigmoid-fwd-bwd", "256x1024", "float64")  # saves y: backward reads dout and y
    assert t.read == 3 * 8 * N and t.written == 2 * 8 * N and t.bytes == 5 * 8 * N
    assert t.fresh == 2 * 8 * N and t.footprint == 4 * 8 * N  # x, y, dout, dx


def test_prelu_forward_reads_its_per_feature_slope():
    t = _t("prelu-forward", "100x100", "float64")
    assert t.bytes == 2 * 8 * 100 * 100 + 8 * 100


def test_dropout_and_softmax_loss_and_batchnorm_by_hand():
    assert _t("dropout-forward", "100x100", "float64").bytes == 2 * 8 * 10**4 + 10**4
    sm = _t("softmax-loss-backward", "256x1024", "float32")  # y and the int64 labels in, dx out
    assert (sm.read, sm.written) == (4 * N + 8 * 256, 4 * N)
    bn = _t("batchnorm-backward", "256x1024", "float64")  # dout, x in, dx out; gamma/mean/std in, dgamma/dbeta out
    assert (bn.read, bn.written) == (2 * 8 * N + 3 * 8 * 1024, 8 * N + 2 * 8 * 1024)
    assert bn.fresh == 8 * N + 2 * 8 * 1024  # dx is read for ownership at this size ...
    big = _t("batchnorm-backward", "1024x4096", "float32")  # ... but streamed from 16 MiB: only the D-vectors
    assert big.written == 4 * 1024 * 4096 + 2 * 4 * 4096 and big.fresh == 2 * 4 * 4096


def test_optimizer_traffic_comes_from_the_rule():
    values = 1024 * 1024 + 1024  # W and b
    adam = _t("adam-update", "1M", "float32")  # p, g, m, v read; p, m, v written: the rule's traffic 7
    assert adam.bytes == 7 * 4 * values and adam.written == 3 * 4 * values and adam.fresh == 0
    assert adam.footprint == 4 * 4 * values
    assert _t("sgd-update", "10K", "float64").bytes == 3 * 8 * (100 * 100 + 100)
    from fastdl import optim

    for name, rule in optim.RULES.items():
        assert _t(f"{name}-update", "10K", "float64").bytes == rule.traffic * 8 * 10100, name


def test_affine_is_gemm_bound_with_its_shapes():
    fwd, bwd = _t("affine-forward", "256x1024", "float32"), _t("affine-backward", "256x1024", "float32")
    assert fwd.unit == "GFLOP/s" and fwd.flops == 2 * 256 * 1024 * 1024 and fwd.gemms == ((256, 1024, 1024),)
    assert bwd.flops == 4 * 256 * 1024 * 1024 and bwd.gemms == ((256, 1024, 1024), (1024, 256, 1024))
    assert _t("train-step", "784-100x5-10-b100", "float32") is None  # mixed: no roofline


def test_every_registered_activation_has_forward_backward_and_fwd_bwd_rows():
    from fastdl import activations

    for name in activations.names():
        parts = [_t(f"{name}-{d}", "256x1024", "float32") for d in ("forward", "backward", "fwd-bwd")]
        assert parts[2].bytes == parts[0].bytes + parts[1].bytes, name


# -- cache sizes -------------------------------------------------------------------------------------------

def _fake_sysfs(root, entries):
    for i, (level, kind, size, cpus) in enumerate(entries):
        d = root / f"index{i}"
        d.mkdir(parents=True)
        for field, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", cpus)):
            (d / field).write_text(f"{value}\n")
    return str(root)


def test_cache_sizes_read_from_sysfs(tmp_path):
    root = _fake_sysfs(tmp_path, [(1, "Data", "32K", "0"), (1, "Instruction", "64K", "0"),
                                  (2, "Unified", "1024K", "0"), (3, "Unified", "16M", "0-3")])
    c = peaks.cache_sizes(root)
    assert (c["L1d"], c["L2"], c["L3"]) == (32 * 2**10, 2**20, 16 * 2**20)
    assert c["shared"] == {"L1d": 1, "L2": 1, "L3": 4} and set(c["source"].values()) == {"sysfs"}


def test_cache_sizes_fall_back_to_sysconf_then_to_the_stated_defaults(tmp_path, monkeypatch):
    partial = _fake_sysfs(tmp_path / "p", [(1, "Data", "48K", "0")])  # only L1d in sysfs
    monkeypatch.setattr(peaks.os, "sysconf", lambda key: 3 * 2**20 if key in ("SC_LEVEL2_CACHE_SIZE", 191) else -1)
    c = peaks.cache_sizes(partial)
    assert c["source"] == {"L1d": "sysfs", "L2": "sysconf", "L3": "fallback"}
    assert (c["L1d"], c["L2"], c["L3"]) == (48 * 2**10, 3 * 2**20, peaks.FALLBACK_CACHES["L3"])

    def no_sysconf(key):
        raise ValueError("unsupported")

    monkeypatch.setattr(peaks.os, "sysconf", no_sysconf)
    c = peaks.cache_sizes(str(tmp_path / "missing"))
    assert {k: c[k] for k in peaks.FALLBACK_CACHES} == peaks.FALLBACK_CACHES
    assert set(c["source"].values()) == {"fallback"} and c["shared"]["L3"] == (os.cpu_count() or 1)


def test_cache_level_counts_per_core_caches_once_per_thread():
    caches = {"L1d": 32 * 2**10, "L2": 2**20, "L3": 32 * 2**20, "shared": {"L1d": 1, "L2": 1, "L3": 2}}
    assert peaks.cache_level(60 * 2**10, caches, threads=2) == "L1d"
    assert peaks.cache_level(60 * 2**10, caches, threads=1) == "L2"
    assert peaks.cache_level(2 * 2**20, caches, threads=2) == "L2"
    assert peaks.cache_level(30 * 2**20, caches, threads=2) == "L3"
    assert peaks.cache_level(64 * 2**20, caches, threads=2) == "DRAM"


# -- limits ----------------------------------------------------------------------------------------------

_PEAKS = {"triad_GBps": 10.0, "triad_bytes": 2**27, "gemm_n": 512, "gemm_GFLOPs": {"float32": 100.0, "float64": 50.0},
          "threads": 2, "caches": {"L1d": 32 * 2**10, "L2": 2**20, "L3": 32 * 2**20,
                                   "shared": {"L1d": 1, "L2": 1, "L3": 2}},
          "bandwidth_curve": [[2**16, 200.0], [2**20, 100.0], [2**24, 40.0], [2**28, 10.0]]}


def test_bandwidth_is_read_off_the_curve_log_log():
    assert roofline.bandwidth_at(2**22, _PEAKS)[0] == pytest.approx(math.sqrt(100.0 * 40.0))
    assert roofline.bandwidth_at(2**10, _PEAKS) == (200.0, "curve")  # ends beyond the points
    assert roofline.bandwidth_at(2**30, _PEAKS) == (10.0, "curve")
    assert roofline.bandwidth_at(2**22, {"triad_GBps": 7.0}) == (7.0, "triad")
    dip = dict(_PEAKS, bandwidth_curve=[[2**16, 200.0], [2**18, 5.0], [2**20, 100.0], [2**24, 40.0]])
    assert roofline.bandwidth_at(2**18, dip)[0] == pytest.approx(100.0)  # a point pulled down by load: envelope


def test_memory_bound_limit_is_the_bandwidth_at_the_footprint_less_write_allocate():
    lim = roofline.limit_for("leaky_relu-forward", "256x1024", "float32", _PEAKS)
    t = _t("leaky_relu-forward", "256x1024", "float32")
    bus = roofline.bandwidth_at(t.footprint, _PEAKS)[0]
    assert lim["unit"] == "GB/s" and lim["level"] == "L3" and lim["bus_GBps"] == pytest.approx(bus)
    assert lim["limit"] == pytest.approx(bus * t.bytes / t.bus_bytes)
    adam = roofline.limit_for("adam-update", "8M", "float64", _PEAKS)  # in place: the bus figure itself
    assert adam["level"] == "DRAM" and adam["limit"] == pytest.approx(adam["bus_GBps"])
    # a reported L3 that serves the working set at DRAM speed (a VM told the host's L3) is labelled DRAM
    host_l3 = dict(_PEAKS, caches=dict(_PEAKS["caches"], L3=2**30))
    assert roofline.limit_for("adam-update", "8M", "float64", host_l3)["level"] == "DRAM"
    assert roofline.limit_for("leaky_relu-forward", "256x1024", "float32", host_l3)["level"] == "L3"


def test_gemm_limit_uses_the_same_shapes_else_the_square_peak():
    square = roofline.limit_for("affine-backward", "256x1024", "float64", _PEAKS)
    assert (square["limit"], square["source"], square["level"]) == (50.0, "GEMM 512^2", "GEMM")
    shaped = dict(_PEAKS, gemm_shapes={"float64": {"256x1024x1024": 20.0, "1024x256x1024": 30.0}})
    lim = roofline.limit_for("affine-backward", "256x1024", "float64", shaped)
    flops = 2 * 256 * 1024 * 1024
    assert lim["source"] == "GEMM same shapes"
    assert lim["limit"] == pytest.approx(2 * flops / (flops / 20e9 + flops / 30e9) / 1e9)
    assert roofline.limit_for("train-step", "784-100x5-10-b100", "float64", _PEAKS) is None
    assert roofline.limit_for("relu-forward", "256x1024", "float64", None) is None


# -- report ------------------------------------------------------------------------------------------------

def _results():
    rows = []
    for op, size, medians in (("relu-forward", "256x1024", {"fastdl": 1e-3, "torch": 5e-4}),
                              ("relu-fwd-bwd", "256x1024", {"fastdl": 2e-4, "torch": 4e-4}),
                              ("adam-update", "1M", {"fastdl": 1e-3, "torch": 2e-3})):
        amount, unit = cases.work(op, size, "float32")
        rows += [dict(op=op, size=size, dtype="float32", impl=impl, work=amount, unit=unit, median_s=m)
                 for impl, m in medians.items()]
    return rows


def test_report_shows_the_roofline_columns():
    results = _results()
    table = benchmark.format_table(results, _PEAKS)
    head = table.splitlines()[1]
    assert all(col in head for col in ("moves", "fastdl rate", "of peak", "limit", "of limit"))
    md = benchmark.format_markdown(results, _PEAKS).splitlines()
    assert "| limit | of limit |" in md[2] and all(line.count("|") == md[2].count("|") for line in md[2:])
    rows = benchmark.table_rows(results, _PEAKS)
    relu = next(r for r in rows if r["op"] == "relu-forward")
    assert relu["fraction_of_limit"] == pytest.approx(relu["rate"] / relu["limit"])
    assert relu["traffic"]["bytes"] == relu["work"]
    assert "L1d" in peaks_line() and "triad bus GB/s by working set 64K 200" in peaks_line()


def peaks_line():
    return benchmark.format_table([], _PEAKS).splitlines()[0]


def test_summary_lists_ops_below_the_threshold_and_below_torch():
    rows = benchmark.table_rows(_results(), _PEAKS)
    s = roofline.shortfalls(rows)
    relu = next(r for r in rows if r["op"] == "relu-forward")
    assert relu["fraction_of_limit"] < 0.7  # 2.36 MB in 1 ms: 2.4 GB/s against tens of GB/s
    assert [r["op"] for r in s["below_torch"]] == ["relu-forward"]
    assert [r["op"] for r in s["below_limit"]] == [r["op"] for r in sorted(
        (r for r in rows if r["fraction_of_limit"] < 0.7), key=lambda r: r["fraction_of_limit"])]
    text = format_summary(rows)
    assert "Below 70 % of the roofline limit" in text and "relu-forward 256x1024 float32: 0.50x torch" in text
    acts = format_activations(rows, markdown=True).splitlines()
    assert acts[0].startswith("| activation fwd+bwd |") and acts[2].startswith("| relu | 256x1024 | float32 |")
    assert len(acts) == 3  # only the activations' forward+backward rows


def test_annotate_gives_every_timing_its_fraction():
    out = roofline.annotate(_results(), _PEAKS)
    relu = next(r for r in out if r["op"] == "relu-forward" and r["impl"] == "torch")
    assert relu["fraction_of_limit"] == pytest.approx(relu["work"] / 5e-4 / 1e9 / relu["limit"]["limit"])


def test_roofline_matrix_covers_every_op_at_the_judged_sizes():
    m = benchmark.matrix.roofline_matrix(quick=True)
    assert "reference" not in m.impls
    want = {(op, size) for op in benchmark.LAYER_OPS for size in roofline.ROOFLINE_LAYER_SIZES
            if not (op.startswith("affine") and size == "1024x4096")}
    want |= {(op, size) for op in benchmark.OPTIMIZER_OPS for size in roofline.ROOFLINE_PARAM_SIZES}
    assert set(m.entries) == want and ("relu-fwd-bwd", "1024x4096") in m.entries
    largest, shapes = benchmark.matrix.peak_needs(m)
    assert largest == max(_t(op, size, dt).footprint for op, size in m.entries for dt in m.dtypes)
    assert (256, 1024, 1024) in shapes and (1024, 256, 1024) in shapes


def test_bench_roofline_writes_the_summary(tmp_path, monkeypatch, capsys):
    tiny = benchmark.Matrix([("relu-fwd-bwd", "100x100"), ("sgd-update", "10K")], ("float64",), ("fastdl",),
                            {"warmup": 1, "min_time": 0.01, "min_samples": 3, "max_samples": 3})
    monkeypatch.setattr(benchmark.cli, "roofline_matrix", lambda **kw: tiny)
    monkeypatch.setattr(benchmark.cli, "LLC_BYTES", 2**20)  # a small triad: structure, not speed
    parser = argparse.ArgumentParser()
    benchmark.register_cli(parser.add_subparsers())
    args = parser.parse_args(["bench", "--roofline", "--quick", "--no-torch", "--no-progress", "--out", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "Roofline summary" in out and "Activations, forward+backward" in out and "of limit" in out
    data = json.loads((tmp_path / "roofline.json").read_text())
    assert {"info", "threshold", "rows", "below_limit", "below_torch"} <= set(data)
    assert {r["op"] for r in data["rows"]} == {"relu-fwd-bwd", "sgd-update"}
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert all("fraction_of_limit" in r for r in bench["results"]) and bench["peaks"]["bandwidth_curve"]


def test_every_row_of_the_full_matrices_has_a_traffic_model_or_none():
    from fastdl.benchmark import cases, matrix

    for m in (matrix.default_matrix(quick=False), matrix.roofline_matrix(quick=False)):
        largest, shapes = matrix.peak_needs(m)  # raised KeyError for the clipping rows once
        assert largest > 0 and shapes
    sgd = cases.traffic("sgd-update", "1M", "float32")
    clipped = cases.traffic("sgd-global_clipnorm-update", "1M", "float32")
    assert clipped.bytes - sgd.bytes == 4 * cases._optimizer_values("1M")  # one more read of the gradient
    assert cases.traffic("sgd-clipvalue-update", "1M", "float32").bytes == sgd.bytes
    assert clipped.bytes == cases.work("sgd-global_clipnorm-update", "1M", "float32")[0]

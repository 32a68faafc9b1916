"""fastdl bench, bench report, warmup and the shared op matrix: structure, not speed."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastdl import _jit, benchmark, runtime
from fastdl.benchmark import Unavailable, make_case

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def _cli(argv):
    parser = argparse.ArgumentParser()
    benchmark.register_cli(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


_SMALL = [("affine-backward", "100x100"), ("batchnorm-forward", "100x100"), ("softmax-loss-backward", "100x100"),
          ("dropout-forward", "100x100"), ("rmsprop-update", "10K")]


@pytest.mark.parametrize("op, size, impl", [(op, size, impl) for op, size in _SMALL for impl in ("reference", "fastdl")]
                         + [("train-step-bn", "784-100x5-10-b100", "reference")])
def test_case_runs_and_describes_its_work(op, size, impl):
    case = make_case(op, size, "float32", impl)
    case.fn()
    assert case.group == f"{op}-{size}-float32"
    assert case.meta() == {"op": op, "size": size, "dtype": "float32", "impl": impl, "group": case.group,
                           "work": case.work, "unit": case.unit}
    assert case.work > 0 and case.unit == ("GFLOP/s" if op.startswith(("affine", "train")) else "GB/s")


def test_optimizer_case_changes_parameters_in_place():
    """The timed call does the real update (a benchmark of a no-op would be worthless)."""
    case = make_case("adam-update", "10K", "float64", "fastdl")
    W = case.state["params"]["W"]
    before = W.copy()
    case.fn()
    assert case.state["params"]["W"] is W
    assert not np.array_equal(W, before)


def test_torch_case_when_installed_else_unavailable(monkeypatch):
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(Unavailable):
            make_case("relu-forward", "100x100", "float64", "torch")
        return
    make_case("batchnorm-backward", "100x100", "float64", "torch").fn()
    make_case("sgd-update", "10K", "float64", "torch").fn()
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(Unavailable, match="torch is not installed"):
        make_case("relu-forward", "100x100", "float64", "torch")


@pytest.mark.parametrize("kwargs, match", [
    ({"op": "conv-forward"}, "op must be one of"), ({"size": "10K"}, "size must be one of"),
    ({"dtype": "float16"}, "dtype must be one of"), ({"impl": "jax"}, "impl must be one of")])
def test_make_case_rejects_unknown_arguments(kwargs, match):
    args = dict(op="relu-forward", size="100x100", dtype="float64", impl="reference") | kwargs
    with pytest.raises(ValueError, match=match):
        make_case(**args)


@pytest.mark.parametrize("policy", list(benchmark.INTERLEAVE_POLICIES))
def test_interleave_case_restores_threshold(policy):
    before = runtime.get_parallel_threshold()
    case = benchmark.make_interleave_case("interleave-affine-bn-relu", "float32", policy)
    case.fn()
    assert case.impl == f"fastdl-{policy}" and case.group == "interleave-affine-bn-relu-256x1024-float32"
    assert runtime.get_parallel_threshold() == before


def test_table_ratios_come_from_the_medians():
    results = [dict(op="relu-forward", size="100x100", dtype="float64", impl=impl, work=2e5, unit="GB/s",
                    median_s=m) for impl, m in (("reference", 4e-5), ("fastdl", 1e-5), ("torch", 2e-5))]
    peaks = {"triad_GBps": 10.0, "triad_bytes": 2**27, "gemm_n": 64, "gemm_GFLOPs": {"float64": 5.0}, "threads": 2}
    (row,) = benchmark.table_rows(results, peaks)
    assert row["speedup_vs_reference"] == pytest.approx(4.0)
    assert row["speedup_vs_torch"] == pytest.approx(2.0)
    assert row["rate"] == pytest.approx(2e5 / 1e-5 / 1e9)
    assert row["fraction_of_peak"] == pytest.approx(row["rate"] / 10.0)
    md = benchmark.format_markdown(results, peaks, {"processor": "cpu", "numba_threads": 2})
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 3 and all(line.count("|") == table[0].count("|") for line in table)
    assert "| relu-forward | 100x100 | float64 |" in table[2] and "4.00" in table[2]
    assert "relu-forward" in benchmark.format_table(results, None)


def test_quick_bench_writes_json_table_and_png(tmp_path, capsys):
    code = _cli(["bench", "--quick", "--no-torch", "--dtype", "float64", "--no-progress", "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "bench.json").read_text())
    assert set(data) == {"info", "peaks", "results", "startup", "step_profile"}
    assert data["startup"] is None and data["step_profile"] is None  # --quick skips both
    assert data["peaks"]["triad_GBps"] > 0 and data["peaks"]["gemm_GFLOPs"]["float64"] > 0
    assert {"numpy", "numba", "numba_threads", "processor", "fastdl"} <= set(data["info"])
    entries = benchmark.default_matrix(quick=True).entries
    got = {(r["op"], r["size"], r["impl"]) for r in data["results"]}
    assert got == {(op, size, impl) for op, size in entries for impl in ("reference", "fastdl")}
    assert all(r["median_s"] > 0 and r["dtype"] == "float64" for r in data["results"])
    assert (tmp_path / "bench.png").read_bytes()[:8] == PNG
    out = capsys.readouterr().out
    assert "peaks" in out and all(op in out for op, _ in entries)
    # the project's target table lives in bench/targets.py, not in user-facing output (issue 14 item 7)
    assert "Issue 5" not in out and "Adam update, 10K params" not in out


def test_measure_step_profile_splits_the_fused_step():
    prof = benchmark.measure_step_profile(("float32",), repeat=3)["float32"]
    assert prof["fused"] and prof["dtype"] == "float32" and prof["batch_size"] == 100
    assert {"validate", "gemm", "forward", "loss", "backward", "other", "optimizer"} == set(prof["phases"])
    assert all(v >= 0 for v in prof["phases"].values()) and prof["phases"]["gemm"] > 0
    assert prof["non_gemm_share"] == pytest.approx(1 - prof["phases"]["gemm"] / sum(prof["phases"].values()))


def test_bench_report_reads_a_pytest_benchmark_json(tmp_path, capsys):
    """Run two real bench/ cases under pytest-benchmark, then format the JSON it wrote."""
    out = tmp_path / "pb.json"
    env = dict(os.environ, MPLBACKEND="Agg", FASTDL_BENCH_PEAKS="quick")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(REPO / "bench" / "test_optim.py"),
         "-k", "sgd-update-10K and float64 and (reference or fastdl)", "--benchmark-min-time=0.0005",
         "--benchmark-max-time=0.01", f"--benchmark-json={out}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results, peaks, info = benchmark.load_benchmark_json(out)
    assert sorted(r["impl"] for r in results) == ["fastdl", "reference"]
    assert {r["group"] for r in results} == {"sgd-update-10K-float64"}
    assert peaks and peaks["triad_GBps"] > 0 and info["numba"]
    assert _cli(["bench", "report", str(out), "--markdown", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "| sgd-update | 10K | float64 |" in text
    assert (tmp_path / "pb.png").read_bytes()[:8] == PNG


def test_bench_report_without_fastdl_results_fails(tmp_path, capsys):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"benchmarks": [{"group": "g", "extra_info": {}, "stats": {"median": 1.0}}]}))
    assert _cli(["bench", "report", str(path)]) == 1


def test_warmup_runs_every_layer_and_optimizer_and_then_compiles_nothing(capsys):
    steps = benchmark.warmup("float64", verbose=True)
    optim = pytest.importorskip("fastdl.optim")
    whats = {s.what for s in steps}
    assert {"Affine", "Relu", "Sigmoid", "BatchNormalization", "Dropout", "SoftmaxWithLoss"} <= whats
    assert {f"optimizer {name}" for name in optim.OPTIMIZERS} <= whats
    assert {"train step", "train step + batch norm", "train step + weight decay"} <= whats
    parallel = {s.what for s in steps if s.variant == "parallel"}
    if runtime.parallel_available():  # the optimizers' parallel step (a training run's whole-model update)
        assert parallel == {f"optimizer {name}" for name in optim.OPTIMIZERS}
        assert _jit.compiled_signatures()["optim.step_parallel"] > 0
    else:
        assert not parallel
    signatures = _jit.compiled_signatures()
    assert sum(signatures.values()) > 0
    again = benchmark.warmup("float64")
    assert sum(s.compiled + s.loaded for s in again) == 0
    assert _jit.compiled_signatures() == signatures
    assert "total" in capsys.readouterr().out
    with pytest.raises(ValueError, match="warmup: dtype"):
        benchmark.warmup("float16")


def test_warmup_parallel_adds_the_parallel_twins():
    steps = benchmark.warmup("float64", parallel=True)
    expected = {"serial", "parallel"} if runtime.parallel_available() else {"serial"}
    assert {s.variant for s in steps} == expected


def test_warmup_cli_reports_each_step(capsys):
    assert _cli(["warmup", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "float32" in out and "BatchNormalization" in out and "optimizer adam" in out
    assert "kernel signatures compiled" in out


def test_remote_peer_times_a_case_in_another_process():
    """The cross-process timing run_matrix uses for PyTorch, exercised with the reference (no torch needed)."""
    peer = benchmark.RemotePeer("reference")
    try:
        meta = peer.setup("relu-forward", "100x100", "float64")
        assert (meta["op"], meta["size"], meta["dtype"], meta["impl"]) == ("relu-forward", "100x100", "float64",
                                                                            "reference")
        local = benchmark.make_case("relu-forward", "100x100", "float64", "fastdl").fn
        medians = benchmark.measure_group({"fastdl": local}, remote={"reference": peer}, warmup=1, min_time=0.01,
                                          min_samples=3, max_samples=6)
        assert set(medians) == {"fastdl", "reference"} and all(v > 0 for v in medians.values())
        peer.drop()
        with pytest.raises(RuntimeError, match="reference timing process: ValueError: make_case: op"):
            peer.setup("no-such-op", "100x100", "float64")
        assert peer.setup("adam-update", "10K", "float32")["impl"] == "reference"  # still serving after an error
        assert peer.settle() < 1.0
    finally:
        peer.close()
    assert peer.proc.poll() is not None
    with pytest.raises(RuntimeError, match="timing process"):
        peer.setup("relu-forward", "100x100", "float64")


def test_remote_peer_leaves_openmp_defaults_to_the_peer(monkeypatch):
    """fastdl's GOMP_SPINCOUNT made PyTorch's OpenMP ops up to ~10x slower: the peer must not inherit it."""
    from fastdl import runtime

    monkeypatch.setenv("GOMP_SPINCOUNT", runtime.DEFAULT_GOMP_SPINCOUNT)
    monkeypatch.setattr(runtime, "USER_GOMP_SPINCOUNT", None)  # the value above is fastdl's default
    assert "GOMP_SPINCOUNT" not in benchmark.RemotePeer.environment()
    monkeypatch.setattr(runtime, "USER_GOMP_SPINCOUNT", "1000")  # a user's own setting is passed on
    assert benchmark.RemotePeer.environment()["GOMP_SPINCOUNT"] == runtime.DEFAULT_GOMP_SPINCOUNT
    code = benchmark.RemotePeer.command("torch", 2)[-1]
    assert code.index("import torch") < code.index("fastdl")
    assert "import torch" not in benchmark.RemotePeer.command("reference", 2)[-1]


def test_run_matrix_goes_on_without_a_peer_that_dies(monkeypatch, capsys):
    """A PyTorch process that fails mid-run costs the torch columns, not the local results."""
    import importlib.util

    class Dying:
        def __init__(self, impl, seed=0):
            self.closed = False

        def setup(self, op, size, dtype):
            return {"op": op, "size": size, "dtype": dtype, "impl": "torch"}

        def calibrate(self, warmup, sample_time):
            return 1

        def block(self, *args):
            raise RuntimeError("the torch timing process exited (code 1)")

        def drop(self):
            raise AssertionError("a dead peer is not asked to drop")

        def close(self):
            self.closed = True

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "torch"
                        else real_find_spec(name, *a))
    monkeypatch.setattr(benchmark.matrix, "RemotePeer", Dying)
    matrix = benchmark.Matrix(entries=[("relu-forward", "100x100"), ("relu-backward", "100x100")],
                              dtypes=("float64",), impls=("reference", "fastdl", "torch"),
                              timing={"warmup": 1, "min_time": 0.01, "min_samples": 3, "max_samples": 6})
    results = benchmark.run_matrix(matrix, progress=False)
    assert sorted((r["op"], r["impl"]) for r in results) == [
        ("relu-backward", "fastdl"), ("relu-backward", "reference"), ("relu-forward", "fastdl"),
        ("relu-forward", "reference")]
    assert all(r["median_s"] > 0 for r in results)
    assert "torch columns left out from here on" in capsys.readouterr().err


def _pytest_benchmark_json(path, impls=("reference", "fastdl")):
    """A minimal pytest-benchmark JSON holding two bench/ results."""
    benchmarks = [{"group": "relu-forward-100x100-float64", "stats": {"median": m},
                   "extra_info": {"op": "relu-forward", "size": "100x100", "dtype": "float64", "impl": impl,
                                  "work": 1.6e5, "unit": "GB/s"}}
                  for impl, m in zip(impls, (4e-5, 1e-5))]
    path.write_text(json.dumps({"benchmarks": benchmarks, "machine_info": {}}))
    return path


def test_bench_report_writes_its_plot_beside_the_file_or_into_out(tmp_path, capsys):
    src = _pytest_benchmark_json(tmp_path / "run.json")
    assert _cli(["bench", "report", str(src)]) == 0
    captured = capsys.readouterr()
    assert "relu-forward" in captured.out and "Issue 5" not in captured.out
    assert (tmp_path / "run.png").read_bytes()[:8] == PNG
    assert f"wrote {tmp_path / 'run.png'}" in captured.err
    out = tmp_path / "figures"
    assert _cli(["bench", "report", str(src), "--out", str(out)]) == 0
    assert (out / "run.png").read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "run.json", "run.png"]  # no temp file left


def test_the_matrix_is_read_from_the_optimizer_registry_and_the_layer_table(monkeypatch):
    """A toy optimizer and a toy activation, added to the two tables alone, become benchmark ops."""
    from fastdl import layers, optim, reference
    from fastdl.benchmark import tables

    class SignSGD:  # no reference twin, no torch twin
        def __init__(self, lr=0.01):
            self.lr = lr

        def update(self, params, grads):
            for key in params:
                params[key] -= self.lr * np.sign(grads[key])

    class Tanh:  # the book's layer interface
        def forward(self, x):
            self.out = np.tanh(x)
            return self.out

        def backward(self, dout):
            return dout * (1.0 - self.out**2)

    monkeypatch.setitem(optim.OPTIMIZERS, "signsgd", SignSGD)
    monkeypatch.setattr(layers, "Tanh", Tanh, raising=False)
    monkeypatch.setattr(reference, "Tanh", Tanh, raising=False)
    monkeypatch.setitem(benchmark.LAYER_TABLE, "tanh", benchmark.activation("Tanh", "tanh"))

    assert "signsgd-update" in benchmark.OPTIMIZER_OPS and "signsgd-update" in list(benchmark.OPTIMIZER_OPS)
    assert {"tanh-forward", "tanh-backward"} <= set(benchmark.LAYER_OPS)
    entries = benchmark.default_matrix().entries
    assert ("signsgd-update", "8M") in entries and ("tanh-backward", "1024x4096") in entries

    case = make_case("signsgd-update", "10K", "float64", "fastdl")
    W = case.state["params"]["W"]
    before = W.copy()
    case.fn()
    np.testing.assert_array_equal(W, before - 1e-3 * np.sign(case.state["grads"]["W"]))
    assert case.work == 3 * 8 * (100 * 100 + 100)  # no state: param read + written, grad read
    for impl in ("reference", "torch"):
        with pytest.raises(Unavailable):
            make_case("signsgd-update", "10K", "float64", impl)

    back = make_case("tanh-backward", "100x100", "float32", "fastdl")
    assert back.fn().shape == (100, 100) and back.work == 3 * 4 * 100 * 100 and back.unit == "GB/s"
    assert make_case("tanh-forward", "100x100", "float32", "reference").fn().dtype == np.float32
    no_twin = dict(benchmark.LAYER_TABLE["tanh"].setups)
    no_twin.pop("torch")
    monkeypatch.setitem(benchmark.LAYER_TABLE, "tanh", tables.LayerOp(no_twin, tables.streams(2, 3)))
    with pytest.raises(Unavailable, match="no torch implementation"):
        make_case("tanh-forward", "100x100", "float32", "torch")

    matrix = benchmark.Matrix(entries=[("signsgd-update", "10K")], dtypes=("float64",),
                              impls=("reference", "fastdl"),
                              timing={"warmup": 1, "min_time": 0.01, "min_samples": 3, "max_samples": 6})
    assert [r["impl"] for r in benchmark.run_matrix(matrix, progress=False)] == ["fastdl"]


def test_state_arrays_give_the_traffic_of_each_optimizer():
    from fastdl.benchmark.cases import state_arrays

    assert {name: state_arrays(name) for name in ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")} == {
        "sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2}


@pytest.mark.parametrize("op", list(benchmark.CLIP_OPS))
def test_clipping_cases_do_the_same_arithmetic_as_the_reference(op):
    """fastdl's clipped update, the book's optimizer on Keras-clipped gradients, and torch's clip + step agree."""
    name, option = benchmark.CLIP_OPS[op]
    assert benchmark.sizes_for(op) == benchmark.CLIP_SIZES and (op, "8M") in benchmark.default_matrix().entries
    cases = {impl: make_case(op, "1M", "float64", impl) for impl in ("reference", "fastdl")}
    before = cases["fastdl"].state["params"]["W"].copy()
    for case in cases.values():
        case.fn()
    got, expected = (cases[i].state["params"]["W"] for i in ("fastdl", "reference"))
    assert not np.array_equal(got, before)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12 * np.max(np.abs(expected)))  # (p - step cancels)
    plain = make_case(f"{name}-update", "1M", "float64", "fastdl")
    extra = 0 if option == "clipvalue" else 8 * (1024 * 1024 + 1024)  # one more read of the gradient for a norm
    assert cases["fastdl"].work == plain.work + extra
    if name == "sgd":  # (torch's Adam is the paper's form: another rule)
        pytest.importorskip("torch")
        torch_case = make_case(op, "1M", "float64", "torch")
        start = torch_case.state["params"]["W"].copy()  # (building the torch optimizer took one step already)
        torch_case.fn()
        # torch adds 1e-6 to the norm (max_norm / (norm + 1e-6)): a ~1e-7 relative difference in the step
        step, torch_step = before - got, start - torch_case.state["params"]["W"]  # (torch steps the same memory)
        np.testing.assert_allclose(torch_step, step, rtol=1e-5)


def test_bench_only_times_the_matching_ops(tmp_path, capsys):
    code = _cli(["bench", "--quick", "--no-torch", "--dtype", "float64", "--no-progress", "--only", "adam-*",
                 "--out", str(tmp_path)])
    assert code == 0
    ops = {r["op"] for r in json.loads((tmp_path / "bench.json").read_text())["results"]}
    assert ops == {"adam-update"}
    from fastdl._cliargs import UsageError

    with pytest.raises(UsageError, match="--only must match some op of the matrix"):
        _cli(["bench", "--quick", "--no-torch", "--only", "nothing-*"])

"""bench/targets.py: the project's issue-5 target table, judged from a saved bench run (not library output)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def targets():
    spec = importlib.util.spec_from_file_location("bench_targets", REPO / "bench" / "targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _r(op, size, dtype, impl, median, work=None, unit="GB/s"):
    return {"op": op, "size": size, "dtype": dtype, "impl": impl, "median_s": median, "work": work, "unit": unit}


_RESULTS = [_r("adam-update", "10K", "float32", "fastdl", 2e-6), _r("adam-update", "10K", "float64", "fastdl", 7e-6),
            _r("adam-update", "1M", "float32", "fastdl", 1e-4), _r("adam-update", "1M", "float32", "torch", 3e-4),
            _r("adam-update", "1M", "float32", "reference", 1.9e-3),
            _r("adam-update", "8M", "float64", "fastdl", 1e-2, work=0.9e9)]


def test_target_rows_judge_each_criterion_and_leave_missing_ones_open(targets):
    rows = targets.target_rows(_RESULTS, {"triad_GBps": 100.0, "gemm_GFLOPs": {}}, {"import_s": 0.6},
                               {"float64": {"non_gemm_share": 0.1}, "float32": {"non_gemm_share": 0.2}})
    got = {(row["work"], row["dtype"], row["criterion"]): row["met"] for row in rows}
    assert got[("Adam update, 10K params", "float32", "time")] is True
    assert got[("Adam update, 10K params", "float64", "time")] is False
    assert got[("Adam update, 1M params", "float32", "x torch")] is True  # 3.0x >= 2x
    assert got[("Adam update, 1M params", "float32", "x ref")] is False  # 19x < 20x
    assert got[("Adam update, 8M params", "float64", "of peak")] is True  # 90 GB/s of 100: 90 % >= 85 %
    assert got[("Adam update, 8M params", "float32", "of peak")] is None  # not in this run
    assert got[("start-up: import fastdl", "-", "startup")] is False  # 0.6 s > 0.5 s
    assert got[("training step 784-100x5-10 + BN, b100, Adam", "float64", "x torch")] is None
    share = "training step 784-100x5-10 + BN: work outside the GEMMs (profiler)"
    assert got[(share, "float64", "non-GEMM share")] is True and got[(share, "float32", "non-GEMM share")] is False
    table = targets.format_targets(rows, markdown=True)
    assert "| Adam update, 10K params | float64 | <= 6 us | 7 us | NO |" in table
    assert f"| {share} | float32 | <= 15% of the step | 20% | NO |" in table


def test_script_prints_the_measured_targets_of_a_bench_json(targets, tmp_path, capsys):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"info": {}, "peaks": {"triad_GBps": 100.0, "gemm_GFLOPs": {}}, "results": _RESULTS,
                                "startup": {"import_s": 0.3}, "step_profile": None}))
    assert targets.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "Adam update, 10K params" in out and "start-up: import fastdl" in out
    assert "not measured" not in out  # only what the run measured, unless --all
    assert targets.main([str(path), "--all", "--markdown"]) == 0
    assert "| start-up: cold cache, import + compile + first step (f64) | - | <= 20 s | - | not measured |" in (
        capsys.readouterr().out)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"results": [], "peaks": None}))
    assert targets.main([str(empty)]) == 1
    assert "measures none of the targets" in capsys.readouterr().err

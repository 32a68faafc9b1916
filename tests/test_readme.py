"""The README's drop-in example runs, and prints the reference's numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    text = README.read_text()
    marker = text.index("tests/test_readme.py")
    match = re.search(r"```python\n(.*?)```", text[marker:], re.S)
    assert match, "README: no python block after the test_readme marker"
    return match.group(1)


def _run(code: str) -> dict:
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_readme_example_runs_and_matches_reference(capsys):
    code = _example()
    assert "from fastdl.layers import" in code and "from fastdl.optim import" in code
    fast = _run(code)
    printed = capsys.readouterr().out
    assert printed.startswith("loss after 50 steps:")
    reference_code = code.replace("from fastdl.layers import", "from fastdl.reference import").replace(
        "from fastdl.optim import", "from fastdl.reference import")
    ref = _run(reference_code)
    # 50 Adam steps on random data: the loss falls well below ln(10) = 2.30 and both agree
    assert float(fast["loss"]) < 2.0
    np.testing.assert_allclose(float(fast["loss"]), float(ref["loss"]), rtol=1e-10)
    for key in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(fast["params"][key], ref["params"][key], rtol=1e-9, atol=1e-12)


def test_readme_chapter_11_block_runs():
    text = README.read_text()
    marker = text.index("### *Hands-On ML* chapter 11")
    match = re.search(r"```python\n(.*?)```", text[marker:], re.S)
    assert match, "README: no python block in the chapter-11 section"
    ns = _run(match.group(1))
    mean, std = ns["mean"], ns["std"]
    assert mean.shape == std.shape == (5, 10)
    np.testing.assert_allclose(mean.sum(axis=1), 1.0, rtol=1e-9)
    assert (std >= 0).all() and std.max() > 0  # dropout active: the passes differ
    net, new = ns["net"], ns["new"]
    assert net.accuracy(ns["xt"], ns["tt"]) > 0.8
    np.testing.assert_array_equal(new.params["W1"], net.params["W1"])
    assert "W1" in new.frozen and "W2" not in new.frozen
    assert ns["optimizer"].iterations > 0

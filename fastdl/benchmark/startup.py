"""The start-up section of ``fastdl bench`` (``fastdl bench --startup``): the quickstart from the user's side.

Three measurements of the README's main job, ``fastdl train`` on digits (64-100-100-10, ReLU, Adam
lr 0.01, batch 100, 20 epochs = 287 steps, float64), each in fresh interpreters against the kernel
cache the user has (filled first by one untimed run):

* **Trainer overhead** (:func:`measure_trainer_overhead`): the :class:`~fastdl.trainer.Trainer`'s
  wall time per step against ``gradient()`` + ``update()`` alone on batches of the same size, and
  what the book's Trainer adds beside them, each timed on its own: the loss of the batch after the
  update, the per-epoch accuracy on the whole training and test sets, the batch sampling.
* **First run** (:func:`measure_first_run`): ``import fastdl`` and the first step + loss + accuracy
  of a fresh process, with the number of kernel signatures Numba loads from its cache and their
  load times (the first load also pays Numba's one-off set-up of its compiler context).
* **CLI end to end** (:func:`measure_cli`): the wall time of ``python -m fastdl train --quiet
  --no-compare`` (and of the bare interpreter and ``import fastdl.cli``).

The load average is recorded beside the figures: on a shared machine they move with other processes.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

from .probes import _run_snippet

__all__ = ["format_startup", "measure_cli", "measure_first_run", "measure_quickstart", "measure_trainer_overhead"]

#: the quickstart's command line after ``fastdl`` (plus ``--out DIR``)
QUICKSTART_ARGS = ("train", "--quiet", "--no-compare")

_TRAINER_SNIPPET = """
import contextlib, io, json, statistics, time
import numpy as np
from fastdl import datasets, nets, optim
from fastdl._train_report import warm_up
from fastdl.trainer import Trainer

(x, t), (xt, tt) = datasets.load_digits(normalize=True, dtype=np.float64)

def net():  # the quickstart's network, as `fastdl train` builds it (seed 0)
    np.random.seed(0)
    return nets.MultiLayerNetExtend(64, [100, 100], 10, activation="relu", weight_init_std="relu")

warm_up(net(), optim.Adam(lr=0.01), x[:100], t[:100], x, t)
rows = []
for r in range({repeats}):
    row = {{}}
    for verbose in (False, True):
        tr = Trainer(net(), x, t, xt, tt, epochs=20, mini_batch_size=100, optimizer="adam",
                     optimizer_param={{"lr": 0.01}}, verbose=verbose)
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            t0 = time.perf_counter()
            h = tr.train()
            row["trainer_verbose" if verbose else "trainer"] = (time.perf_counter() - t0) / tr.max_iter
    steps, epochs = tr.max_iter, len(h.epochs)
    np.random.seed(1)
    batches = [(x[m], t[m]) for m in (np.random.choice(len(x), 100) for _ in range(steps))]
    n2, opt = net(), optim.Adam(lr=0.01)
    t0 = time.perf_counter()
    for xb, tb in batches:
        opt.update(n2.params, n2.gradient(xb, tb))
    row["gradient_update"] = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    for xb, tb in batches:
        n2.loss(xb, tb)
    row["loss_after_update"] = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    for _ in range(epochs):
        n2.accuracy(x, t)
        n2.accuracy(xt, tt)
    row["evaluation"] = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    for _ in range(steps):
        m = np.random.choice(len(x), 100)
        x[m], t[m]
    row["sampling"] = (time.perf_counter() - t0) / steps
    rows.append(row)
out = {{k: statistics.median(r[k] for r in rows) for k in rows[0]}}
out.update(steps=steps, epochs=epochs)
print(json.dumps(out))
"""

_FIRST_RUN_SNIPPET = """
import json, time
t0 = time.perf_counter()
import fastdl
import_s = time.perf_counter() - t0
import numba.core.caching as caching
import numpy as np
from fastdl import datasets, nets, optim

loads, misses = [], []
_load = caching.Cache.load_overload

def timed_load(self, sig, target_context):  # (measurement only: the same call, clocked)
    t = time.perf_counter()
    found = _load(self, sig, target_context)
    (loads if found is not None else misses).append(time.perf_counter() - t)
    return found

caching.Cache.load_overload = timed_load
(x, t), _ = datasets.load_digits(normalize=True, dtype=np.float64)
np.random.seed(0)
net = nets.MultiLayerNetExtend(64, [100, 100], 10, activation="relu", weight_init_std="relu")
opt = optim.Adam(lr=0.01)
t1 = time.perf_counter()
opt.update(net.params, net.gradient(x[:100], t[:100]))
net.loss(x[:100], t[:100])
net.accuracy(x, t)
first_step_s = time.perf_counter() - t1
rest = sorted(loads[1:])
print(json.dumps({"import_s": import_s, "first_step_s": first_step_s, "kernels": len(loads), "compiled": len(misses),
                  "first_load_s": loads[0] if loads else 0.0, "other_loads_s": sum(rest),
                  "median_load_s": rest[len(rest) // 2] if rest else 0.0}))
"""


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def measure_trainer_overhead(repeats: int = 3) -> dict:
    """The quickstart Trainer's seconds per step against ``gradient()`` + ``update()``, in a fresh interpreter.

    Returns
    -------
    dict
        Seconds per step (medians of ``repeats`` rounds): ``trainer`` (``Trainer.train()`` wall,
        ``verbose=False``), ``trainer_verbose`` (with its progress bar and epoch lines, written to
        a buffer), ``gradient_update``, and what the book's Trainer adds, each timed alone and
        spread over the steps: ``loss_after_update``, ``evaluation`` (accuracy on the training and
        test sets once per epoch), ``sampling``; ``overhead`` = ``trainer - gradient_update`` and
        ``overhead_share`` = ``overhead / trainer``; ``steps``, ``epochs``.
    """
    out = _run_snippet(_TRAINER_SNIPPET.format(repeats=repeats), dict(os.environ), "measure_trainer_overhead",
                       "the Trainer run")
    out["overhead"] = out["trainer"] - out["gradient_update"]
    out["overhead_share"] = out["overhead"] / out["trainer"]
    return out


def measure_first_run(repeats: int = 3) -> dict:
    """``import fastdl`` and the quickstart's first step + loss + accuracy in fresh interpreters (warm cache).

    Returns
    -------
    dict
        Medians over ``repeats`` interpreters: ``import_s``, ``first_step_s``, ``kernels`` (kernel
        signatures loaded from Numba's cache), ``compiled`` (signatures the cache did not have: 0
        with a filled cache), ``first_load_s`` (the first load: with Numba's
        one-off compiler-context set-up), ``other_loads_s`` (all the other loads), ``median_load_s``.
    """
    runs = [_run_snippet(_FIRST_RUN_SNIPPET, dict(os.environ), "measure_first_run", "the first-run probe")
            for _ in range(repeats)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"measure_cli: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return seconds


def measure_cli(repeats: int = 3) -> dict:
    """Wall seconds of the quickstart command end to end, and of what any command pays before it starts.

    One untimed run first (it fills the kernel cache when empty), then ``repeats`` timed ones.

    Returns
    -------
    dict
        Medians: ``interpreter_s`` (``python -c pass``), ``import_cli_s`` (``python -c "import
        fastdl.cli"``), ``train_s`` (``python -m fastdl train --quiet --no-compare --out DIR``),
        ``train_compare_s`` (the same with the closing fastdl-vs-reference step comparison, the default).
    """
    with tempfile.TemporaryDirectory(prefix="fastdl-startup-cli-") as tmp:
        train = [sys.executable, "-m", "fastdl", *QUICKSTART_ARGS, "--out", tmp]
        _wall(train)
        cmds = {"interpreter_s": [sys.executable, "-c", "pass"],
                "import_cli_s": [sys.executable, "-c", "import fastdl.cli"], "train_s": train,
                "train_compare_s": [sys.executable, "-m", "fastdl", "train", "--quiet", "--out", tmp]}
        return {k: statistics.median(_wall(cmd) for _ in range(repeats)) for k, cmd in cmds.items()}


def measure_quickstart(repeats: int = 3) -> dict:
    """All three measurements (CLI first: its untimed run fills the cache), with the load average around them.

    Returns
    -------
    dict
        ``{'cli': ..., 'first_run': ..., 'trainer': ..., 'load_before': float, 'load_after': float}``.
    """
    out: dict = {"load_before": _load()}
    out["cli"] = measure_cli(repeats)
    out["first_run"] = measure_first_run(repeats)
    out["trainer"] = measure_trainer_overhead(max(repeats, 7))  # (a round is ~0.6 s: more rounds, steadier medians)
    out["load_after"] = _load()
    return out


def format_startup(result: dict) -> str:
    """Markdown lines of :func:`measure_quickstart`'s result."""
    tr, fr, cli = result["trainer"], result["first_run"], result["cli"]

    def ms(v: float) -> str:
        return f"{v * 1e3:.3f} ms"

    lines = [
        f"Quickstart start-up (`fastdl train` on digits, {tr['steps']} steps; fresh interpreters, warm kernel cache; "
        f"load average {result['load_before']:.2f} -> {result['load_after']:.2f} on {os.cpu_count()} cores)",
        "",
        "| what | figure |",
        "|---|---|",
        f"| Trainer per step (quiet / with progress bar) | {ms(tr['trainer'])} / {ms(tr['trainer_verbose'])} |",
        f"| gradient() + update() per step | {ms(tr['gradient_update'])} |",
        f"| Trainer overhead per step (share of the step) | {ms(tr['overhead'])} "
        f"({100 * tr['overhead_share']:.0f} %) |",
        f"| of which the book's arithmetic: loss after the update / per-epoch evaluation | "
        f"{ms(tr['loss_after_update'])} / {ms(tr['evaluation'])} |",
        f"| of which batch sampling | {ms(tr['sampling'])} |",
        f"| first run: import fastdl / first step + loss + accuracy | {fr['import_s']:.3f} s / "
        f"{fr['first_step_s']:.3f} s |",
        f"| kernel signatures loaded from the cache | {fr['kernels']:.0f}: the first {fr['first_load_s']:.3f} s "
        f"(with Numba's one-off set-up), the others {fr['other_loads_s']:.3f} s together "
        f"(median {fr['median_load_s'] * 1e3:.1f} ms each)"
        + (f"; {fr['compiled']:.0f} compiled (not in the cache)" if fr.get("compiled") else "") + " |",
        f"| interpreter / import fastdl.cli | {cli['interpreter_s']:.2f} s / {cli['import_cli_s']:.2f} s |",
        f"| `fastdl {' '.join(QUICKSTART_ARGS)}` end to end | {cli['train_s']:.2f} s |",
        f"| `fastdl train --quiet` end to end (with the closing step comparison) | {cli['train_compare_s']:.2f} s |",
    ]
    return "\n".join(lines)

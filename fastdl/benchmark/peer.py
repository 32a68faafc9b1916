"""The remote peer: one implementation's cases built and timed in a separate Python process.

``fastdl bench`` times PyTorch this way, beside ``reference`` and ``fastdl`` in this process, in
the same rotating blocks (:func:`~fastdl.benchmark.timing.measure_group`). Why a separate process,
why the wait before each remote call and why the peer runs without fastdl's ``GOMP_SPINCOUNT``:
``docs/design-notes.md``, *Benchmark methodology*.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from .. import runtime
from .cases import make_case
from .tables import Unavailable
from .timing import calibrate, configure_torch_threads, run_block


class RemotePeer:
    """One implementation's cases, built and timed in a separate Python process on request.

    The process (:func:`serve`) reads one JSON command per line on stdin and answers one JSON line
    on stdout: ``setup`` builds a case with :func:`~fastdl.benchmark.make_case` (``null`` when
    unavailable), ``calibrate`` and ``block`` time it as
    :func:`~fastdl.benchmark.measure_group` does locally, ``drop`` frees it. This process blocks on
    the answer, so the two never time at once, and before each remote call it waits until its own
    threads are idle (:meth:`settle`). The peer starts without fastdl's ``GOMP_SPINCOUNT`` default
    (unless the user set the variable) and, for PyTorch, imports torch before fastdl.

    Raises
    ------
    RuntimeError
        From any call once the process failed or exited (the caller stops using it).
    """

    def __init__(self, impl: str, *, seed: int = 0, threads: int | None = None, max_settle: float = 1.0) -> None:
        self.impl, self.seed, self.max_settle = impl, seed, max_settle
        threads = runtime.get_num_threads() if threads is None else threads
        self.proc = subprocess.Popen(self.command(impl, threads), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1, env=self.environment())
        self._ask({"cmd": "ping"})

    @staticmethod
    def command(impl: str, threads: int) -> list[str]:
        """The peer's command line; PyTorch is imported before fastdl (see the class notes)."""
        first = "import torch; " if impl == "torch" else ""
        return [sys.executable, "-c", f"{first}from fastdl.benchmark.peer import serve; "
                f"serve({impl!r}, {int(threads)})"]

    @staticmethod
    def environment() -> dict[str, str]:
        """This process's environment without fastdl's ``GOMP_SPINCOUNT`` default (a user's value stays)."""
        env = dict(os.environ)
        if runtime.USER_GOMP_SPINCOUNT is None:
            env.pop("GOMP_SPINCOUNT", None)
        return env

    def _ask(self, msg: dict):
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (OSError, ValueError) as exc:  # (a broken pipe, or a pipe closed by close())
            raise RuntimeError(f"the {self.impl} timing process failed ({exc})") from None
        if not line:
            raise RuntimeError(f"the {self.impl} timing process exited (code {self.proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the {self.impl} timing process: {answer['error']}")
        return answer["result"]

    def setup(self, op: str, size: str, dtype: str) -> dict | None:
        """Build the case; its ``meta()`` dict, or None when this implementation lacks it."""
        return self._ask({"cmd": "setup", "op": op, "size": size, "dtype": dtype, "seed": self.seed})

    def settle(self, step: float = 0.01) -> float:
        """Sleep until this process's threads used < 10 % of a core over ``step`` s; seconds waited."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < self.max_settle:
            c0 = time.process_time()
            time.sleep(step)
            if time.process_time() - c0 < 0.1 * step:
                break
        return time.perf_counter() - t0

    def calibrate(self, warmup: int, sample_time: float) -> int:
        """Calls per sample of the peer's case (as :func:`~fastdl.benchmark.timing.calibrate`)."""
        self.settle()
        return self._ask({"cmd": "calibrate", "warmup": warmup, "sample_time": sample_time})

    def block(self, number: int, warmup: int, min_samples: int, max_samples: int, block_time: float) -> list[float]:
        """One timed block of the peer's case (as :func:`~fastdl.benchmark.timing.run_block`)."""
        self.settle()
        return self._ask({"cmd": "block", "number": number, "warmup": warmup, "min_samples": min_samples,
                          "max_samples": max_samples, "block_time": block_time})

    def drop(self) -> None:
        """Free the peer's case."""
        self._ask({"cmd": "drop"})

    def close(self) -> None:
        """End the process (closing its stdin; killed after 10 s)."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def serve(impl: str, threads: int) -> None:
    """Entry point of a :class:`RemotePeer` process (JSON lines on stdin/stdout)."""
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever the cases print must not corrupt the protocol
    if impl == "torch":
        configure_torch_threads(threads)
    case = None
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            cmd = msg["cmd"]
            if cmd == "ping":
                result = None
            elif cmd == "setup":
                case = None
                try:
                    case = make_case(msg["op"], msg["size"], msg["dtype"], impl, seed=msg["seed"])
                    result = case.meta()
                except Unavailable:
                    result = None
            elif cmd == "calibrate":
                result = calibrate(case.fn, msg["warmup"], msg["sample_time"])
            elif cmd == "block":
                result = run_block(case.fn, msg["number"], msg["warmup"], msg["min_samples"],
                                   msg["max_samples"], msg["block_time"])
            elif cmd == "drop":
                case, result = None, None
            else:
                raise ValueError(f"unknown command {cmd!r}")
            answer = {"result": result}
        except Exception as exc:  # reported to the caller, which stops using this process
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()

"""The results file: JSON lines, one record per finished job, each flushed and fsynced as it arrives.

Line 1 is the header ``{"kind": "search", "version": 1, "spec": {...}}`` (everything that decides
the trials' results: space, data, epochs, seed, algorithm); a resumed search that grew (more trials)
appends a new header, and the last one counts. Every further line is one finished job
(``{"kind": "trial", "trial": k, "rung": r, "epochs": e, "status": ..., "val_acc": [...], ...}``).
A line is written with one ``write`` of the whole line, then ``flush`` and ``os.fsync``: after a
crash the file holds every job that finished, and at most a torn last line, which :func:`read`
skips (and :class:`ResultsStore` ends with a newline before appending).

Why an append-only log rather than a file rewritten atomically: a search appends one small record
per trial for minutes or hours; rewriting the whole file each time grows quadratically, and an
append plus fsync is durable on its own.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

from .. import _checks

__all__ = ["FORMAT_VERSION", "ResultsStore", "read"]

FORMAT_VERSION = 1


def _clean(obj):
    """JSON-ready copy: non-finite floats as None, tuples as lists, NumPy scalars as Python ones."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def read(path: str | os.PathLike) -> tuple[dict | None, list[dict]]:
    """The header and the job records of a results file (a torn or unreadable line is skipped).

    Parameters
    ----------
    path : path-like
        A results file.

    Returns
    -------
    tuple
        ``(header or None, records in file order)``.
    """
    header, records = None, []
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(f"{path}: line {number} is not complete JSON (a write cut short?); skipped", stacklevel=2)
            continue
        if item.get("kind") == "search":
            header = item  # the last one counts (a resumed search that grew writes a new header)
        elif item.get("kind") == "trial":
            records.append(item)
    return header, records


class ResultsStore:
    """Append-only, fsynced JSON-lines file of a search.

    Parameters
    ----------
    path : path-like
        The file. A new file gets the header; an existing one must have the same spec (``resume``).
    spec : dict
        The search's spec (stored in the header; compared on resume).
    resume : bool
        Continue an existing file. Without it an existing non-empty file is an error (nothing is
        overwritten).
    compare : callable, optional
        ``compare(stored_spec, spec)`` raises when the two searches differ in a way that matters
        (default: equality).

    Attributes
    ----------
    records : list of dict
        Records already in the file when it was opened (resume), in file order.
    """

    def __init__(self, path: str | os.PathLike, spec: dict, resume: bool = False, compare=None) -> None:
        where = "ResultsStore"
        self.path = Path(path)
        self.spec = _clean(spec)
        self.records: list[dict] = []
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists and not resume:
            _checks.fail(where, "path", "a new file (pass resume=True / --resume to continue a search)",
                         f"{str(self.path)!r}, which already holds results", FileExistsError)
        if exists:
            header, self.records = read(self.path)
            if header is None:
                _checks.fail(where, "path", "a fastdl search results file (JSON lines with a search header)",
                             repr(str(self.path)))
            if header.get("version") != FORMAT_VERSION:
                _checks.fail(where, "version", f"{FORMAT_VERSION}", repr(header.get("version")))
            if compare is not None:
                compare(header["spec"], self.spec)
            elif header["spec"] != self.spec:
                _checks.fail(where, "spec", "the same search as the file's", "a different one")
            self.stored_spec = header["spec"]
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                torn = fh.read(1) != b"\n"
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
            if torn:
                self._fh.write("\n")
            if header["spec"] != self.spec:  # compare() allowed the change (more trials): record the new spec
                self._write({"kind": "search", "version": FORMAT_VERSION, "spec": self.spec})
                self.stored_spec = self.spec
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.stored_spec = self.spec
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
            self._write({"kind": "search", "version": FORMAT_VERSION, "spec": self.spec})

    def _write(self, item: dict) -> None:
        line = json.dumps(_clean(item), allow_nan=False, separators=(",", ":")) + "\n"
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append(self, record: dict) -> None:
        """Write one finished job (``kind`` is set to ``'trial'``), flushed and fsynced."""
        self._write({"kind": "trial", **record})

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

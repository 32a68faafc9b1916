"""Pickle-free ``.npz`` archives: atomic writes, verified reads, JSON trees with arrays.

The files that :meth:`fastdl.nets.MultiLayerNetExtend.save` and the :class:`~fastdl.Trainer`'s
checkpoints write are ordinary NumPy ``.npz`` files (``np.load(path, allow_pickle=False)`` reads
them): JSON text in 0-d unicode arrays (the descriptions) beside plain numeric arrays. Nothing in
them is executed when they are read.

Writing (:func:`write`) goes through :func:`fastdl._io.atomic_write` (a temporary file in the
target's directory, flushed and fsynced, then ``os.replace``; then the directory is fsynced where
the OS allows): a reader sees the old file or the complete new one, never a part.

Reading (:func:`read`) loads everything into memory before anyone uses it: the zip structure and
every member's CRC-32 are verified, the JSON descriptions parsed, and every array listed in the
``"arrays"`` manifest of the description checked for presence, shape and dtype. Any defect raises
:class:`CheckpointError` naming the file and the first problem.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from ._io import atomic_write

__all__ = ["CheckpointError", "pack_tree", "read", "unpack_tree", "write", "write_atomic"]

#: Array dtypes an archive may hold (no object arrays: loading them would need pickle).
_DTYPES = frozenset(np.dtype(t).str for t in (np.float32, np.float64, np.int64, np.uint32, np.bool_))
_ARRAY_TAG = "__array__"


class CheckpointError(ValueError):
    """A file that is not a complete, consistent fastdl archive (truncated, corrupted, other shapes)."""


def write_atomic(path: str | os.PathLike, write_to: Callable) -> Path:
    """:func:`fastdl._io.atomic_write` into ``path``'s directory (created if missing), then fsync the directory.

    On any error (KeyboardInterrupt included) ``path`` is untouched and no temporary file is left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, write_to)
    _fsync_dir(path.parent)  # the rename itself survives a power cut
    return path


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write(path: str | os.PathLike, docs: Mapping[str, dict], arrays: Mapping[str, np.ndarray]) -> Path:
    """Write JSON descriptions ``docs`` and ``arrays`` as one ``.npz``, atomically.

    Each description gets an ``"arrays"`` manifest (name -> ``[shape, dtype]``) of the arrays whose
    names start with its key followed by ``"."``; :func:`read` checks it.
    """
    members = {}
    for key, doc in docs.items():
        prefix = key.strip("_") + "."
        manifest = {name: [list(a.shape), a.dtype.str] for name, a in arrays.items() if name.startswith(prefix)}
        members[key] = np.array(json.dumps({**doc, "arrays": manifest}, allow_nan=True))
    for name, a in arrays.items():
        if a.dtype.str not in _DTYPES:
            raise TypeError(f"archive: {name} must be a float32/float64/int64/uint32/bool array; got dtype {a.dtype}")
        members[name] = a

    def savez(fh) -> None:
        np.savez(fh, **members)

    return write_atomic(path, savez)


def read(path: str | os.PathLike, doc_keys: tuple[str, ...]) -> tuple[dict, dict]:
    """Load a whole archive: ``({key: description}, {name: array})``, verified.

    Every ``__name__`` member is a description; those in ``doc_keys`` must be present.

    Raises
    ------
    CheckpointError
        Missing or unreadable file, damaged zip data or CRC, a missing description, bad JSON, or an
        array missing, unlisted, or of another shape or dtype than its manifest says. The message
        names the file and the first problem.
    """
    path = Path(path)

    def bad(reason: str):
        raise CheckpointError(f"{path}: {reason}")

    try:
        data = path.read_bytes()
    except OSError as exc:
        bad(f"cannot be read ({exc.strerror or exc})")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            broken = zf.testzip()  # reads every member and checks its CRC-32
        if broken is not None:
            bad(f"member {broken!r} is damaged (its CRC-32 or zip header does not match)")
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            members = {name: z[name] for name in z.files}
    except CheckpointError:
        raise
    except Exception as exc:  # truncated (BadZipFile, EOFError), a damaged header (ValueError), ...
        bad(f"is not a complete .npz archive ({type(exc).__name__}: {exc})")
    docs = {}
    for key in doc_keys:
        if key not in members:
            bad(f"has no {key!r} entry (not a file of this kind)")
    for key in [k for k in members if k.startswith("__") and k.endswith("__")]:
        text = members.pop(key)
        if text.shape != () or text.dtype.kind != "U":
            bad(f"{key} must be JSON text; got shape {text.shape} and dtype {text.dtype}")
        try:
            doc = json.loads(str(text[()]))
        except ValueError as exc:
            bad(f"{key} is not valid JSON ({exc})")
        if not isinstance(doc, dict) or not isinstance(doc.get("arrays"), dict):
            bad(f"{key} must describe its arrays")
        docs[key] = doc
    listed = {}
    for doc in docs.values():
        listed.update(doc["arrays"])
    for name, (shape, dtype) in listed.items():
        a = members.get(name)
        if a is None:
            bad(f"array {name!r} is missing")
        if list(a.shape) != list(shape) or a.dtype.str != dtype:
            bad(f"array {name!r} must have shape {tuple(shape)} and dtype {np.dtype(dtype)}; "
                f"got shape {a.shape} and dtype {a.dtype}")
    extra = sorted(set(members) - set(listed))
    if extra:
        bad(f"holds arrays no description lists: {', '.join(extra[:5])}")
    return docs, members


def pack_tree(tree, prefix: str, arrays: dict):
    """A JSON-ready copy of ``tree`` in which every ndarray is moved into ``arrays`` under a new name.

    Dicts need string keys; lists and tuples become lists; NumPy scalars become Python numbers.
    """
    if isinstance(tree, np.ndarray):
        name = f"{prefix}.{len(arrays)}"
        arrays[name] = np.array(tree, copy=True)
        return {_ARRAY_TAG: name}
    if isinstance(tree, Mapping):
        out = {}
        for k, v in tree.items():
            if not isinstance(k, str):
                raise TypeError(f"archive: dict keys must be strings; got {type(k).__name__} {k!r}")
            out[k] = pack_tree(v, prefix, arrays)
        return out
    if isinstance(tree, list | tuple):
        return [pack_tree(v, prefix, arrays) for v in tree]
    if isinstance(tree, np.generic):
        return tree.item()
    if tree is None or isinstance(tree, bool | int | float | str):
        return tree
    raise TypeError(f"archive: cannot store {type(tree).__name__} {tree!r} (numbers, strings, lists, dicts, arrays)")


def unpack_tree(obj, arrays: Mapping[str, np.ndarray]):
    """Invert :func:`pack_tree` (lists stay lists)."""
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY_TAG}:
            return arrays[obj[_ARRAY_TAG]]
        return {k: unpack_tree(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unpack_tree(v, arrays) for v in obj]
    return obj

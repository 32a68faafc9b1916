"""Files written atomically: a temporary file beside the target, flushed and fsynced, then renamed over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def _file_mode() -> int:
    """The mode ``open()`` would give a new file (0o666 less the umask); ``mkstemp`` alone gives 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[object], None]) -> Path:
    """Call ``write(fileobj)`` on a temporary binary file beside ``path``, flush and fsync it, rename it to ``path``.

    A failure at any point leaves ``path`` as it was (and no temporary file). The new file gets the
    permissions a plain ``open(path, 'wb')`` would give it. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

"""Command-line argument checks shared by the ``fastdl`` subcommands, and the user-error channel.

Argument types (``type=`` of ``argparse``) reject bad values while parsing, so the user sees one line
``fastdl <command>: error: ...`` and exit status 2, as for any argparse error. Checks that can only run
once the command starts (a network's constructor, a data set that is not there) raise
:class:`UsageError`, or run inside :func:`user_input`, which turns the house ``ValueError``/``TypeError``
of fastdl's own validation into a :class:`UsageError`; :func:`fastdl.cli.main` prints it the argparse
way. Anything raised outside :func:`user_input` is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterator

__all__ = ["UsageError", "fraction", "int_list", "nonnegative_float", "nonnegative_int", "positive_float",
           "positive_int", "user_input"]


class UsageError(ValueError):
    """A command-line argument the command cannot use: printed as one line, exit status 2."""


@contextlib.contextmanager
def user_input() -> Iterator[None]:
    """Treat ``ValueError``/``TypeError`` raised inside as the user's argument error (:class:`UsageError`).

    Wrap only the set-up that validates arguments before any work starts (building the network, the
    optimizer, the trainer); the work itself stays outside, so a real bug keeps its traceback.
    """
    try:
        yield
    except UsageError:
        raise
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from exc


def _checked(kind, expected: str, ok, doc: str):
    """An argparse type: ``kind(text)``, finite, with ``ok(value)``; else "must be <expected>; got <text>"."""
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {expected}; got {text!r}")
        return value

    convert.__doc__ = doc
    convert.__name__ = expected.replace(" ", "_")  # argparse names the type in some messages
    return convert


positive_int = _checked(int, "an integer >= 1", lambda v: v >= 1, "An integer >= 1 (``--epochs``, ...).")
nonnegative_int = _checked(int, "an integer >= 0", lambda v: v >= 0, "An integer >= 0 (``--seed``).")
positive_float = _checked(float, "a number > 0", lambda v: v > 0, "A finite number > 0 (``--lr``).")
nonnegative_float = _checked(float, "a number >= 0", lambda v: v >= 0, "A finite number >= 0 (``--weight-decay``).")
fraction = _checked(float, "a ratio >= 0 and < 1", lambda v: 0 <= v < 1, "A ratio ``0 <= r < 1`` (``--dropout``).")


def int_list(text: str) -> list[int]:
    """Comma-separated positive integers such as ``100,100`` (no empty entries)."""
    parts = [s.strip() for s in text.split(",")]
    try:
        values = [int(s) for s in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers such as 100,100; "
                                         f"got {text!r}") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers such as 100,100; got {text!r}")
    return values

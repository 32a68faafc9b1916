"""The ``fastdl`` command: ``train``, ``experiment``, ``search``, ``bench``, ``warmup``, ``profile``, ``info``.

Each subcommand lives beside the code it drives; the module named below provides
``register_cli(subparsers)``, which adds its parser(s) and sets ``func(args) -> int``.

User errors print one line ``fastdl <command>: error: ...`` and exit with status 2, as argparse does:
argparse's own, and ``fastdl._cliargs.UsageError`` raised by a command (its argument checks, or the
house ``ValueError``/``TypeError`` of the set-up it runs inside ``fastdl._cliargs.user_input``).
Other exceptions are bugs and keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from ._cliargs import UsageError

#: subcommand -> the module that registers it (``main`` imports only the module of the command it runs:
#: the others' imports would add to every command's start-up)
_COMMANDS = {
    "train": "fastdl.train_cli",
    "experiment": "fastdl.experiments",
    "search": "fastdl.search.cli",
    "bench": "fastdl.benchmark",  # bench, bench report
    "warmup": "fastdl.benchmark",
    "profile": "fastdl.profiler",
}


def _info(args: argparse.Namespace) -> int:
    from . import __version__, runtime

    print(json.dumps({"fastdl": __version__, **runtime.info()}, indent=2))
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``fastdl`` parser with every subcommand, or with only ``command``'s module registered (and ``info``)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="fastdl",
        description="Fast CPU training for 'Deep Learning from Scratch'-style networks.",
    )
    parser.add_argument("--version", action="version", version=f"fastdl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [_COMMANDS[command]] if command in _COMMANDS else dict.fromkeys(_COMMANDS.values())
    for name in modules:
        importlib.import_module(name).register_cli(sub)
    info = sub.add_parser("info", help="print versions, threads, cache directory",
                          description="Print fastdl's version, the versions it runs with, threads and the kernel "
                                      "cache directory (JSON).")
    info.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(words[0] if words else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        message = " ".join(str(exc).split())  # one line, as argparse prints
        print(f"fastdl {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

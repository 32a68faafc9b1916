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
import json
import sys

from . import benchmark, experiments, profiler, train_cli
from ._cliargs import UsageError
from .search import cli as search_cli

# module -> the subcommands it registers
_COMMAND_MODULES = (
    train_cli,    # train
    experiments,  # experiment
    search_cli,   # search
    benchmark,    # bench, bench report, warmup
    profiler,     # profile
)


def _info(args: argparse.Namespace) -> int:
    from . import __version__, runtime

    print(json.dumps({"fastdl": __version__, **runtime.info()}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="fastdl",
        description="Fast CPU training for 'Deep Learning from Scratch'-style networks.",
    )
    parser.add_argument("--version", action="version", version=f"fastdl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.register_cli(sub)
    info = sub.add_parser("info", help="print versions, threads, cache directory",
                          description="Print fastdl's version, the versions it runs with, threads and the kernel "
                                      "cache directory (JSON).")
    info.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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

"""The ``fastdl`` command: ``train``, ``experiment``, ``search``, ``bench``, ``warmup``, ``profile``, ``info``.

Each subcommand lives beside the code it drives; the module named below provides
``register_cli(subparsers)``, which adds its parser(s) and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import benchmark, experiments, profiler, train_cli
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
    from . import runtime

    print(json.dumps(runtime.info(), indent=2))
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
    info = sub.add_parser("info", help="print versions, threads, cache directory")
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
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

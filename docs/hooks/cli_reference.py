"""MkDocs hook: pages rendered from the code at build time.

``<!-- fastdl-cli-reference -->`` (``docs/cli.md``) becomes the ``--help`` text of ``fastdl`` and of
every subcommand, found by walking the parsers of ``fastdl.cli.build_parser()``: a new subcommand or
option appears on the next build without editing the docs.

``<!-- fastdl-lazy-names -->`` (``docs/api/fastdl.md``) becomes the table of the names ``fastdl``
loads on first use (``fastdl._LAZY_ATTRS``), each linked to its API page; a name whose target is not
documented breaks ``mkdocs build --strict``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

MARKER = "<!-- fastdl-cli-reference -->"
LAZY_MARKER = "<!-- fastdl-lazy-names -->"
WIDTH = "88"  # argparse wraps help at $COLUMNS; 88 fits the page at 1280 px


def on_config(config, **kwargs):
    # document the code of this checkout, also when another fastdl is installed
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def _subcommands(parser: argparse.ArgumentParser):
    """(name, one-line help, parser) of each subcommand of ``parser``, in registration order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) in seen:  # an alias of a parser already listed
                    continue
                seen.add(id(sub))
                yield name, helps.get(name) or "", sub


def _render(parser: argparse.ArgumentParser, level: int) -> list[str]:
    lines = [f"{'#' * level} `{parser.prog}`", ""]
    children = list(_subcommands(parser))
    if children:
        lines += ["| command | what it does |", "|---|---|"]
        lines += [f"| [`{sub.prog}`](#{sub.prog.replace(' ', '-')}) | {text} |" for _, text, sub in children]
        lines.append("")
    lines += ["```text", parser.format_help().rstrip(), "```", ""]
    for _, _, sub in children:
        lines += _render(sub, min(level + 1, 4))
    return lines


def render_cli_reference() -> str:
    """Markdown of ``fastdl --help`` and every subcommand's ``--help``."""
    from fastdl.cli import build_parser

    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return "\n".join(_render(build_parser(), 2))
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before


def render_lazy_names() -> str:
    """Markdown table of ``fastdl.NAME`` -> where it is defined, for the names loaded on first use."""
    import fastdl

    lines = ["| name | is | defined in |", "|---|---|---|"]
    for name, (module, attr) in sorted(fastdl._LAZY_ATTRS.items()):
        lines.append(f"| `fastdl.{name}` | [`{module}.{attr}`][{module}.{attr}] | [`{module}`][{module}] |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files, **kwargs):
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, render_cli_reference())
    if LAZY_MARKER in markdown:
        markdown = markdown.replace(LAZY_MARKER, render_lazy_names())
    return markdown

"""MkDocs hook: pages rendered from the code at build time.

``<!-- fastdl-cli-reference -->`` (``docs/cli.md``) becomes the ``--help`` text of ``fastdl`` and of
every subcommand, found by walking the parsers of ``fastdl.cli.build_parser()``: a new subcommand or
option appears on the next build without editing the docs.

``<!-- fastdl-lazy-names -->`` (``docs/api/fastdl.md``) becomes the table of the names ``fastdl``
loads on first use (``fastdl._LAZY_ATTRS``), each linked to its API page; a name whose target is not
documented breaks ``mkdocs build --strict``.

Every public submodule (``fastdl._SUBMODULES``) must have its page ``docs/api/<name>.md``: a missing
one is a warning, so ``mkdocs build --strict`` (CI) names the page to add.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

MARKER = "<!-- fastdl-cli-reference -->"
LAZY_MARKER = "<!-- fastdl-lazy-names -->"
log = logging.getLogger("mkdocs.hooks.fastdl")
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


def _public_home(name: str, module: str, attr: str) -> str | None:
    """Documented path of ``fastdl.<name>``: its module if public, else a public submodule re-exporting it."""
    import importlib

    import fastdl

    if not any(part.startswith("_") for part in module.split(".")):
        return f"{module}.{attr}"
    obj = getattr(fastdl, name)
    for sub in fastdl._SUBMODULES:
        mod = importlib.import_module(f"fastdl.{sub}")
        if attr in getattr(mod, "__all__", ()) and getattr(mod, attr, None) is obj:
            return f"fastdl.{sub}.{attr}"
    return None


def render_lazy_names() -> str:
    """Markdown table of ``fastdl.NAME`` -> where it is documented, for the names loaded on first use."""
    import fastdl

    lines = ["| name | is |", "|---|---|"]
    for name, (module, attr) in sorted(fastdl._LAZY_ATTRS.items()):
        home = _public_home(name, module, attr)
        if home is None:
            log.warning(f"docs: fastdl.{name} comes from the private module {module} and no public submodule "
                        f"of fastdl._SUBMODULES exports it: nothing documents it")
            lines.append(f"| `fastdl.{name}` | `{module}.{attr}` |")
        else:
            lines.append(f"| `fastdl.{name}` | [`{home}`][{home}] |")
    return "\n".join(lines)


def on_files(files, config, **kwargs):
    """Every public submodule (``fastdl._SUBMODULES``) needs its API page ``docs/api/<name>.md``."""
    import fastdl

    for sub in fastdl._SUBMODULES:
        if files.get_file_from_path(f"api/{sub}.md") is None:
            log.warning(f"docs: fastdl.{sub} is a public submodule (fastdl._SUBMODULES) without an API page: add "
                        f"docs/api/{sub}.md ('# fastdl.{sub}' and '::: fastdl.{sub}') and its line in mkdocs.yml's nav")
    return files


def on_page_markdown(markdown: str, page, config, files, **kwargs):
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, render_cli_reference())
    if LAZY_MARKER in markdown:
        markdown = markdown.replace(LAZY_MARKER, render_lazy_names())
    return markdown

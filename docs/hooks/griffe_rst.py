"""Griffe extension for the API pages: the reStructuredText habits of fastdl's docstrings, in Markdown.

fastdl's docstrings are numpydoc, written with Sphinx in mind; mkdocstrings renders their prose as
Markdown. Three constructs would read badly, so each docstring is rewritten once after loading:

* Sphinx roles (``:func:`errstate```, ``:class:`~fastdl.runtime.CacheWarning```) become *optional*
  mkdocs-autorefs references: a link where the target is documented on some page, plain code
  otherwise (optional references never warn, so they cannot break ``mkdocs build --strict``). A short
  name is looked up from the object that mentions it outwards (class, module, ``fastdl``).
* Definition lists in the description (a term line, its definition indented below it) become a bold
  term and its paragraph; Markdown would run them together into one paragraph.
* ``text::`` before a literal block becomes ``text:`` (the indented block stays a code block).
* Simple tables (``====  ====`` borders, one header row) become Markdown tables.

The pages show every public name, also without a docstring (the book-style classes of
:mod:`fastdl.reference` have none), except a class's undocumented attributes (``x = None`` of every
layer): the numpydoc ``Attributes`` section of the class describes those worth knowing.

The numpydoc sections (``Parameters``, ``Returns``, ...) are left to mkdocstrings' numpy parser.
"""

from __future__ import annotations

import html
import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|data|meth|attr|exc|obj|const):`(~?)([\w.]+)(?:\(\))?`")
_SECTION = re.compile(r"^[ \t]*\S[^\n]*\n[ \t]*-{3,}[ \t]*$", re.M)
_INDENT = "    "
_BORDER = re.compile(r"^=+(?: +=+)+ *$")


def _resolve(obj, name: str) -> str:
    """Full path of ``name`` as seen from ``obj`` (the name itself when nothing matches)."""
    top = obj.package
    scope = obj
    while scope is not None:
        candidate = f"{scope.path}.{name}"
        try:
            top[candidate[len(top.path) + 1:]]
            return candidate
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            scope = scope.parent
    return name


def _roles(obj, text: str) -> str:
    def link(match: re.Match) -> str:
        tilde, name = match.groups()
        target = name if name.split(".")[0] == obj.package.name else _resolve(obj, name)
        title = name.rsplit(".", 1)[-1] if tilde else name
        return (f'<autoref identifier="{html.escape(target)}" optional>'
                f"<code>{html.escape(title)}</code></autoref>")

    return _ROLE.sub(link, text)


def _definition_lists(text: str) -> str:
    """``Term`` + indented definition -> ``**Term**`` + the definition dedented (description only)."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        is_term = (i > 0 and not lines[i - 1].strip() and line.strip() and not line[0].isspace()
                   and len(line) <= 80 and i + 1 < len(lines) and lines[i + 1].startswith(_INDENT)
                   and lines[i + 1].strip())
        if not is_term:
            out.append(line)
            i += 1
            continue
        out += [f"**{line.strip()}**", ""]
        i += 1
        while i < len(lines):
            if lines[i].startswith(_INDENT):
                out.append(lines[i][len(_INDENT):])
            elif not lines[i].strip() and i + 1 < len(lines) and lines[i + 1].startswith(_INDENT):
                out.append("")
            else:
                break
            i += 1
    return "\n".join(out)


def _cells(line: str, starts: list[int]) -> list[str]:
    """The cells of a simple-table row whose columns start at ``starts`` (the last one runs to the end)."""
    ends = [*starts[1:], len(line)]
    return [line[a:b].strip().replace("|", "\\|") for a, b in zip(starts, ends)]


def _simple_tables(text: str) -> str:
    """reStructuredText simple tables (``===`` borders; with or without a header row) -> Markdown."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not _BORDER.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        starts = [m.start() for m in re.finditer(r"=+", lines[i])]
        blocks: list[list[str]] = [[]]  # the rows between one border and the next
        j = i + 1
        while j < len(lines):
            if _BORDER.match(lines[j]):
                j += 1
                if len(blocks) == 2 or j >= len(lines) or not lines[j].strip():
                    break  # bottom border: the table ends
                blocks.append([])
                continue  # lines[j] is the first row of the body
            elif lines[j].strip():
                blocks[-1].append(lines[j])
            j += 1
        else:
            out.append(lines[i])  # no closing border: not a table
            i += 1
            continue
        header, body = (blocks[0], blocks[1]) if len(blocks) == 2 else ([" "], blocks[0])
        out += ["| " + " | ".join(_cells(header[0], starts)) + " |", "|" + "---|" * len(starts)]
        out += ["| " + " | ".join(_cells(row, starts)) + " |" for row in body]
        i = j
    return "\n".join(out)


def _literal_markers(text: str) -> str:
    text = re.sub(r"^[ \t]*::[ \t]*$", "", text, flags=re.M)
    return re.sub(r"(?<=\S)::[ \t]*$", ":", text, flags=re.M)


def rewrite(obj, text: str) -> str:
    """The docstring ``text`` of ``obj`` with roles, definition lists and ``::`` in Markdown."""
    match = _SECTION.search(text)
    head, tail = (text[:match.start()], text[match.start():]) if match else (text, "")
    head = _literal_markers(_definition_lists(_simple_tables(head)))
    return _roles(obj, head + tail)


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring of the loaded package (see the module docstring)."""

    def on_package(self, *, pkg, loader, **kwargs) -> None:
        stack = [pkg]
        seen = set()
        while stack:
            obj = stack.pop()
            if id(obj) in seen or obj.is_alias:
                continue
            seen.add(id(obj))
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj, obj.docstring.value)
            if obj.is_class:  # attributes without a docstring: the class's "Attributes" section covers them
                for name, member in list(obj.members.items()):
                    if not member.is_alias and member.is_attribute and member.docstring is None:
                        obj.del_member(name)
            stack.extend(obj.members.values())

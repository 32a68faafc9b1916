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

Names made at import time (the optimizer classes and ``*_step`` functions that ``fastdl.optim``
builds from its rule table with ``globals()[...] = ...``) are invisible to static analysis: for every
module, the names of its runtime ``__all__`` that static analysis did not find are added from the
imported objects (signature and docstring), so a registry-made class gets its page like a written one.
"""

from __future__ import annotations

import html
import importlib
import inspect
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


_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: griffe.ParameterKind.positional_only,
    inspect.Parameter.POSITIONAL_OR_KEYWORD: griffe.ParameterKind.positional_or_keyword,
    inspect.Parameter.VAR_POSITIONAL: griffe.ParameterKind.var_positional,
    inspect.Parameter.KEYWORD_ONLY: griffe.ParameterKind.keyword_only,
    inspect.Parameter.VAR_KEYWORD: griffe.ParameterKind.var_keyword,
}


def _docstring(value, like) -> griffe.Docstring | None:
    if not value:
        return None
    return griffe.Docstring(inspect.cleandoc(value), parser=like.parser, parser_options=like.parser_options)


def _function(name: str, func, like, method: bool = False) -> griffe.Function | None:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    params = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)] if method else []
    params += [griffe.Parameter(p.name, kind=_KINDS[p.kind],
                                default=None if p.default is inspect.Parameter.empty else repr(p.default))
               for p in sig.parameters.values()]
    return griffe.Function(name, parameters=griffe.Parameters(*params), docstring=_docstring(func.__doc__, like))


def _class(name: str, cls: type, like) -> griffe.Class:
    out = griffe.Class(name, docstring=_docstring(cls.__doc__, like))
    init = _function("__init__", cls, like, method=True)  # the signature of calling the class
    if init is not None:
        init.docstring = None
        out.set_member("__init__", init)
    for attr in dir(cls):
        value = getattr(cls, attr, None)
        if attr.startswith("_") or not inspect.isfunction(value):
            continue
        method = _function(attr, value, like)
        if method is not None:
            out.set_member(attr, method)
    return out


def _add_runtime_names(module, like) -> None:
    """Add the names of ``module``'s runtime ``__all__`` that static analysis did not see."""
    if module.name == "__main__":  # importing it would run the command line
        return
    try:
        live = importlib.import_module(module.path)
    except (Exception, SystemExit):  # a module that cannot be imported here keeps its static view
        return
    for name in getattr(live, "__all__", ()):
        if name in module.members:
            continue
        value = getattr(live, name, None)
        home = getattr(value, "__module__", None)
        if (inspect.isclass(value) or inspect.isfunction(value)) and home and home != module.path:
            # made elsewhere (fastdl.functional re-exports fastdl.optim's step functions): point there
            module.set_member(name, griffe.Alias(name, f"{home}.{value.__qualname__}", parent=module))
        elif inspect.isclass(value):
            module.set_member(name, _class(name, value, like))
        elif inspect.isfunction(value):
            func = _function(name, value, like)
            if func is not None:
                module.set_member(name, func)
    if "__all__" in module.members:  # the list itself is no API
        module.del_member("__all__")
    if hasattr(live, "__all__"):  # a computed __all__ (``*(r.class_name for r in ...)``) is read here
        module.exports = [str(name) for name in live.__all__]


class RstToMarkdown(griffe.Extension):
    """Rewrite every docstring of the loaded package (see the module docstring)."""

    def on_package(self, *, pkg, loader, **kwargs) -> None:
        like = pkg.docstring
        # the top-level package's lazy names are listed by the docs hook (docs/api/fastdl.md), not copied
        modules = [m for m in pkg.modules.values() if not m.is_alias]
        while modules:
            module = modules.pop()
            _add_runtime_names(module, like)
            modules.extend(m for m in module.modules.values() if not m.is_alias)
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

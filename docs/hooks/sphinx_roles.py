"""Griffe extension for the API pages: Sphinx roles in docstrings become links.

fastdl's numpydoc docstrings cross-reference with Sphinx roles (``:func:`errstate```,
``:class:`~fastdl.runtime.CacheWarning```). Markdown does not know them, so each becomes an
*optional* mkdocs-autorefs reference: a link where the target is documented on some page, plain
code otherwise (optional references never warn, so they cannot break ``mkdocs build --strict``).
A short name is looked up from the object that mentions it outwards (class, module, ``fastdl``).
"""

from __future__ import annotations

import html
import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|data|meth|attr|exc|obj|const):`(~?)([\w.]+)(?:\(\))?`")


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


def _rewrite(obj, text: str) -> str:
    def link(match: re.Match) -> str:
        tilde, name = match.groups()
        target = name if name.split(".")[0] == obj.package.name else _resolve(obj, name)
        title = name.rsplit(".", 1)[-1] if tilde else name
        return (f'<autoref identifier="{html.escape(target)}" optional>'
                f"<code>{html.escape(title)}</code></autoref>")

    return _ROLE.sub(link, text)


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the loaded package."""

    def on_package(self, *, pkg, loader, **kwargs) -> None:
        stack = [pkg]
        seen = set()
        while stack:
            obj = stack.pop()
            if id(obj) in seen or obj.is_alias:
                continue
            seen.add(id(obj))
            if obj.docstring is not None and ":" in obj.docstring.value:
                obj.docstring.value = _rewrite(obj, obj.docstring.value)
            stack.extend(obj.members.values())

"""Griffe extension for the API reference: Sphinx roles in docstrings read as code.

hgbench's docstrings name other objects with Sphinx roles (``:func:`make_dataset```,
``:mod:`~hgbench.records.store```), which Markdown would show verbatim. This extension
rewrites each role to a code span of its target (``~`` dropped, as Sphinx shows the last
component then) before mkdocstrings renders the docstring.
"""

from __future__ import annotations

import re

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|data|exc|obj|const):`~?([^`]+)`")


def plain(text: str) -> str:
    """``text`` with every Sphinx role replaced by a code span of its target."""
    return ROLE.sub(lambda m: f"`{m.group(1)}`", text)


class SphinxRolesAsCode(Extension):
    """Rewrites the roles of every docstring griffe loads."""

    def on_instance(self, *, obj: Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)

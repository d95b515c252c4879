"""Text inside XStream's XML: escaped and indented the way Jenkins prints it.

The build records and configs are assembled from strings, not built with an XML library, so that
the bytes match Jenkins' (quote style, indentation, element order); these two helpers keep that
text right wherever a fragment is made.
"""

from __future__ import annotations

from xml.sax.saxutils import escape


def _x(value: object) -> str:
    return escape(str(value), {'"': "&quot;", "'": "&apos;"})


def _indent(text: str, n: int) -> str:
    pad = " " * n
    return "\n".join(pad + line if line else line for line in text.splitlines())

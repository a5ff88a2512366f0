"""Text from outside (file names, class names, annotator names, reasons quoting them) put into
the pages' Markdown as itself: `<img src=x onerror=...>.jpg` must show as those characters,
never as HTML, and `a_b_c.jpg` without italics."""

from __future__ import annotations

import html
import re

# what makes Markdown out of plain text anywhere in a line (emphasis, code, links, tables,
# strike-through; "<" and ">" are HTML-escaped); "." or "-" only matter at a line's start,
# where these texts never stand
_MARKDOWN = re.compile(r"([\\`*_\[\]|~])")


def literal(text: object) -> str:
    """`text` escaped for Markdown and HTML, so the page shows exactly its characters."""
    escaped = html.escape(str(text), quote=False)
    return _MARKDOWN.sub(r"\\\1", escaped)

"""Text from outside (file names, class names, annotator names, reasons quoting them) put into
the pages' Markdown as itself: `<img src=x onerror=...>.jpg` must show as those characters,
never as HTML, and `a_b_c.jpg` without italics."""

from __future__ import annotations

import html
import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def literal(text: object) -> str:
    """`text` escaped for Markdown and HTML, so the page shows exactly its characters."""
    escaped = html.escape(str(text), quote=False)
    return _MARKDOWN.sub(r"\\\1", escaped)

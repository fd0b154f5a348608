"""A report drawn for a terminal (tables, headings, colour, the terminal's width) with rich, when standard
output is one; markdown everywhere else (a pipe, a file, `-o`). Colour only where NO_COLOR is unset."""

from __future__ import annotations

import io
import os
import re

from rich.console import Console
from rich.markdown import Markdown

# A Mermaid diagram is drawn by a markdown viewer, not a terminal: said in one line instead.
_MERMAID = re.compile(r"```mermaid\n.*?```", re.S)


def render(markdown: str, width: int | None = None, color: bool | None = None, note: str = "") -> str:
    """The markdown as a terminal shows it (ANSI styles unless `color` is False or NO_COLOR is set)."""
    shown = _MERMAID.sub(f"*{note}*" if note else "", markdown)
    color = not os.environ.get("NO_COLOR") if color is None else color
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=color, no_color=not color, color_system="standard"
                      if color else None, highlight=False, emoji=False)
    console.print(Markdown(shown, hyperlinks=False))
    return out.getvalue()


def show(markdown: str, note: str = "") -> None:
    """Print the markdown drawn for the terminal standard output is."""
    console = Console(highlight=False, emoji=False)
    console.print(Markdown(_MERMAID.sub(f"*{note}*" if note else "", markdown), hyperlinks=False))

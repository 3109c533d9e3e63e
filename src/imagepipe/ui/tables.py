"""The one table renderer (rich): verify's report, the benchmark and parity all print through it."""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text


def render(header: Sequence[str], rows: Sequence[Sequence[object]], *, max_width: int | None = None) -> str:
    """Plain text, columns two spaces apart, a rule under the header; cells are text, never markup. A cell
    longer than max_width is cut there."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
                  header_style="", show_header=True)
    for name in header:
        table.add_column(Text(name), no_wrap=True, overflow="crop", max_width=max_width)
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    out = io.StringIO()
    Console(file=out, width=1000, color_system=None, force_terminal=False, highlight=False).print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines() if line.strip())

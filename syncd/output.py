"""What the commands print: tables fit for terminals and for pipes, local dates.

On a terminal a table is drawn by rich, as wide as the terminal, wrapping long cells
rather than cutting them. Anywhere else (a pipe, a file, cron's mail) it is
tab-separated text: one header line, then one line per row, nothing cut, nothing
padded, so ``cut -f`` and ``sort -t$'\\t'`` work. ``NO_COLOR`` (https://no-color.org/
convention, honoured by rich) turns colour off; tables never rely on colour.

Public API: ``is_terminal``, ``table``, ``local_day``. Plain lines (a pass's report,
``check``) are printed as they are: no markup, no emoji codes, and no rich to import.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from typing import TextIO


def is_terminal(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (default stdout) is a terminal."""
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


#: a column keeps at most this width unwrapped when the terminal is too narrow
_WIDEST_WORD = 32


def _tsv_cell(value: str) -> str:
    # a tab or newline inside a cell would shift every column after it
    return value.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def table(columns: Sequence[str], rows: Sequence[Sequence[str]], stream: TextIO | None = None) -> None:
    """Print ``rows`` under ``columns``: a rich table on a terminal, else tab-separated."""
    stream = stream or sys.stdout
    if not is_terminal(stream):
        for row in [columns, *rows]:
            stream.write("\t".join(_tsv_cell(str(c)) for c in row) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(*columns, box=None, header_style="bold")
    cells = [[str(c) for c in row] for row in rows]
    for i, col in enumerate(t.columns):
        col.overflow = "fold"  # wrap a long email inside its cell rather than end it with "…"
        # Columns of single words (emails, dates) keep their width while they can, so the
        # squeeze falls on columns that wrap between words (reasons, names).
        words = [len(w) for row in cells for w in row[i].split()] + [len(columns[i])]
        col.min_width = min(max(words), _WIDEST_WORD)
    for row in cells:
        t.add_row(*row)
    Console(file=stream, highlight=False).print(t)


def local_day(value: str | None, zone: dt.tzinfo) -> str:
    """The local date (``YYYY-MM-DD`` in ``zone``) of a UTC ISO time, or ``""``.

    A meeting at 21:00 in New York is on that day, not on the next one (as in UTC).
    """
    if not value:
        return ""
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        return when.date().isoformat()
    return when.astimezone(zone).date().isoformat()

"""What the command line shows on the terminal: tables on stdout, progress bars on stderr."""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["print_table", "progress_bar"]


def print_table(rows: list[dict[str, str]], file: TextIO) -> None:
    """Rows of cells in left-aligned columns under a header of the first row's keys."""
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip(), file=file)
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip(), file=file)


def progress_bar(name: str, total: int):
    """A frame counter on stderr, so that stdout holds only the tables."""
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=True)

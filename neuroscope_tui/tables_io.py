"""Tables as text and files: the CSV and JSON forms of an export table, written atomically.

Used by `neuroscope-tui export` (cli/export.py) and by the app's `x` key (the projection and
attribution views), so both write the same bytes the same way: through
`atomic_file.write_atomically`, with the mode of a normal document (0666 less the umask).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from neuroscope_tui.analysis.exports import Table
from neuroscope_tui.atomic_file import write_atomically
from neuroscope_tui.errors import OutputPathError
from neuroscope_tui.text_safety import printable_json, visible


def _plain(value: Any) -> Any:
    """A table cell as a plain Python value (numpy scalars unwrapped)."""
    return value.item() if hasattr(value, "item") else value


def table_csv(table: Table) -> str:
    """The table as CSV: a header row, floats with 9 significant digits (exact for float32),
    NaN as an empty field, booleans as true/false, texts with their control characters
    other than newline (which CSV quotes) written as escapes (`text_safety.visible`: a token
    ESC is the four characters \\x1b), so no terminal command reaches a terminal or a file."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        cells = []
        for value in map(_plain, row):
            if isinstance(value, bool):
                cells.append("true" if value else "false")
            elif isinstance(value, float):
                cells.append("" if math.isnan(value) else f"{value:.9g}")
            elif isinstance(value, str):
                cells.append(visible(value, newlines=True))  # CSV quotes a newline
            else:
                cells.append(value)
        writer.writerow(cells)
    return out.getvalue()


def table_json(table: Table, view: str) -> str:
    """The table as JSON: {"view", "columns", "records": [{column: value}]}, NaN as null;
    strings exact, with every control character as a \\uXXXX escape."""

    def cell(value: Any) -> Any:
        value = _plain(value)
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    records = [dict(zip(table.columns, map(cell, row), strict=True)) for row in table.rows]
    doc = {"view": view, "columns": table.columns, "records": records}
    return printable_json(json.dumps(doc, ensure_ascii=False, allow_nan=False)) + "\n"


def check_output(path: str, *, force: bool) -> Path:
    """The path a table may be written to; OutputPathError says why it cannot (checked before
    the snapshot is read, so a mistake costs no waiting)."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise OutputPathError(f"{out} is a folder; give a file name such as {out / 'table.csv'}")
    if out.exists() and not force:
        raise OutputPathError(f"{out} already exists; pass --force to overwrite it")
    if out.parent.exists() and not out.parent.is_dir():
        raise OutputPathError(f"{out.parent} is a file, not a folder; choose another path")
    if not out.parent.is_dir():
        raise OutputPathError(f"the folder {out.parent} does not exist; create it first")
    return out


def write_text(path: str, text: str, *, force: bool) -> Path:
    """Write `text` (UTF-8) to `path` atomically; OutputPathError says why it cannot."""
    out = check_output(path, force=force)
    data = text.encode("utf-8", "surrogateescape")
    return write_atomically(out, lambda f: f.write(data), overwrite=force)

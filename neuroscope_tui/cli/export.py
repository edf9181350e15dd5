"""`neuroscope-tui export FILE VIEW`: one view's numbers from a snapshot as CSV or JSON.

CSV goes to stdout unless `-o OUT.csv|OUT.json` names a file (the suffix picks the format
unless `--format` does). `neuroscope-tui export --list` names every view that can be exported.
Reads the snapshot without importing torch. Tables are long format: one row per cell, so they
load straight into pandas (`pd.read_csv`, or `pd.DataFrame(json.load(f)["records"])`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from neuroscope_tui.analysis.exports import EXPORTS, Table, table_function
from neuroscope_tui.errors import OutputPathError, SnapshotError, UsageError
from neuroscope_tui.text_safety import printable_json, visible

FORMATS = ("csv", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE, VIEW, and where and how to write."""
    parser.add_argument("file", nargs="?", metavar="FILE", help="a snapshot (.nscope)")
    parser.add_argument("view", nargs="?", metavar="VIEW", help="which view's numbers (--list)")
    parser.add_argument(
        "-o", "--output", metavar="OUT", default=None, help="write to OUT.csv or OUT.json"
    )
    parser.add_argument(
        "--format", choices=FORMATS, default=None, help="csv or json (default: from OUT, else csv)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    parser.add_argument("--list", action="store_true", help="list the views that can be exported")


def views_listing() -> str:
    """One line per exportable view: its name and what its table holds."""
    width = max(len(name) for name in EXPORTS)
    return "\n".join(f"{name:<{width}}  {desc}" for name, (_, desc) in EXPORTS.items())


def choose_format(output: str | None, requested: str | None) -> str:
    """The output format: --format if given, else OUT's suffix, else csv."""
    if requested is not None:
        return requested
    if output is None:
        return "csv"
    suffix = Path(output).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    raise UsageError(
        f"cannot tell the format of {output!r} from its suffix; name it .csv or .json "
        "or pass --format csv|json"
    )


def build_table(trace: Any, view: str) -> Table:
    """The table of `view` for `trace`; UsageError names the known views if `view` is not one."""
    if view not in EXPORTS:
        known = ", ".join(EXPORTS)
        raise UsageError(f"there is no view {view!r} to export; known views: {known}")
    try:
        return table_function(view)(trace)
    except KeyError as err:
        # A table function reached for an array the snapshot does not hold.
        raise SnapshotError(
            f"this snapshot lacks what the {view} view needs ({err.args[0]})"
        ) from None


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
    """Write `text` to `path` atomically; OutputPathError says why it cannot be written."""
    out = check_output(path, force=force)
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as err:
        raise OutputPathError(
            f"cannot write in the folder {out.parent} ({err.strerror or err}); choose another path"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, out)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OutputPathError(f"cannot write {out} ({err.strerror or err})") from None
    return out


def run(args: argparse.Namespace) -> int:
    """List the views, or write one view's table; user mistakes raise NeuroscopeError."""
    if args.list:
        print(views_listing())
        return 0
    if args.file is None or args.view is None:
        raise UsageError(
            "give a snapshot and a view, e.g. `neuroscope-tui export run.nscope heatmap`; "
            "`neuroscope-tui export --list` names the views"
        )
    fmt = choose_format(args.output, args.format)
    if args.view not in EXPORTS:
        build_table(None, args.view)  # raises the UsageError naming the known views
    if args.output is not None:
        check_output(args.output, force=args.force)
    from neuroscope_tui.snapshot import load_snapshot

    trace = load_snapshot(args.file)
    table = build_table(trace, args.view)
    text = table_csv(table) if fmt == "csv" else table_json(table, args.view)
    if args.output is None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            # `export ... | head`: the reader left; that is not an error. Silence the flush at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    out = write_text(args.output, text, force=args.force)
    print(f"wrote {len(table.rows)} rows of {args.view} to {out}", file=sys.stderr)
    return 0

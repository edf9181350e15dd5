"""`neuroscope-tui export FILE VIEW`: one view's numbers from a snapshot as CSV or JSON, or
`neuroscope-tui export FILE html -o run.html`: the run as one self-contained page to share.

CSV goes to stdout unless `-o OUT.csv|OUT.json` names a file (the suffix picks the format
unless `--format` does). `neuroscope-tui export --list` names every view that can be exported,
plugins' metrics and analyses among them.
Reads the snapshot without importing torch. Tables are long format: one row per cell, so they
load straight into pandas (`pd.read_csv`, or `pd.DataFrame(json.load(f)["records"])`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from neuroscope_tui.analysis.exports import EXPORTS, Table, table_function
from neuroscope_tui.errors import SnapshotError, UsageError
from neuroscope_tui.tables_io import check_output, table_csv, table_json, write_text
from neuroscope_tui.text_safety import visible

FORMATS = ("csv", "json")
# Not a table: the whole run as one page (report/page.py); the output must be named .html.
PAGE = "html"


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
    lines = [f"{name:<{width}}  {desc}" for name, (_, desc) in EXPORTS.items()]
    lines.append(
        f"{PAGE:<{width}}  the whole run as one self-contained HTML page (heatmap, heads, lens, "
        "tokens): -o run.html"
    )
    return "\n".join(lines)


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


def add_plugins() -> None:
    """Plugin metrics and analyses join EXPORTS (neuroscope_tui/plugins.py); a plugin left out,
    or a metric that fails while the heatmap table is built, is one line on stderr."""
    from neuroscope_tui import plugins

    def warn(problem: plugins.PluginProblem) -> None:
        print(f"neuroscope-tui: {visible(problem.sentence())}.", file=sys.stderr)

    plugins.register()
    for problem in plugins.new_problems():
        warn(problem)
    plugins.set_reporter(warn)


def run(args: argparse.Namespace) -> int:
    """List the views, or write one view's table; user mistakes raise NeuroscopeError."""
    add_plugins()
    if args.list:
        print(views_listing())
        return 0
    if args.file is None or args.view is None:
        raise UsageError(
            "give a snapshot and a view, e.g. `neuroscope-tui export run.nscope heatmap`; "
            "`neuroscope-tui export --list` names the views"
        )
    if args.view == PAGE:
        return write_page(args)
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


def write_page(args: argparse.Namespace) -> int:
    """`export FILE html -o run.html`: the run as a page; it is not a table, so --format and
    stdout do not apply (a page on a terminal helps nobody)."""
    if args.output is None or Path(args.output).suffix.lower() not in (".html", ".htm"):
        raise UsageError(
            "name the page's file with -o, ending in .html, e.g. "
            "`neuroscope-tui export run.nscope html -o run.html`"
        )
    if args.format is not None:
        raise UsageError("--format is for tables; the html page is always HTML")
    check_output(args.output, force=args.force)
    from neuroscope_tui.report.page import render_page
    from neuroscope_tui.snapshot import load_snapshot

    trace = load_snapshot(args.file)
    text = render_page(trace, source=Path(args.file).name)
    out = write_text(args.output, text, force=args.force)
    print(f"wrote the page of {trace.n_tokens} tokens to {out} ({len(text) // 1024} KiB)",
          file=sys.stderr)  # fmt: skip
    return 0

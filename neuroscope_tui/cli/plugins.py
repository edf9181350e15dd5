"""`neuroscope-tui plugins`: what plugins are installed, by kind, and whether each works.

One block per entry-point group (views, metrics, analyses); one line per plugin: its name,
its distribution and version, its target ("module:attribute") and "ok" or why it was left out.
Each plugin is imported to check it, as the app would. Broken plugins are listed, not fatal:
the exit status is 0. Nothing here imports torch (a view plugin's check imports textual).
"""

from __future__ import annotations

import argparse

from neuroscope_tui import plugins
from neuroscope_tui.text_safety import visible


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No arguments: it lists everything installed."""


def listing() -> str:
    """The installed plugins by kind, aligned columns, or a line saying there are none."""
    if plugins.disabled():
        return f"Plugins are turned off ({plugins.NO_PLUGINS_VARIABLE} is set)."
    lines: list[str] = []
    for kind, group in plugins.GROUPS.items():
        found = plugins.plugins(kind)
        lines.append(f"{kind} ({group}): {len(found) if found else 'none'}")
        rows = [(p.name, p.where, p.target, "ok" if p.ok else f"broken: {p.error}") for p in found]
        widths = [max((len(visible(r[i])) for r in rows), default=0) for i in range(3)]
        for row in rows:
            cells = [visible(c).ljust(w) for c, w in zip(row[:3], widths, strict=True)]
            lines.append("  " + "  ".join([*cells, visible(row[3])]))
    if not any(plugins.discover().values()):
        lines.append(
            "No plugins are installed; examples/neuroscope-plugin-example in the source "
            "shows how to write one."
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the listing; exit 0 even when some plugins are broken (they are listed so)."""
    print(listing())
    return 0

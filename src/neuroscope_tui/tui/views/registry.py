"""The app's views, in the order of their number keys.

Each entry names the key that shows it, its title, and where its TraceView class lives
("module:Class"), imported when first shown so a view's heavy imports cost nothing until then.
Add a view by adding one line here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ViewEntry:
    key: str
    name: str
    title: str
    target: str  # "neuroscope_tui.tui.views.module:ClassName"


VIEWS: list[ViewEntry] = [
    ViewEntry("1", "scan", "Layer x token scan", "neuroscope_tui.tui.views.scan:ScanView"),
    ViewEntry("2", "heads", "Attention heads", "neuroscope_tui.tui.views.heads:HeadsView"),
]

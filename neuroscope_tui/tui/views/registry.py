"""The app's views, in the order of their number keys (then drift, on `~`).

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
    ViewEntry(
        "3",
        "connectivity",
        "Layer connectivity",
        "neuroscope_tui.tui.views.connectivity:ConnectivityView",
    ),
    ViewEntry("4", "residual", "Residual stream", "neuroscope_tui.tui.views.residual:ResidualView"),
    ViewEntry("5", "flow", "Information flow", "neuroscope_tui.tui.views.flow:FlowView"),
    ViewEntry("6", "lens", "Logit lens", "neuroscope_tui.tui.views.lens:LensView"),
    ViewEntry(
        "7",
        "projection",
        "Projections and clusters",
        "neuroscope_tui.tui.views.projection:ProjectionView",
    ),
    ViewEntry(
        "8",
        "attribution",
        "Input attribution",
        "neuroscope_tui.tui.views.attribution:AttributionView",
    ),
    ViewEntry(
        "9",
        "interventions",
        "Interventions",
        "neuroscope_tui.tui.views.interventions:InterventionsView",
    ),
    ViewEntry("0", "concepts", "Concepts", "neuroscope_tui.tui.views.concepts:ConceptView"),
    ViewEntry("tilde", "drift", "Drift", "neuroscope_tui.tui.views.drift:DriftView"),
]

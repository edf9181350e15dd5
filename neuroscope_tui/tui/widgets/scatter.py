"""A terminal scatter plot of token coordinates: points coloured by cluster, labels, one path.

`TokenScatter` is a thin textual-plotext widget over `draw_scatter`, a pure function that
issues plotext calls for a `ScatterData` (so the drawing can be tested on a plain plotext
`Plot` without an app). `rotate` turns a 3D cloud for the "rotate" mode of the projection view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from textual_plotext import PlotextPlot

from neuroscope_tui.text_safety import visible

# Cluster colours (Tableau 10): distinct on dark and light themes; the cluster list uses the
# same tuples so a point and its list entry match.
PALETTE: list[tuple[int, int, int]] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (127, 127, 127),
]
SELECTED = (255, 255, 255)
MAX_LABELS = 80  # past this, labels cover the points; only the selected token is labelled


def cluster_colour(label: int) -> tuple[int, int, int]:
    """The colour of cluster `label` (cycling through the palette; -1 is grey)."""
    return PALETTE[label % len(PALETTE)] if label >= 0 else PALETTE[-1]


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@dataclass
class ScatterData:
    """What the scatter shows: points [T, 2], labels per point, the selection and a path.

    `clusters` [T] int (-1: none). `path` [L, 2] is the selected token's position at each
    layer (drawn as a line) with `path_labels` naming the layers.
    """

    points: np.ndarray
    texts: list[str]
    clusters: np.ndarray
    selected: int | None = None
    show_labels: bool = False
    path: np.ndarray | None = None
    path_labels: list[str] = field(default_factory=list)
    x_label: str = ""
    y_label: str = ""


def rotate(coords: np.ndarray, yaw: float, pitch: float = 0.35) -> np.ndarray:
    """3D coordinates [T, 3] turned by `yaw` about the vertical axis, tilted by `pitch`,
    then seen from the front -> [T, 2]."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    x, y, z = coords[:, 0], coords[:, 1], coords[:, 2]
    x1, z1 = cy * x + sy * z, -sy * x + cy * z
    y2 = cp * y - sp * z1
    return np.stack([x1, y2], axis=1)


def draw_scatter(plt: Any, data: ScatterData) -> None:
    """Issue the plotext calls that draw `data` on a cleared plot."""
    plt.clear_data()
    plt.clear_figure()
    pts = np.asarray(data.points, dtype=np.float64)
    if pts.size == 0:
        return
    for label in sorted({int(c) for c in data.clusters}):
        mask = data.clusters == label
        plt.scatter(
            pts[mask, 0].tolist(), pts[mask, 1].tolist(), marker="dot", color=cluster_colour(label)
        )
    if data.show_labels and len(pts) <= MAX_LABELS:
        for t, (px, py) in enumerate(pts):
            colour = cluster_colour(int(data.clusters[t]))
            plt.text(_short(data.texts[t]), float(px), float(py), color=colour)
    if data.path is not None and len(data.path) > 1:
        plt.plot(data.path[:, 0].tolist(), data.path[:, 1].tolist(), color=SELECTED, marker="dot")
        for (px, py), name in zip(data.path, data.path_labels, strict=False):
            plt.text(name, float(px), float(py), color=SELECTED)
    if data.selected is not None and 0 <= data.selected < len(pts):
        sx, sy = pts[data.selected]
        plt.scatter([float(sx)], [float(sy)], marker="●", color=SELECTED)
        plt.text(" " + _short(data.texts[data.selected]), float(sx), float(sy), color=SELECTED)
    plt.xlabel(data.x_label)
    plt.ylabel(data.y_label)


def _short(text: str, width: int = 10) -> str:
    # plotext output is read back as ANSI: a raw ESC in a label would be a command
    text = visible(text.replace("\n", "⏎").replace("\t", "⇥"))
    return text if len(text) <= width else text[: width - 1] + "…"


class TokenScatter(PlotextPlot):
    """The scatter of token coordinates (textual-plotext), redrawn from a ScatterData."""

    DEFAULT_CSS = "TokenScatter { height: 1fr; min-height: 8; }"
    can_focus = True  # so the projection view's keys reach it (they bubble up to the view)

    def show(self, data: ScatterData | None) -> None:
        """Draw `data` (None: an empty plot)."""
        if data is None:
            self.plt.clear_data()
            self.plt.clear_figure()
        else:
            draw_scatter(self.plt, data)
        self.refresh()

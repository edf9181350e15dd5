"""The projection view's work: what a computation is for, its result, its messages, the
worker function that projects and clusters, and the view's CSV table.

Kept apart from the view so the worker's contract is readable on its own: it gets copies of
the activations it needs, never touches a widget, and reports through two messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.text import Text
from textual.message import Message

from neuroscope_tui.analysis import feature_tables as F
from neuroscope_tui.analysis.clusters import Clustering, cluster, follow_clusters, match_clusters
from neuroscope_tui.analysis.exports import Table
from neuroscope_tui.analysis.projection import (
    PCATracker,
    Projection,
    ProjectionCancelled,
    project,
)
from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.text_safety import visible as escaped
from neuroscope_tui.trace import Trace
from neuroscope_tui.tui.saving import safe_name
from neuroscope_tui.tui.widgets.scatter import cluster_colour, hex_colour


@dataclass(frozen=True)
class Request:
    """What one computation is for: the trace state, layer, activations and methods."""

    trace_id: int
    n_tokens: int
    layer: int
    site: str
    method: str
    cluster_method: str
    k: int | None


@dataclass
class Result:
    """A finished computation: coordinates, clusters (followed from the layer before)."""

    request: Request
    projection: Projection
    clusters: Clustering
    carried: list[tuple[int, int, float]] = field(default_factory=list)  # (prev, cur, J)
    previous_layer: int | None = None  # the layer the clusters were followed from
    mean: np.ndarray | None = None  # PCA centre [D], for the token path
    components: np.ndarray | None = None  # PCA axes [3, D]


class ProjectionProgress(Message):
    """A worker's t-SNE/UMAP progress (fraction 0..1 and what it is doing)."""

    def __init__(self, serial: int, fraction: float, stage: str) -> None:
        super().__init__()
        self.serial, self.fraction, self.stage = serial, fraction, stage


class ProjectionDone(Message):
    """A worker finished: a Result, or an error sentence, or None when cancelled."""

    def __init__(
        self, serial: int, request: Request, result: Result | None, error: str | None
    ) -> None:
        super().__init__()
        self.serial, self.request, self.result, self.error = serial, request, result, error


def compute(
    post: Callable[[Message], None],
    serial: int,
    req: Request,
    xs: dict[int, np.ndarray],
    prev: int | None,
    tracker: PCATracker,
    cancel: threading.Event,
) -> None:
    """Worker thread: project and cluster; `post` the progress and the result.

    Never touches widgets: everything goes back as ProjectionProgress / ProjectionDone.
    """
    x = xs[req.layer]
    last = [-1.0]

    def progress(fraction: float, stage: str) -> None:
        if fraction - last[0] >= 0.01 or fraction >= 1.0:  # coalesce the flood
            last[0] = fraction
            post(ProjectionProgress(serial, fraction, stage))

    try:
        mean = components = None
        if req.method == "pca":
            proj = tracker.update(x)
            mean, components = x.mean(axis=0), tracker.components
        else:
            proj = project(x, req.method, 2, progress=progress, cancel=cancel)
        clusters = cluster(x, req.cluster_method, req.k)
        carried: list[tuple[int, int, float]] = []
        if prev is not None:
            before = cluster(xs[prev], req.cluster_method, req.k).labels
            followed = follow_clusters([before, clusters.labels])[1]
            clusters = Clustering(clusters.method, followed, clusters.k, clusters.silhouette)
            carried = match_clusters(before, followed)
        result = Result(req, proj, clusters, carried, prev, mean, components)
        post(ProjectionDone(serial, req, result, None))
    except ProjectionCancelled:
        post(ProjectionDone(serial, req, None, None))
    except NeuroscopeError as err:
        post(ProjectionDone(serial, req, None, str(err)))
    except Exception as err:  # a library failing on odd data must not end the app
        name = type(err).__name__
        post(
            ProjectionDone(serial, req, None, f"{req.method} failed on this layer ({name}: {err})")
        )


def stored_result(trace: Trace, req: Request) -> Result | None:
    """A projection (and clusters) saved in the trace for exactly this request."""
    coords = F.stored(trace, F.feature_name("projection", req.method, req.layer, req.site))
    name = F.feature_name("clusters", req.cluster_method, req.layer, req.site)
    labels = F.stored(trace, name)
    if coords is None or labels is None or req.method == "pca":
        return None  # PCA is cheaper to recompute than to trust (and gives the path)
    note = trace.notes.get("features", {}).get(name, {})
    k = int(note.get("k", int(labels.max()) + 1))
    if req.k is not None and req.k != k:
        return None
    clusters = Clustering(req.cluster_method, labels, k, {})
    return Result(req, Projection(req.method, coords), clusters)


def cluster_list(res: Result, texts: list[str]) -> Text:
    """The cluster list: k and how it was chosen, then each cluster's colour, size, the
    cluster of the layer before it continues (Jaccard overlap) and its first 12 tokens."""
    cl = res.clusters
    score = cl.silhouette.get(cl.k, float("nan"))
    how = "set" if res.request.k is not None else "by silhouette"
    out = Text(f"{cl.method} k={cl.k} ({how}, s={score:.2f})\n", style="bold")
    carried = {cur: (prev, j) for prev, cur, j in res.carried}
    for c, members in enumerate(cl.members()):
        if not members:
            continue
        out.append("■ ", style=hex_colour(cluster_colour(c)))
        out.append(f"c{c} ({len(members)})")
        if c in carried:
            out.append(f"  from L{res.previous_layer}: J={carried[c][1]:.2f}", "dim")
        words = " ".join(visible(texts[t]) for t in members[:12])
        more = f" +{len(members) - 12}" if len(members) > 12 else ""
        out.append(f"\n  {words}{more}\n")
    return out


def visible(token: str) -> str:
    """A token as a word in a list: spaces shown as ␣ so " the" and "the" differ, control
    characters as escapes."""
    return escaped(token.replace(" ", "␣").replace("\n", "⏎")) or "∅"


def result_table(trace: Trace, res: Result) -> Table:
    """The points on screen as a table: token, text, coordinates, cluster."""
    coords = res.projection.coords
    k = coords.shape[1]
    columns = ["token", "text", *[f"c{i + 1}" for i in range(k)], "cluster"]
    rows = [
        [t, trace.token_text[t], *[float(v) for v in coords[t]], int(res.clusters.labels[t])]
        for t in range(res.request.n_tokens)
    ]
    return Table(columns, rows)


def csv_path(app: Any, trace: Trace, what: str) -> Path:
    """A fresh file name for a CSV in the app's save folder (the current folder by default)."""
    folder = getattr(app, "save_dir", None) or Path.cwd()
    model = safe_name(trace.model.name)  # no NUL, slash or 300 characters
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(folder) / f"{model}-{what}-{stamp}.csv"
    n = 2
    while path.exists():
        path = Path(folder) / f"{model}-{what}-{stamp}-{n}.csv"
        n += 1
    return path

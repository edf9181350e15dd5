"""The projection view: token activations at the selected layer as a 2D/3D scatter, with clusters.

The cloud is the residual stream (or, `n`, the MLP neurons) of every token at the selected
layer, mapped by PCA (instant), t-SNE or UMAP (`m` cycles). Points are coloured by cluster
(k-means or agglomerative, `k` cycles; `+`/`-` set k, `0` lets the silhouette choose); the list
on the right shows each cluster's tokens and the cluster of the layer before it continues
(Jaccard overlap of members; numbers are carried over, so colours stay as layers change).
PCA keeps three components: `a` picks which two are drawn (1-2, 1-3, 2-3) or the rotating 3D
view, turned with `r`/`R`. `p` draws the selected token's path through every layer in the
same PCA space, `l` labels points, `,`/`.` move the selected token, `x` writes the CSV.

Every computation runs in a thread worker; t-SNE and UMAP report progress and `c` cancels
them (UMAP's first call imports and compiles for ~30 s: the UI keeps running). Results are
kept in `trace.extras` (see analysis/feature_tables.py) so a saved snapshot holds them and
`view` shows them without recomputing. During a live run, t-SNE/UMAP results are kept until
the run ends instead of restarting at every token.
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace
from typing import ClassVar

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static

from neuroscope_tui.analysis import feature_tables as F
from neuroscope_tui.analysis.projection import (
    METHODS,
    SITES,
    PCATracker,
    activations,
    full_layers,
)
from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.text_safety import visible
from neuroscope_tui.tui.views.base import TraceView
from neuroscope_tui.tui.views.projection_work import (
    ProjectionDone,
    ProjectionProgress,
    Request,
    Result,
    cluster_list,
    compute,
    csv_path,
    result_table,
    stored_result,
)
from neuroscope_tui.tui.widgets.scatter import (
    ScatterData,
    TokenScatter,
    rotate,
)

METHOD_NAMES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
AXES = ("1-2", "1-3", "2-3", "3D")
CLUSTER_METHODS = ("kmeans", "agglomerative")
ROTATE_STEP = math.pi / 12


class ProjectionView(TraceView):
    """Scatter of token activations at the selected layer, coloured by cluster, with a list."""

    DEFAULT_CSS = """
    ProjectionView { layout: vertical; }
    ProjectionView #proj-title { height: 1; background: $boost; }
    ProjectionView #proj-status { height: 1; color: $text-muted; }
    ProjectionView #proj-body { height: 1fr; }
    ProjectionView #proj-plot { width: 1fr; }
    ProjectionView #proj-side { width: 34; height: 1fr; padding: 0 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "cycle_method", "method"),
        Binding("a", "cycle_axes", "axes/3D"),
        Binding("r", "rotate(1)", "rotate"),
        Binding("R", "rotate(-1)", "rotate back", show=False),
        Binding("k", "cycle_clusters", "clusters"),
        Binding("plus,equals_sign", "set_k(1)", "k+1", show=False),
        Binding("minus", "set_k(-1)", "k-1", show=False),
        Binding("0", "auto_k", "k by silhouette", show=False),
        Binding("n", "toggle_site", "resid/neurons"),
        Binding("l", "toggle_labels", "labels"),
        Binding("p", "toggle_path", "token path"),
        Binding("comma", "step_token(-1)", "previous token", show=False),
        Binding("full_stop", "step_token(1)", "next token", show=False),
        Binding("c", "cancel", "cancel"),
        Binding("x", "write_csv", "CSV"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._ready = False  # set in on_mount, when the children exist
        self.method = "pca"
        self.axes = "1-2"
        self.yaw = 0.6
        self.site = "resid"
        self.cluster_method = "kmeans"
        self.k: int | None = None
        self.show_labels = False
        self.show_path = False
        self.result: Result | None = None  # what is drawn
        self.running: Request | None = None
        self.progress: tuple[float, str] | None = None
        self.notice = ""
        self._cancel = threading.Event()
        self._serial = 0  # which run is current: a superseded run's messages are ignored
        self._stopped: Request | None = None  # cancelled or failed: not restarted by itself
        self._results: dict[Request, Result] = {}
        self._trackers: dict[tuple[int, str], PCATracker] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="proj-title")
        with Horizontal(id="proj-body"):
            yield TokenScatter(id="proj-plot")
            with VerticalScroll(id="proj-side"):
                yield Static(id="proj-clusters")
        yield Static(id="proj-status")

    def on_mount(self) -> None:
        # The app may hand over the trace before the children exist: draw once they do.
        self._ready = True
        self.refresh_view()

    def on_unmount(self) -> None:
        self._cancel.set()  # a t-SNE/UMAP still running stops at its next step

    # ---- what is asked -----------------------------------------------------------------------

    def _layers(self) -> list[int]:
        if self.trace is None:
            return []
        name = SITES[self.site]
        return full_layers(self.trace) if self.trace.has(name) else []

    def _layer(self) -> int | None:
        layers = self._layers()
        if not layers:
            return None
        return min(layers, key=lambda layer: abs(layer - self.selection.layer))

    def _request(self) -> Request | None:
        layer = self._layer()
        if self.trace is None or layer is None:
            return None
        return Request(
            id(self.trace), self.trace.n_tokens, layer, self.site,
            self.method, self.cluster_method, self.k,
        )  # fmt: skip

    # ---- drawing -----------------------------------------------------------------------------

    def refresh_view(self) -> None:
        if not self._ready:
            return
        request = self._request()
        if request is None:
            self.result = None
            self.notice = self._why_empty()
        elif request in self._results:
            self.result = self._results[request]
        elif (stored := stored_result(self.trace, request)) is not None:
            self._results[request] = stored
            self.result = stored
        elif self._keep_until_run_ends(request) or request == self._stopped:
            pass
        else:
            self._start(request)
        self._draw()

    def _why_empty(self) -> str:
        if self.trace is None:
            return "no run yet: type a prompt"
        what = "MLP neurons" if self.site == "neurons" else "residual vectors"
        return (
            f"this run kept no full {what} (capture with --full-layers, or press n for the "
            "other site)"
        )

    def _keep_until_run_ends(self, request: Request) -> bool:
        """During a live run keep the last t-SNE/UMAP of this layer rather than restart it."""
        res = self.result
        if request.method == "pca" or self.trace is None or self.trace.finished or res is None:
            return False
        old = res.request
        same = (old.layer, old.site, old.method) == (request.layer, request.site, request.method)
        return same and old.trace_id == request.trace_id

    def _draw(self) -> None:
        title = self.query_one("#proj-title", Static)
        plot = self.query_one(TokenScatter)
        side = self.query_one("#proj-clusters", Static)
        status = self.query_one("#proj-status", Static)
        status.update(self._status_text())
        res = self.result
        if res is None or self.trace is None:
            title.update(f"projection · {METHOD_NAMES[self.method]}")
            plot.show(None)
            side.update(Text(visible(self.notice, newlines=True)))  # may quote an error
            return
        title.update(self._title_text(res))
        plot.show(self._scatter_data(res))
        listing = cluster_list(res, self.trace.token_text)
        if self.show_path and res.components is None:
            listing = Text("the token path needs PCA (a linear map)\n\n", "yellow") + listing
        side.update(listing)

    def _title_text(self, res: Result) -> str:
        req = res.request
        site = "MLP neurons" if req.site == "neurons" else "residual stream"
        parts = [f"projection · {METHOD_NAMES[req.method]} · layer {req.layer} · {site}"]
        if req.method == "pca" and res.projection.explained is not None:
            ex = res.projection.explained
            if self.axes == "3D":
                parts.append(f"3D, turned {math.degrees(self.yaw) % 360:.0f}°")
            else:
                i, j = self._axis_pair()
                parts.append(f"PC{i + 1} {ex[i]:.0%} · PC{j + 1} {ex[j]:.0%}")
        if req.n_tokens != (self.trace.n_tokens if self.trace else 0):
            later = "updating" if req.method == "pca" else "updates when the run ends"
            parts.append(f"of {req.n_tokens} tokens ({later})")
        return "  ·  ".join(parts)

    def _status_text(self) -> Text:
        if self.running is not None and self.progress is not None:
            fraction, stage = self.progress
            bar = "█" * int(fraction * 20) + "░" * (20 - int(fraction * 20))
            return Text(f"{stage}  {bar} {fraction:.0%}   c or Esc cancels")
        if self.running is not None:
            return Text(f"computing {METHOD_NAMES[self.running.method]}…   c or Esc cancels")
        if self.notice and self.result is not None:
            return Text(self.notice, style="yellow")
        return Text("m method · a axes · k clusters · +/- k · l labels · p path · x CSV")

    def _axis_pair(self) -> tuple[int, int]:
        i, j = (int(c) - 1 for c in self.axes.split("-"))
        return i, j

    def _points(self, coords: np.ndarray) -> np.ndarray:
        if coords.shape[1] < 2:
            return np.concatenate([coords, np.zeros_like(coords)], axis=1)
        if self.result is None or self.result.request.method != "pca" or coords.shape[1] < 3:
            return coords[:, :2]
        if self.axes == "3D":
            return rotate(coords[:, :3], self.yaw)
        i, j = self._axis_pair()
        return coords[:, [i, j]]

    def _scatter_data(self, res: Result) -> ScatterData:
        assert self.trace is not None
        n = res.request.n_tokens
        coords = res.projection.coords
        selected = min(self.selection.token, n - 1)
        path, path_labels = None, []
        if self.show_path and res.components is not None and res.mean is not None:
            path, path_labels = self._token_path(res, selected)
        if self.axes == "3D" or res.request.method != "pca":
            x_label, y_label = "", ""
        else:
            i, j = self._axis_pair()
            x_label, y_label = f"PC{i + 1}", f"PC{j + 1}"
        return ScatterData(
            points=self._points(coords),
            texts=self.trace.token_text[:n],
            clusters=res.clusters.labels,
            selected=selected,
            show_labels=self.show_labels,
            path=None if path is None else self._points(path),
            path_labels=path_labels,
            x_label=x_label,
            y_label=y_label,
        )

    def _token_path(self, res: Result, token: int) -> tuple[np.ndarray, list[str]]:
        """The selected token at every kept layer, in this layer's PCA coordinates [L, 3]."""
        assert self.trace is not None and res.components is not None
        rows, labels = [], []
        for layer in self._layers():
            x = activations(self.trace, layer, res.request.site)
            if token < len(x):
                rows.append((x[token] - res.mean) @ res.components.T)
                labels.append(f"L{layer}")
        return np.array(rows, dtype=np.float32), labels

    # ---- worker ------------------------------------------------------------------------------

    def _start(self, request: Request) -> None:
        if self.running == request or self._only_grew(request):
            return  # a run that only lacks the newest tokens: its end starts the next one
        self._cancel.set()  # the previous run, if any, stops at its next step
        self._cancel = threading.Event()
        self._serial += 1
        serial = self._serial
        self.running, self.progress = request, None
        assert self.trace is not None
        try:
            xs = {request.layer: activations(self.trace, request.layer, request.site)}
            prev = self._previous_layer(request.layer)
            if prev is not None:
                xs[prev] = activations(self.trace, prev, request.site)
        except NeuroscopeError as err:
            self.running, self.notice = None, str(err)
            return
        tracker = self._trackers.setdefault((request.layer, request.site), PCATracker(3))
        cancel = self._cancel
        self.run_worker(
            lambda: compute(self.post_message, serial, request, xs, prev, tracker, cancel),
            thread=True, group="projection", name=f"projection-{request.method}",
        )  # fmt: skip

    def _only_grew(self, request: Request) -> bool:
        """Whether the running request differs from `request` only by fewer tokens."""
        run = self.running
        return run is not None and run == replace(request, n_tokens=run.n_tokens)

    def _previous_layer(self, layer: int) -> int | None:
        layers = self._layers()
        at = layers.index(layer)
        return layers[at - 1] if at > 0 else None

    def on_projection_progress(self, message: ProjectionProgress) -> None:
        if message.serial == self._serial and self.running is not None:
            self.progress = (message.fraction, message.stage)
            self.query_one("#proj-status", Static).update(self._status_text())

    def on_projection_done(self, message: ProjectionDone) -> None:
        req = message.request
        current = message.serial == self._serial
        if current:
            self.running, self.progress = None, None
        if message.result is not None:
            self._results[req] = message.result
            if current:
                self.result = message.result  # drawn even if the trace grew meanwhile
            self.notice = ""
            trace = self.trace
            if trace is not None and id(trace) == req.trace_id and req.n_tokens == trace.n_tokens:
                F.store_projection(trace, message.result.projection, req.layer, req.site)
                F.store_clusters(trace, message.result.clusters, req.layer, req.site)
        elif not current:
            return  # a superseded run that stopped: nothing to say
        elif message.error is not None:
            self.notice = message.error
            self.notify(message.error, severity="warning")
            self._stopped = req
        else:
            self.notice = f"{METHOD_NAMES[req.method]} cancelled"
            self._stopped = req
        if current and message.result is None and self.result is not None:
            self.method = self.result.request.method  # back to what is on screen
        if current:
            self.refresh_view()

    # ---- actions -----------------------------------------------------------------------------

    def action_cycle_method(self) -> None:
        """Next projection: PCA, t-SNE, UMAP."""
        self.method = METHODS[(METHODS.index(self.method) + 1) % len(METHODS)]
        self.notice = ""
        self._stopped = None  # asked again: run it even if it was cancelled before
        self.refresh_view()

    def action_cycle_axes(self) -> None:
        """PCA components drawn: 1-2, 1-3, 2-3, or the rotating 3D cloud."""
        self.axes = AXES[(AXES.index(self.axes) + 1) % len(AXES)]
        self._draw()

    def action_rotate(self, direction: int) -> None:
        """Turn the 3D cloud (switches to the 3D view)."""
        self.axes = "3D"
        self.yaw += direction * ROTATE_STEP
        self._draw()

    def action_cycle_clusters(self) -> None:
        """Next clustering: k-means, agglomerative."""
        i = CLUSTER_METHODS.index(self.cluster_method)
        self.cluster_method = CLUSTER_METHODS[(i + 1) % len(CLUSTER_METHODS)]
        self.refresh_view()

    def action_set_k(self, step: int) -> None:
        """Set the number of clusters one up or down (from the chosen one)."""
        current = self.k or (self.result.clusters.k if self.result else 3)
        self.k = int(np.clip(current + step, 2, 12))
        self.refresh_view()

    def action_auto_k(self) -> None:
        """Let the silhouette score choose k again."""
        self.k = None
        self.refresh_view()

    def action_toggle_site(self) -> None:
        """Residual stream or MLP neurons."""
        self.site = "neurons" if self.site == "resid" else "resid"
        self.refresh_view()

    def action_toggle_labels(self) -> None:
        """Label every point with its token."""
        self.show_labels = not self.show_labels
        self._draw()

    def action_toggle_path(self) -> None:
        """Draw the selected token's path through the layers (PCA)."""
        self.show_path = not self.show_path
        self._draw()

    def action_step_token(self, step: int) -> None:
        """Select the previous or next token."""
        if self.trace is not None and self.trace.n_tokens:
            token = int(np.clip(self.selection.token + step, 0, self.trace.n_tokens - 1))
            self.select(token=token)
            self._draw()

    def action_cancel(self) -> None:
        """Stop a running t-SNE/UMAP (the last result stays on screen)."""
        self.cancel_work()

    def cancel_work(self) -> bool:
        """Stop the running projection; the view is free at once.

        t-SNE checks the flag at every gradient step and UMAP at every epoch; what cannot be
        interrupted (UMAP's first import and compilation, t-SNE's neighbour search) goes on
        in its thread until the next check, and its answer is then ignored (`_serial`).
        """
        if self.running is None:
            return False
        self._cancel.set()
        self._stopped = self.running
        self.notice = f"{METHOD_NAMES[self.running.method]} cancelled"
        self._serial += 1  # whatever the worker still posts is for an older request
        self.running, self.progress = None, None
        if self.result is not None:
            self.method = self.result.request.method  # back to what is on screen
        self.refresh_view()
        return True

    def reset_run(self) -> None:
        """A new run: projections, clusters and PCA axes of the last one no longer apply."""
        self._cancel.set()
        self._serial += 1
        self.running, self.progress, self.result, self._stopped = None, None, None, None
        self.notice = ""
        self._results.clear()
        self._trackers.clear()

    def action_write_csv(self) -> None:
        """Write the points on screen (coordinates, token, cluster) as a CSV file."""
        from neuroscope_tui.tables_io import table_csv, write_text

        res = self.result
        if res is None or self.trace is None:
            self.notify("nothing to write yet", severity="warning")
            return
        path = csv_path(
            self.app, self.trace, f"projection-{res.request.method}-L{res.request.layer}"
        )
        try:
            write_text(str(path), table_csv(result_table(self.trace, res)), force=False)
        except NeuroscopeError as err:
            self.notify(str(err), severity="error")
            return
        self.notify(f"saved {path}", title="CSV")

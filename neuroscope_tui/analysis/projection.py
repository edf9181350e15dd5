"""Token activations at one layer mapped to 2D/3D: PCA, t-SNE and UMAP.

Input is a matrix of token activations [T, D]: the residual stream `resid.full[l]` [T, d_model]
or the MLP neurons `neurons.full[l]` [T, d_mlp] (see `activations`). Every method returns a
`Projection` with coordinates [T, k].

- PCA is exact where that is cheap (~16 ms for 512 x 576) and `PCATracker` keeps its axes
  from flipping as tokens arrive, so a growing cloud does not jump.
- t-SNE (scikit-learn) and UMAP (umap-learn, imported lazily: the import takes ~19 s and the
  first call compiles for ~14 s) take `progress(fraction, stage)` and `cancel` (a
  threading.Event) so a worker can report and stop them. Perplexity and neighbours adapt to
  the number of points.

Fewer than 3 points is a `TooFewPointsError`. Nothing here imports torch or textual.
"""

from __future__ import annotations

import functools
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.trace import Trace

METHODS = ("pca", "tsne", "umap")
SITES = {"resid": "resid.full", "neurons": "neurons.full"}
MIN_POINTS = 3

ProgressCallback = Callable[[float, str], None]


class TooFewPointsError(NeuroscopeError):
    """A projection or clustering was asked of fewer points than it can work with."""


class MissingActivationsError(NeuroscopeError):
    """The trace holds no full activation vectors for the layer asked."""


class ProjectionCancelled(Exception):
    """The worker asked a t-SNE or UMAP run to stop; not a user mistake."""


@dataclass
class Projection:
    """Coordinates of T points in k dimensions, and how they were made.

    `coords` [T, k] float32. `explained` [k] is PCA's fraction of variance per component
    (None for t-SNE and UMAP, whose axes mean nothing on their own). `params` are the
    settings actually used (perplexity, n_neighbors, seed), JSON-able.
    """

    method: str
    coords: np.ndarray
    explained: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)


def full_layers(trace: Trace) -> list[int]:
    """The layers whose full vectors the trace holds, in the order of the arrays' first axis."""
    spec = trace.spec
    chosen = trace.layers() if spec.full_layers is None else list(spec.full_layers)
    return [layer for layer in chosen if 0 <= layer < max(trace.n_layers, 1)]


def activations(trace: Trace, layer: int, site: str = "resid") -> np.ndarray:
    """The token activations [T, D] at `layer`: residual stream ("resid") or MLP neurons.

    Raises MissingActivationsError when the trace did not keep full vectors for that layer.
    """
    name = SITES.get(site)
    if name is None:
        raise MissingActivationsError(f"unknown site {site!r}; choose one of {sorted(SITES)}.")
    layers = full_layers(trace)
    if not trace.has(name) or layer not in layers:
        kept = ", ".join(str(x) for x in layers) or "none"
        raise MissingActivationsError(
            f"this trace kept no full {site} vectors for layer {layer} (layers kept: {kept}); "
            "capture with --full-layers to project it."
        )
    full = trace.get(name)
    return np.asarray(full[layers.index(layer)], dtype=np.float32)


def check_points(x: np.ndarray, what: str = "a projection") -> np.ndarray:
    """x as a float 2D array [T, D] with finite values; TooFewPointsError under 3 points."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected token activations [T, D], got shape {x.shape}")
    if x.shape[0] < MIN_POINTS:
        raise TooFewPointsError(
            f"{what} needs at least {MIN_POINTS} tokens and there are {x.shape[0]}; "
            "generate or type a longer prompt."
        )
    if not np.isfinite(x).all():
        # A NaN row would poison every method; zero it so the rest still show.
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return x


def one_thread() -> Any:
    """A context in which numpy's OpenBLAS and OpenMP (this thread) use one thread.

    For a few hundred tokens threads cost more than they save, and on a busy machine they
    cost far more: on the 2-core dev box under load, k-means of 512 x 576 took 200 ms with
    two OpenMP threads and 16 ms with one; PCA 87 ms of wall time with two BLAS threads
    against 12 ms of CPU. MKL (torch's BLAS) is left alone so a model running in another
    thread keeps its threads. OpenMP's limit is per calling thread.
    """
    from threadpoolctl import threadpool_limits

    # Keyed by library prefix: numpy/scipy's OpenBLAS builds and the OpenMP runtime.
    return threadpool_limits(limits={"libscipy_openblas": 1, "libopenblas": 1, "libgomp": 1})


# ---- PCA --------------------------------------------------------------------------------


def pca(x: np.ndarray, n_components: int = 3) -> Projection:
    """Principal components of the token activations [T, D] -> coords [T, k].

    Exact (`principal_axes`: eigenvectors of the smaller Gram matrix) wherever that is cheap,
    which covers ~3,000 tokens of a 576-wide residual stream; beyond it scikit-learn's
    randomized solver with a fixed random_state, so repeated calls agree. One thread
    (`one_thread`). k is capped at min(T, D); `params["solver"]` says which route ran.
    """
    from neuroscope_tui.analysis.principal_axes import top_axes

    x = check_points(x, "PCA").astype(np.float64)
    k = int(min(n_components, x.shape[0], x.shape[1]))
    with one_thread():
        components, explained, solver = top_axes(x, k)
        coords = (x - x.mean(axis=0)) @ components.T  # [T, k]
    return Projection(
        "pca",
        coords.astype(np.float32),
        explained.astype(np.float32),
        {"n_components": k, "solver": solver, "components": components.astype(np.float32)},
    )


class PCATracker:
    """PCA of a growing set of tokens whose axes keep their direction from one update to the next.

    Each `update(x)` recomputes the PCA of all tokens so far (cheap: milliseconds) and flips
    a component's sign when it points against the same component of the previous update, so
    points do not jump to the mirror side when one more token arrives.
    """

    def __init__(self, n_components: int = 3) -> None:
        self.n_components = n_components
        self._previous: np.ndarray | None = None  # [k, D] components of the last update

    def update(self, x: np.ndarray) -> Projection:
        proj = pca(x, self.n_components)
        comps = proj.params.pop("components")
        prev = self._previous
        if prev is not None and prev.shape[1] == comps.shape[1]:
            k = min(len(prev), len(comps))
            signs = np.sign(np.sum(prev[:k] * comps[:k], axis=1))
            signs[signs == 0] = 1.0
            comps[:k] *= signs[:, None]
            proj.coords[:, :k] *= signs[None, :]
        self._previous = comps
        return proj

    @property
    def components(self) -> np.ndarray | None:
        """The sign-aligned axes [k, D] of the last update (None before the first)."""
        return self._previous

    def reset(self) -> None:
        self._previous = None


# ---- t-SNE ------------------------------------------------------------------------------


def adapted_perplexity(n: int, wanted: float = 30.0) -> float:
    """A t-SNE perplexity below n: min(wanted, (n - 1) / 3), at least 1 when n allows it."""
    return float(min(wanted, max((n - 1) / 3.0, min(1.0, n - 1.5))))


def tsne(
    x: np.ndarray,
    n_components: int = 2,
    *,
    perplexity: float | None = None,
    seed: int = 0,
    max_iter: int = 1000,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Projection:
    """t-SNE of the token activations [T, D] -> coords [T, k], scikit-learn's own optimiser.

    Same result as `sklearn.manifold.TSNE(perplexity, init="pca", random_state=seed)`; the
    only difference is that every gradient step reports progress and checks `cancel`
    (raising ProjectionCancelled). Perplexity defaults to `adapted_perplexity(T)`. Runs on
    one thread (`one_thread`).
    """
    x = check_points(x, "t-SNE")
    if not np.ptp(x, axis=0).any():
        # scikit-learn's t-SNE divides by the spread of its PCA start and then crashes the
        # process (segfault in the Barnes-Hut tree) when every point is the same.
        raise TooFewPointsError(
            "every token has the same activations here, so t-SNE has nothing to spread out; "
            "choose another layer or PCA."
        )
    n = x.shape[0]
    perp = adapted_perplexity(n) if perplexity is None else float(perplexity)
    if not 0 < perp < n:
        raise TooFewPointsError(
            f"t-SNE needs a perplexity between 0 and the number of tokens ({n}); got {perp:g}."
        )
    model = _watched_tsne_class()(
        n_components=n_components,
        perplexity=perp,
        init="pca",
        random_state=seed,
        max_iter=max_iter,
    )
    model.progress, model.cancel = progress, cancel
    if progress:
        progress(0.0, "t-SNE: neighbours")
    with one_thread():  # the model may be using every core in another thread
        coords = model.fit_transform(x.astype(np.float64))
    if progress:
        progress(1.0, "t-SNE: done")
    return Projection(
        "tsne",
        coords.astype(np.float32),
        None,
        {"perplexity": perp, "seed": seed, "kl_divergence": float(model.kl_divergence_)},
    )


@functools.cache
def _watched_tsne_class() -> type:
    """scikit-learn's TSNE whose objective reports progress and checks for cancel each step.

    Built on first use so importing this module does not import sklearn.manifold. The
    gradient-descent function is swapped in a private copy of `TSNE._tsne` (no global
    patching), so runs in other threads are not affected.
    """
    import sklearn.manifold._t_sne as impl

    class WatchedTSNE(impl.TSNE):
        progress: ProgressCallback | None = None
        cancel: threading.Event | None = None

        def _tsne(self, *args: Any, **kwargs: Any) -> np.ndarray:
            owner = self

            def descent(objective: Callable, p0: Any, it: int, max_iter: int, **kw: Any) -> Any:
                calls = [it]

                def watched(*a: Any, **k: Any) -> Any:
                    calls[0] += 1
                    if owner.cancel is not None and owner.cancel.is_set():
                        raise ProjectionCancelled("t-SNE cancelled")
                    if owner.progress is not None and calls[0] % 10 == 0:
                        owner.progress(min(calls[0] / owner.max_iter, 0.99), "t-SNE: optimising")
                    return objective(*a, **k)

                return impl._gradient_descent(watched, p0, it, max_iter, **kw)

            run = _rebind(impl.TSNE._tsne, {"_gradient_descent": descent})
            return run(self, *args, **kwargs)

    return WatchedTSNE


def _rebind(func: Callable, overrides: dict[str, Any]) -> Callable:
    """A copy of `func` whose global names in `overrides` resolve to the given objects."""
    import types

    globals_ = {**func.__globals__, **overrides}
    return types.FunctionType(
        func.__code__, globals_, func.__name__, func.__defaults__, func.__closure__
    )


# ---- UMAP -------------------------------------------------------------------------------


def adapted_neighbors(n: int, wanted: int = 15) -> int:
    """A UMAP n_neighbors below n: min(wanted, n - 1), at least 2."""
    return int(max(2, min(wanted, n - 1)))


class _EpochStream:
    """A file for tqdm that turns UMAP's epoch bar into progress calls and checks cancel."""

    _count = re.compile(r"(\d+)/(\d+)")

    def __init__(self, progress: ProgressCallback | None, cancel: threading.Event | None):
        self.progress = progress
        self.cancel = cancel

    def write(self, text: str) -> int:
        if self.cancel is not None and self.cancel.is_set():
            raise ProjectionCancelled("UMAP cancelled")
        match = self._count.search(text)
        if match and self.progress is not None and int(match.group(2)) > 0:
            done = int(match.group(1)) / int(match.group(2))
            self.progress(0.2 + 0.79 * done, "UMAP: optimising")
        return len(text)

    def flush(self) -> None:
        return None


def umap(
    x: np.ndarray,
    n_components: int = 2,
    *,
    n_neighbors: int | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Projection:
    """UMAP of the token activations [T, D] -> coords [T, k] (umap-learn, imported here).

    The first call in a process imports umap (~19 s) and compiles it (~14 s): run it in a
    worker. `cancel` is checked before the import, before the fit and at every epoch of the
    layout optimisation (raising ProjectionCancelled); the nearest-neighbour graph itself
    cannot be interrupted. n_neighbors defaults to `adapted_neighbors(T)`.
    """
    x = check_points(x, "UMAP")
    n = x.shape[0]
    k = adapted_neighbors(n) if n_neighbors is None else int(n_neighbors)
    if not 2 <= k < n:
        raise TooFewPointsError(f"UMAP needs 2 <= n_neighbors < tokens ({n}); got {k}.")

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise ProjectionCancelled("UMAP cancelled")

    check()
    if progress:
        progress(0.0, "UMAP: importing (the first time takes ~20 s)")
    import umap as umap_lib

    check()
    if progress:
        progress(0.1, "UMAP: neighbour graph (the first call compiles, ~15 s)")
    stream = _EpochStream(progress, cancel)
    model = umap_lib.UMAP(
        n_components=n_components,
        n_neighbors=k,
        random_state=seed,
        n_jobs=1,  # a seed forces one thread anyway; saying so silences umap's warning
        # Spectral init needs more points than components + 1 connected ones; random is safe.
        init="spectral" if n > n_components + 2 else "random",
        tqdm_kwds={
            "disable": False,
            "file": stream,
            "mininterval": 0.0,
            "bar_format": "{n}/{total}",
        },
    )
    with warnings.catch_warnings():
        # umap/sklearn warn on stderr (disconnected graphs, few points): it would scribble
        # over the terminal UI, and the picture itself shows what the warning says.
        warnings.simplefilter("ignore")
        coords = model.fit_transform(x)
    check()
    if progress:
        progress(1.0, "UMAP: done")
    return Projection(
        "umap", np.asarray(coords, dtype=np.float32), None, {"n_neighbors": k, "seed": seed}
    )


def project(
    x: np.ndarray,
    method: str,
    n_components: int = 2,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Projection:
    """Dispatch to `pca`, `tsne` or `umap` by name."""
    if method == "pca":
        proj = pca(x, n_components)
        proj.params.pop("components", None)
        return proj
    if method == "tsne":
        return tsne(x, n_components, progress=progress, cancel=cancel)
    if method == "umap":
        return umap(x, n_components, progress=progress, cancel=cancel)
    raise ValueError(f"unknown projection method {method!r}; choose one of {METHODS}")

"""Forward hooks that record one step's new positions, reduced on the device.

`recording(anatomy, spec)` registers hooks on every block, attention module, MLP and down
projection in a context manager and removes them in `finally`, on an error or a cancel too.
Each hook reduces what it sees to per-token summaries on the model's device (an L2 norm, a
max, a mean, a near-zero fraction per token) and keeps full vectors only for the layers asked.
`Recorder.flush()` copies one step's reduced numbers to the host in one go and returns numpy
rows named as in trace.py, ready for `Trace.append`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from neuroscope_tui.capture.anatomy import Anatomy
from neuroscope_tui.trace import CaptureSpec

if TYPE_CHECKING:
    from neuroscope_tui.capture.intervening import Intervener
    from neuroscope_tui.capture.watch import Watcher


class Observer(Protocol):
    """Extra hooks that only look (neuron health, the gradient pass's stream): `recording()`
    registers them after the intervener's and before the recorder's, and removes them."""

    def register(self, anatomy: Anatomy) -> list[torch.utils.hooks.RemovableHandle]: ...


def _first_tensor(x: object) -> torch.Tensor:
    """A module's output or input: a tensor, or the first element of a tuple."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)) and x and isinstance(x[0], torch.Tensor):
        return x[0]
    raise TypeError(f"expected a tensor, got {type(x).__name__}")


def _rows(x: torch.Tensor) -> torch.Tensor:
    """[T, D] of one sequence: x is [1, T, D], or [T, D] where a model flattens the batch
    (OPT runs its MLP on [batch * T, D])."""
    return x[0] if x.dim() == 3 else x


def summarise(x: torch.Tensor, near_zero: float) -> dict[str, torch.Tensor]:
    """Per-token summaries of x [1, T, D] (or [T, D]) on its device -> name -> [T] float32."""
    return summarise_rows(_rows(x).float(), near_zero)


def near_zero_count(mag: torch.Tensor, threshold: float) -> torch.Tensor:
    """How many entries of mag [..., D] (absolute values; overwritten) are below threshold.

    sign(threshold - |x|) clamped at 0 is 1 exactly where |x| < threshold. On CPU this float
    path runs several times faster than building and summing a bool tensor.
    """
    return torch.sign(mag.sub_(threshold).neg_()).clamp_(min=0).sum(-1)


def summarise_rows(v: torch.Tensor, near_zero: float) -> dict[str, torch.Tensor]:
    """Summaries over the last axis of v [..., D] -> name -> [...].

    This runs on every block, attention and MLP output of every step, so it uses the
    reductions that are cheap on every device (amax of |x| rather than aminmax, a float count
    rather than a bool one) and one temporary.
    """
    mag = v.abs()
    max_abs = mag.amax(-1)
    return {
        "norm": torch.linalg.vector_norm(v, dim=-1),
        "max_abs": max_abs,
        "mean": v.mean(-1),
        "zero_frac": near_zero_count(mag, near_zero) / v.shape[-1],
    }


class Recorder:
    """Collects one step's device tensors from the hooks and the attention tap."""

    def __init__(self, anatomy: Anatomy, spec: CaptureSpec):
        self.anatomy = anatomy
        self.spec = spec
        n = anatomy.n_layers
        self.layers = list(range(n)) if spec.layers is None else list(spec.layers)
        full = self.layers if spec.full_layers is None else list(spec.full_layers)
        self.full_layers = [layer for layer in full if 0 <= layer < n]
        self.patterns: dict[int, list[int]] = {}
        for layer, head in spec.pattern_heads:
            self.patterns.setdefault(layer, []).append(head)
        self.ids: torch.Tensor | None = None  # every token id so far, on the model device
        self._step: dict[str, dict[int, torch.Tensor]] = {}
        # A long pass's per-layer rows go straight into one [L, ...] tensor per name, made at
        # the first layer (see `_put`), with the layers written so far
        self._stacked: dict[str, tuple[torch.Tensor, set[int]]] = {}
        self._row_of = {layer: i for i, layer in enumerate(self.layers)}
        self._full_row_of = {layer: i for i, layer in enumerate(self.full_layers)}
        self.attention_calls = 0
        self.keep_stream = False  # keep each block's output (on the device) for the lens
        self.stream: dict[int, torch.Tensor] = {}
        # For a generated token the hooks only keep references, and flush() reduces every
        # layer in one batch of kernels: per-layer reductions of a single row cost more in
        # kernel launches than in arithmetic.
        self.defer = False
        # leave a long prompt's entropy "not computed" (NaN) for capture/derive_entropy.py
        self.entropy_later = False
        # True while the run's caller works between steps (a view's pattern or probe runs the
        # same model then): those forward passes are not the run's and must leave no rows.
        self.paused = False
        self._raw: dict[str, dict[int, Any]] = {}
        self._workspace = None
        # sampling: which neuron columns full rows keep, and in which dtype full rows are stored
        self.keep_neurons = spec.full_neurons
        self._neuron_cols: torch.Tensor | None = None
        self.full_dtype = torch.float16 if spec.full_dtype == "float16" else torch.float32
        # layers whose attention logits a generated token keeps (looked up 30 times a token)
        self._scored_layers = {
            layer for layer in self.layers if spec.head_scores or self.patterns.get(layer)
        }
        self.intervener: Intervener | None = None  # set by recording()
        # hooks on the modules spec.watch names (capture/watch.py); set by recording()
        self.watcher: Watcher | None = None

    def kept_neurons(self, x: torch.Tensor) -> torch.Tensor:
        """The columns of x [..., d_mlp] that `spec.neuron_subset` keeps (all when None)."""
        subset = self.spec.neuron_subset
        if subset is None:
            return x
        if self._neuron_cols is None or self._neuron_cols.device != x.device:
            self._neuron_cols = torch.tensor(subset, dtype=torch.long, device=x.device)
        return x.index_select(-1, self._neuron_cols)

    # ---- hooks -----------------------------------------------------------------------------

    def _put(self, name: str, layer: int, value: torch.Tensor) -> None:
        value = value.detach()
        if self.defer or name == "embed.norm" or name.startswith("pattern."):
            self._step.setdefault(name, {})[layer] = value
            return
        # Not one small tensor per layer kept until the flush: those land between each
        # layer's freed working rows in the C heap, so the next layer cannot reuse them whole
        # and the resident set grew by about a layer's MLP rows per layer. One tensor per
        # name, made once, takes the rows instead (flush() no longer stacks them either).
        full = name.endswith(".full")
        stacked = self._stacked.get(name)
        if stacked is None:
            n_rows = len(self.full_layers if full else self.layers)
            dtype = self.full_dtype if full else value.dtype
            stacked = (value.new_empty((n_rows, *value.shape), dtype=dtype), set())
            self._stacked[name] = stacked
        rows, written = stacked
        rows[(self._full_row_of if full else self._row_of)[layer]] = value
        written.add(layer)

    def _stacked_row(self, name: str, layer: int) -> torch.Tensor | None:
        """A layer's row of a long pass that `_put` stacked this step (None: not yet)."""
        rows, written = self._stacked.get(name, (None, ()))
        return rows[self._row_of[layer]] if layer in written else None

    def block_hook(self, layer: int):
        near_zero = self.spec.near_zero

        def hook(module, args, kwargs, output):
            if self.paused:
                return
            x_in = _first_tensor(args) if args else kwargs["hidden_states"]
            x_out = _first_tensor(output)
            if self.keep_stream:
                self.stream[layer] = x_out[0].detach()
            if self.defer:
                # shapes as the model gave them ([1, T, D]); _reduce_deferred reshapes the
                # stacks (one call, not one per layer)
                self._raw.setdefault("block", {})[layer] = (x_in, x_out)
                return
            if layer == 0:
                self._put("embed.norm", 0, torch.linalg.vector_norm(x_in[0].float(), dim=-1))
            stats = summarise(x_out, near_zero)
            for stat, val in stats.items():
                self._put(f"resid.{stat}", layer, val)
            a, b = _rows(x_in).float(), _rows(x_out).float()
            # the stream into block l is the stream out of block l-1: reuse its norm
            prev = self._stacked_row("resid.norm", layer - 1)
            in_norm = prev if prev is not None else torch.linalg.vector_norm(a, dim=-1)
            out_norm = stats["norm"]
            delta = torch.linalg.vector_norm(b - a, dim=-1)
            self._put("resid.delta", layer, delta / in_norm.clamp_min(1e-12))
            dot = torch.linalg.vecdot(a, b)
            self._put("resid.cos", layer, dot / (in_norm * out_norm).clamp_min(1e-12))
            if layer in self.full_layers:
                self._put("resid.full", layer, x_out[0])

        return hook

    def site_hook(self, site: str, layer: int):
        near_zero = self.spec.near_zero

        def hook(module, args, output):
            if self.paused:
                return
            if self.defer:
                self._raw.setdefault(site, {})[layer] = _first_tensor(output)
                return
            for stat, val in summarise(_first_tensor(output), near_zero).items():
                self._put(f"{site}.{stat}", layer, val)

        return hook

    def neuron_hook(self, layer: int):
        near_zero, k = self.spec.near_zero, self.spec.top_k

        def hook(module, args):
            if self.paused:
                return
            if self.defer:
                self._raw.setdefault("neurons", {})[layer] = _first_tensor(args)
                return
            x = _rows(_first_tensor(args)).float()  # [T, d_mlp]
            mag = x.abs()
            top = mag.topk(min(k, x.shape[-1]), dim=-1)
            zero = near_zero_count(mag, near_zero) / x.shape[-1]
            self._put("neurons.zero_frac", layer, zero)
            self._put("neurons.top_idx", layer, top.indices.to(torch.int32))
            self._put("neurons.top_val", layer, x.gather(-1, top.indices))
            if self.keep_neurons and layer in self.full_layers:
                self._put("neurons.full", layer, self.kept_neurons(x))

        return hook

    # ---- attention sink ----------------------------------------------------------------------

    def wants_patterns(self, layer: int) -> list[int]:
        return self.patterns.get(layer, []) if layer in self.layers else []

    def attention(
        self, layer: int, stats: dict[str, torch.Tensor], rows: dict[int, torch.Tensor]
    ) -> None:
        if self.paused:
            return
        self.attention_calls += 1
        if layer not in self.layers:
            return
        if self.spec.head_scores:
            for name, val in stats.items():
                self._put(f"heads.{name}", layer, val)
        for head, val in rows.items():
            self._put(f"pattern.{layer}.{head}", 0, val)

    def defer_scores(self, layer: int, scores: torch.Tensor) -> None:
        """The tap's masked logits [H, q, k] of a generated token, scored in flush()."""
        if self.paused:
            return
        self.attention_calls += 1
        if layer in self._scored_layers:
            self._raw.setdefault("scores", {})[layer] = scores

    # ---- per step ----------------------------------------------------------------------------

    def _reduce_deferred(self) -> dict[str, torch.Tensor]:
        """Reduce what the hooks kept this step, all layers of a site at once.

        Returns finished rows name -> [L, new, ...] (layers in `self.layers` order); anything
        not kept for every layer goes through `_put` as usual.
        """
        raw, self._raw = self._raw, {}
        near_zero, k = self.spec.near_zero, self.spec.top_k
        rows: dict[str, torch.Tensor] = {}

        def stacked(kind: str) -> tuple[list[int], list[Any]] | None:
            got = raw.get(kind)
            if not got:
                return None
            layers = [layer for layer in self.layers if layer in got]
            return layers, [got[layer] for layer in layers]

        def emit(prefix: str, layers: list[int], stats: dict[str, torch.Tensor]) -> None:
            complete = layers == self.layers
            for name, val in stats.items():
                if complete:
                    rows[f"{prefix}.{name}"] = val
                else:
                    for j, layer in enumerate(layers):
                        self._put(f"{prefix}.{name}", layer, val[j])

        if not self._summarise_together(raw, rows, near_zero):
            for site in ("attn", "mlp"):
                got = stacked(site)
                if got:
                    xs = torch.stack([_rows(x) for x in got[1]]).float()
                    emit(site, got[0], summarise_rows(xs, near_zero))
            got = stacked("block")
            if got:
                layers, pairs = got
                x_in = torch.stack([_rows(a) for a, _ in pairs]).float()  # [L, T, D]
                x_out = torch.stack([_rows(b) for _, b in pairs]).float()
                stats = summarise_rows(x_out, near_zero)
                in_norm = torch.linalg.vector_norm(x_in, dim=-1)
                stats.update(_change(x_in, x_out, in_norm, stats["norm"]))
                emit("resid", layers, stats)
                if layers and layers[0] == 0:
                    self._put("embed.norm", 0, in_norm[0])
                for j, layer in enumerate(layers):
                    if layer in self.full_layers:
                        self._put("resid.full", layer, _rows(pairs[j][1]))
        got = stacked("neurons")
        if got:
            layers, xs = got
            x = torch.stack(xs).float()
            x = x.view(len(xs), -1, x.shape[-1])  # [L, T, N]
            mag = x.abs()
            top = mag.topk(min(k, x.shape[-1]), dim=-1)
            emit(
                "neurons",
                layers,
                {
                    "zero_frac": near_zero_count(mag, near_zero) / x.shape[-1],
                    "top_idx": top.indices.to(torch.int32),
                    "top_val": x.gather(-1, top.indices),
                },
            )
            if self.keep_neurons and layers == self.full_layers == self.layers:
                # every layer's full row: the stack itself, not 30 rows stacked again
                rows["neurons.full"] = self.kept_neurons(x).to(self.full_dtype)
            else:
                for j, layer in enumerate(layers):
                    if self.keep_neurons and layer in self.full_layers:
                        self._put("neurons.full", layer, self.kept_neurons(x[j]))
        if "scores" in raw:
            self._score_deferred(raw["scores"], rows)
        return rows

    def _summarise_together(
        self, raw: dict[str, dict[int, Any]], rows: dict[str, torch.Tensor], near_zero: float
    ) -> bool:
        """The residual, attention and MLP summaries of a generated token in one stack and one
        batch of reductions, where every layer was seen, the blocks chain (block l's input is
        block l-1's output, the same tensor) and every site has one shape. Returns False
        (nothing done) otherwise, and the per-site path runs instead.

        One stack [1 + 3L, T, D] holds block 0's input, every block's output, every attention
        and MLP output: block l's input is row l, its output row l + 1, so the stream's change
        and cosine come from two views of it, and the input norms are the output norms of the
        row before (the same numbers: the same rows, reduced the same way).
        """
        blocks, attn, mlp = raw.get("block"), raw.get("attn"), raw.get("mlp")
        layers = self.layers
        n = len(layers)
        if not blocks or not attn or not mlp or not (len(blocks) == len(attn) == len(mlp) == n):
            return False
        if layers != list(range(layers[0], layers[0] + n)):
            return False
        pairs = [blocks[layer] for layer in layers]
        for j in range(1, n):
            if pairs[j][0] is not pairs[j - 1][1]:
                return False
        parts = [pairs[0][0], *(b for _, b in pairs)]
        parts += [attn[layer] for layer in layers]
        parts += [mlp[layer] for layer in layers]
        shape = parts[0].shape
        if any(p.shape != shape for p in parts):
            # OPT runs its MLP on [T, D] where the blocks give [1, T, D]: the same rows
            if any(p.numel() != parts[0].numel() for p in parts):
                return False
            parts = [p.reshape(shape) for p in parts]
        big = torch.stack(parts).float()
        big = big.view(1 + 3 * n, -1, big.shape[-1])  # [1 + 3L, T, D]
        stats = summarise_rows(big, near_zero)
        x_in, x_out = big[:n], big[1 : n + 1]
        resid = {name: val[1 : n + 1] for name, val in stats.items()}
        resid.update(_change(x_in, x_out, stats["norm"][:n], resid["norm"]))
        for name, val in resid.items():
            rows[f"resid.{name}"] = val
        for k, site in enumerate(("attn", "mlp")):
            lo = 1 + (k + 1) * n
            for name, val in stats.items():
                rows[f"{site}.{name}"] = val[lo : lo + n]
        if layers[0] == 0:
            self._put("embed.norm", 0, stats["norm"][0])
        if self.full_layers == layers:
            rows["resid.full"] = x_out.to(self.full_dtype)
        else:
            for j, layer in enumerate(layers):
                if layer in self.full_layers:
                    self._put("resid.full", layer, x_out[j])
        return True

    def _score_deferred(
        self, per_layer: dict[int, torch.Tensor], rows: dict[str, torch.Tensor]
    ) -> None:
        from neuroscope_tui.capture.attention_tap import _Workspace, scores_stats

        if self._workspace is None:
            self._workspace = _Workspace()
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for layer, sc in per_layer.items():
            by_shape.setdefault(tuple(sc.shape), []).append(layer)
        for shape, layers in by_shape.items():
            ids = None
            if self.ids is not None and self.ids.shape[0] >= shape[-1]:
                ids = self.ids[-shape[-1] :]
            probs, stats = scores_stats(
                self._workspace, torch.stack([per_layer[i] for i in layers]), ids
            )
            if layers == self.layers and self.spec.head_scores:
                rows.update({f"heads.{n}": v for n, v in stats.items()})
                stats = {}
            for j, layer in enumerate(layers):
                patterns = {
                    h: probs[j].mean(0) if h < 0 else probs[j, h]
                    for h in self.wants_patterns(layer)
                }
                self.attention(layer, {n: v[j] for n, v in stats.items()}, patterns)
                self.attention_calls -= 1  # counted once, in defer_scores

    def flush(self) -> dict[str, np.ndarray]:
        """This step's rows as numpy arrays ([L, new, ...] or [new, ...]); clears the step."""
        rows: dict[str, torch.Tensor] = self._reduce_deferred() if self._raw else {}
        step, self._step = self._step, {}
        stacked, self._stacked = self._stacked, {}
        for name, (values, written) in stacked.items():
            expected = self.full_layers if name.endswith(".full") else self.layers
            if len(written) != len(expected):  # as stacking a missing layer would fail
                missing = sorted(set(expected) - written)
                raise RuntimeError(f"no {name} row for layers {missing} in this step")
            rows[name] = values
        for name, per_layer in step.items():
            if name == "embed.norm" or name.startswith("pattern."):
                rows[name] = per_layer[0]
            elif name.endswith(".full"):
                stacked = torch.stack([per_layer[layer] for layer in self.full_layers])
                rows[name] = stacked.to(self.full_dtype)
            else:
                rows[name] = torch.stack([per_layer[layer] for layer in self.layers])
        if self.watcher is not None:
            rows.update(self.watcher.flush())
        return {
            name: _to_numpy(t, name.endswith(".full") or name.startswith("watch.full."))
            for name, t in rows.items()
        }


def _change(
    x_in: torch.Tensor, x_out: torch.Tensor, in_norm: torch.Tensor, out_norm: torch.Tensor
) -> dict[str, torch.Tensor]:
    """How much each block changed the stream: ||x_out - x_in|| / ||x_in|| and cos(x_in, x_out)."""
    return {
        "delta": torch.linalg.vector_norm(x_out - x_in, dim=-1) / in_norm.clamp_min(1e-12),
        "cos": torch.linalg.vecdot(x_in, x_out) / (in_norm * out_norm).clamp_min(1e-12),
    }


def _to_numpy(t: torch.Tensor, full_row: bool = False) -> np.ndarray:
    if t.dtype in (torch.int32, torch.int64):
        return t.to(torch.int32).cpu().numpy()
    # full rows are float16 only where the spec asked (flush casts them); the rest is float32
    if t.dtype != torch.float32 and not (full_row and t.dtype == torch.float16):
        t = t.float()
    return t.cpu().numpy()


@contextmanager
def recording(
    anatomy: Anatomy,
    spec: CaptureSpec,
    intervener: Intervener | None = None,
    observer: Observer | None = None,
    model: torch.nn.Module | None = None,
) -> Iterator[Recorder]:
    """Hooks for `spec` on the model that `anatomy` describes; removed when the block ends.

    `model` (the whole model) is needed when `spec.watch` or `spec.watch_full` name modules
    (capture/watch.py): their patterns are resolved here, before the model runs, and a pattern
    matching nothing raises UsageError.

    `intervener` (capture/intervening.py) adds the hooks that ablate, patch and steer; they
    run before the recorder's, which records what flows on, and pause with the recorder.
    `observer` adds hooks that only look (capture/neuron_health.py, capture/gradients.py);
    they see what the intervened model computed and are removed with the others.
    """
    rec = Recorder(anatomy, spec)
    rec.intervener = intervener
    handles = []
    try:
        if intervener is not None:
            intervener.recorder = rec
            handles.extend(intervener.register(anatomy))
        if observer is not None:
            handles.extend(observer.register(anatomy))
        for layer in rec.layers:
            if "resid" in spec.sites or layer in rec.full_layers or spec.lens_positions != ():
                handles.append(
                    anatomy.blocks[layer].register_forward_hook(
                        rec.block_hook(layer), with_kwargs=True
                    )
                )
            if "attn" in spec.sites:
                handles.append(
                    anatomy.attention[layer].register_forward_hook(rec.site_hook("attn", layer))
                )
            if "mlp" in spec.sites:
                handles.append(
                    anatomy.mlp[layer].register_forward_hook(rec.site_hook("mlp", layer))
                )
            if "neurons" in spec.sites:
                handles.append(
                    anatomy.down_proj[layer].register_forward_pre_hook(rec.neuron_hook(layer))
                )
        if spec.watch or spec.watch_full:
            if model is None:
                raise ValueError("recording() needs the model to watch modules by name")
            from neuroscope_tui.capture.watch import Watcher

            rec.watcher = Watcher.for_spec(model, spec, rec.full_dtype, lambda: rec.paused)
            handles.extend(rec.watcher.register())
        yield rec
    finally:
        for h in handles:
            h.remove()

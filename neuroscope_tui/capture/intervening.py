"""Applying interventions: the hooks that ablate, patch and steer, registered by `recording()`.

An `Intervener` turns the typed descriptions of `capture/interventions.py` into writes on six
sites, each one tensor a hook sees (layer l):

    resid_in    the block's input (a pre-hook on the block): the residual stream before block l
    block_out   the block's output (first element of a tuple): the stream after block l
    attn_out    the attention module's output;  mlp_out  the MLP's output
    heads_in    the attention output projection's input [.., n_heads * d_head]
    neurons_in  the MLP down projection's input [.., d_mlp]

`recording(anatomy, spec, intervener)` registers its hooks before the recorder's (prepended),
so the recorder sees what flows on: the steered stream, the ablated neurons. Hooks never write
into the tensor they are given (the recorder may still hold it): they return a changed copy.
The run tells the intervener, before each forward, which absolute positions it covers
(`begin(start, n_new)`), so positions in an intervention are token positions of the run, and
a generated token's position is the number of tokens before it. A batched forward (a patching
sweep) gives each write a batch `row`; every row covers the same positions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from neuroscope_tui.capture.anatomy import Anatomy
from neuroscope_tui.capture.interventions import (
    Intervention,
    InterventionError,
    Patch,
    Steering,
    check_interventions,
)
from neuroscope_tui.capture.recorder import recording
from neuroscope_tui.trace import CaptureSpec, ModelInfo

SiteKey = tuple[str, int]  # (site, layer)


@dataclass
class Write:
    """One change to one site: zero it, write its prompt mean, copy a source's, or add."""

    site: str
    layer: int
    how: str  # "zero" | "mean" | "source" | "add"
    cols: slice | None = None  # the head's or neuron's columns; None = the whole vector
    positions: tuple[int, ...] | None = None  # absolute positions; None = every position
    source: str = ""  # the source prompt, for how "source"
    vector: torch.Tensor | None = None  # for how "add": alpha * direction
    row: int | None = None  # the batch row it applies to; None = every row

    @property
    def key(self) -> SiteKey:
        return (self.site, self.layer)


def writes_for(iv: Intervention, anatomy: Anatomy) -> list[Write]:
    """The writes that carry out `iv` on the model `anatomy` describes."""
    dh = anatomy.d_head
    if isinstance(iv, Steering):
        return [Write("block_out", iv.layer, "add", vector=torch.tensor(iv.direction) * iv.alpha)]
    cols = None
    if iv.site == "head":
        if anatomy.out_proj[iv.layer] is None:
            raise InterventionError(
                f"cannot find the attention output projection of layer {iv.layer} in "
                f"{anatomy.architecture}, so its heads cannot be ablated or patched"
            )
        cols = slice(iv.index * dh, (iv.index + 1) * dh)
    elif iv.site == "neuron":
        cols = slice(iv.index, iv.index + 1)
    site = {"head": "heads_in", "neuron": "neurons_in", "attn": "attn_out", "mlp": "mlp_out"}
    site["resid"] = "resid_in"
    if isinstance(iv, Patch):
        return [Write(site[iv.site], iv.layer, "source", cols, iv.positions, iv.source)]
    how = {"zero": "zero", "mean": "mean", "resample": "source"}[iv.mode]
    return [Write(site[iv.site], iv.layer, how, cols, iv.positions, iv.source)]


def sources_needed(writes: Sequence[Write]) -> dict[str, set[SiteKey]]:
    """Source prompt -> the sites whose activations it must provide."""
    out: dict[str, set[SiteKey]] = {}
    for w in writes:
        if w.how == "source":
            out.setdefault(w.source, set()).add(w.key)
    return out


class Intervener:
    """The writes of one run (or one batched forward), applied by hooks on their sites.

    In capture mode (`capture` given: the sites to keep) it writes nothing and keeps each
    site's activation of the first batch row instead, [T, width], for patches and resamples.
    """

    def __init__(
        self,
        writes: Sequence[Write] = (),
        sources: dict[str, dict[SiteKey, torch.Tensor]] | None = None,
        n_prompt: int | None = None,
        capture: set[SiteKey] | None = None,
    ):
        self.by_site: dict[SiteKey, list[tuple[int, Write]]] = {}
        for i, w in enumerate(writes):
            self.by_site.setdefault(w.key, []).append((i, w))
        self.sources = sources or {}
        self.n_prompt = n_prompt  # positions the mean ablations average over (None: all)
        self.capture = capture
        self.captured: dict[SiteKey, torch.Tensor] = {}
        self.means: dict[int, torch.Tensor] = {}  # write index -> [B, width] prompt mean
        self.start = 0
        self.n_new = 0
        self.recorder: Any = None  # a Recorder; while it is paused, nothing is written

    def begin(self, start: int, n_new: int) -> None:
        """The next forward covers absolute positions start .. start + n_new - 1."""
        self.start, self.n_new = start, n_new

    def sites(self) -> set[SiteKey]:
        return set(self.capture or ()) | set(self.by_site)

    # ---- the write itself ------------------------------------------------------------------

    def _local(self, positions: tuple[int, ...] | None, limit: int | None = None) -> list[int]:
        """Indices into this forward's positions for absolute `positions` (below `limit`)."""
        stop = self.start + self.n_new
        if limit is not None:
            stop = min(stop, limit)
        wanted = range(self.start, stop) if positions is None else positions
        return [p - self.start for p in wanted if self.start <= p < stop]

    def apply(self, key: SiteKey, x: torch.Tensor) -> torch.Tensor | None:
        """The site's new value (a changed copy of x), or None to leave it as it is."""
        if self.recorder is not None and self.recorder.paused:
            return None
        if self.n_new <= 0 or x.numel() % (self.n_new * x.shape[-1]):
            return None  # not a forward the run announced
        x3 = x.reshape(-1, self.n_new, x.shape[-1])  # [B, new, width]; OPT flattens B x T
        if self.capture is not None:
            if key in self.capture:
                self.captured[key] = x3[0].detach().clone()
            return None
        y: torch.Tensor | None = None
        for i, w in self.by_site.get(key, ()):
            cols = w.cols if w.cols is not None else slice(None)
            if w.how == "mean" and i not in self.means:
                if self.start != 0:
                    raise RuntimeError("a mean ablation needs the prompt's pass first")
                n = self.n_prompt or self.n_new
                self.means[i] = x3[:, :n, cols].float().mean(1)  # from x, never ablated
            limit = None
            if w.how == "source":
                src = self.sources[w.source][key]
                limit = src.shape[0]  # a shorter source leaves later positions alone
            idx = self._local(w.positions, limit)
            if not idx:
                continue
            if y is None:
                y = x3.clone()
            target = y if w.row is None else y[w.row : w.row + 1]
            if w.how == "zero":
                target[:, idx, cols] = 0
            elif w.how == "mean":
                target[:, idx, cols] = self.means[i][:, None, :].to(y.dtype)
            elif w.how == "source":
                rows = [self.start + j for j in idx]
                target[:, idx, cols] = src[rows][:, cols].to(y.dtype)
            else:  # add
                if w.vector.device != y.device or w.vector.dtype != y.dtype:
                    w.vector = w.vector.to(device=y.device, dtype=y.dtype)  # once, not per step
                target[:, idx, :] += w.vector
        return None if y is None else y.reshape(x.shape)

    # ---- hooks -----------------------------------------------------------------------------

    def register(self, anatomy: Anatomy) -> list[torch.utils.hooks.RemovableHandle]:
        """Register a hook on every site this intervener touches; return the handles (the
        caller removes them: `recording()` does, in its `finally`)."""
        handles = []
        for site, layer in sorted(self.sites()):
            key = (site, layer)
            if site == "resid_in":
                handles.append(
                    anatomy.blocks[layer].register_forward_pre_hook(
                        self._input_hook(key), with_kwargs=True, prepend=True
                    )
                )
                continue
            if site in ("heads_in", "neurons_in"):
                module = (anatomy.out_proj if site == "heads_in" else anatomy.down_proj)[layer]
                handles.append(module.register_forward_pre_hook(self._arg_hook(key), prepend=True))
                continue
            module = {
                "block_out": anatomy.blocks,
                "attn_out": anatomy.attention,
                "mlp_out": anatomy.mlp,
            }[site][layer]
            handles.append(module.register_forward_hook(self._output_hook(key), prepend=True))
        return handles

    def _input_hook(self, key: SiteKey):
        def hook(module, args, kwargs):
            if args and isinstance(args[0], torch.Tensor):
                new = self.apply(key, args[0])
                return None if new is None else ((new, *args[1:]), kwargs)
            new = self.apply(key, kwargs["hidden_states"])
            return None if new is None else (args, {**kwargs, "hidden_states": new})

        return hook

    def _arg_hook(self, key: SiteKey):
        def hook(module, args):
            new = self.apply(key, args[0])
            return None if new is None else (new, *args[1:])

        return hook

    def _output_hook(self, key: SiteKey):
        def hook(module, args, output):
            if isinstance(output, torch.Tensor):
                return self.apply(key, output)
            new = self.apply(key, output[0])
            return None if new is None else (new, *output[1:])

        return hook


EMPTY_SPEC = CaptureSpec(sites=(), head_scores=False, lens_positions=())


def forward_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The last position's logits [B, vocab] of one forward over ids [B, T], no cache."""
    try:
        out = model(input_ids=ids, use_cache=False, logits_to_keep=1)
    except TypeError:  # an architecture without logits_to_keep
        out = model(input_ids=ids, use_cache=False)
    return out.logits[:, -1].float()


@torch.no_grad()
def record_sites(
    bundle: Any, ids: list[int], sites: set[SiteKey]
) -> tuple[dict[SiteKey, torch.Tensor], torch.Tensor]:
    """One plain forward of `ids`: ({site: activation [T, width]}, last logits [vocab])."""
    capturer = Intervener(capture=set(sites))
    capturer.begin(0, len(ids))
    inputs = torch.tensor([ids], device=torch.device(bundle.device))
    with recording(bundle.anatomy, EMPTY_SPEC, capturer):
        logits = forward_logits(bundle.model, inputs)
    return capturer.captured, logits[0]


def prepare_intervener(
    bundle: Any,
    interventions: Sequence[Intervention],
    ids: list[int],
    info: ModelInfo,
    tokenize: Callable[[str], list[int]],
) -> Intervener | None:
    """The intervener for a run of `ids` (None when nothing is enabled): checks the
    interventions against the model, tokenizes each source prompt (same token length as the
    run's prompt, else InterventionError) and records its activations with one forward."""
    check_interventions(interventions, info)
    writes = [w for iv in interventions if iv.enabled for w in writes_for(iv, bundle.anatomy)]
    if not writes:
        return None
    sources = {}
    for text, sites in sources_needed(writes).items():
        src_ids = tokenize(text)
        if len(src_ids) != len(ids):
            raise InterventionError(
                f"the second prompt {text[:40]!r} is {len(src_ids)} tokens but the prompt is "
                f"{len(ids)}; patching and resampling need prompts of the same token length"
            )
        sources[text] = record_sites(bundle, src_ids, sites)[0]
    return Intervener(writes, sources, n_prompt=len(ids))


@torch.no_grad()
def difference_of_means(
    bundle: Any, first: Sequence[list[int]], second: Sequence[list[int]], layer: int
) -> torch.Tensor:
    """mean(A) - mean(B) of the residual stream after block `layer` at each prompt's last
    token [d_model] (float32, on the CPU): a steering direction from two sets of prompts."""

    def mean(prompts: Sequence[list[int]]) -> torch.Tensor:
        rows = [record_sites(bundle, ids, {("block_out", layer)})[0] for ids in prompts]
        return torch.stack([r[("block_out", layer)][-1].float().cpu() for r in rows]).mean(0)

    return mean(first) - mean(second)

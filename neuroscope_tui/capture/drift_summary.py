"""What drift keeps of one model: summaries of the prompt set, from a live model or a snapshot.

`summarise_model(bundle, prompts)` runs every prompt through the ordinary capture (`run()`,
no generation, each prompt's first SUMMARY_TOKENS tokens) and keeps: the residual stream
after every block [L, S, D] over the set's tokens, head score means [L, H], MLP neuron means
[L, N], next-token log-probabilities per prompt [T, V] and the logit lens's top-1 [L, sum T].
`summarise_snapshot(trace, n)` takes what a saved run holds of the same (no log-probabilities:
a snapshot keeps only the top-k of the next-token distribution).

Representation measures (rows, head and neuron means) skip each prompt's first position: the
attention sink's massive activations there (thousands of times the median on SmolLM2) would
swamp every other token. Output measures (log-probs, lens) keep every position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from neuroscope_tui.analysis.drift_record import HEAD_SCORE_NAMES
from neuroscope_tui.analysis.heads import (
    HeadScores,
    classify,
    normalised_entropy,
    query_masks,
    type_letters,
)
from neuroscope_tui.capture.lens import readout
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.trace import CaptureSpec, Trace

SUMMARY_TOKENS = 128  # each prompt's first tokens: drift needs the same tokens, not long ones
SPEC = CaptureSpec(full_layers=None, head_scores=True, top_k=5, lens_positions=None)
Progress = Callable[[float, str], None]


@dataclass
class ModelSummary:
    """One model's summaries (see the module docstring); None where the input lacks them,
    with the reason in `missing` (measure name -> why)."""

    ids: list[list[int]]
    resid: np.ndarray | None
    heads: dict[str, np.ndarray] | None
    neurons: np.ndarray | None
    logp: list[np.ndarray] | None
    lens_top1: np.ndarray | None
    trace: Trace
    source: str
    info: dict[str, Any] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


class _Sums:
    """Running sums over prompts: residual rows, head scores, neuron activations, lens."""

    def __init__(self) -> None:
        self.ids: list[list[int]] = []
        self.resid: list[np.ndarray] = []
        self.lens: list[np.ndarray] = []
        self.head_sums: dict[str, Any] = dict.fromkeys(HEAD_SCORE_NAMES, 0.0)
        self.head_counts: dict[str, int] = dict.fromkeys(HEAD_SCORE_NAMES, 0)
        self.neuron_sum: Any = 0.0
        self.n_rows = 0

    def add(self, trace: Trace, n: int, with_heads: bool, with_neurons: bool) -> None:
        """Add positions [0, n) of `trace` (rows, heads and neurons as it holds them)."""
        ids = list(trace.token_ids[:n])
        self.ids.append(ids)
        keep = slice(1, n) if n > 1 else slice(0, n)
        if trace.has("resid.full"):
            self.resid.append(np.array(trace.get("resid.full")[:, keep], dtype=np.float32))
        if with_heads:
            masks = query_masks(ids)
            for name in HEAD_SCORE_NAMES:
                values = trace.get(f"heads.{name}")[:, :n].astype(np.float64)  # [L, n, H]
                if name == "entropy":
                    values = normalised_entropy(values, token_axis=1)
                if masks[name].any():
                    self.head_sums[name] = self.head_sums[name] + values[:, masks[name]].sum(1)
                    self.head_counts[name] += int(masks[name].sum())
        if with_neurons:
            neurons = trace.get("neurons.full")[:, keep].astype(np.float64)  # [L, n', N]
            self.neuron_sum = self.neuron_sum + neurons.sum(axis=1)
            self.n_rows += neurons.shape[1]

    def heads(self, n_layers: int, n_heads: int) -> dict[str, np.ndarray]:
        nan = np.full((n_layers, n_heads), np.nan, np.float32)
        return {
            name: (np.asarray(self.head_sums[name]) / count).astype(np.float32) if count else nan
            for name, count in self.head_counts.items()
        }


def _norm_device(anatomy: Any) -> torch.device:
    """Where the final norm runs (under a device map it may sit apart from the unembedding)."""
    params = list(anatomy.final_norm.parameters()) if anatomy.final_norm is not None else []
    return params[0].device if params else anatomy.unembed.weight.device


def _log_probs(bundle: LoadedModel, last_rows: np.ndarray) -> np.ndarray:
    """Next-token log-probabilities [T, V] from the last block's output rows [T, D], through
    the model's own final norm and unembedding (exactly what its forward pass computes)."""
    anatomy = bundle.anatomy
    weight = anatomy.unembed.weight
    x = torch.from_numpy(np.ascontiguousarray(last_rows)).to(_norm_device(anatomy), weight.dtype)
    cfg = bundle.model.config
    softcap = getattr(
        getattr(cfg, "get_text_config", lambda: cfg)(), "final_logit_softcapping", None
    )
    with torch.inference_mode():
        return readout(anatomy, x, softcap).float().cpu().numpy()


_TOP1_ROWS = 256  # (layer, position) rows read out per product, as the lens does


def lens_top1(bundle: LoadedModel, rows: np.ndarray) -> np.ndarray:
    """The logit lens's top-1 token [L, T] int32 of residual rows [L, T, D].

    The capture's lens (capture/lens.py) also computes the softmax, KL, ranks and top-k of
    every row; drift needs only the top token, the argmax of the logits (soft-capping is
    monotonic), which saves about half the lens's time on SmolLM2.
    """
    anatomy = bundle.anatomy
    weight = anatomy.unembed.weight
    n_layers, n_tokens, width = rows.shape
    flat = torch.from_numpy(np.ascontiguousarray(rows).reshape(n_layers * n_tokens, width))
    out = np.empty(n_layers * n_tokens, np.int32)
    device = _norm_device(anatomy)
    with torch.inference_mode():
        for start in range(0, flat.shape[0], _TOP1_ROWS):
            x = flat[start : start + _TOP1_ROWS].to(device, weight.dtype)
            h = anatomy.final_norm(x) if anatomy.final_norm is not None else x
            top = anatomy.unembed(h.to(weight.device)).argmax(-1)
            out[start : start + len(x)] = top.cpu().numpy()
    return out.reshape(n_layers, n_tokens)


def summarise_model(
    bundle: LoadedModel,
    prompts: Sequence[str],
    progress: Progress | None = None,
    *,
    chat: bool = False,
) -> ModelSummary:
    """One capture of the prompt set through `run()`: the summaries drift compares."""
    options = GenerationOptions(
        max_new_tokens=0,
        too_long="truncate",
        stop_at_eos=False,
        chat=chat,
        max_prompt_tokens=SUMMARY_TOKENS,
    )
    sums = _Sums()
    logp = []
    first: Trace | None = None
    for i, prompt in enumerate(prompts):
        # the first prompt's trace is kept for the scan with its whole lens; the others only
        # need the lens's top-1, computed below from the kept rows
        trace = run(bundle, prompt, SPEC, options, lens_later=i > 0)
        first = first or trace
        sums.add(trace, trace.n_tokens, with_heads=True, with_neurons=True)
        rows = trace.get("resid.full")  # [L, T, D]
        sums.lens.append(trace.get("lens.top_ids")[:, :, 0] if i == 0 else lens_top1(bundle, rows))
        logp.append(_log_probs(bundle, rows[-1]))
        if progress is not None:
            progress((i + 1) / len(prompts), f"prompt {i + 1}/{len(prompts)}")
    assert first is not None  # prompts is not empty
    a = bundle.anatomy
    return ModelSummary(
        ids=sums.ids,
        resid=np.concatenate(sums.resid, axis=1),
        heads=sums.heads(a.n_layers, a.n_heads),
        neurons=(sums.neuron_sum / max(sums.n_rows, 1)).astype(np.float32),
        logp=logp,
        lens_top1=np.concatenate(sums.lens, axis=1).astype(np.int32),
        trace=first,
        source=bundle.source,
        info=first.model.to_dict(),
    )


def summarise_snapshot(trace: Trace, n_tokens: int) -> ModelSummary:
    """The same summaries from a saved run's first `n_tokens` positions, as far as it holds
    them: full rows of every layer, every neuron, head scores, a computed lens."""
    info = trace.model
    # the prompt's tokens only: the models run no more than the prompt
    n = min(n_tokens, trace.n_prompt or trace.n_tokens)
    missing: dict[str, str] = {
        "kl": "a snapshot keeps only the top-k of the next-token distribution, KL needs all of it"
    }
    rows = trace.arrays.get("resid.full")
    every_layer = trace.spec.layers is None and rows is not None and rows.shape[0] == info.n_layers
    if not every_layer:
        missing["cka"] = missing["cos"] = (
            "the snapshot keeps no full residual rows of every layer (capture with full rows)"
        )
    with_heads = all(trace.has(f"heads.{name}") for name in HEAD_SCORE_NAMES) and every_layer
    if not with_heads:
        missing["heads"] = "the snapshot holds no head scores of every layer"
    neurons = trace.arrays.get("neurons.full")
    with_neurons = (
        every_layer
        and neurons is not None
        and neurons.shape[0] == info.n_layers
        and neurons.shape[2] == info.d_mlp
    )
    if not with_neurons:
        missing["neurons"] = "the snapshot keeps no full MLP neurons of every neuron and layer"
    lens = trace.arrays.get("lens.top_ids")
    lens_ok = every_layer and lens is not None and bool(np.all(lens[:, :n, 0] >= 0))
    if not lens_ok:
        missing["lens"] = "the snapshot's logit lens was not computed at every position"
    sums = _Sums()
    sums.add(trace, n, with_heads=with_heads, with_neurons=with_neurons)
    return ModelSummary(
        ids=sums.ids,
        resid=sums.resid[0] if every_layer else None,
        heads=sums.heads(info.n_layers, info.n_heads) if with_heads else None,
        neurons=(sums.neuron_sum / max(sums.n_rows, 1)).astype(np.float32)
        if with_neurons
        else None,
        logp=None,
        lens_top1=lens[:, :n, 0].astype(np.int32) if lens_ok and lens is not None else None,
        trace=trace,
        source="",
        info=info.to_dict(),
        missing=missing,
    )


def head_type_letters(heads: dict[str, np.ndarray] | None) -> dict[str, str]:
    """ "layer.head" -> type letters, classified from score means [L, H] (no patterns: no
    redundant pairs); {} without head scores."""
    if heads is None:
        return {}
    n_layers, n_heads = heads["prev"].shape
    scores = HeadScores(
        list(range(n_layers)), n_heads, {k: v.astype(np.float64) for k, v in heads.items()}
    )
    return {f"{l}.{h}": type_letters(t) for (l, h), t in classify(scores).items()}

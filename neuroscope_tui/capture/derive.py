"""Derived figures computed after the step that captured their inputs: the logit lens.

The lens reads every layer's stream out through the final norm and the [vocab, d_model]
unembedding: on SmolLM2 that is six times the model's own arithmetic per token, so computing
it at every generation step kept the live scan at a quarter of plain `generate`'s speed. A run
with `lens_later` (the app's live scan) keeps the full residual stream of every layer (which it
keeps anyway for the projections) and leaves the lens arrays at their "not computed" value
(-1 ids, NaN figures) for the positions asked; this module fills them in from those rows:

- `derive_lens(bundle, trace, positions, rows)` for what is on screen (the detail panel's cell,
  the lens view's columns), as a model task between two generation steps;
- `complete_trace(bundle, trace)` for everything still missing: the app runs it when the worker
  is idle after a run and before saving, so a snapshot holds what an eager capture holds.

Where the trace does not keep the stream (a layer subset without the last layer, or a run too
long for full rows), one forward pass over the tokens recomputes it. Results equal the eager
lens of `run()` (same modules, same rows, same `logit_lens`). torch is imported only inside
the functions that run the model: the app reads `missing_lens` without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.trace import CaptureSpec, Trace

LENS_ARRAYS = ("lens.top_ids", "lens.top_probs", "lens.kl", "lens.pred_rank", "lens.pred_prob")

# Positions derived per lens product when completing a whole trace: a bounded chunk, so the
# worker can hand the model to a new run or a view's task between chunks.
COMPLETE_CHUNK = 32


def lens_placeholders(n_layers: int, n_new: int, top_k: int) -> dict[str, np.ndarray]:
    """Lens rows [L, new, ...] meaning "not computed": -1 ids and ranks, NaN figures."""
    return {
        "lens.top_ids": np.full((n_layers, n_new, top_k), -1, np.int32),
        "lens.top_probs": np.full((n_layers, n_new, top_k), np.nan, np.float32),
        "lens.kl": np.full((n_layers, n_new), np.nan, np.float32),
        "lens.pred_rank": np.full((n_layers, n_new), -1, np.int32),
        "lens.pred_prob": np.full((n_layers, n_new), np.nan, np.float32),
    }


def final_softcap(model) -> float | None:
    """The model's final logit soft-capping (Gemma 2), which the lens applies too."""
    config = getattr(model.config, "get_text_config", lambda: model.config)()
    return getattr(config, "final_logit_softcapping", None)


def lens_asked(trace: Trace) -> np.ndarray:
    """[T] bool: the positions whose lens the run's spec asks for."""
    asked = trace.spec.lens_positions
    if asked is None:
        return np.ones(trace.n_tokens, bool)
    out = np.zeros(trace.n_tokens, bool)
    wanted = [p for p in asked if 0 <= p < trace.n_tokens]
    out[wanted] = True
    return out


def missing_lens(trace: Trace) -> np.ndarray:
    """[L, T] bool: (heatmap row, position) cells the spec asks for whose lens is not computed.

    A computed cell always has a top-1 id >= 0; a trace without lens arrays misses nothing
    (the lens was turned off).
    """
    if not trace.has("lens.top_ids"):
        return np.zeros((len(trace.layers()), trace.n_tokens), bool)
    ids = trace.get("lens.top_ids")[:, : trace.n_tokens, 0]
    return (ids < 0) & lens_asked(trace)[None, : ids.shape[1]]


def missing_positions(trace: Trace) -> list[int]:
    """Positions with at least one layer's lens still to compute."""
    return [int(t) for t in np.flatnonzero(missing_lens(trace).any(axis=0))]


def spec_keeps_stream(spec: CaptureSpec, n_layers: int) -> bool:
    """Whether a run with `spec` keeps (`resid.full`) the stream of every layer it records,
    the model's last layer included: all the lens and the final distribution are read from."""
    layers = list(range(n_layers)) if spec.layers is None else list(spec.layers)
    full = spec.full_layers
    return bool(layers) and layers[-1] == n_layers - 1 and (full is None or list(full) == layers)


def stream_kept(trace: Trace) -> bool:
    """Whether the trace holds the rows `derive_lens` reads, so it needs no forward pass."""
    return (
        spec_keeps_stream(trace.spec, trace.n_layers)
        and trace.has("resid.full")
        and trace.get("resid.full").shape[0] == len(trace.layers())
    )


def _streams(bundle: LoadedModel, trace: Trace, positions: list[int]) -> list[Any]:
    """Every model layer's stream after its block at `positions` -> per layer [n, d_model]
    torch tensors (call under torch.no_grad())."""
    import torch

    device = torch.device(bundle.device)
    if stream_kept(trace):
        full = trace.get("resid.full")  # [L, T, D] float32
        dtype = bundle.anatomy.unembed.weight.dtype
        return [torch.from_numpy(np.ascontiguousarray(full[j, positions])).to(device, dtype)
                for j in range(full.shape[0])]  # fmt: skip
    # Not kept: one forward pass over the tokens up to the last position asked.
    anatomy = bundle.anatomy
    got: dict[int, Any] = {}
    index = torch.tensor(positions, device=device)

    def keep(layer: int):
        def hook(module, args, output):
            x = output[0] if isinstance(output, (tuple, list)) else output
            x = x[0] if x.dim() == 3 else x
            got[layer] = x[index.to(x.device)].detach()

        return hook

    from neuroscope_tui.capture.side_by_side import replaying

    handles = [block.register_forward_hook(keep(i)) for i, block in enumerate(anatomy.blocks)]
    try:
        # a run with interventions saw an intervened stream: recompute that one (over the
        # whole prompt at least, which a mean ablation averages over)
        stop = max(positions) + 1
        if trace.interventions:
            stop = max(stop, trace.n_prompt)
        ids = torch.tensor([trace.token_ids[:stop]], device=device)
        with replaying(bundle, trace, ids.shape[1]):
            try:  # the full-vocabulary logits of every position are not needed
                bundle.model(input_ids=ids, use_cache=False, logits_to_keep=1)
            except TypeError:
                bundle.model(input_ids=ids, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return [got[i] for i in range(anatomy.n_layers)]


def derive_lens(
    bundle: LoadedModel,
    trace: Trace,
    positions: Iterable[int],
    rows: Sequence[int] | None = None,
) -> int:
    """Compute the lens at `positions` for heatmap `rows` (None: every row) into the trace's
    lens arrays, in place; returns how many cells it filled.

    The model's final distribution at a position is the last layer's stream read out the
    same way (that is what the model's logits are), so the last layer's KL is exactly 0.
    """
    import torch

    with torch.no_grad():
        return _derive_lens(bundle, trace, positions, rows)


def _derive_lens(bundle, trace: Trace, positions: Iterable[int], rows) -> int:
    import torch

    from neuroscope_tui.capture.lens import logit_lens

    if not trace.has("lens.top_ids"):
        return 0
    positions = sorted({int(p) for p in positions if 0 <= int(p) < trace.n_tokens})
    if not positions:
        return 0
    layers = trace.layers()
    rows = list(range(len(layers))) if rows is None else sorted(set(rows))
    streams = _streams(bundle, trace, positions)
    keys = layers if stream_kept(trace) else range(len(streams))
    by_layer = dict(zip(keys, streams, strict=True))
    final = by_layer[trace.n_layers - 1]
    softcap = final_softcap(bundle.model)
    anatomy = bundle.anatomy
    head = anatomy.final_norm(final) if anatomy.final_norm is not None else final
    final_logits = anatomy.unembed(head.to(anatomy.unembed.weight.device)).float()
    if softcap:
        final_logits = torch.tanh(final_logits / softcap) * softcap
    resid = [by_layer[layers[r]] for r in rows]
    got = logit_lens(anatomy, resid, final_logits, trace.spec.top_k, softcap)
    cells = np.ix_(rows, positions)
    for name in LENS_ARRAYS:
        trace.arrays[name][cells] = got[name]
    _remember(bundle, trace, got["lens.top_ids"])
    return len(rows) * len(positions)


def _remember(bundle: LoadedModel, trace: Trace, ids: np.ndarray) -> None:
    """Decode new top-k ids into notes["id_text"], so `view` mode shows them without a model."""
    known = trace.notes.setdefault("id_text", {})
    for i in np.unique(ids):
        key = str(int(i))
        if int(i) >= 0 and key not in known:
            known[key] = bundle.tokenizer.decode([int(i)])


def complete_trace(bundle: LoadedModel, trace: Trace, chunk: int = COMPLETE_CHUNK) -> Trace:
    """Fill in every derived figure the run left for later (the lens at every position its
    spec asks for), in place, and return the trace. Call it with the model's lock held, before
    a trace is saved; a trace with nothing missing is returned at once."""
    while complete_some(bundle, trace, chunk):
        pass
    return trace


def complete_some(bundle: LoadedModel, trace: Trace, chunk: int = COMPLETE_CHUNK) -> int:
    """Derive the lens for the first `chunk` positions still missing it; returns how many
    positions it did (0 when the trace is complete)."""
    todo = missing_positions(trace)[:chunk]
    if todo:
        derive_lens(bundle, trace, todo)
    return len(todo)

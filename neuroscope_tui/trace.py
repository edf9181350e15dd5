"""The record of one run: tokens, model metadata and numpy arrays indexed [layer, token, ...].

A Trace is what flows from the capture worker to every analysis, widget and snapshot. It holds
no torch types, so everything downstream of capture (analysis, tui, `view`) runs without torch.

Arrays grow one token at a time during generation: `append` takes the new token's rows and
concatenates along the token axis. Array names and shapes (L = layers, T = tokens, H = heads,
K = top-k, D = d_model, N = d_mlp):

    resid.norm / resid.max_abs / resid.mean / resid.zero_frac   [L, T]  stream after block l
    resid.delta        [L, T]  ||x_out - x_in|| / ||x_in||, how much block l changed the stream
    resid.cos          [L, T]  cos(x_in, x_out)
    embed.norm         [T]     ||x_in|| of block 0 (the embeddings)
    attn.norm / attn.max_abs / attn.mean / attn.zero_frac       [L, T]  attention output
    mlp.norm / mlp.max_abs / mlp.mean / mlp.zero_frac           [L, T]  MLP output
    neurons.zero_frac  [L, T]  fraction of near-zero MLP neurons (the down projection's input)
    neurons.top_idx    [L, T, K] int32, neurons.top_val [L, T, K]  largest |activation| neurons
    heads.entropy      [L, T, H]  attention entropy of query t (nats)
    heads.first / heads.prev / heads.self  [L, T, H]  weight on key 0, on t-1, on t
    heads.dup          [L, T, H]  weight on earlier keys holding the same token id
    heads.induction    [L, T, H]  weight on keys j whose previous token equals token t
    pattern.{l}.{h}    [T, T]   full attention rows of head h at layer l (lower triangle)
    resid.full         [L, T, D]  full residual vectors, for `spec.full_layers` (see meta)
    neurons.full       [L, T, N]  full MLP neuron activations, for `spec.full_layers`
    logits.top_ids     [T, K] int32, logits.top_probs [T, K]  the model's own next-token top-k
    lens.top_ids       [L, T, K] int32, lens.top_probs [L, T, K]  logit lens per layer
    lens.kl            [L, T]  KL(final || layer) of the logit-lens distributions (nats)
    lens.pred_rank     [L, T] int32  rank at layer l of the model's final top-1 token (0 = top)
    lens.pred_prob     [L, T]  probability at layer l of the model's final top-1 token
    watch.norm / watch.max_abs / watch.mean / watch.zero_frac   [M, T]  output of each module
                       `--watch` names (M = len(notes["watch_modules"]), in that order)
    watch.full.{m}     [T, W]  full output rows of watched module m (flattened past the token
                       axis), for the modules `spec.watch_full` names

Positions the lens was not asked for hold -1 ids and NaN values. `docs/snapshot-format.md`
is the user-facing account of the same table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

TRACE_VERSION = 1

SUMMARY_STATS = ("norm", "max_abs", "mean", "zero_frac")
HEAD_SCORES = ("entropy", "first", "prev", "self", "dup", "induction")
SITES = ("resid", "attn", "mlp", "neurons")
# trace.notes key: why a run has no head scores or patterns (a backend that cannot see the
# attention probabilities says so here, and the heads view shows it)
HEADS_MISSING_NOTE = "heads_missing"


@dataclass
class CaptureSpec:
    """What a run records: which sites, which layers, and how much of each.

    `layers` None means every layer. `full_layers` are the layers whose full vectors are kept
    (residual stream, and MLP neurons when "neurons" is a site); None means every layer in
    `layers`, () means none. `pattern_heads` are (layer, head) pairs whose full attention rows
    are kept. `lens_positions` None means the logit lens for every position; () turns it off.
    `near_zero` is the |x| threshold under which an entry counts as near-zero.

    Sampling (to fit a memory budget, or by choice): `layers` may hold every k-th layer only;
    `neuron_subset` names the MLP neurons (columns of `neurons.full`) kept, None for all;
    `full_neurons` False keeps no full neuron rows at all (only the top-k per token);
    `neuron_sampling` says how the subset was chosen ("random:512:0", "fixed", "top:32");
    `full_dtype` is how full rows are stored ("float32" or "float16").

    Watched modules (capture/watch.py): `watch` are glob patterns over the model's
    `named_modules()` whose outputs get per-token summaries; `watch_full` are patterns whose
    matches also keep their full output rows (and are watched too).
    """

    sites: tuple[str, ...] = SITES
    layers: tuple[int, ...] | None = None
    full_layers: tuple[int, ...] | None = ()
    head_scores: bool = True
    pattern_heads: tuple[tuple[int, int], ...] = ()
    top_k: int = 10
    lens_positions: tuple[int, ...] | None = None
    near_zero: float = 1e-2
    neuron_subset: tuple[int, ...] | None = None
    full_neurons: bool = True
    neuron_sampling: str = ""
    full_dtype: str = "float32"
    watch: tuple[str, ...] = ()
    watch_full: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "sites": list(self.sites),
            "layers": None if self.layers is None else list(self.layers),
            "full_layers": None if self.full_layers is None else list(self.full_layers),
            "head_scores": self.head_scores,
            "pattern_heads": [list(p) for p in self.pattern_heads],
            "top_k": self.top_k,
            "lens_positions": None if self.lens_positions is None else list(self.lens_positions),
            "near_zero": self.near_zero,
            "neuron_subset": None if self.neuron_subset is None else list(self.neuron_subset),
            "full_neurons": self.full_neurons,
            "neuron_sampling": self.neuron_sampling,
            "full_dtype": self.full_dtype,
            "watch": list(self.watch),
            "watch_full": list(self.watch_full),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaptureSpec:
        def tup(v: Any) -> tuple[int, ...] | None:
            return None if v is None else tuple(int(x) for x in v)

        return cls(
            sites=tuple(d.get("sites", SITES)),
            layers=tup(d.get("layers")),
            full_layers=tup(d.get("full_layers", ())),
            head_scores=bool(d.get("head_scores", True)),
            pattern_heads=tuple((int(a), int(b)) for a, b in d.get("pattern_heads", [])),
            top_k=int(d.get("top_k", 10)),
            lens_positions=tup(d.get("lens_positions")),
            near_zero=float(d.get("near_zero", 1e-2)),
            # keys added with sampling: an older snapshot has none and sampled nothing
            neuron_subset=tup(d.get("neuron_subset")),
            full_neurons=bool(d.get("full_neurons", True)),
            neuron_sampling=str(d.get("neuron_sampling", "")),
            full_dtype="float16" if d.get("full_dtype") == "float16" else "float32",
            # keys added with watched modules: an older snapshot watched nothing
            watch=tuple(str(p) for p in d.get("watch", ())),
            watch_full=tuple(str(p) for p in d.get("watch_full", ())),
        )

    def sampling_notes(self, n_layers: int, d_mlp: int = 0) -> list[str]:
        """What this spec leaves out, one phrase each ([] when it keeps everything)."""
        notes = []
        if self.layers is not None and len(self.layers) < n_layers:
            notes.append(f"{len(self.layers)} of {n_layers} layers sampled")
        if "neurons" in self.sites and not self.full_neurons:
            notes.append(f"no full MLP neurons (top {self.top_k} per token only)")
        elif self.neuron_subset is not None:
            of = f" of {d_mlp}" if d_mlp else ""
            how = f" ({self.neuron_sampling})" if self.neuron_sampling else ""
            notes.append(f"{len(self.neuron_subset)}{of} MLP neurons kept{how}")
        if self.full_dtype == "float16":
            notes.append("full rows stored as float16")
        return notes


@dataclass
class ModelInfo:
    """What a Trace needs to know about the model that produced it."""

    name: str
    architecture: str = ""
    revision: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    n_layers: int = 0
    n_heads: int = 0
    n_kv_heads: int = 0
    d_model: int = 0
    d_head: int = 0
    d_mlp: int = 0
    vocab_size: int = 0
    context_length: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Trace:
    """One run: tokens (prompt then generated), the spec, model metadata and the arrays.

    `token_ids[t]` and `token_text[t]` describe position t; positions `< n_prompt` are the
    prompt. `arrays` maps the names in this module's docstring to numpy arrays whose token
    axis is axis 1 for [L, T, ...] arrays and axis 0 for [T, ...] arrays (and both axes of a
    pattern). `extras` holds analysis results saved with the snapshot (projections,
    attributions), keyed by name, each a numpy array, plus JSON-able notes in `notes`.
    """

    model: ModelInfo
    spec: CaptureSpec = field(default_factory=CaptureSpec)
    token_ids: list[int] = field(default_factory=list)
    token_text: list[str] = field(default_factory=list)
    n_prompt: int = 0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    prompt: str = ""
    finished: bool = False
    stop_reason: str = ""
    version: int = TRACE_VERSION
    # what was done to the model (capture/interventions.py `intervention_to_dict`), in order
    interventions: list[dict[str, Any]] = field(default_factory=list)
    # Growth buffers with spare room on the token axis; `arrays` holds views of their filled
    # part. Appending a token then costs its own rows, not a copy of the whole trace.
    _buffers: dict[str, np.ndarray] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    # ---- shape -----------------------------------------------------------------------------

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def n_generated(self) -> int:
        return self.n_tokens - self.n_prompt

    @property
    def n_layers(self) -> int:
        return self.model.n_layers

    @property
    def n_heads(self) -> int:
        return self.model.n_heads

    @property
    def generated_text(self) -> str:
        return "".join(self.token_text[self.n_prompt :])

    def layers(self) -> list[int]:
        """The layer indices the trace holds rows for (all layers unless the spec chose some)."""
        if self.spec.layers is None:
            return list(range(self.n_layers))
        return list(self.spec.layers)

    def has(self, name: str) -> bool:
        return name in self.arrays

    def get(self, name: str) -> np.ndarray:
        """The array called `name`; KeyError names what the trace does hold."""
        try:
            return self.arrays[name]
        except KeyError:
            held = ", ".join(sorted(self.arrays)) or "nothing"
            raise KeyError(f"this trace has no array {name!r} (it holds {held})") from None

    # ---- growth ----------------------------------------------------------------------------

    @staticmethod
    def token_axis(name: str) -> int:
        """Which axis of array `name` is the token axis."""
        if name.startswith(("logits.", "embed.", "watch.full.")):
            return 0
        return 1

    def append(
        self, token_ids: list[int], token_text: list[str], rows: dict[str, np.ndarray]
    ) -> None:
        """Add positions: their tokens and, per array, their rows along the token axis.

        Pattern arrays (`pattern.l.h`) take the new query rows [new, T_total] and grow in
        both axes (earlier rows are padded with zeros: a causal model never looks ahead).
        """
        start = len(self.token_ids)
        # Every array covers every token, or an analysis of the trace would index past the end
        # of the shorter one: an array left without rows is refused before anything changes.
        if start and (missing := sorted(n for n in self.arrays if n not in rows)):
            raise ValueError(f"no rows for {', '.join(missing)} at position {start}")
        self.token_ids.extend(int(t) for t in token_ids)
        self.token_text.extend(token_text)
        total = len(self.token_ids)
        for name, new in rows.items():
            new = np.asarray(new)
            if name.startswith("pattern."):
                self.arrays[name] = self._grow_pattern(name, new, start, total)
            else:
                self.arrays[name] = self._grow(name, new, start, total)

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: np.dtype, axes: tuple[int, ...]):
        """The growth buffer for `name`, with room for `shape` along `axes` (doubling)."""
        buf = self._buffers.get(name)
        if buf is not None and buf.dtype == dtype and all(buf.shape[a] >= shape[a] for a in axes):
            return buf
        cap = list(shape)
        for a in axes:
            cap[a] = max(16, 2 * shape[a])
        fresh = np.zeros(cap, dtype=dtype)
        old = self.arrays.get(name)
        if old is not None and old.size:
            fresh[tuple(slice(0, n) for n in old.shape)] = old
        self._buffers[name] = fresh
        return fresh

    def _grow(self, name: str, new: np.ndarray, start: int, total: int) -> np.ndarray:
        """Write rows for positions start..total along the token axis; return the filled view."""
        axis = self.token_axis(name)
        shape = list(new.shape)
        shape[axis] = total
        old = self.arrays.get(name)
        if old is not None and old.shape[axis] != start:
            raise ValueError(f"array {name!r} has {old.shape[axis]} positions, expected {start}")
        buf = self._buffer(name, tuple(shape), new.dtype, (axis,))
        index = [slice(None)] * buf.ndim
        index[axis] = slice(start, total)
        buf[tuple(index)] = new
        index[axis] = slice(0, total)
        for a in range(buf.ndim):
            if a != axis:
                index[a] = slice(0, shape[a])
        return buf[tuple(index)]

    def _grow_pattern(self, name: str, new_rows: np.ndarray, start: int, total: int) -> np.ndarray:
        """Add query rows [new, total] to a square pattern -> [total, total] (zeros above the
        diagonal: a causal model never looks ahead)."""
        buf = self._buffer(name, (total, total), np.dtype(np.float32), (0, 1))
        n_new = new_rows.shape[0]
        buf[total - n_new : total, : new_rows.shape[1]] = new_rows
        return buf[:total, :total]

    def summary(self) -> dict[str, Any]:
        """A JSON-able description: model, prompt, generated text, arrays with shapes."""
        return {
            "version": self.version,
            "model": self.model.to_dict(),
            "prompt": self.prompt,
            "generated": self.generated_text,
            "n_prompt": self.n_prompt,
            "n_generated": self.n_generated,
            "stop_reason": self.stop_reason,
            "interventions": list(self.interventions),
            "arrays": {
                k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                for k, v in sorted({**self.arrays, **self.extras}.items())
            },
        }

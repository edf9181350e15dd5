"""How much memory a capture will take, estimated before it runs, and a spec that fits a budget.

Pure arithmetic over the model's shape (`ModelInfo`), the prompt length, the token limit and
the `CaptureSpec`; no torch at import (only `free_bytes` on CUDA and `weight_bytes` touch
torch objects they are handed or import lazily). The figures, all in bytes:

- weights: the loaded model's real parameter and buffer bytes, or (from a config alone)
  the parameter count times the dtype's bytes;
- kv_cache: layers x kv_heads x d_head x 2 (K and V) x tokens x dtype bytes;
- activations: the peak of the prompt's forward pass, which dominates a run (a generated
  token's pass is one row): the logits [T, vocab] in the model's dtype, the block outputs
  the capture holds for the lens and full rows (and the prompt's pattern rows), the largest
  of what works beside them one after another (the MLP's working rows, the output top-k's
  softmax a block of positions at a time, the lens's stacked rows and one chunk of [rows,
  vocab] products), and on CPU the heap the pass leaves fragmented;
- trace: what the Trace keeps on the host for every token: summaries, head scores, lens rows,
  full rows for `full_layers` (float32 or float16), and attention patterns of the asked heads
  (T x T each).

The coefficients were calibrated against the peak resident set measured around real runs
(tests/test_capture_memory.py on tiny models, bench/memory.py on SmolLM2-135M).

`fit_spec` reduces a spec until the estimate fits a budget, in the order a user loses least:
fewer layers with full rows, float16 storage of the rows kept, no full rows, no per-layer
attention patterns, then every k-th layer only. `MemoryBudgetError` says why a run cannot fit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.trace import HEAD_SCORES, CaptureSpec, ModelInfo

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
DEFAULT_FRACTION = 0.5  # of the free memory, when no --memory-budget is given
# The lens reads out at most this many (layer, position) rows per product (capture/lens.py
# says why this many)
LENS_ROWS = 128
# Temporaries of one lens chunk alive at once, in units of [rows, vocab] float32: the shifted
# logits, and the comparison that ranks the model's token (bytes) with the reductions' own.
LENS_TEMPS = 2
# Positions whose next-token softmax (the output's top-k) is taken at once (capture/run.py)
SOFTMAX_ROWS = 256
# Bytes of C heap a CPU pass leaves fragmented, per model layer and prompt token (calibrated
# on bench/memory.py: 1-7 KiB on the tiny llamas, about none on SmolLM2 at 512-1024 tokens)
HEAP_SLACK_PER_LAYER_TOKEN = 2 << 10
# MLP working rows alive at once inside a block (gate, up, act(gate) * up), in [T, d_mlp]
MLP_TEMPS = 3


@dataclass(frozen=True)
class WatchSize:
    """What watched modules (capture/watch.py) add per token: how many modules get the four
    summaries, and the summed width of the full rows `watch_full` keeps."""

    modules: int = 0
    full_width: int = 0


class MemoryBudgetError(NeuroscopeError):
    """A run would not fit the memory budget even at the smallest spec."""


def parse_bytes(text: str) -> int:
    """'4GiB' / '512MiB' / '2G' / '1.5GB' / '1000000' -> bytes (KiB, MiB... binary; K, KB,
    MB... decimal); ValueError otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(?:([kmgt])(i?)b?|b?)\s*", text.lower())
    if m is None:
        raise ValueError(text)
    number, unit, binary = m.groups()
    scale = (1024 if binary else 1000) ** ("kmgt".index(unit) + 1) if unit else 1
    value = int(float(number) * scale)
    if value <= 0:
        raise ValueError(text)
    return value


def human(n: float) -> str:
    """Bytes as a short binary figure: 1.5 GiB, 230 MiB, 12 KiB."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class MemoryEstimate:
    """The memory of one capture, by part (bytes). `on_device` says where the model runs:
    on a GPU the weights, KV cache and activations live there and the trace in host memory."""

    weights: int
    kv_cache: int
    activations: int
    trace: int
    trace_parts: dict[str, int] = field(default_factory=dict)
    device: str = "cpu"
    n_tokens: int = 0

    @property
    def on_gpu(self) -> bool:
        return str(self.device).startswith("cuda")

    @property
    def device_bytes(self) -> int:
        """What the model's device holds at the peak (everything on CPU)."""
        model_side = self.weights + self.kv_cache + self.activations
        return model_side if self.on_gpu else model_side + self.trace

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.activations + self.trace

    def line(self) -> str:
        """One line for a terminal or a notice."""
        where = f" on {self.device}" if self.on_gpu else ""
        return (
            f"memory estimate for {self.n_tokens} tokens: {human(self.total)} = weights "
            f"{human(self.weights)} + KV cache {human(self.kv_cache)} + activations "
            f"{human(self.activations)}{where} + trace {human(self.trace)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights,
            "kv_cache": self.kv_cache,
            "activations": self.activations,
            "trace": self.trace,
            "trace_parts": dict(self.trace_parts),
            "total": self.total,
            "device": self.device,
            "device_bytes": self.device_bytes,
            "n_tokens": self.n_tokens,
        }


# ---- the parts ----------------------------------------------------------------------------


def params_from_config(config: Any) -> int:
    """Parameter count of a decoder-only model from its config (gated MLP for llama-like
    models, biases ignored: they are a rounding error)."""
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    d = _first(cfg, "hidden_size", "n_embd", "d_model")
    n_layers = _first(cfg, "num_hidden_layers", "n_layer", "num_layers")
    heads = _first(cfg, "num_attention_heads", "n_head")
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    d_head = getattr(cfg, "head_dim", None) or d // heads
    d_mlp = _first(cfg, "intermediate_size", "n_inner", "ffn_dim") or 4 * d
    vocab = _first(cfg, "vocab_size")
    gated = getattr(cfg, "model_type", "") not in ("gpt2", "gpt_neox", "opt", "phi")
    attn = d * heads * d_head * 2 + d * kv * d_head * 2
    mlp = d * d_mlp * (3 if gated else 2)
    embed = vocab * d * (1 if getattr(cfg, "tie_word_embeddings", False) else 2)
    return n_layers * (attn + mlp + 2 * d) + embed + d


def _first(cfg: Any, *names: str) -> int:
    for name in names:
        value = getattr(cfg, name, None)
        if value:
            return int(value)
    return 0


def weight_bytes(model: Any) -> int:
    """The loaded model's parameter and buffer bytes (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def kv_cache_bytes(info: ModelInfo, n_tokens: int) -> int:
    """K and V of every layer for n_tokens positions, in the model's dtype."""
    kv = info.n_kv_heads or info.n_heads
    return info.n_layers * kv * info.d_head * 2 * n_tokens * _dtype_bytes(info.dtype)


def _dtype_bytes(dtype: str) -> int:
    return DTYPE_BYTES.get(str(dtype).replace("torch.", ""), 4)


def _layers(info: ModelInfo, spec: CaptureSpec) -> tuple[list[int], list[int]]:
    """(layers recorded, layers with full rows) as the recorder resolves them."""
    layers = list(range(info.n_layers)) if spec.layers is None else list(spec.layers)
    full = layers if spec.full_layers is None else list(spec.full_layers)
    return layers, [layer for layer in full if 0 <= layer < info.n_layers]


def neuron_width(info: ModelInfo, spec: CaptureSpec) -> int:
    """Columns of `neurons.full` (0 when full neurons are not kept)."""
    if "neurons" not in spec.sites or not spec.full_neurons:
        return 0
    return info.d_mlp if spec.neuron_subset is None else len(spec.neuron_subset)


def trace_parts(
    info: ModelInfo,
    spec: CaptureSpec,
    n_prompt: int,
    n_tokens: int,
    watch: WatchSize | None = None,
) -> dict[str, int]:
    """Bytes the Trace holds after n_tokens positions (n_prompt of them the prompt), by group."""
    layers, full = _layers(info, spec)
    n_l, k, t = len(layers), spec.top_k, n_tokens
    per_layer_token = 0
    if "resid" in spec.sites:
        per_layer_token += 6 * 4  # four summaries, block change, cosine
    for site in ("attn", "mlp"):
        if site in spec.sites:
            per_layer_token += 4 * 4
    if "neurons" in spec.sites:
        per_layer_token += 4 + k * 8  # near-zero fraction, top-k ids and values
    parts = {"summaries": n_l * t * per_layer_token + t * (4 + k * 8)}  # + embed norm, logits
    if spec.head_scores:
        parts["head_scores"] = n_l * t * info.n_heads * len(HEAD_SCORES) * 4
    if spec.lens_positions != ():
        parts["lens"] = n_l * t * (k * 8 + 12)
    row_bytes = 2 if spec.full_dtype == "float16" else 4
    width = info.d_model + neuron_width(info, spec)
    if full and width:
        parts["full_rows"] = len(full) * t * width * row_bytes
    n_patterns = sum(1 for layer, _ in spec.pattern_heads if layer in layers)
    if n_patterns:
        # the prompt's rows fill a square; each generated token adds one row of its length
        touched = n_prompt * n_prompt + (t * (t + 1) - n_prompt * (n_prompt + 1)) // 2
        parts["patterns"] = n_patterns * touched * 4
    if watch is not None and watch.modules:
        parts["watch"] = watch.modules * t * 4 * 4  # four float32 summaries a module
        parts["watch"] += watch.full_width * t * row_bytes
    return parts


def activation_bytes(info: ModelInfo, spec: CaptureSpec, n_prompt: int) -> int:
    """Peak working memory of the prompt's forward pass and what the capture does after it."""
    b = _dtype_bytes(info.dtype)
    t, v, d = n_prompt, info.vocab_size, info.d_model
    layers, full = _layers(info, spec)
    logits = t * v * b  # the model's logits, alive until the step is recorded
    # the output's top-k: one block of positions' float32 softmax at a time
    softmax = min(t, SOFTMAX_ROWS) * v * 4
    lens = spec.lens_positions != ()
    held = 0
    if lens or full:
        # the capture holds each block's output until the step is flushed
        held = (len(layers) if lens else len(full)) * t * d * b
    if full:
        held += len(full) * t * neuron_width(info, spec) * 4
    lens_work = 0
    if lens:
        n_layers = max(1, len(layers))
        per_chunk = max(1, LENS_ROWS // n_layers)
        rows = min(per_chunk * n_layers, t * n_layers)
        asked = t if spec.lens_positions is None else sum(p < t for p in spec.lens_positions)
        # the asked rows stacked position-major, one chunk's [rows, vocab] temporaries, and
        # that chunk's final log-softmax and its exp
        lens_work = asked * n_layers * d * 4 + rows * v * 4 * LENS_TEMPS
        lens_work += min(asked, per_chunk) * v * 4 * 2
        if spec.lens_positions is not None:  # some positions: their logits are copied out
            lens_work += asked * (v * b + n_layers * d * b)
    # the prompt's pattern rows wait in the step's rows until the trace copies them in
    held += sum(1 for layer, _ in spec.pattern_heads if layer in layers) * t * t * 4
    mlp = t * info.d_mlp * b * MLP_TEMPS
    # one after another, each in the memory the one before freed
    working = max(mlp, softmax, lens_work)
    slack = 0
    if not str(info.device).startswith("cuda"):
        # The C heap keeps some of what a long pass fragments: small tensors that outlive a
        # layer (the KV cache's, the capture's) land between its freed working rows, which
        # the next layer then cannot reuse whole. CUDA's caching allocator has no such holes.
        slack = HEAP_SLACK_PER_LAYER_TOKEN * info.n_layers * t
    return logits + held + working + slack


def estimate(
    info: ModelInfo,
    spec: CaptureSpec,
    n_prompt: int,
    max_new_tokens: int,
    *,
    weights: int | None = None,
    n_params: int | None = None,
    watch: WatchSize | None = None,
) -> MemoryEstimate:
    """The memory a capture of `n_prompt` + `max_new_tokens` tokens will take.

    `weights` is the loaded model's byte count (`weight_bytes`); without it, `n_params` times
    the dtype's bytes. `watch` is what watched modules add (capture/watch.py `watch_size`).
    """
    n_tokens = n_prompt + max(0, max_new_tokens)
    if info.context_length:
        n_tokens = min(n_tokens, info.context_length)
    if weights is None:
        weights = (n_params or 0) * _dtype_bytes(info.dtype)
    parts = trace_parts(info, spec, n_prompt, n_tokens, watch)
    # The prompt's rows exist twice while they are appended (the step's rows and the trace's
    # buffer); afterwards a generated token costs only its own rows.
    prompt_rows = sum(trace_parts(info, spec, n_prompt, n_prompt, watch).values())
    trace = max(sum(parts.values()), 2 * prompt_rows)
    return MemoryEstimate(
        weights=int(weights),
        kv_cache=kv_cache_bytes(info, n_tokens),
        activations=activation_bytes(info, spec, n_prompt),
        trace=int(trace),
        trace_parts=parts,
        device=info.device,
        n_tokens=n_tokens,
    )


# ---- fitting a budget --------------------------------------------------------------------


def _thinned(layers: list[int], stride: int) -> tuple[int, ...]:
    return tuple(layers[::stride])


def reductions(info: ModelInfo, spec: CaptureSpec) -> list[tuple[str, str, CaptureSpec]]:
    """Smaller specs in the order a user loses least: (kind of step, what it gave up, spec).
    Each step keeps the ones before it."""
    layers, full = _layers(info, spec)
    steps: list[tuple[str, str, CaptureSpec]] = []
    current = spec
    stride = 2
    while full and len(full) // stride >= 1 and stride < len(full):
        kept = _thinned(full, stride)
        current = replace(current, full_layers=kept)
        steps.append(("full", f"full rows for {len(kept)} of {len(full)} layers", current))
        stride *= 2
    if full and current.full_dtype != "float16":
        current = replace(current, full_dtype="float16")
        steps.append(("float16", "full rows stored as float16", current))
    if full:
        current = replace(current, full_layers=())
        steps.append(("full", "no full rows", current))
    asked = tuple(p for p in current.pattern_heads if p[1] >= 0)
    if len(asked) != len(current.pattern_heads):
        current = replace(current, pattern_heads=asked)
        steps.append(("patterns", "no per-layer attention patterns (flow needs them)", current))
    stride = 2
    while len(layers) // stride >= 2:
        kept = _thinned(layers, stride)
        current = replace(
            current,
            layers=kept,
            pattern_heads=tuple(p for p in current.pattern_heads if p[0] in kept),
        )
        nth = f"{stride}{'nd' if stride == 2 else 'th'}"
        steps.append(("layers", f"every {nth} layer only ({len(kept)} of {len(layers)})", current))
        stride *= 2
    return steps


def _fits(est: MemoryEstimate, budget: int, host_budget: int | None) -> bool:
    if est.on_gpu:
        host_ok = host_budget is None or est.trace <= host_budget
        return est.device_bytes <= budget and host_ok
    return est.total <= budget


@dataclass
class Fitted:
    """The spec to run, its estimate, and what was given up to fit the budget."""

    spec: CaptureSpec
    estimate: MemoryEstimate
    budget: int
    reduced: list[str]

    def line(self) -> str:
        text = self.estimate.line()
        if self.budget:
            text += f"; budget {human(self.budget)}"
        if self.reduced:
            text += "; to fit it: " + ", ".join(self.reduced)
        return text


def fit_spec(
    info: ModelInfo,
    spec: CaptureSpec,
    n_prompt: int,
    max_new_tokens: int,
    budget: int,
    *,
    weights: int | None = None,
    n_params: int | None = None,
    host_budget: int | None = None,
    watch: WatchSize | None = None,
) -> Fitted:
    """The first of `spec` and its `reductions` whose estimate fits `budget`.

    Raises MemoryBudgetError (one sentence with the figures) when even the smallest does not.
    On a GPU `budget` bounds the device's part and `host_budget` (if given) the trace.
    """
    est = estimate(
        info, spec, n_prompt, max_new_tokens, weights=weights, n_params=n_params, watch=watch
    )
    if _fits(est, budget, host_budget):
        return Fitted(spec, est, budget, [])
    smallest = est
    given_up: dict[str, str] = {}  # kind -> the latest step of that kind
    for kind, what, smaller in reductions(info, spec):
        given_up.pop(kind, None)
        given_up[kind] = what
        if what == "no full rows":
            given_up.pop("float16", None)  # moot once no rows are kept
        est = estimate(
            info, smaller, n_prompt, max_new_tokens, weights=weights, n_params=n_params, watch=watch
        )
        smallest = est
        if _fits(est, budget, host_budget):
            return Fitted(smaller, est, budget, list(given_up.values()))
    need = smallest.device_bytes if smallest.on_gpu else smallest.total
    raise MemoryBudgetError(
        f"this run needs about {human(need)} even at the smallest capture "
        f"({smallest.line().split(': ', 1)[1]}) but the memory budget is {human(budget)}; "
        "use a shorter prompt, fewer --max-new-tokens, or a larger --memory-budget."
    )


def free_bytes(device: str) -> int | None:
    """Free memory where the captures are held: MemAvailable on CPU (from /proc/meminfo),
    `torch.cuda.mem_get_info` on a CUDA device; None where it cannot be read."""
    if str(device).startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    return host_available()


def host_available() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None off Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def default_budget(device: str, weights_loaded: int = 0) -> int | None:
    """A fraction of the free memory plus the weights already loaded (they count in the
    estimate but are no longer free); None where free memory cannot be read."""
    free = free_bytes(device)
    if free is None:
        return None
    return int(free * DEFAULT_FRACTION) + weights_loaded

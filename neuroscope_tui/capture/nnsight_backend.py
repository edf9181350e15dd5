"""The nnsight capture backend: the same CaptureSpec run as nnsight traces, filling the same Trace.

Each forward pass (the prompt's, then one per generated token with the KV cache, as in
capture/run.py) is one `model.trace(...)` whose body is `reduce_step`: it reads every block's
input and output, every attention and MLP output and every down projection's input through
nnsight's envoys, in the order the model computes them, and reduces them there with the
recorder's own functions (capture/recorder.py: `Recorder.flush` of the tensors the hooks would
have kept) and the lens's (capture/run.py `lens_rows`, read out through the model's own final
norm and unembedding envoys). Only the per-token summaries leave the trace: that is what makes
the same body worth sending to a remote engine (capture/remote.py).

Head scores come from the attention tap (capture/attention_tap.py) when the model runs here:
the tap works through transformers' AttentionInterface, which nnsight's local execution calls
like any other. A run where the tap cannot see the attention says so in `trace.notes`.

nnsight is imported only inside functions (tests/test_import_boundaries.py): without it, asking
for this backend raises BackendError with the line that installs it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from neuroscope_tui.capture.attention_tap import tapped
from neuroscope_tui.capture.derive import final_softcap
from neuroscope_tui.capture.intervening import Intervener
from neuroscope_tui.capture.recorder import Recorder, _first_tensor
from neuroscope_tui.capture.run import (
    _ANCHOR,
    GenerationOptions,
    StepCallback,
    _eos_ids,
    cache_keyword,
    lens_rows,
    logit_rows,
    start_intervened_trace,
    step_through,
    token_texts,
)
from neuroscope_tui.errors import NNSIGHT_INSTALL_HINT, BackendError
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.trace import HEADS_MISSING_NOTE, CaptureSpec, Trace

INSTALL_HINT = NNSIGHT_INSTALL_HINT
# trace.notes["backend"] of a run through nnsight (the native run sets none)
BACKEND_NOTE = "nnsight"
# trace.notes[HEADS_MISSING_NOTE] where the tap could not see the attention: the heads view
# shows it in place of the scores
NO_HEADS_NOTE = (
    "head scores and attention patterns were not recorded: the nnsight backend could not "
    "reach this model's attention probabilities"
)


def require_nnsight() -> Any:
    """The nnsight module, or BackendError saying how to install it."""
    try:
        import nnsight
    except ImportError:
        raise BackendError(INSTALL_HINT) from None
    return nnsight


def wrap(bundle: LoadedModel) -> Any:
    """The loaded model as an nnsight model (no copy: the same torch module underneath)."""
    nnsight = require_nnsight()
    # TransformersModel, not LanguageModel: nnsight 0.8 deprecates the latter (the same class)
    return nnsight.TransformersModel(
        bundle.model, task="text-generation", tokenizer=bundle.tokenizer
    )


@dataclass
class StepPlan:
    """Which envoys a step reads, by module path, and how it reduces them.

    Plain data (paths, not modules), so the same plan travels with a remote request.
    """

    layers: list[int]
    blocks: dict[int, str]  # layer -> path, for the residual summaries, full rows and lens
    attention: dict[int, str]
    mlp: dict[int, str]
    down_proj: dict[int, str]
    final_norm: str | None
    unembed: str
    lens: bool
    top_k: int
    softcap: float | None
    cache_name: str
    keep_cache: bool  # local runs carry the KV cache to the next step; remote ones cannot
    keep_last_logits: bool  # sampling needs the whole last row; greedy needs its argmax only
    # (intervener site, layer) -> the module path whose input or output an intervention edits
    # (capture/intervening.py's sites; EDITED_AT says which end of the module)
    edits: dict[tuple[str, int], str] = field(default_factory=dict)


# which end of its module each intervener site is (capture/intervening.py)
EDITED_AT = {
    "resid_in": "input",
    "heads_in": "input",
    "neurons_in": "input",
    "attn_out": "output",
    "mlp_out": "output",
    "block_out": "output",
}


def module_paths(model: torch.nn.Module) -> dict[int, str]:
    """id(module) -> its dotted path in `model` ("" for the model itself)."""
    return {id(m): name for name, m in model.named_modules()}


def make_plan(
    bundle: LoadedModel,
    spec: CaptureSpec,
    *,
    keep_cache: bool,
    keep_last_logits: bool,
    edited: Sequence[tuple[str, int]] = (),
) -> StepPlan:
    """The step plan for `spec` on `bundle`'s anatomy (the same sites `recording()` hooks);
    `edited`: the (site, layer) pairs an Intervener writes."""
    a = bundle.anatomy
    paths = module_paths(bundle.model)
    rec = Recorder(a, spec)
    lens = spec.lens_positions != ()
    plan = StepPlan(
        layers=rec.layers,
        blocks={},
        attention={},
        mlp={},
        down_proj={},
        final_norm=None if a.final_norm is None else paths[id(a.final_norm)],
        unembed=paths[id(a.unembed)],
        lens=lens,
        top_k=spec.top_k,
        softcap=final_softcap(bundle.model),
        cache_name=cache_keyword(bundle.model),
        keep_cache=keep_cache,
        keep_last_logits=keep_last_logits,
    )
    for layer in rec.layers:
        if "resid" in spec.sites or layer in rec.full_layers or lens:
            plan.blocks[layer] = paths[id(a.blocks[layer])]
        if "attn" in spec.sites:
            plan.attention[layer] = paths[id(a.attention[layer])]
        if "mlp" in spec.sites:
            plan.mlp[layer] = paths[id(a.mlp[layer])]
        if "neurons" in spec.sites:
            plan.down_proj[layer] = paths[id(a.down_proj[layer])]
    modules = {
        "resid_in": a.blocks,
        "block_out": a.blocks,
        "attn_out": a.attention,
        "mlp_out": a.mlp,
        "heads_in": a.out_proj,
        "neurons_in": a.down_proj,
    }
    for site, layer in edited:
        plan.edits[(site, layer)] = paths[id(modules[site][layer])]
    return plan


class _Readout:
    """The final norm and unembedding as the lens calls them: envoys inside a trace."""

    def __init__(self, final_norm: Any, unembed: Any):
        self.final_norm = final_norm
        self.unembed = unembed


def _envoy(model: Any, path: str | None) -> Any:
    return model if not path else model.get(path)


def reduce_step(
    model: Any,
    plan: StepPlan,
    rec: Recorder,
    start: int,
    asked: tuple[int, ...] | None,
    edits: Any = None,
) -> dict[str, Any]:
    """The body of one step's trace: read the sites, reduce them there, return the rows.

    Reads are in the order the model computes them (nnsight serves each value when its module
    runs): per layer the block's input, the attention output projection's input, the attention
    output, the down projection's input, the MLP output, then the block's output; the logits
    last. `edits` (an Intervener, begun for this step) writes its changes there as nnsight
    edits, before the reads, so the summaries see what flows on, as the native hooks do.
    Returns {"rows": name -> numpy, "last": the last position's logits or their argmax,
    "cache": the KV cache or None}.
    """
    with torch.inference_mode():
        raw: dict[str, dict[int, Any]] = {}
        stream: dict[int, torch.Tensor] = {}

        def site(key: tuple[str, int], path: str | None) -> torch.Tensor | None:
            """The value at `key` (after its edit, if any); None when nothing reads it."""
            edited = plan.edits.get(key)
            if edited is None and path is None:
                return None
            envoy = _envoy(model, edited if edited is not None else path)
            end = EDITED_AT[key[0]]
            value = getattr(envoy, end)
            x = _first_tensor(value)
            new = edits.apply(key, x) if edited is not None and edits is not None else None
            if new is None:
                return x
            setattr(envoy, end, new if isinstance(value, torch.Tensor) else (new, *value[1:]))
            return new

        layers = sorted(set(plan.layers) | {layer for _, layer in plan.edits})
        for layer in layers:
            block = plan.blocks.get(layer)
            x_in = site(("resid_in", layer), block)
            site(("heads_in", layer), None)  # inside the attention: before its output
            out = site(("attn_out", layer), plan.attention.get(layer))
            if layer in plan.attention:
                raw.setdefault("attn", {})[layer] = out
            neurons = site(("neurons_in", layer), plan.down_proj.get(layer))
            if layer in plan.down_proj:
                raw.setdefault("neurons", {})[layer] = neurons
            mlp_out = site(("mlp_out", layer), plan.mlp.get(layer))
            if layer in plan.mlp:
                raw.setdefault("mlp", {})[layer] = mlp_out
            x_out = site(("block_out", layer), block)
            if block:
                raw.setdefault("block", {})[layer] = (x_in, x_out)
                stream[layer] = x_out[0]
        output = model.output
        logits = output.logits[0]  # [new, vocab]
        # the recorder's own reductions of what its hooks would have kept (tap rows included)
        rec._raw.update(raw)  # beside the tap's deferred attention logits, if any
        rows = rec.flush()
        rows.update(logit_rows(logits, plan.top_k))
        if plan.lens and stream:
            readout = _Readout(
                _envoy(model, plan.final_norm) if plan.final_norm else None,
                _envoy(model, plan.unembed),
            )
            rows.update(
                lens_rows(
                    readout, stream, plan.layers, logits, asked, start, plan.top_k, plan.softcap
                )
            )
        last = logits[-1].clone() if plan.keep_last_logits else int(logits[-1].argmax())
        cache = getattr(output, plan.cache_name, None) if plan.keep_cache else None
        return {"rows": rows, "last": last, "cache": cache}


def _step_inputs(ids: list[int], new: list[int], device: torch.device) -> tuple[dict, dict]:
    """(the encoding, the forward kwargs) of one step over `new` after `ids` (ids ends with new).

    nnsight derives position ids from the attention mask it is given; a cached step of one
    token would otherwise restart at position 0. So the mask covers every token so far and the
    positions are passed as the model would compute them from the cache.
    """
    n, k = len(ids), len(new)
    encoding = {
        "input_ids": torch.tensor([new], device=device),
        "attention_mask": torch.ones(1, n, dtype=torch.long, device=device),
    }
    return encoding, {"position_ids": torch.arange(n - k, n, device=device).unsqueeze(0)}


class _NnsightRun:
    """One local run's state: the nnsight model, the plan, the recorder and the trace."""

    def __init__(
        self,
        bundle: LoadedModel,
        spec: CaptureSpec,
        trace: Trace,
        sampling: bool,
        edits: Intervener | None = None,
    ):
        self.bundle, self.spec, self.trace = bundle, spec, trace
        self.model = wrap(bundle)
        self.edits = edits
        edited = list(edits.by_site) if edits is not None else []
        self.plan = make_plan(
            bundle, spec, keep_cache=True, keep_last_logits=sampling, edited=edited
        )
        self.rec = Recorder(bundle.anatomy, spec)
        self.device = torch.device(bundle.device)
        self.ids: list[int] = []
        self.id_text: dict[str, str] = {}

    def forward(self, new_ids: list[int], past: Any) -> tuple[Any, Any]:
        nnsight = require_nnsight()
        self.ids.extend(new_ids)
        self.rec.ids = torch.tensor(self.ids, dtype=torch.long, device=self.device)
        encoding, kwargs = _step_inputs(self.ids, new_ids, self.device)
        kwargs.update({"use_cache": True, self.plan.cache_name: past})
        start = len(self.trace.token_ids)
        model, plan, rec, edits = self.model, self.plan, self.rec, self.edits
        asked = self.spec.lens_positions
        if edits is not None:  # absolute positions of this step, as run() announces them
            edits.begin(start, len(new_ids))
        with model.trace(encoding, **kwargs):
            result = reduce_step(model, plan, rec, start, asked, edits)
            nnsight.save(result)
        rows = result["rows"]
        self._remember(rows)
        texts = token_texts(self.bundle.tokenizer, new_ids, self.trace.token_ids[-_ANCHOR:])
        self.trace.append(new_ids, texts, rows)
        return result["cache"], result["last"]

    def _remember(self, rows: dict[str, np.ndarray]) -> None:
        tok = self.bundle.tokenizer
        for name in ("logits.top_ids", "lens.top_ids"):
            if name in rows:
                for i in np.unique(rows[name]):
                    key = str(int(i))
                    if int(i) >= 0 and key not in self.id_text:
                        self.id_text[key] = tok.decode([int(i)])


def start_backend_trace(
    bundle: LoadedModel,
    prompt: str,
    spec: CaptureSpec,
    options: GenerationOptions,
    interventions: Sequence[Any] = (),
) -> tuple[list[int], Trace, Intervener | None]:
    """run()'s start of a trace and of its interventions (capture/run.py
    `start_intervened_trace`), noting this backend."""
    ids, trace, edits = start_intervened_trace(bundle, prompt, spec, options, interventions)
    trace.notes["backend"] = BACKEND_NOTE
    return ids, trace, edits


def run_nnsight(
    bundle: LoadedModel,
    prompt: str,
    spec: CaptureSpec | None = None,
    options: GenerationOptions | None = None,
    *,
    on_step: StepCallback | None = None,
    cancel: threading.Event | None = None,
    interventions: Sequence[Any] = (),
    lens_later: bool = False,
    entropy_later: bool = False,
) -> Trace:
    """`capture/run.py run()` through nnsight on this machine: the same Trace, step by step.

    The prompt's pass, then one cached pass per generated token, each one nnsight trace;
    `on_step` and `cancel` behave as in run(). `interventions` are run()'s, checked by the
    same code (capture/intervening.py `prepare_intervener`: a second prompt's activations are
    read with one plain forward) and written as nnsight edits inside each step's trace
    (`reduce_step`), so they change what flows on exactly as the native hooks do. `lens_later`
    and `entropy_later` are accepted so a caller of run() can swap backends; this backend
    computes the lens and the entropy at once, in the trace (nothing is left for
    capture/derive.py). Raises BackendError when nnsight is not installed.
    """
    del lens_later, entropy_later  # computed now: see above
    require_nnsight()
    spec = spec or CaptureSpec()
    options = options or GenerationOptions()
    ids, trace, edits = start_backend_trace(bundle, prompt, spec, options, interventions)
    gen = torch.Generator().manual_seed(options.seed) if options.seed is not None else None
    eos = _eos_ids(bundle) if options.stop_at_eos else set()
    state = _NnsightRun(bundle, spec, trace, sampling=options.temperature > 0, edits=edits)
    rec = state.rec
    wants_attention = spec.head_scores or bool(spec.pattern_heads)
    try:
        with torch.inference_mode():
            tap = tapped(bundle.model, bundle.anatomy.attention, rec, lambda: rec.ids)
            with tap if wants_attention else nullcontext(True) as tap_ok:
                if wants_attention and not tap_ok:
                    trace.notes[HEADS_MISSING_NOTE] = NO_HEADS_NOTE
                step_through(bundle, trace, state, rec, ids, options, gen, eos, on_step, cancel)
    except BaseException as err:  # the trace so far is still worth saving, as in run()
        err.trace = trace  # type: ignore[attr-defined]
        raise
    trace.finished = True
    return trace

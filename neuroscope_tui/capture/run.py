"""A run: one forward pass over the prompt, then token-by-token generation with the KV cache.

Every step records only the new positions into the Trace (for attention, the new query rows).
`on_step(trace, start, stop)` is called in the calling (worker) thread after the prompt's pass
(start=0, stop=n_prompt) and after each generated token; `cancel` (a threading.Event) is
checked between steps. An error mid-run is raised with the trace so far attached as
`error.trace`, so a caller can still show and save it.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np
import torch

from neuroscope_tui.capture.attention_scores import head_stats
from neuroscope_tui.capture.attention_tap import (
    DEFER_QUERIES,
    set_attention_implementation,
    tapped,
)
from neuroscope_tui.capture.derive import lens_placeholders, spec_keeps_stream
from neuroscope_tui.capture.intervening import Intervener, prepare_intervener
from neuroscope_tui.capture.interventions import Intervention, intervention_to_dict
from neuroscope_tui.capture.lens import logit_lens
from neuroscope_tui.capture.memory import SOFTMAX_ROWS
from neuroscope_tui.capture.recorder import Observer, Recorder, recording
from neuroscope_tui.errors import PromptError
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace

StepCallback = Callable[[Trace, int, int], None]


@dataclass
class GenerationOptions:
    """How a run continues after the prompt.

    temperature 0 decodes greedily; otherwise sampling with `top_p` nucleus and `seed`.
    `too_long` is what happens to a prompt longer than the model's context: "refuse" raises
    PromptError, "truncate" keeps the rightmost tokens that fit and says so in trace.notes.
    `chat` wraps the prompt as one user turn in the tokenizer's own chat template (what an
    instruct model was trained to answer); the text the model read goes to
    trace.notes["chat_template"], while trace.prompt stays the user's text.
    """

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    too_long: str = "refuse"
    stop_at_eos: bool = True
    chat: bool = False
    # keep only the first n tokens of the prompt (a prompt set's long line in diagnostics and
    # drift: every model reads the same prefix); None keeps the whole prompt; said in notes
    max_prompt_tokens: int | None = None

    @classmethod
    def among(cls, options: Mapping[str, Any]) -> GenerationOptions:
        """The options among others (the app's run options also name the backend, the lens,
        sampling and watched modules)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in names})


def model_info(bundle: LoadedModel) -> ModelInfo:
    """The Trace's record of the model (counts come from the anatomy)."""
    a = bundle.anatomy
    return ModelInfo(
        name=bundle.name,
        architecture=a.architecture,
        revision=bundle.revision,
        dtype=bundle.dtype,
        device=bundle.device,
        n_layers=a.n_layers,
        n_heads=a.n_heads,
        n_kv_heads=a.n_kv_heads,
        d_model=a.d_model,
        d_head=a.d_head,
        d_mlp=a.d_mlp,
        vocab_size=a.vocab_size,
        context_length=bundle.context_length,
    )


def cache_keyword(model: torch.nn.Module) -> str:
    """The forward argument (and output field) that carries the KV cache: `cache` from
    transformers 5.x on, `past_key_values` before (5.x warns on every call with the old one)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # a wrapped forward without a signature
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


# Generated positions whose lens is computed in one product (see _Run._keep_for_lens): the
# lens of a token may reach the trace up to three steps after the token.
LENS_POSITIONS_PER_PRODUCT = 4

_ANCHOR = 8  # previous tokens decoded with each new one, so it keeps its leading space


def token_texts(tokenizer, ids: list[int], before: list[int] | None = None) -> list[str]:
    """What each token adds to the text, as a user reads it.

    Decoding an id alone loses a SentencePiece token's word space ("▁capital" -> "capital");
    decoding it after the few tokens before it and keeping only what it adds does not. The
    very first token of a sequence is decoded alone (that is how the model's text starts).
    """
    seq = list(before or []) + list(ids)
    first = len(seq) - len(ids)
    texts = []
    for pos in range(first, len(seq)):
        context = seq[max(0, pos - _ANCHOR) : pos]
        if not context:
            texts.append(tokenizer.decode([seq[pos]]))
            continue
        head = tokenizer.decode(context)
        both = tokenizer.decode([*context, seq[pos]])
        # the token alone only where its context decodes differently on its own (this runs
        # for every generated token: two decodes, not three)
        texts.append(both[len(head) :] if both.startswith(head) else tokenizer.decode([seq[pos]]))
    return texts


def tokenize_prompt(bundle: LoadedModel, prompt: str, options: GenerationOptions) -> list[int]:
    """Token ids of `prompt`; PromptError when empty or (refused) past the context."""
    return _prompt_ids(bundle, prompt, options)[0]


def chat_text(bundle: LoadedModel, prompt: str) -> str:
    """`prompt` as one user turn of the model's chat template, ending where the reply starts.

    Raises PromptError when the tokenizer has no chat template (a base model).
    """
    tokenizer = bundle.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        raise PromptError(
            f"{bundle.name} has no chat template, so --chat cannot wrap the prompt; "
            "leave --chat out for a base model."
        )
    try:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
    except Exception as err:  # a template that raises (jinja's own errors, a role it refuses)
        raise PromptError(
            f"{bundle.name}'s chat template cannot wrap this prompt ({err}); leave --chat out."
        ) from None


def _prompt_ids(
    bundle: LoadedModel, prompt: str, options: GenerationOptions
) -> tuple[list[int], int]:
    """(the ids a run reads, how many tokens the whole prompt has)."""
    if not prompt or not prompt.strip():
        raise PromptError("the prompt is empty; type some text to run.")
    if options.chat:
        # the template writes its own special tokens (BOS, turn markers): add none twice
        text = chat_text(bundle, prompt)
        ids = list(bundle.tokenizer(text, add_special_tokens=False)["input_ids"])
    else:
        ids = list(bundle.tokenizer(prompt)["input_ids"])
    if not ids:
        raise PromptError("the prompt gives no tokens; type some text to run.")
    n_whole = len(ids)
    limit = bundle.context_length
    if options.max_prompt_tokens is not None:
        keep = max(1, options.max_prompt_tokens)
        keep = min(keep, limit - 1) if limit else keep
        if len(ids) > keep:
            return ids[:keep], n_whole
    if limit and len(ids) >= limit:
        if options.too_long != "truncate":
            raise PromptError(
                f"the prompt is {len(ids)} tokens but {bundle.name} reads at most {limit}; "
                "shorten it, or pass --too-long truncate to keep its last tokens."
            )
        return ids[-(limit - 1) :], n_whole
    return ids, n_whole


def logit_rows(logits: torch.Tensor, top_k: int) -> dict[str, np.ndarray]:
    """The model's own next-token top-k of logits [new, vocab] (logits.top_ids/top_probs)."""
    n = logits.shape[0]
    ids = np.empty((n, top_k), dtype=np.int32)
    probs = np.empty((n, top_k), dtype=np.float32)
    # a block of positions at a time: a long prompt's whole [T, vocab] float32 softmax would
    # sit beside the model's logits (1.6 GB at 8,192 SmolLM2 tokens)
    for start in range(0, n, SOFTMAX_ROWS):
        stop = min(n, start + SOFTMAX_ROWS)
        top = torch.softmax(logits[start:stop].float(), dim=-1).topk(top_k, dim=-1)
        ids[start:stop] = top.indices.cpu().numpy()
        probs[start:stop] = top.values.cpu().numpy()
        del top  # before the next block's softmax, which can then take its place
    return {"logits.top_ids": ids, "logits.top_probs": probs}


def lens_rows(
    readout,
    stream: dict[int, torch.Tensor],
    layers: list[int],
    logits: torch.Tensor,
    asked: tuple[int, ...] | None,
    start: int,
    top_k: int,
    softcap: float | None,
) -> dict[str, np.ndarray]:
    """Logit-lens rows [L, new, ...] of one step; positions not `asked` are -1/NaN.

    `stream`: layer -> the stream after that block at the step's new positions [new, D];
    `readout`: anything with the model's `final_norm` and `unembed` (the Anatomy, or the
    nnsight backend's stand-ins for them); `start`: the position of the step's first row.
    """
    resid, final, local = asked_rows(stream, layers, logits, asked, start)
    out = lens_placeholders(len(layers), logits.shape[0], top_k)
    if local:
        got = logit_lens(readout, resid, final, top_k, softcap)
        for name, val in got.items():
            out[name][:, local] = val
    return out


def asked_rows(
    stream: dict[int, torch.Tensor],
    layers: list[int],
    logits: torch.Tensor,
    asked: tuple[int, ...] | None,
    start: int,
) -> tuple[list[torch.Tensor], torch.Tensor, list[int]]:
    """What the lens of a step's asked positions reads: each layer's stream rows [n, D], the
    model's logits [n, V], and those positions' indices within the step (empty: none)."""
    local = list(range(logits.shape[0]))
    if asked is not None:
        wanted = set(asked)
        local = [i for i in local if start + i in wanted]
    if not local:
        return [], logits[:0], []
    if len(local) == logits.shape[0]:
        # every position: no copy (a long prompt's logits are the size of its vocabulary
        # times its length, and an index would copy them)
        return [stream[layer] for layer in layers], logits, local
    idx = torch.tensor(local, device=logits.device)
    resid = [stream[layer][idx.to(stream[layer].device)] for layer in layers]
    return resid, logits[idx], local


class _Run:
    """One run's state: the recorder, the ids so far, and the trace being filled."""

    def __init__(self, bundle: LoadedModel, spec: CaptureSpec, trace: Trace, rec: Recorder):
        self.bundle, self.spec, self.trace, self.rec = bundle, spec, trace, rec
        self.model = bundle.model
        self.device = torch.device(bundle.device)
        self.softcap = getattr(
            getattr(self.model.config, "get_text_config", lambda: self.model.config)(),
            "final_logit_softcapping",
            None,
        )
        self.eager_fallback = False
        self.id_text: dict[str, str] = {}
        self.lens_later = False  # leave the lens to capture/derive.py (set by run())
        self.cache_name = cache_keyword(self.model)
        # Every token id so far, on the model's device, in a buffer that doubles when full:
        # rebuilding it from the Python list each step would cost O(tokens) per token.
        self._ids = torch.empty(0, dtype=torch.long, device=self.device)
        self._n_ids = 0
        self._placeholders: tuple[int, dict[str, np.ndarray]] | None = None
        # Positions whose lens waits for company (see `_lens_rows`): per step, each lens
        # layer's stream rows, the model's logits and the positions, all [n, ...].
        self._lens_waiting: list[tuple[list[torch.Tensor], torch.Tensor, list[int]]] = []

    def _all_ids(self, new_ids: list[int]) -> torch.Tensor:
        """Every id so far plus `new_ids`, as a view of the growing device buffer."""
        n = self._n_ids + len(new_ids)
        if n > self._ids.shape[0]:
            grown = torch.empty(max(64, 2 * n), dtype=torch.long, device=self.device)
            grown[: self._n_ids] = self._ids[: self._n_ids]
            self._ids = grown
        self._ids[self._n_ids : n] = torch.tensor(new_ids, dtype=torch.long)
        self._n_ids = n
        return self._ids[:n]

    def forward(self, new_ids: list[int], past):
        """One forward pass over `new_ids`; records their rows into the trace."""
        all_ids = self._all_ids(new_ids)
        self.rec.ids = all_ids
        if self.rec.intervener is not None:
            self.rec.intervener.begin(self._n_ids - len(new_ids), len(new_ids))
        self.rec.keep_stream = self.spec.lens_positions != () and not self.lens_later
        self.rec.defer = len(new_ids) <= DEFER_QUERIES
        # a fresh tensor, not a view of the id buffer: handing the model a view of the buffer
        # doubled the peak memory of some runs (bench/memory.py --tiny, 512 tokens)
        inputs = torch.tensor([new_ids], device=self.device)
        cache_name = self.cache_name
        kwargs = {"use_cache": True, cache_name: past}
        if self.eager_fallback and self.spec.head_scores:
            kwargs["output_attentions"] = True
        watcher = self.rec.watcher
        if watcher is not None:
            # armed for the model's own pass only: the lens below runs the final norm again
            watcher.n_new = len(new_ids)
        try:
            out = self.model(input_ids=inputs, **kwargs)
        finally:
            if watcher is not None:
                watcher.n_new = None
        logits = out.logits[0, -len(new_ids) :]  # [new, vocab]
        if self.eager_fallback and self.spec.head_scores:
            self._eager_scores(out.attentions, all_ids, len(new_ids))
        rows = self.rec.flush()
        start = len(self.trace.token_ids)
        rows.update(self._logit_rows(logits))
        rows.update(self._lens_rows(logits, start, len(new_ids)))
        self.rec.stream = {}
        texts = token_texts(self.bundle.tokenizer, new_ids, self.trace.token_ids[-_ANCHOR:])
        lens = None
        if sum(len(w[2]) for w in self._lens_waiting) >= LENS_POSITIONS_PER_PRODUCT:
            # computed before the trace's arrays grow, written after: the lens's temporaries
            # (a long prompt's are the size of its logits) are gone when the trace doubles
            lens = self._lens_of_waiting()
        self.trace.append(new_ids, texts, rows)
        self._write_lens(lens)
        return getattr(out, cache_name), logits[-1]

    def _eager_scores(self, attentions, ids: torch.Tensor, n_new: int) -> None:
        """Fallback: the same scores from transformers' own output_attentions."""
        for layer in self.rec.layers:
            probs = attentions[layer][0, :, -n_new:].float()  # [H, new, k]
            q_pos = torch.arange(probs.shape[-1] - n_new, probs.shape[-1], device=probs.device)
            stats = head_stats(probs, q_pos, ids)
            rows = {h: probs.mean(0) if h < 0 else probs[h] for h in self.rec.wants_patterns(layer)}
            self.rec.attention(layer, stats, rows)

    def _logit_rows(self, logits: torch.Tensor) -> dict[str, np.ndarray]:
        rows = logit_rows(logits, self.spec.top_k)
        self._remember(rows["logits.top_ids"])
        return rows

    def _lens_rows(self, logits: torch.Tensor, start: int, n_new: int) -> dict[str, np.ndarray]:
        """Logit-lens rows for the new positions ([L, new, ...]), "not computed" (-1 / NaN)
        for now: left for capture/derive.py (`lens_later`), or kept for `flush_lens`."""
        asked = self.spec.lens_positions
        if asked == () or (not self.lens_later and not self.rec.stream):
            return {}
        if not self.lens_later:
            self._keep_for_lens(logits, start)
        # the same "not computed" rows every step: Trace.append copies them, so one set
        # per row count serves the whole run
        if self._placeholders is None or self._placeholders[0] != n_new:
            layers = self.rec.layers
            self._placeholders = (n_new, lens_placeholders(len(layers), n_new, self.spec.top_k))
        return dict(self._placeholders[1])

    def _keep_for_lens(self, logits: torch.Tensor, start: int) -> None:
        """Keep the rows the lens of this step's asked positions reads.

        One generated token's lens is a product of 30 rows (SmolLM2) with the [vocab, d_model]
        unembedding, which a CPU does at about half the rate of 120 rows: the matrix is read
        once either way. So a step's rows wait until LENS_POSITIONS_PER_PRODUCT positions
        are kept (the prompt's at once), and `flush_lens` fills their cells of the trace.
        """
        resid, final, local = asked_rows(
            self.rec.stream, self.rec.layers, logits, self.spec.lens_positions, start
        )
        if local:
            self._lens_waiting.append((resid, final, [start + i for i in local]))

    def flush_lens(self) -> None:
        """Compute the lens of every kept position into the trace's lens arrays."""
        self._write_lens(self._lens_of_waiting())

    def _lens_of_waiting(self) -> tuple[list[int], dict[str, np.ndarray]] | None:
        """The lens of every kept position (positions, arrays [L, n, ...]); none kept: None."""
        waiting, self._lens_waiting = self._lens_waiting, []
        if not waiting:
            return None
        if len(waiting) == 1:
            resid, final, positions = waiting[0]
        else:
            resid = [torch.cat([w[0][j] for w in waiting]) for j in range(len(waiting[0][0]))]
            final = torch.cat([w[1] for w in waiting])
            positions = [p for w in waiting for p in w[2]]
        return positions, logit_lens(
            self.bundle.anatomy, resid, final, self.spec.top_k, self.softcap
        )

    def _write_lens(self, lens: tuple[list[int], dict[str, np.ndarray]] | None) -> None:
        if lens is None:
            return
        positions, got = lens
        for name, value in got.items():
            self.trace.arrays[name][:, positions] = value
        self._remember(got["lens.top_ids"])

    def _remember(self, ids: np.ndarray) -> None:
        """Decode ids that appear in top-k lists, so `view` mode can show them without a model."""
        tok = self.bundle.tokenizer
        for i in np.unique(ids):
            key = str(int(i))
            if int(i) >= 0 and key not in self.id_text:
                self.id_text[key] = tok.decode([int(i)])


def _between_steps(
    rec: Recorder, on_step: StepCallback | None, trace: Trace, start: int, stop: int
) -> None:
    """Call `on_step` with the run's recorder paused: the caller may run the same model then
    (a view's patterns, the probe), and those passes must add no rows to this run."""
    if on_step is None:
        return
    rec.paused = True
    try:
        # out of the run's inference mode: what the caller computes (attribution's gradients,
        # tensors it keeps) must be ordinary tensors; grad stays off as it was
        with torch.inference_mode(False), torch.no_grad():
            on_step(trace, start, stop)
    finally:
        rec.paused = False


def _next_token(last_logits: torch.Tensor, options: GenerationOptions, gen) -> int:
    """Greedy, or temperature + top-p sampling with a seeded generator."""
    if options.temperature <= 0:
        return int(last_logits.argmax())
    probs = torch.softmax(last_logits.float().cpu() / options.temperature, dim=-1)
    if options.top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        keep = sorted_p.cumsum(0) - sorted_p < options.top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=gen))


def _eos_ids(bundle: LoadedModel) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(bundle.model, "generation_config", None), bundle.model.config):
        eos = getattr(source, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, (list, tuple)):
            ids.update(int(e) for e in eos)
    if getattr(bundle.tokenizer, "eos_token_id", None) is not None:
        ids.add(int(bundle.tokenizer.eos_token_id))
    return ids


def start_trace(
    bundle: LoadedModel, prompt: str, spec: CaptureSpec, options: GenerationOptions
) -> tuple[list[int], Trace]:
    """The prompt's token ids and an empty Trace noting the chat template and a truncation:
    the start of every run (this module's, the nnsight backend's, a remote one)."""
    ids, n_whole = _prompt_ids(bundle, prompt, options)
    trace = Trace(model=model_info(bundle), spec=spec, prompt=prompt)
    if options.chat:
        trace.notes["chat_template"] = chat_text(bundle, prompt)
    if options.max_prompt_tokens is not None and len(ids) < n_whole:
        trace.notes["truncated"] = f"only the first {len(ids)} of {n_whole} prompt tokens were run"
    elif len(ids) < n_whole:
        trace.notes["truncated"] = (
            f"the prompt was cut from the left to the last {len(ids)} tokens to fit the context"
        )
    return ids, trace


class _Stepper(Protocol):
    """One forward pass of a run (`_Run` here, `_NnsightRun` in the nnsight backend)."""

    id_text: dict[str, str]

    def forward(self, ids: list[int], past: object) -> tuple[object, torch.Tensor | int]: ...


def step_through(
    bundle: LoadedModel,
    trace: Trace,
    state: _Stepper,
    rec: Recorder,
    ids: list[int],
    options: GenerationOptions,
    gen: torch.Generator | None,
    eos: set[int],
    on_step: StepCallback | None,
    cancel: threading.Event | None,
) -> None:
    """The prompt's pass, then one cached pass per generated token until the token limit,
    cancel, the context's end or an end-of-sequence token; `stop_reason` says which.

    `state.forward(ids, past) -> (past, last)` runs one pass (this module's `_Run`, or the
    nnsight backend's); `last` is the next-token logits, or the token itself where the pass
    already chose it. Shared by both backends, so they stop for the same reasons.
    """
    past, last = state.forward(ids, None)
    trace.n_prompt = len(ids)
    trace.notes["id_text"] = state.id_text
    _between_steps(rec, on_step, trace, 0, len(ids))
    trace.stop_reason = "length"
    for _ in range(options.max_new_tokens):
        if cancel is not None and cancel.is_set():
            trace.stop_reason = "cancelled"
            break
        if bundle.context_length and trace.n_tokens >= bundle.context_length:
            trace.stop_reason = "context"
            break
        token = last if isinstance(last, int) else _next_token(last, options, gen)
        start = trace.n_tokens
        past, last = state.forward([token], past)
        _between_steps(rec, on_step, trace, start, start + 1)
        if token in eos:
            trace.stop_reason = "eos"
            break


def start_intervened_trace(
    bundle: LoadedModel,
    prompt: str,
    spec: CaptureSpec,
    options: GenerationOptions,
    interventions: Sequence[Intervention],
) -> tuple[list[int], Trace, Intervener | None]:
    """start_trace, with `interventions` listed in the trace and their Intervener prepared
    (checked against the model; a second prompt's activations read with one forward)."""
    ids, trace = start_trace(bundle, prompt, spec, options)
    trace.interventions = [intervention_to_dict(iv) for iv in interventions]
    intervener = prepare_intervener(
        bundle,
        interventions,
        ids,
        trace.model,
        lambda text: _prompt_ids(bundle, text, options)[0],
    )
    return ids, trace, intervener


def run(
    bundle: LoadedModel,
    prompt: str,
    spec: CaptureSpec | None = None,
    options: GenerationOptions | None = None,
    *,
    on_step: StepCallback | None = None,
    cancel: threading.Event | None = None,
    lens_later: bool = False,
    interventions: Sequence[Intervention] = (),
    entropy_later: bool = False,
    observer: Observer | None = None,
) -> Trace:
    """Run `prompt` and generate; return the Trace (stop_reason: "eos", "length",
    "context", "cancelled").

    `interventions` (capture/interventions.py): the enabled ones are applied at every forward,
    the prompt's and each generated token's; all are listed in `trace.interventions`. Raises
    InterventionError for one that does not fit the model, or a second prompt whose token
    length differs from the prompt's.

    `lens_later`: when the spec keeps the full residual stream of every layer it records,
    the lens arrays are left "not computed" (-1 / NaN) for capture/derive.py to fill in on
    demand (`derive_lens`) or all at once (`complete_trace`); otherwise it is computed now.
    `entropy_later`: a prompt longer than ENTROPY_LATER_TOKENS leaves its head entropy NaN
    where the tap's fused route scores it, for capture/derive_entropy.py to fill in
    (`complete_trace` does); every other score is computed now.

    `observer` (capture/recorder.py): extra hooks that only look, registered by `recording()`
    (neuron health for diagnostics).

    Raises PromptError for an empty prompt or (too_long="refuse") one past the context.
    Hooks are removed when this returns or raises.
    """
    spec = spec or CaptureSpec()
    options = options or GenerationOptions()
    ids, trace, intervener = start_intervened_trace(bundle, prompt, spec, options, interventions)
    gen = None
    if options.seed is not None:
        gen = torch.Generator().manual_seed(options.seed)
    eos = _eos_ids(bundle) if options.stop_at_eos else set()
    anatomy = bundle.anatomy
    original_impl = getattr(bundle.model.config, "_attn_implementation", None)
    state: _Run | None = None
    try:
        # inference mode, not just no_grad: tensors skip autograd's version counters and
        # view tracking, which cuts the Python-side cost of every op of a generated token
        # (the model's own and the capture's); nothing made here outlives the run as a tensor
        with (
            torch.inference_mode(),
            recording(anatomy, spec, intervener, observer, bundle.model) as rec,
        ):
            if rec.watcher is not None:
                trace.notes["watch_modules"] = list(rec.watcher.names)
            state = _Run(bundle, spec, trace, rec)
            state.lens_later = lens_later and spec_keeps_stream(spec, anatomy.n_layers)
            rec.entropy_later = entropy_later
            # the tap only observes; with no head scores or patterns asked it would compute
            # scores nobody keeps, so the model's own attention runs alone
            wants_attention = spec.head_scores or bool(spec.pattern_heads)
            tap = tapped(bundle.model, anatomy.attention, rec, lambda: rec.ids)
            with tap if wants_attention else nullcontext(True) as tap_ok:
                state.eager_fallback = not tap_ok
                if state.eager_fallback and spec.head_scores:
                    set_attention_implementation(bundle.model, "eager")
                step_through(bundle, trace, state, rec, ids, options, gen, eos, on_step, cancel)
                state.flush_lens()
    except BaseException as err:  # KeyboardInterrupt too: the trace so far is still worth saving
        if isinstance(err, KeyboardInterrupt) and state is not None:
            state.flush_lens()  # the last few tokens' lens, as a finished run would have it
        err.trace = trace  # type: ignore[attr-defined]
        raise
    finally:
        if original_impl and getattr(bundle.model.config, "_attn_implementation", None) != (
            original_impl
        ):
            set_attention_implementation(bundle.model, original_impl)  # undo the fallback
    trace.finished = True
    return trace

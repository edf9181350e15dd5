"""What the diagnostics detectors read, captured from a live model over a prompt set.

`diagnostic_inputs(bundle, prompts)` runs each prompt once (`run()`, no generation) with
`DIAGNOSTIC_SPEC`: every layer's full residual rows, every summary, head scores, and every
head's full pattern when the prompt has at most PATTERN_TOKENS tokens; no logit lens (no
detector reads it). Neuron health rides along on those runs (`capture/neuron_health.py`, an
observer of `recording()`); gradient health costs one more forward and a backward per prompt
(`capture/gradients.py`). Each stage's seconds go to `DiagnosticInputs.timings`
("capture.traces", "capture.gradients").
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np

from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs, GradientHealth
from neuroscope_tui.capture.gradients import prompt_gradients
from neuroscope_tui.capture.neuron_health import NeuronObserver
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.tasks import TaskContext
from neuroscope_tui.trace import SITES, CaptureSpec

# every head's pattern is kept up to this many tokens (layers x heads x T^2 floats: SmolLM2's
# 270 heads at 64 tokens are 4.4 MB a prompt)
PATTERN_TOKENS = 64
MAX_TOKENS = 128

DIAGNOSTIC_SPEC = CaptureSpec(
    sites=SITES,
    layers=None,
    full_layers=None,  # full residual rows at every layer: massive activations, collapse
    head_scores=True,
    pattern_heads=(),  # set per prompt by `spec_for` (only short prompts keep them)
    top_k=10,
    lens_positions=(),
    full_neurons=False,  # neuron health counts every neuron without keeping the rows
)

Progress = TaskContext | Callable[[float, str], None] | None


def spec_for(n_layers: int, n_heads: int, n_tokens: int) -> CaptureSpec:
    """DIAGNOSTIC_SPEC for one prompt: with every head's pattern when it is short enough."""
    if n_tokens > PATTERN_TOKENS:
        return DIAGNOSTIC_SPEC
    heads = tuple((layer, head) for layer in range(n_layers) for head in range(n_heads))
    return dataclasses.replace(DIAGNOSTIC_SPEC, pattern_heads=heads)


def _reporter(progress: Progress) -> Callable[[float, str], None]:
    """progress(fraction, text) for any of the accepted shapes; a TaskContext's progress also
    raises TaskCancelled once the user cancelled."""
    if progress is None:
        return lambda fraction, text: None
    if isinstance(progress, TaskContext):
        return progress.progress
    return progress


def diagnostic_inputs(
    bundle: LoadedModel,
    prompts: Sequence[str],
    *,
    neurons: bool = True,
    gradients: bool = True,
    progress: Progress = None,
    max_tokens: int = MAX_TOKENS,
) -> DiagnosticInputs:
    """Traces of `prompts` (one run each, no generation), neuron and gradient health.

    Prompts longer than `max_tokens` keep their first `max_tokens` tokens (said in the trace's
    notes). `neurons` / `gradients` False leave those None and say why in `missing`; so does
    a model whose parameters cannot take gradients (quantized weights). Raises PromptError
    for an empty prompt, TaskCancelled when a TaskContext was cancelled.
    """
    report = _reporter(progress)
    anatomy = bundle.anatomy
    if bundle.context_length:
        max_tokens = min(max_tokens, bundle.context_length - 1)  # run() refuses a full context
    options = GenerationOptions(max_new_tokens=0, max_prompt_tokens=max(1, max_tokens))
    observer = NeuronObserver(anatomy) if neurons else None
    n = len(prompts)
    # the traces' share of the bar: a backward pass costs about two forwards
    trace_share = 1.0 / 3.0 if gradients else 1.0
    timings: dict[str, float] = {}
    missing: dict[str, str] = {}

    start = time.perf_counter()
    traces = []
    for i, prompt in enumerate(prompts):
        report(trace_share * i / max(n, 1), f"prompt {i + 1} of {n}")
        n_tokens = min(len(bundle.tokenizer(prompt)["input_ids"]), max(1, max_tokens))
        spec = spec_for(anatomy.n_layers, anatomy.n_heads, n_tokens)
        traces.append(run(bundle, prompt, spec, options, observer=observer))
    timings["capture.traces"] = time.perf_counter() - start

    health = None
    if observer is not None:
        health = observer.health()
    else:
        missing["neurons"] = "neuron statistics were turned off"

    grads = None
    if gradients:
        start = time.perf_counter()
        try:
            grads = _gradients(bundle, traces, report, trace_share)
        except RuntimeError as err:
            # e.g. integer (quantized) weights: "only Tensors of floating point dtype can
            # require gradients"; the other detectors still run
            missing["gradients"] = f"the model cannot take gradients here ({_first_line(err)})"
        timings["capture.gradients"] = time.perf_counter() - start
    else:
        missing["gradients"] = "gradients were turned off (--no-gradients)"
    report(1.0, "done")
    return DiagnosticInputs(
        traces=traces,
        neurons=health,
        gradients=grads,
        source="model",
        prompts=list(prompts),
        missing=missing,
        timings=timings,
    )


def _gradients(bundle, traces, report, done: float) -> GradientHealth:
    """GradientHealth over the traces' own token ids (what the runs read)."""
    anatomy = bundle.anatomy
    per_prompt = []
    for i, trace in enumerate(traces):
        report(done + (1 - done) * i / len(traces), f"gradients, prompt {i + 1} of {len(traces)}")
        per_prompt.append(prompt_gradients(bundle.model, anatomy, list(trace.token_ids)))

    def column(key: str) -> np.ndarray:
        return np.asarray([p[key] for p in per_prompt], dtype=np.float32)

    n = anatomy.n_layers
    empty = np.zeros((0, n), dtype=np.float32)
    return GradientHealth(
        resid=column("resid") if per_prompt else empty,
        embed=column("embed") if per_prompt else np.zeros(0, dtype=np.float32),
        params=column("params") if per_prompt else empty,
        attn_params=column("attn_params") if per_prompt else empty,
        mlp_params=column("mlp_params") if per_prompt else empty,
        loss=column("loss") if per_prompt else np.zeros(0, dtype=np.float32),
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__

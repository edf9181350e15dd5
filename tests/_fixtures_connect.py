"""A tiny llama run shared by this area's tests: 3 layers, full vectors, head-averaged patterns."""

from __future__ import annotations

from functools import lru_cache

PROMPT = "The cat sat on the mat and the cat looked at the dog"
N_LAYERS = 3


@lru_cache(maxsize=1)
def tiny_bundle():
    """A tiny random llama as a LoadedModel (built in memory, float32, cpu)."""
    from neuroscope_tui.capture.anatomy import find_anatomy
    from neuroscope_tui.models.types import LoadedModel
    from tiny_models import build_model, build_tokenizer

    model = build_model("llama", num_hidden_layers=N_LAYERS)
    return LoadedModel(
        model=model,
        tokenizer=build_tokenizer(),
        name="tiny-llama",
        source="memory",
        revision=None,
        device="cpu",
        dtype="float32",
        anatomy=find_anatomy(model),
        context_length=128,
    )


def tiny_trace(prompt: str = PROMPT, max_new_tokens: int = 4):
    """A run of the tiny llama with every array this area reads."""
    from neuroscope_tui.capture.run import GenerationOptions, run
    from neuroscope_tui.trace import CaptureSpec

    spec = CaptureSpec(
        full_layers=None, pattern_heads=tuple((layer, -1) for layer in range(N_LAYERS))
    )
    options = GenerationOptions(max_new_tokens=max_new_tokens, stop_at_eos=False)
    return run(tiny_bundle(), prompt, spec, options)

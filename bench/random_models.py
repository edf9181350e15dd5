"""Randomly initialised models of a named shape, as LoadedModels, with no download.

For benches that need a model's shape, not its knowledge (memory, GPU throughput): the model
is built from a config (`AutoConfig.for_model`) directly on its device, and the tokenizer reads
prompts written as space-separated token ids, so any prompt length is one string away. Needs
only torch and transformers (what a bare GPU box has).
"""

from __future__ import annotations

from typing import Any

SHAPES: dict[str, dict[str, Any]] = {
    # Llama-3-8B's dimensions
    "llama3-8b": dict(
        num_hidden_layers=32,
        hidden_size=4096,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=14336,
        vocab_size=128256,
        max_position_embeddings=8192 + 64,
        rope_theta=500000.0,
    ),
    # SmolLM2-135M's dimensions
    "smollm2": dict(
        num_hidden_layers=30,
        hidden_size=576,
        num_attention_heads=9,
        num_key_value_heads=3,
        intermediate_size=1536,
        vocab_size=49152,
        max_position_embeddings=8192 + 64,
        tie_word_embeddings=True,
    ),
    # small enough for a CPU test: 4 layers, width 64
    "tiny": dict(
        num_hidden_layers=4,
        hidden_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=256,
        vocab_size=2048,
        max_position_embeddings=4096,
    ),
}


class IdsTokenizer:
    """A tokenizer for random models: "5 17 3" -> ids [5, 17, 3]; decode writes them back."""

    eos_token_id = None

    def __call__(self, text: str) -> dict[str, list[int]]:
        return {"input_ids": [int(x) for x in text.split()]}

    def decode(self, ids: list[int]) -> str:
        return "".join(f" {int(i)}" for i in ids)


def prompt_of(n_tokens: int, vocab: int, seed: int = 0) -> str:
    """A prompt of n_tokens random ids below vocab, as IdsTokenizer reads it."""
    import numpy as np

    ids = np.random.default_rng(seed).integers(4, vocab, size=n_tokens)
    return " ".join(str(int(i)) for i in ids)


def random_bundle(shape: str | dict[str, Any], dtype: str = "float32", device: str = "cpu"):
    """A LoadedModel of a random llama of `shape` (a SHAPES name or config keywords)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from neuroscope_tui.capture.anatomy import find_anatomy
    from neuroscope_tui.models.types import LoadedModel

    kwargs = dict(SHAPES[shape] if isinstance(shape, str) else shape)
    cfg = AutoConfig.for_model("llama", **kwargs)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    torch_dtype = getattr(torch, dtype)
    # built on the device at once: an 8B model initialised on the CPU and moved costs minutes
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch_dtype)
    model.eval()
    name = shape if isinstance(shape, str) else "random"
    return LoadedModel(
        model=model,
        tokenizer=IdsTokenizer(),
        name=f"random {name}",
        source="config",
        revision=None,
        device=device,
        dtype=dtype,
        anatomy=find_anatomy(model),
        context_length=cfg.max_position_embeddings,
    )

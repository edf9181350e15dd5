"""Tiny random models of every claimed architecture, and a tokenizer trained offline.

`build_tiny(arch, folder)` saves a model + tokenizer with `save_pretrained`, so tests load them
back through the real loading code. Sizes are tiny (2-3 layers, width 32) so a forward pass
costs milliseconds.
"""

from __future__ import annotations

from pathlib import Path

SENTENCES = [
    "The capital of France is Paris.",
    "The Eiffel Tower is located in the city of Paris.",
    "A cat sat on the mat and looked at the dog.",
    "Language models predict the next token from the tokens before it.",
    "One two three four five six seven eight nine ten.",
    "The quick brown fox jumps over the lazy dog.",
    "Attention heads look at earlier tokens; induction heads copy what came next.",
]

VOCAB = 160

ARCH_CONFIGS: dict[str, dict] = {
    "gpt2": dict(n_layer=2, n_head=4, n_embd=32, n_positions=128),
    "llama": dict(
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_size=32,
        intermediate_size=64,
        max_position_embeddings=128,
    ),
    "mistral": dict(
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_size=32,
        intermediate_size=64,
        max_position_embeddings=128,
        sliding_window=64,
    ),
    "qwen2": dict(
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_size=32,
        intermediate_size=64,
        max_position_embeddings=128,
    ),
    "gemma2": dict(
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_size=32,
        intermediate_size=64,
        head_dim=8,
        max_position_embeddings=128,
        sliding_window=64,
    ),
    "gpt_neox": dict(
        num_hidden_layers=2,
        num_attention_heads=4,
        hidden_size=32,
        intermediate_size=64,
        max_position_embeddings=128,
    ),
    "phi3": dict(
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_size=32,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=0,
    ),
    "opt": dict(
        num_hidden_layers=2,
        num_attention_heads=4,
        hidden_size=32,
        ffn_dim=64,
        max_position_embeddings=128,
        word_embed_proj_dim=32,
    ),
}

ARCHS = list(ARCH_CONFIGS)


def build_tokenizer():
    """A byte-level BPE tokenizer with VOCAB entries, trained on SENTENCES, no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<pad>", "<unk>", "<s>", "</s>"], show_progress=False
    )
    tok.train_from_iterator(SENTENCES * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


def build_model(arch: str, seed: int = 0, **overrides):
    """A tiny random causal LM of architecture `arch` in float32."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = dict(ARCH_CONFIGS[arch])
    kwargs.update(vocab_size=VOCAB, bos_token_id=2, eos_token_id=3)
    kwargs.update(overrides)
    cfg = AutoConfig.for_model(arch, **kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
    return model.eval()


def build_tiny(arch: str, folder: Path, seed: int = 0, **overrides) -> Path:
    """Save a tiny model of `arch` and the tiny tokenizer into `folder`; return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build_model(arch, seed=seed, **overrides).save_pretrained(folder)
    build_tokenizer().save_pretrained(folder)
    return folder


def tiny_bundle(arch: str = "llama", seed: int = 0, **overrides):
    """A tiny random model of `arch` as a LoadedModel, built in memory (float32, cpu), for
    tests that exercise capture without the loading code."""
    from neuroscope_tui.capture.anatomy import find_anatomy
    from neuroscope_tui.models.types import LoadedModel

    model = build_model(arch, seed=seed, **overrides)
    return LoadedModel(
        model=model,
        tokenizer=build_tokenizer(),
        name=f"tiny-{arch}",
        source="memory",
        revision=None,
        device="cpu",
        dtype="float32",
        anatomy=find_anatomy(model),
        context_length=128,
    )

"""A tiny model and fine-tuned copies of it, saved as Hugging Face folders (safetensors).

`save_finetuned(folder, ...)` saves a base model and trainer-style `checkpoint-<step>` folders
of a copy fine-tuned with every parameter frozen except one block's, after a few optimiser
steps each: what drift must show is known (nothing moves before that block). `finetune_steps`
does the same training on any model in memory (the SmolLM2 test uses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.tiny_models import SENTENCES, build_model, build_tokenizer


def freeze_all_but(model, block: int) -> list:
    """Freeze every parameter except those of block `block`; return the trainable ones."""
    from neuroscope_tui.capture.anatomy import find_anatomy

    for param in model.parameters():
        param.requires_grad_(False)
    trainable = list(find_anatomy(model).blocks[block].parameters())
    for param in trainable:
        param.requires_grad_(True)
    return trainable


def finetune_steps(model, tokenizer, block: int, steps: int, lr: float = 1e-2) -> None:
    """`steps` Adam steps of next-token loss on SENTENCES with only block `block` trainable."""
    import torch

    params = freeze_all_but(model, block)
    optim = torch.optim.Adam(params, lr=lr)
    model.train()
    torch.manual_seed(0)
    for step in range(steps):
        text = SENTENCES[step % len(SENTENCES)]
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        loss = model(input_ids=ids, labels=ids).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
    model.eval()
    for param in model.parameters():
        param.requires_grad_(True)


def save_finetuned(
    folder: Path,
    *,
    arch: str = "llama",
    n_layers: int = 4,
    block: int = 2,
    steps: Sequence[int] = (2, 5),
    seed: int = 0,
    **overrides,
) -> tuple[Path, Path]:
    """Save `folder/base` and `folder/run/checkpoint-<n>` for the cumulative step counts in
    `steps` (block `block` trained, the rest frozen). Returns (base folder, run folder)."""
    folder = Path(folder)
    layers_key = "n_layer" if arch == "gpt2" else "num_hidden_layers"
    model = build_model(arch, seed=seed, **{layers_key: n_layers}, **overrides)
    tokenizer = build_tokenizer()
    base = folder / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    run = folder / "run"
    done = 0
    for total in steps:
        finetune_steps(model, tokenizer, block, total - done)
        done = total
        out = run / f"checkpoint-{total}"
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return base, run


def save_copy(folder: Path, source: Path) -> Path:
    """A checkpoint identical to `source` (the same files under another name)."""
    import shutil

    shutil.copytree(source, folder)
    return folder

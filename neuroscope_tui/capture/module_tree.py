"""The model's module tree with each module's output shape, for `info MODEL --modules` and
the app's module picker: what `--watch` patterns can name.

`module_tree` runs one forward pass over a short prompt with a forward hook on every module
that notes the shape of what it gives (the first tensor of a tuple), then removes the hooks.
A module the pass does not call has no shape; one called more than once shows its last call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuroscope_tui.models.types import LoadedModel

SHAPE_PROMPT = "The cat sat on the mat"


@dataclass(frozen=True)
class ModuleRow:
    """One module: its dotted name, depth in the tree, class, parameter count (its own and
    its children's) and output shape of the short pass (None: not called, or no tensor)."""

    name: str
    depth: int
    kind: str
    params: int
    shape: tuple[int, ...] | None


def _output_shape(output: object) -> tuple[int, ...] | None:
    if isinstance(output, torch.Tensor):
        return tuple(output.shape)
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return tuple(output[0].shape)
    return None


def module_tree(bundle: LoadedModel, prompt: str = SHAPE_PROMPT) -> list[ModuleRow]:
    """Every named module of the model in tree order, with shapes from one short pass."""
    model = bundle.model
    shapes: dict[str, tuple[int, ...] | None] = {}
    handles = []
    named = [(name, module) for name, module in model.named_modules() if name]
    try:
        for name, module in named:

            def hook(module, args, output, name=name) -> None:
                shapes[name] = _output_shape(output)

            handles.append(module.register_forward_hook(hook))
        ids = bundle.tokenizer(prompt)["input_ids"]
        with torch.inference_mode():
            model(input_ids=torch.tensor([ids], device=bundle.device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return [
        ModuleRow(
            name=name,
            depth=name.count("."),
            kind=type(module).__name__,
            params=sum(p.numel() for p in module.parameters()),
            shape=shapes.get(name),
        )
        for name, module in named
    ]


def module_names_of(bundle: LoadedModel) -> list[str]:
    """Every named module of the model, in tree order (the picker's tree, without a pass)."""
    return [name for name, _ in bundle.model.named_modules() if name]

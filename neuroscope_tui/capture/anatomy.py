"""Where things are inside any decoder-only model: blocks, attention, MLP, final norm, unembedding.

Found from the module tree and the config, not from a table per architecture:

- blocks: the `nn.ModuleList` whose length is the config's layer count (the largest such list);
- attention: the block's child whose name says attention (`self_attn`, `attn`, `attention`);
- MLP: the block's child whose name says MLP (`mlp`, `feed_forward`, `ffn`) and holds linear
  layers; where a block has none (OPT keeps `fc1`/`fc2` on the block itself), the block's own
  linear layer that maps the MLP width back to the model width stands for the MLP output;
- neurons: the input of the MLP's down projection (the linear layer out of the MLP width);
- activation: the MLP's activation function module, named `act`, `act_fn`, `activation_fn` or
  `activation` (else the one module of an activation type); on the block for OPT, whose block
  holds the MLP; None where the model calls a plain function (neuron health then counts the
  down projection's input);
- attention output projection: the attention module's linear layer named like `o_proj`,
  `c_proj`, `dense`, `out_proj` (else the last one from heads x d_head to d_model); its input
  is the heads' outputs side by side, head h in columns h*d_head:(h+1)*d_head (interventions);
- final norm: the norm module beside the block list (`norm`, `ln_f`, `final_layer_norm`);
- unembedding: `model.get_output_embeddings()`.

A model it cannot map raises AnatomyError naming what it could not find.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from neuroscope_tui.errors import AnatomyError

_ATTN_NAME = re.compile(r"^(self_?attn|self_attention|attn|attention)$", re.I)
_MLP_NAME = re.compile(r"^(mlp|feed_?forward|ffn|block_sparse_moe)$", re.I)
_OUT_PROJ_NAME = re.compile(r"^(o_proj|c_proj|dense|out_proj|o|wo|out)$", re.I)
_ACT_NAME = re.compile(r"^(act|act_fn|activation_fn|activation)$", re.I)
# class names of activation modules (torch's and transformers' own: SiLUActivation, GELUTanh,
# NewGELUActivation, QuickGELUActivation, ReLU, Tanh...)
_ACT_TYPE = re.compile(
    r"(activation|^(gelu|silu|swish|relu|relu2|mish|tanh|sigmoid|elu|selu|celu|softplus)\w*$)", re.I
)


@dataclass
class Anatomy:
    """The modules a capture hooks, and the model's shape. Indices are layer numbers."""

    blocks: list[nn.Module]
    attention: list[nn.Module]
    mlp: list[nn.Module]  # module whose output is the MLP's contribution to the stream
    down_proj: list[nn.Module]  # module whose input is the MLP neurons [.., d_mlp]
    final_norm: nn.Module | None
    unembed: nn.Module
    embed: nn.Module
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    vocab_size: int
    architecture: str
    # module whose input is the heads' outputs side by side [.., n_heads * d_head]
    out_proj: list[nn.Module | None] = field(default_factory=list)
    # the MLP's activation function module (its input is the pre-activation), None where the
    # model applies a plain function instead of a module, or one module serves several layers
    activation: list[nn.Module | None] = field(default_factory=list)

    def layer_of(self) -> dict[int, int]:
        """id(attention module) -> layer index, for the attention tap."""
        return {id(m): i for i, m in enumerate(self.attention)}


def _text_config(model: nn.Module):
    cfg = model.config
    get = getattr(cfg, "get_text_config", None)
    return get() if callable(get) else cfg


def _linear_dims(module: nn.Module) -> tuple[int, int] | None:
    """(in_features, out_features) of a linear-like layer (nn.Linear or GPT-2's Conv1D)."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and isinstance(weight, torch.Tensor):
        return int(weight.shape[0]), int(weight.shape[1])  # Conv1D stores [in, out]
    return None


def _find_blocks(model: nn.Module, n_layers: int) -> tuple[nn.ModuleList, nn.Module]:
    """The ModuleList of transformer blocks and its parent module."""
    best: tuple[int, nn.ModuleList, nn.Module] | None = None
    for parent in model.modules():
        for child in parent.children():
            if isinstance(child, nn.ModuleList) and len(child) == n_layers:
                size = sum(p.numel() for p in child.parameters())
                if best is None or size > best[0]:
                    best = (size, child, parent)
    if best is None:
        raise AnatomyError(
            f"could not find the transformer blocks: no list of {n_layers} modules "
            f"(the config's layer count) in {type(model).__name__}"
        )
    return best[1], best[2]


def _named_child(block: nn.Module, pattern: re.Pattern[str]) -> nn.Module | None:
    for name, child in block.named_children():
        if pattern.match(name):
            return child
    return None


def _down_projection(module: nn.Module, d_model: int) -> tuple[nn.Module, int] | None:
    """The last-registered linear layer inside `module` that maps a wider width to d_model."""
    found = None
    for sub in module.modules():
        dims = _linear_dims(sub)
        if dims and dims[1] == d_model and dims[0] > 0:
            found = (sub, dims[0])
    return found


def _find_mlp(block: nn.Module, attn: nn.Module, d_model: int, layer: int):
    """(mlp output module, down projection, d_mlp) of one block."""
    mlp = _named_child(block, _MLP_NAME)
    if mlp is not None:
        down = _down_projection(mlp, d_model)
        if down is None:
            raise AnatomyError(
                f"could not find the MLP's down projection in block {layer} "
                f"({type(mlp).__name__} has no linear layer out to width {d_model})"
            )
        return mlp, down[0], down[1]
    # No MLP module: the block's own linear layers outside attention (OPT's fc1/fc2).
    attn_ids = {id(m) for m in attn.modules()}
    candidate = None
    for _, child in block.named_children():
        if id(child) in attn_ids:
            continue
        dims = _linear_dims(child)
        if dims and dims[1] == d_model and dims[0] != d_model:
            candidate = (child, dims[0])
    if candidate is None:
        raise AnatomyError(
            f"could not find the MLP in block {layer} of type {type(block).__name__}: "
            "no child named mlp/feed_forward/ffn and no linear layer back to the model width"
        )
    return candidate[0], candidate[0], candidate[1]


def _find_out_proj(attn: nn.Module, width: int, d_model: int) -> nn.Module | None:
    """The attention module's output projection: a linear layer from `width` (heads x d_head)
    to d_model, preferring the conventional names (GPT-2's c_attn maps the other way).

    None where there is none: capture does not need it, only head interventions do (they
    say so when asked)."""
    fallback = None
    for name, sub in attn.named_modules():
        dims = _linear_dims(sub)
        if dims != (width, d_model):
            continue
        if _OUT_PROJ_NAME.match(name.rsplit(".", 1)[-1]):
            return sub
        fallback = sub
    return fallback


def _find_activation(mlp: nn.Module, block: nn.Module) -> nn.Module | None:
    """The activation module of one block's MLP: a child named like one, else the only child of
    an activation type; looked for on the block where the MLP is a bare linear layer (OPT)."""
    holder = mlp if any(True for _ in mlp.children()) else block
    named = _named_child(holder, _ACT_NAME)
    if named is not None:
        return named
    typed = [c for c in holder.children() if _ACT_TYPE.search(type(c).__name__)]
    return typed[0] if len(typed) == 1 else None


def _find_final_norm(parent: nn.Module, blocks: nn.ModuleList) -> nn.Module | None:
    """The norm module registered beside the block list (the last one, if several)."""
    norm = None
    for child in parent.children():
        if child is blocks:
            continue
        if "norm" in type(child).__name__.lower():
            norm = child
    return norm


def _unshared(modules: list[nn.Module | None]) -> list[nn.Module | None]:
    """None for a module that several layers share: its hook could not tell them apart."""
    seen: dict[int, int] = {}
    for m in modules:
        if m is not None:
            seen[id(m)] = seen.get(id(m), 0) + 1
    return [m if m is not None and seen[id(m)] == 1 else None for m in modules]


def find_anatomy(model: nn.Module) -> Anatomy:
    """Map `model` (a transformers causal LM) to an Anatomy; AnatomyError when it cannot."""
    cfg = _text_config(model)
    n_layers = getattr(cfg, "num_hidden_layers", None)
    n_heads = getattr(cfg, "num_attention_heads", None)
    d_model = getattr(cfg, "hidden_size", None)
    missing = [
        name
        for name, v in (
            ("num_hidden_layers", n_layers),
            ("num_attention_heads", n_heads),
            ("hidden_size", d_model),
        )
        if not isinstance(v, int)
    ]
    if missing:
        raise AnatomyError(f"the model's config does not say its {', '.join(missing)}")
    n_kv = getattr(cfg, "num_key_value_heads", None) or n_heads
    d_head = getattr(cfg, "head_dim", None) or d_model // n_heads

    blocks, parent = _find_blocks(model, n_layers)
    attention, mlp, down, out_proj, activation = [], [], [], [], []
    d_mlp = 0
    for i, block in enumerate(blocks):
        attn = _named_child(block, _ATTN_NAME)
        if attn is None:
            names = ", ".join(n for n, _ in block.named_children())
            raise AnatomyError(
                f"could not find the attention module in block {i} (its parts are: {names})"
            )
        m, d, width = _find_mlp(block, attn, d_model, i)
        attention.append(attn)
        out_proj.append(_find_out_proj(attn, n_heads * d_head, d_model))
        mlp.append(m)
        down.append(d)
        activation.append(_find_activation(m, block))
        d_mlp = max(d_mlp, width)

    unembed = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if unembed is None:
        raise AnatomyError(
            f"could not find the unembedding (output embeddings) of {type(model).__name__}"
        )
    embed = model.get_input_embeddings()
    return Anatomy(
        blocks=list(blocks),
        attention=attention,
        mlp=mlp,
        down_proj=down,
        final_norm=_find_final_norm(parent, blocks),
        unembed=unembed,
        embed=embed,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        d_model=d_model,
        d_head=d_head,
        d_mlp=d_mlp,
        vocab_size=int(getattr(cfg, "vocab_size", 0) or 0),
        architecture=str(getattr(cfg, "model_type", type(model).__name__)),
        out_proj=out_proj,
        activation=_unshared(activation),
    )

"""Gradient health of one prompt: one forward and one backward pass of the next-token loss.

The loss is the mean next-token cross-entropy over the prompt's positions (position t predicts
token t + 1). `StreamObserver`, registered through `recording()` like every other hook, keeps
the residual stream going into block 0 and out of each block; `torch.autograd.grad` then
gives the loss's gradient with respect to those tensors and to every parameter at once, so no
parameter's `.grad` is ever written (nothing to zero, and an optimiser the user holds sees
nothing). The model stays in eval mode (no dropout); parameters' `requires_grad` flags are
restored afterwards, and everything the pass made is freed before the next prompt.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from neuroscope_tui.capture.anatomy import Anatomy, _linear_dims
from neuroscope_tui.capture.recorder import _first_tensor, recording
from neuroscope_tui.trace import CaptureSpec

# records nothing of its own: only the observer's hooks are registered
NOTHING = CaptureSpec(sites=(), full_layers=(), head_scores=False, lens_positions=())


class StreamObserver:
    """Keeps (with their autograd history) block 0's input and every block's output."""

    def __init__(self) -> None:
        self.embed: torch.Tensor | None = None
        self.resid: dict[int, torch.Tensor] = {}

    def register(self, anatomy: Anatomy) -> list[torch.utils.hooks.RemovableHandle]:
        handles = [anatomy.blocks[0].register_forward_pre_hook(self._input_hook, with_kwargs=True)]
        for layer, block in enumerate(anatomy.blocks):
            handles.append(block.register_forward_hook(self._output_hook(layer)))
        return handles

    def _input_hook(self, module, args, kwargs):
        self.embed = _first_tensor(args) if args else kwargs["hidden_states"]

    def _output_hook(self, layer: int):
        def hook(module, args, output):
            self.resid[layer] = _first_tensor(output)

        return hook


def mlp_parameters(anatomy: Anatomy, layer: int) -> list[nn.Parameter]:
    """Block `layer`'s MLP parameters: the MLP module's, or (OPT, whose block holds its MLP
    as linear layers) the block's own linear layers outside attention."""
    mlp = anatomy.mlp[layer]
    if any(True for _ in mlp.children()):
        return list(mlp.parameters())
    attn = {id(m) for m in anatomy.attention[layer].modules()}
    params: list[nn.Parameter] = []
    for child in anatomy.blocks[layer].children():
        if id(child) not in attn and _linear_dims(child) is not None:
            params.extend(child.parameters())
    return params


def _input_device(anatomy: Anatomy, model: nn.Module) -> torch.device:
    weight = getattr(anatomy.embed, "weight", None)
    if isinstance(weight, torch.Tensor):
        return weight.device
    return next(model.parameters()).device


def next_token_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of logits [T, V] predicting ids[1:] (float32)."""
    return F.cross_entropy(logits[:-1].float(), ids[1:])


def prompt_gradients(model: nn.Module, anatomy: Anatomy, ids: list[int]) -> dict[str, object]:
    """One prompt's gradient norms: {"loss", "embed", "resid" [L], "params" [L],
    "attn_params" [L], "mlp_params" [L]} as floats (NaN where a prompt of fewer than 2 tokens
    has no loss, or a block has no parameters with a gradient).

    Each block's parameter norm covers every parameter of the block (norms included);
    attention and MLP are the parts `anatomy` names. A parameter shared across blocks (tied
    weights) counts in each block that holds it.
    """
    n = anatomy.n_layers
    nan = float("nan")
    if len(ids) < 2:
        return {
            "loss": nan,
            "embed": nan,
            "resid": [nan] * n,
            "params": [nan] * n,
            "attn_params": [nan] * n,
            "mlp_params": [nan] * n,
        }
    params = [p for p in model.parameters()]
    flags = [p.requires_grad for p in params]
    # where the ids go in (with device_map="auto" the blocks may sit on several devices)
    device = _input_device(anatomy, model)
    observer = StreamObserver()
    try:
        for p in params:
            p.requires_grad_(True)
        with (
            torch.inference_mode(False),
            torch.enable_grad(),
            recording(anatomy, NOTHING, observer=observer),
        ):
            inputs = torch.tensor([ids], device=device)
            out = model(input_ids=inputs, use_cache=False)
            loss = next_token_loss(out.logits[0], inputs[0])
            del out
            streams = [observer.resid[layer] for layer in range(n)]
            if observer.embed is not None and observer.embed.requires_grad:
                streams.insert(0, observer.embed)
            with_embed = len(streams) > n
            block_params = [list(b.parameters()) for b in anatomy.blocks]
            wanted = list({id(p): p for ps in block_params for p in ps}.values())
            grads = torch.autograd.grad(loss, [*streams, *wanted], allow_unused=True)
        # every gradient's norm once, in one batch of kernels and one copy to the host
        keys = [id(t) for t in [*streams, *wanted]]
        have = [(k, g) for k, g in zip(keys, grads, strict=True) if g is not None]
        del grads
        norms = (
            torch.stack([v.to(device) for v in torch._foreach_norm([g.float() for _, g in have])])
            .cpu()
            .tolist()
            if have
            else []
        )
        sq = {k: v * v for (k, _), v in zip(have, norms, strict=True)}
        del have

        def norm_of(tensors) -> float:
            """The norm of several tensors' gradients together; NaN when none has one."""
            parts = [sq[id(t)] for t in tensors if id(t) in sq]
            return math.sqrt(sum(parts)) if parts else math.nan

        result: dict[str, object] = {
            "loss": float(loss.detach()),
            "embed": norm_of([streams[0]]) if with_embed else math.nan,
            "resid": [norm_of([x]) for x in (streams[1:] if with_embed else streams)],
            "params": [norm_of(ps) for ps in block_params],
            "attn_params": [norm_of(a.parameters()) for a in anatomy.attention],
            "mlp_params": [norm_of(mlp_parameters(anatomy, layer)) for layer in range(n)],
        }
        return result
    finally:
        observer.embed, observer.resid = None, {}
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)

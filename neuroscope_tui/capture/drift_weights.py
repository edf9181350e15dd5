"""Weight change of a checkpoint, read tensor by tensor from safetensors files.

`weight_change(files, refs)` opens the checkpoint's files and each reference's (the base's,
the previous checkpoint's) and reads one tensor at a time from each (`weight_reader.py`:
plain reads, no memory map), so at most three tensors are in memory, never two models. For
each tensor it sums ||W - W_ref||^2 and ||W_ref||^2; the relative Frobenius norm of a block is
sqrt(sum of its tensors' diffs) / sqrt(sum of their refs), and the same per module (a module's
weight and bias together). Identical tensors give exactly 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from neuroscope_tui.capture.weight_reader import WeightFile
from neuroscope_tui.models.checkpoints import NoWeightFiles

# `model.layers.3.mlp...`, `transformer.h.3.attn...`, `gpt_neox.layers.3...`, `blocks.3...`
_BLOCK = re.compile(r"\.(?:layers|layer|h|blocks|block)\.(\d+)\.")


def block_of(tensor_name: str) -> int | None:
    """The block index a tensor belongs to, from its name; None for embeddings, final norm,
    unembedding."""
    match = _BLOCK.search("." + tensor_name)
    return int(match.group(1)) if match else None


def module_of(tensor_name: str) -> str:
    """The module a tensor belongs to: its name without the trailing `.weight` / `.bias`."""
    for suffix in (".weight", ".bias"):
        if tensor_name.endswith(suffix):
            return tensor_name[: -len(suffix)]
    return tensor_name


def natural_key(name: str) -> list[object]:
    """Sort key putting layers.2 before layers.10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


@dataclass
class WeightChange:
    """One checkpoint against one reference: relative Frobenius norms per block and module.

    `blocks` is [L] (NaN for a block with no compared tensor); `modules` maps a module name to
    its change; `problems` lists tensors that could not be compared, one phrase each.
    """

    blocks: np.ndarray
    modules: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _index(stack: ExitStack, files: Sequence[Path]) -> dict[str, WeightFile]:
    """tensor name -> the open weights file holding it."""
    out: dict[str, WeightFile] = {}
    for path in files:
        handle = stack.enter_context(WeightFile(path))
        for name in handle.keys():  # noqa: SIM118 (a WeightFile is not a mapping)
            out[name] = handle
    return out


def _squares(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(||a - b||^2, ||b||^2) as Python floats.

    Float32 differences and norms: torch's norm sums pairwise, so the relative error stays
    near 1e-7 even for a 28M-entry embedding, and equal tensors give exactly 0; float64
    copies of every tensor cost three times as long for no visible digit.
    """
    x = a.to(torch.float32)
    y = b.to(torch.float32)
    diff = float(torch.linalg.vector_norm(x - y)) ** 2
    ref = float(torch.linalg.vector_norm(y)) ** 2
    return diff, ref


def _relative(diff: float, ref: float) -> float:
    if ref > 0:
        return float(np.sqrt(diff / ref))
    return 0.0 if diff == 0 else float("inf")


def weight_change(
    files: Sequence[Path],
    refs: Sequence[Sequence[Path]],
    n_layers: int,
    *,
    on_tensor: Callable[[int, int], None] | None = None,
) -> list[WeightChange]:
    """The checkpoint in `files` against each reference's files in `refs` (one WeightChange
    each). `on_tensor(done, total)` is called after each tensor (progress and cancel).

    Raises NoWeightFiles when a file cannot be read or no tensor name is shared with a
    reference (e.g. a GGUF's own names against a Hugging Face folder's): the comparison
    would be empty, and an empty comparison must never read as "no change".
    """
    with ExitStack() as stack:
        mine = _index(stack, files)
        ref_indexes = [_index(stack, r) for r in refs]
        for ref in ref_indexes:
            if not set(mine) & set(ref):
                a, b = sorted(mine)[:1], sorted(ref)[:1]
                raise NoWeightFiles(
                    f"the checkpoint's tensor names ({a[0] if a else 'none'}, ...) and the "
                    f"reference's ({b[0] if b else 'none'}, ...) do not match, so weights "
                    "are not compared"
                )
        sums = [{"block": np.zeros((n_layers, 2)), "module": {}, "problems": []} for _ in refs]
        names = sorted(mine, key=natural_key)
        for done, name in enumerate(names, 1):
            tensor = mine[name].get_tensor(name)
            block, module = block_of(name), module_of(name)
            for ref, acc in zip(ref_indexes, sums, strict=True):
                if name not in ref:
                    acc["problems"].append(f"{name} is not in the reference")
                    acc["module"][module] = (np.nan, np.nan)
                    continue
                other = ref[name].get_tensor(name)
                if other.shape != tensor.shape:
                    acc["problems"].append(
                        f"{name} is {tuple(tensor.shape)} here, {tuple(other.shape)} there"
                    )
                    acc["module"][module] = (np.nan, np.nan)
                    continue
                diff, ref_sq = _squares(tensor, other)
                del other
                old = acc["module"].get(module, (0.0, 0.0))
                acc["module"][module] = (old[0] + diff, old[1] + ref_sq)
                if block is not None and 0 <= block < n_layers:
                    acc["block"][block] += (diff, ref_sq)
            del tensor
            if on_tensor is not None:
                on_tensor(done, len(names))
        for ref, acc in zip(ref_indexes, sums, strict=True):
            for name in sorted(set(ref) - set(mine), key=natural_key):
                acc["problems"].append(f"{name} is only in the reference")
                acc["module"][module_of(name)] = (np.nan, np.nan)
    out = []
    for acc in sums:
        blocks = np.array([_relative(d, r) if r or d else np.nan for d, r in acc["block"]])
        # a block holding a tensor that could not be compared is not known to be unchanged
        for problem in acc["problems"]:
            b = block_of(problem.split(" ", 1)[0])
            if b is not None and 0 <= b < n_layers:
                blocks[b] = np.nan
        modules = {
            m: float("nan") if np.isnan(d) else _relative(d, r)
            for m, (d, r) in acc["module"].items()
        }
        out.append(WeightChange(blocks, modules, acc["problems"]))
    return out

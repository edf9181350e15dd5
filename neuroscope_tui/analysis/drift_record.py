"""The record of a drift comparison: a base model and its checkpoints, layer by layer.

`capture/drift.py` fills it (one summary capture of the prompt set per checkpoint plus a
streaming pass over its weights), `drift_file.py` saves and loads it (safetensors + manifest,
no pickle), `analysis/drift.py` reads tables out of it, `tui/views/drift.py` draws it. No torch.

Axes: C checkpoints (the base is not among them), M = C + 1 models (index 0 the base, then
the checkpoints in order), L layers, H heads, N MLP neurons, P prompts, W weight modules.
"Previous" of checkpoint 0 is the base; of checkpoint c, checkpoint c - 1.

    cka.base, cka.prev          [C, L]  linear CKA of the residual stream after block l, over
                                        the prompt set's tokens (the same tokens in both)
    cos.base, cos.prev          [C, L]  mean over tokens of cos(x_base, x_ckpt) of those rows
    weights.base, weights.prev  [C, L]  ||W_c - W_ref|| / ||W_ref|| over all of block l's
                                        tensors together (Frobenius)
    weights.module.base, weights.module.prev
                                [C, W]  the same per weight module (tensor names in
                                        `modules`, block and non-block ones: embeddings,
                                        final norm, unembedding)
    heads.<score>               [M, L, H]  mean over the prompt set's queries of the head score
                                        (entropy, first, prev, self, dup, induction)
    neurons.mean                [M, L, N]  mean MLP neuron activation over the set's tokens
    kl.base, kl.prev            [C, P]  mean over positions of KL(ref || ckpt) of the next-token
                                        distributions (nats)
    lens.agree.base             [C, L]  fraction of tokens where the logit lens's top-1 at
                                        layer l is the same token for base and checkpoint
    lens.split.base             [C] int32  first layer from which that agreement stays below
                                        one half (-1: never)

A measure that could not be taken (weights of a snapshot input, KL without logits) is absent
from `arrays` and named in `skipped` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuroscope_tui.trace import Trace

DRIFT_VERSION = 1
HEAD_SCORE_NAMES = ("entropy", "first", "prev", "self", "dup", "induction")


@dataclass
class Checkpoint:
    """One model of the comparison as the user named it, and how it is labelled on screen."""

    name: str  # what the user gave (path, alias, hub id, snapshot)
    label: str  # short: "base", "checkpoint-200", a folder's name
    step: int | None = None  # the trainer's step for checkpoint-N folders
    kind: str = "model"  # "model" or "snapshot"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Checkpoint:
        step = d.get("step")
        return cls(
            name=str(d["name"]),
            label=str(d["label"]),
            step=None if step is None else int(step),
            kind=str(d.get("kind", "model")),
        )


@dataclass
class DriftResult:
    """A base, its checkpoints, the prompt set and the arrays named in the module docstring.

    `head_types[m]` maps "layer.head" to the type letters of that head in model m (analysis
    /heads.py `type_letters`); `traces[m]` is model m's trace of the first prompt (for the scan
    and its difference to the base), saved with the comparison.
    """

    base: Checkpoint
    checkpoints: list[Checkpoint]
    prompts: list[str]
    n_layers: int
    n_heads: int
    d_mlp: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    modules: list[str] = field(default_factory=list)
    head_types: list[dict[str, str]] = field(default_factory=list)
    traces: list[Trace] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # the base's ModelInfo.to_dict()
    version: int = DRIFT_VERSION

    @property
    def models(self) -> list[Checkpoint]:
        """Base then checkpoints: the M axis."""
        return [self.base, *self.checkpoints]

    @property
    def n_checkpoints(self) -> int:
        return len(self.checkpoints)

"""The loaded-model record passed from loading to capture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LoadedModel:
    """A model ready to run: the torch module, its tokenizer and where it came from.

    `anatomy` is a `neuroscope_tui.capture.anatomy.Anatomy` (kept as Any here so this module
    does not import torch). `device` is where inputs go (the first device under a device map).
    """

    model: Any
    tokenizer: Any
    name: str
    source: str  # what was actually loaded: a hub id, a folder, or the GGUF cache folder
    revision: str | None
    device: str
    dtype: str
    anatomy: Any
    context_length: int | None = None

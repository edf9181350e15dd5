"""Prompt files: one prompt a line, read as hostile input; and the shipped default set.

`capture --prompt-file`, `--steer-diff`, `report` and `drift` read prompts the same way: a
regular UTF-8 file of at most MAX_FILE_BYTES, one prompt a non-blank line (lines starting
with `#` are comments), each cut to MAX_PROMPT_CHARS. Every way the file can be wrong is one
UsageError sentence. `default_prompts()` is the small varied set shipped with the package
(`prompts_data/varied.txt`), used by `report` and `drift` when no file is given. No torch.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from neuroscope_tui.errors import NeuroscopeError, UsageError

MAX_FILE_BYTES = 16 * 1024 * 1024  # prompts, not a corpus
MAX_PROMPT_CHARS = 20_000
DEFAULT_SET = Path(__file__).parent / "prompts_data" / "varied.txt"


def read_file_bytes(
    path: Path,
    error: type[NeuroscopeError],
    *,
    what: str,
    noun: str = "file",
    max_bytes: int = MAX_FILE_BYTES,
) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; `error` (one sentence) otherwise.

    Opened non-blocking so a FIFO named by mistake cannot hang the program.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"there is no {noun} {path}; check the path") from None
    except OSError as err:
        raise error(f"cannot read {path} ({err.strerror or err})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path} is not a plain file; give {what}")
    if st.st_size > max_bytes:
        raise error(
            f"{path} is {st.st_size // (1024 * 1024)} MiB; {what} is at most "
            f"{max_bytes // (1024 * 1024)} MiB"
        )
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            return f.read(max_bytes + 1)[:max_bytes]
    except OSError as err:
        raise error(f"cannot read {path} ({err.strerror or err})") from None


def decode_text(path: Path, raw: bytes, error: type[NeuroscopeError]) -> str:
    """UTF-8 text (a BOM is dropped); `error` for bad bytes or NUL bytes (a binary file)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise error(
            f"{path} is not UTF-8 text (a bad byte at offset {err.start}); save it as UTF-8"
        ) from None
    if "\x00" in text:
        raise error(f"{path} holds NUL bytes; it looks like a binary file, not text")
    return text


def text_lines(text: str, max_chars: int = MAX_PROMPT_CHARS) -> list[str]:
    """The non-blank, non-comment lines of `text`, stripped and cut to `max_chars`."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line[:max_chars])
    return out


def read_prompt_file(path: Path | str) -> list[str]:
    """The prompts of a prompt file; UsageError when it cannot be read or holds none."""
    path = Path(path)
    raw = read_file_bytes(
        path, UsageError, what="a prompt file (one prompt a line)", noun="prompt file"
    )
    prompts = text_lines(decode_text(path, raw, UsageError))
    if not prompts:
        raise UsageError(f"the prompt file {path} has no prompts (every line is blank or #)")
    return prompts


def default_prompts() -> list[str]:
    """The small varied prompt set shipped with the package."""
    return read_prompt_file(DEFAULT_SET)

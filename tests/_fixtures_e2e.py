"""Fixtures of the end-to-end tests: the real command in a subprocess, damaged snapshots, and
a longer synthetic trace (more tokens than an 80-column terminal shows).

Everything here is torch-free: snapshots come from the synthetic trace of `_fixtures_app`.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from _fixtures_app import synthetic_trace
from neuroscope_tui.snapshot import save_snapshot
from neuroscope_tui.trace import Trace


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """`neuroscope-tui ARGS` as a user runs it (a fresh process), output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "neuroscope_tui", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def error_sentence(stderr: str) -> str:
    """The error line of a failed command, checked to be one sentence and no traceback.

    Progress lines ("loading X") may come first; the error is the last line and says
    `neuroscope-tui: ...`.
    """
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    last = lines[-1]
    assert last.startswith("neuroscope-tui"), stderr
    message = last.split(": ", 1)[1] if ": " in last else last
    # one sentence: no full stop followed by more words ("e.g." is not a full stop)
    body = message.replace("e.g. ", "e.g.").rstrip(".")
    assert ". " not in body, f"more than one sentence: {message!r}"
    return message


def long_trace(repeat: int = 5) -> Trace:
    """The synthetic 11-token trace repeated `repeat` times along the token axis (55 tokens):
    wider than the heatmap area of an 80x24 terminal, every array still consistent."""
    base = synthetic_trace()
    arrays = {
        name: np.concatenate([arr] * repeat, axis=Trace.token_axis(name))
        for name, arr in base.arrays.items()
        if not name.startswith("pattern.")
    }
    n_tok = base.n_tokens * repeat
    return replace(
        base,
        token_ids=base.token_ids * repeat,
        token_text=base.token_text * repeat,
        n_prompt=n_tok - 5,  # the last 5 are generated, as in the base trace
        arrays=arrays,
        prompt="".join((base.token_text * repeat)[: n_tok - 5]),
    )


def _rewrite_manifest(good: Path, out: Path, change) -> Path:
    """Copy snapshot `good` to `out` with its manifest passed through `change(dict)`."""
    data = good.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    manifest = json.loads(header["__metadata__"]["neuroscope"])
    change(manifest)
    header["__metadata__"] = {"neuroscope": json.dumps(manifest)}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    out.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    return out


def bad_snapshots(folder: Path) -> dict[str, Path]:
    """A good snapshot and every kind of bad one, by name, written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    good = save_snapshot(synthetic_trace(), folder / "good.nscope", force=True)
    data = good.read_bytes()
    out = {"good": good, "missing": folder / "missing.nscope", "folder": folder / "adir.nscope"}
    out["folder"].mkdir(exist_ok=True)
    (folder / "half.nscope").write_bytes(data[: len(data) // 2])
    out["truncated"] = folder / "half.nscope"
    (folder / "head.nscope").write_bytes(data[:20])
    out["truncated_header"] = folder / "head.nscope"
    (folder / "empty.nscope").write_bytes(b"")
    out["empty"] = folder / "empty.nscope"
    (folder / "notes.txt").write_text("my notes, not a snapshot\n")
    out["text"] = folder / "notes.txt"
    flipped = bytearray(data)
    flipped[10:30] = b"\xff" * 20
    (folder / "flipped.nscope").write_bytes(bytes(flipped))
    out["corrupted"] = folder / "flipped.nscope"
    (folder / "huge.nscope").write_bytes(struct.pack("<Q", 2**62) + b"{}")
    out["huge_header"] = folder / "huge.nscope"

    from safetensors.numpy import save_file

    save_file({"x": np.zeros(3, np.float32)}, str(folder / "plain.safetensors"))
    out["plain_safetensors"] = folder / "plain.safetensors"

    def newer(m):
        m["version"] = 99

    def bad_version(m):
        m["version"] = "one"

    def ghost(m):
        m["arrays"] = [*m["arrays"], "resid.ghost"]

    def no_model(m):
        del m["model"]

    def short_tokens(m):
        m["token_ids"] = m["token_ids"][:3]
        m["token_text"] = m["token_text"][:3]
        m["n_prompt"] = 2

    for name, change in [
        ("newer", newer),
        ("bad_version", bad_version),
        ("missing_array", ghost),
        ("no_model", no_model),
        ("inconsistent", short_tokens),
    ]:
        out[name] = _rewrite_manifest(good, folder / f"{name}.nscope", change)
    return out

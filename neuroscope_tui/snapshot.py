"""Snapshot files: one Trace kept in one safetensors file, readable without neuroscope.

A snapshot is a plain safetensors file. Every array of `Trace.arrays` is a tensor under its own
name, every array of `Trace.extras` a tensor under `extras/<name>`, and the rest of the Trace
(model, spec, tokens, prompt, notes) is a JSON manifest in the file's metadata under the key
"neuroscope". No pickle anywhere, and nothing here imports torch: `safetensors.numpy` reads and
writes numpy arrays directly. `docs/snapshot-format.md` is the user-facing account.

Writes are atomic (a temporary file in the same folder, fsync, then `os.replace`), so a crash
never leaves a half-written snapshot under the real name, and an existing file is only
replaced when asked to.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from neuroscope_tui import __version__
from neuroscope_tui.errors import OutputPathError, SnapshotError
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace

SNAPSHOT_FORMAT = "neuroscope-tui snapshot"
SNAPSHOT_VERSION = 1
MANIFEST_KEY = "neuroscope"
EXTRAS_PREFIX = "extras/"
SUFFIX = ".nscope"

# safetensors keeps its header length in the first 8 bytes; headers above 100 MB are refused.
_HEADER_LEN = struct.Struct("<Q")
_MAX_HEADER = 100_000_000


# ---- writing -----------------------------------------------------------------------------


def check_output_path(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """The path a snapshot may be written to; OutputPathError says why it cannot.

    Checks, before any expensive work: the path is not an existing folder, an existing file
    is only accepted with `force`, the parent folder exists, and a file can be created in it
    (probed by really creating and deleting one, so a read-only mount is caught even as root).
    """
    out = Path(path).expanduser()
    if out.is_dir():
        raise OutputPathError(f"{out} is a folder; give a file name such as {out / 'run.nscope'}")
    if out.exists() and not force:
        raise OutputPathError(f"{out} already exists; pass --force to overwrite it")
    parent = out.parent
    if not parent.exists():
        raise OutputPathError(f"the folder {parent} does not exist; create it first")
    if not parent.is_dir():
        raise OutputPathError(f"{parent} is not a folder, so {out.name} cannot be written in it")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{out.name}.", suffix=".probe")
    except OSError as err:
        raise OutputPathError(
            f"cannot write in the folder {parent} ({err.strerror or err}); choose another path"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return out


def save_snapshot(trace: Trace, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write `trace` to `path` as a snapshot and return the path written.

    Raises OutputPathError if the path exists (and not `force`), its folder is missing, or it
    cannot be written. The file appears complete or not at all.
    """
    out = check_output_path(path, force=force)
    tensors, manifest = _to_tensors(trace)
    metadata = {MANIFEST_KEY: json.dumps(manifest, default=_json_default, ensure_ascii=False)}
    from safetensors.numpy import save_file

    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a snapshot is a document
        os.replace(tmp, out)
    except OSError as err:
        raise OutputPathError(
            f"could not write {out} ({err.strerror or err}); check the disk and try again"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(out.parent)
    return out


def _to_tensors(trace: Trace) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split a Trace into safetensors-ready arrays and a JSON manifest."""
    tensors: dict[str, np.ndarray] = {}
    for name, arr in trace.arrays.items():
        tensors[name] = _storable(name, arr)
    # Text arrays (labels, say) are not a safetensors dtype: they go in the manifest instead.
    text_extras: dict[str, Any] = {}
    for name, arr in trace.extras.items():
        arr = np.asarray(arr)
        if arr.dtype.kind in "US":
            text_extras[name] = {"shape": list(arr.shape), "values": arr.astype(str).tolist()}
        else:
            tensors[EXTRAS_PREFIX + name] = _storable(EXTRAS_PREFIX + name, arr)
    manifest = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "trace_version": trace.version,
        "written_by": f"neuroscope-tui {__version__}",
        "model": trace.model.to_dict(),
        "spec": trace.spec.to_dict(),
        "token_ids": [int(t) for t in trace.token_ids],
        "token_text": list(trace.token_text),
        "n_prompt": int(trace.n_prompt),
        "prompt": trace.prompt,
        "finished": bool(trace.finished),
        "stop_reason": trace.stop_reason,
        "notes": trace.notes,
        "arrays": sorted(trace.arrays),
        "extras": sorted(n for n in trace.extras if n not in text_extras),
        "text_extras": text_extras,
    }
    return tensors, manifest


def _storable(name: str, arr: np.ndarray) -> np.ndarray:
    """`arr` as a contiguous, native-byte-order array of a dtype safetensors can hold."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"array {name!r} has dtype {arr.dtype}, which a snapshot cannot hold")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return np.ascontiguousarray(arr)


def _json_default(value: Any) -> Any:
    """Let numpy scalars and small arrays in `notes` become JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"trace.notes holds a {type(value).__name__}, which is not JSON")


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (not possible on every platform, so best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- reading -----------------------------------------------------------------------------


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON manifest of the snapshot at `path`, checked; SnapshotError says what is wrong."""
    src = Path(path).expanduser()
    header = _read_header(src)
    meta = header.get("__metadata__") or {}
    if MANIFEST_KEY not in meta:
        raise SnapshotError(f"{src} is a safetensors file but not a neuroscope snapshot")
    try:
        manifest = json.loads(meta[MANIFEST_KEY])
    except json.JSONDecodeError:
        raise SnapshotError(f"{src} has a damaged manifest; capture the run again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{src} is a safetensors file but not a neuroscope snapshot")
    version = manifest.get("version")
    if not isinstance(version, int) or version < 1:
        raise SnapshotError(f"{src} has no valid format version; capture the run again")
    if version > SNAPSHOT_VERSION:
        raise SnapshotError(
            f"{src} was made by a newer neuroscope-tui (format {version}, this reads up to "
            f"{SNAPSHOT_VERSION}); upgrade with pip install -U neuroscope-tui"
        )
    return manifest


def load_snapshot(path: str | os.PathLike[str]) -> Trace:
    """The Trace kept in the snapshot at `path`.

    Raises SnapshotError for a missing file, a file that is not safetensors, a truncated or
    corrupted one, a safetensors file without a neuroscope manifest, or a newer format version.
    Does not import torch.
    """
    src = Path(path).expanduser()
    manifest = read_manifest(src)
    from safetensors import safe_open

    arrays: dict[str, np.ndarray] = {}
    extras: dict[str, np.ndarray] = {}
    try:
        with safe_open(str(src), framework="np") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if key.startswith(EXTRAS_PREFIX):
                    extras[key[len(EXTRAS_PREFIX) :]] = f.get_tensor(key)
                else:
                    arrays[key] = f.get_tensor(key)
    except Exception as err:  # safetensors raises its own error types (and OSError) here
        raise SnapshotError(f"{src} is corrupted ({err}); capture the run again") from None
    missing = [n for n in manifest.get("arrays", []) if n not in arrays]
    missing += [EXTRAS_PREFIX + n for n in manifest.get("extras", []) if n not in extras]
    if missing:
        raise SnapshotError(f"{src} lacks the arrays {', '.join(missing)}; capture the run again")
    for name, item in (manifest.get("text_extras") or {}).items():
        extras[name] = np.array(item["values"], dtype=str).reshape(item["shape"])
    try:
        trace = Trace(
            model=ModelInfo.from_dict(manifest["model"]),
            spec=CaptureSpec.from_dict(manifest.get("spec") or {}),
            token_ids=[int(t) for t in manifest["token_ids"]],
            token_text=[str(t) for t in manifest["token_text"]],
            n_prompt=int(manifest["n_prompt"]),
            arrays=arrays,
            extras=extras,
            notes=dict(manifest.get("notes") or {}),
            prompt=str(manifest.get("prompt", "")),
            finished=bool(manifest.get("finished", True)),
            stop_reason=str(manifest.get("stop_reason", "")),
            version=int(manifest.get("trace_version", 1)),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise SnapshotError(
            f"{src} has a damaged manifest ({err}); capture the run again"
        ) from None
    problem = _inconsistency(trace)
    if problem:
        raise SnapshotError(f"{src} is inconsistent ({problem}); capture the run again")
    return trace


def _inconsistency(trace: Trace) -> str:
    """What contradicts the token count in a loaded trace ('' when nothing does).

    Every view indexes arrays by token position, so an array whose token axis disagrees with
    the manifest's tokens (a hand-edited or damaged file) would crash them far from the cause.
    """
    n_tok = trace.n_tokens
    if len(trace.token_text) != n_tok:
        return f"{n_tok} token ids but {len(trace.token_text)} token texts"
    if not 0 <= trace.n_prompt <= n_tok:
        return f"n_prompt {trace.n_prompt} is outside 0..{n_tok}"
    for name, arr in sorted(trace.arrays.items()):
        if name.startswith("pattern."):
            # A pattern computed on demand in the app may lag the run by a few query rows.
            if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] > n_tok:
                return f"array {name} has shape {list(arr.shape)} for {n_tok} tokens"
            continue
        axis = Trace.token_axis(name)
        if arr.ndim <= axis or arr.shape[axis] != n_tok:
            return f"array {name} has shape {list(arr.shape)} for {n_tok} tokens"
    return ""


def _read_header(src: Path) -> dict[str, Any]:
    """The parsed safetensors header of `src`, after checking the file is whole."""
    if not src.exists():
        raise SnapshotError(f"there is no file {src}; check the path")
    if src.is_dir():
        raise SnapshotError(f"{src} is a folder, not a snapshot file")
    try:
        size = src.stat().st_size
        with open(src, "rb") as f:
            head = f.read(_HEADER_LEN.size)
            if len(head) < _HEADER_LEN.size:
                raise SnapshotError(f"{src} is not a snapshot (it is too short to be one)")
            (n,) = _HEADER_LEN.unpack(head)
            if n == 0 or n > _MAX_HEADER:
                raise SnapshotError(f"{src} is not a snapshot (not a safetensors file)")
            raw = f.read(n)
    except OSError as err:
        raise SnapshotError(f"cannot read {src} ({err.strerror or err})") from None
    if not raw.lstrip().startswith(b"{"):
        raise SnapshotError(f"{src} is not a snapshot (not a safetensors file)")
    if len(raw) < n:
        raise SnapshotError(f"{src} is truncated (its header is cut short); capture the run again")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SnapshotError(f"{src} is not a snapshot (not a safetensors file)") from None
    if not isinstance(header, dict):
        raise SnapshotError(f"{src} is not a snapshot (not a safetensors file)")
    data_end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            data_end = max(data_end, int(info["data_offsets"][1]))
        except (KeyError, TypeError, ValueError, IndexError):
            raise SnapshotError(
                f"{src} is corrupted (bad entry {key!r}); capture the run again"
            ) from None
    if size < _HEADER_LEN.size + n + data_end:
        raise SnapshotError(
            f"{src} is truncated ({size} of {_HEADER_LEN.size + n + data_end} bytes); "
            "capture the run again"
        )
    return header

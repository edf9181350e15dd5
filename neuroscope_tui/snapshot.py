"""Snapshot files: one Trace kept in one safetensors file, readable without neuroscope.

A snapshot is a plain safetensors file. Every array of `Trace.arrays` is a tensor under its own
name, every array of `Trace.extras` a tensor under `extras/<name>`, and the rest of the Trace
(model, spec, tokens, prompt, notes) is a JSON manifest in the file's metadata under the key
"neuroscope". No pickle anywhere, and nothing here imports torch: `safetensors.numpy` reads and
writes numpy arrays directly. `docs/snapshot-format.md` is the user-facing account.

Writes go through `atomic_file.write_atomically` (a temporary file of our own naming in the
same folder, fsync, rename), so a crash, a full disk or a signal never leaves a half-written
snapshot under the real name nor a temporary file behind, and an existing file is only
replaced when asked to. Reads check the whole header (`safetensors_file.read_header`) and the
manifest against it (`snapshot_manifest.check_manifest`) once, before any array is touched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from neuroscope_tui import __version__
from neuroscope_tui.atomic_file import probe_folder, write_atomically
from neuroscope_tui.errors import OutputPathError, SnapshotError
from neuroscope_tui.safetensors_file import (
    DTYPES,
    Header,
    HeaderProblem,
    read_tagged_header,
    shown,
    write_safetensors,
)
from neuroscope_tui.snapshot_manifest import EXTRAS_PREFIX, ManifestSchema, check_manifest
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace

SNAPSHOT_FORMAT = "neuroscope-tui snapshot"
SNAPSHOT_VERSION = 1
MANIFEST_KEY = "neuroscope"
SUFFIX = ".nscope"


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
    probe_folder(parent)
    return out


def save_snapshot(trace: Trace, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write `trace` to `path` as a snapshot and return the path written.

    Raises OutputPathError (one sentence) if the path exists (and not `force`), its folder is
    missing, or writing fails for any reason (a full disk included). The file appears
    complete or not at all, and no temporary file is left behind.
    """
    out = check_output_path(path, force=force)
    tensors, manifest = _to_tensors(trace)
    metadata = {MANIFEST_KEY: json.dumps(manifest, default=_json_default, ensure_ascii=False)}
    return write_atomically(out, lambda f: write_safetensors(f, tensors, metadata), overwrite=force)


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
        "interventions": list(trace.interventions),
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
    if arr.dtype not in DTYPES.values():
        raise TypeError(f"array {name!r} has dtype {arr.dtype}, which a snapshot cannot hold")
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


# ---- reading -----------------------------------------------------------------------------


def _checked(src: Path) -> tuple[Header, dict[str, Any]]:
    """The file's checked header and its manifest (format and version checked; the rest is
    `check_manifest`'s job). SnapshotError says what is wrong, in one sentence."""
    return read_tagged_header(
        src,
        error=SnapshotError,
        key=MANIFEST_KEY,
        fmt=SNAPSHOT_FORMAT,
        newest=SNAPSHOT_VERSION,
        noun="snapshot",
        damaged_hint="; capture the run again",
    )


def _snapshot_error(src: Path, problem: HeaderProblem) -> SnapshotError:
    words = str(problem)
    damaged = ("is corrupted", "is truncated", "has a damaged", "is inconsistent", "lacks")
    again = "; capture the run again" if words.startswith(damaged) else ""
    return SnapshotError(f"{src} {words}{again}")


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the snapshot at `path`, checked against the file's arrays (before any
    array is read); SnapshotError says what is wrong."""
    src = Path(path).expanduser()
    header, manifest = _checked(src)
    try:
        check_manifest(manifest, header)
    except HeaderProblem as problem:
        raise _snapshot_error(src, problem) from None
    return manifest


def load_snapshot(path: str | os.PathLike[str]) -> Trace:
    """The Trace kept in the snapshot at `path`.

    Raises SnapshotError for a missing file, anything but a regular file, a file that is not
    safetensors, a truncated or corrupted one, a safetensors file without a neuroscope
    manifest, a manifest of the wrong shape or one that contradicts the arrays, or a newer
    format version. Does not import torch.
    """
    src = Path(path).expanduser()
    header, raw = _checked(src)
    try:
        m, spec = check_manifest(raw, header)
    except HeaderProblem as problem:
        raise _snapshot_error(src, problem) from None
    arrays, extras = _read_arrays(src, header)
    return trace_from_manifest(m, spec, raw, arrays, extras)


def trace_from_manifest(
    m: ManifestSchema,
    spec: CaptureSpec,
    raw: dict[str, Any],
    arrays: dict[str, np.ndarray],
    extras: dict[str, np.ndarray],
) -> Trace:
    """The Trace a checked manifest and its arrays describe (a snapshot, or one model's trace
    inside a drift file). `raw` is the manifest as read: its notes and interventions are free
    JSON the schema does not model. Checked beforehand: nothing here can fail."""
    extras = dict(extras)
    for name, item in m.text_extras.items():
        extras[name] = np.array(item.values, dtype=str).reshape(item.shape)
    return Trace(
        model=ModelInfo(**m.model.model_dump()),
        spec=spec,
        token_ids=list(m.token_ids),
        token_text=list(m.token_text),
        n_prompt=m.n_prompt,
        arrays=arrays,
        extras=extras,
        notes=dict(raw.get("notes") or {}),
        prompt=m.prompt,
        finished=m.finished,
        stop_reason=m.stop_reason,
        version=m.trace_version,
        interventions=list(raw.get("interventions") or []),
    )


def _read_arrays(src: Path, header: Header) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every tensor of the file, split into the Trace's arrays and its extras."""
    from safetensors import safe_open

    arrays: dict[str, np.ndarray] = {}
    extras: dict[str, np.ndarray] = {}
    try:
        with safe_open(str(src), framework="np") as f:
            for key in header.tensors:
                if key.startswith(EXTRAS_PREFIX):
                    extras[key[len(EXTRAS_PREFIX) :]] = f.get_tensor(key)
                else:
                    arrays[key] = f.get_tensor(key)
    except Exception as err:  # the file changed since its header was checked
        raise SnapshotError(
            f"{src} could not be read ({shown(str(err))}); capture the run again"
        ) from None
    return arrays, extras

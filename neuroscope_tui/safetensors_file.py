"""The safetensors container, read and written by us: a header checked before anything trusts it.

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON (per tensor its
`dtype`, `shape` and `data_offsets` into the data, plus `__metadata__`, a string-to-string map),
then the tensor data. `read_header` refuses every file whose header could make a reader hang,
allocate without bound or index out of range: a path that is not a regular file (a FIFO would
block `open`), a header that is not bounded JSON, an unknown dtype, a shape whose size does not
match its byte range, ranges that overlap, leave gaps or point past the end of the file.
`write_safetensors` streams the same layout from numpy arrays into an open file, so a save
needs no second in-memory copy of the data and no temporary file of safetensors' own.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

HEADER_LEN = struct.Struct("<Q")
MAX_HEADER = 100_000_000  # safetensors refuses headers above 100 MB
MAX_DEPTH = 64  # JSON nesting; a manifest needs about 8
MAX_INT_DIGITS = 40  # an integer in a header or manifest; Python refuses > 4300 with ValueError
MAX_DIMS = 16

# safetensors dtype name <-> numpy dtype, for the dtypes a numpy array can hold.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype(np.uint8),
    "I8": np.dtype(np.int8),
    "U16": np.dtype(np.uint16),
    "I16": np.dtype(np.int16),
    "F16": np.dtype(np.float16),
    "U32": np.dtype(np.uint32),
    "I32": np.dtype(np.int32),
    "F32": np.dtype(np.float32),
    "U64": np.dtype(np.uint64),
    "I64": np.dtype(np.int64),
    "F64": np.dtype(np.float64),
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}


class HeaderProblem(ValueError):
    """What is wrong with a file, as the words that follow its name in the sentence shown
    ("is truncated (...); capture the run again"): the caller puts the file name first."""


def shown(text: str) -> str:
    """`text` quoted for a message: control characters escaped, cut to 60 characters."""
    cut = text if len(text) <= 60 else text[:57] + "..."
    return repr(cut).encode("ascii", "backslashreplace").decode()


# ---- bounded JSON -----------------------------------------------------------------------------


class JSONProblem(HeaderProblem):
    """Text that the bounded JSON reader refuses; `reason` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"is corrupted ({reason})")
        self.reason = reason


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONProblem(f"an integer of {len(text)} digits")
    return int(text)


def parse_json(text: str | bytes) -> Any:
    """`json.loads` that cannot blow up: integers of at most MAX_INT_DIGITS digits, nesting of
    at most MAX_DEPTH levels; anything else that is not JSON is a HeaderProblem."""
    try:
        value = json.loads(text, parse_int=_bounded_int)
    except RecursionError:
        raise JSONProblem("its JSON is nested too deeply") from None
    except JSONProblem:
        raise
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise JSONProblem("its JSON cannot be read") from None
    _check_depth(value)
    return value


def _check_depth(value: Any) -> None:
    """HeaderProblem when `value` nests deeper than MAX_DEPTH (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise JSONProblem("its JSON is nested too deeply")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


# ---- the header -------------------------------------------------------------------------------

Count = Annotated[int, Field(ge=0)]


class _Entry(BaseModel):
    """One tensor's line in the header, as safetensors defines it."""

    model_config = ConfigDict(strict=True, extra="ignore")
    dtype: str
    shape: Annotated[list[Count], Field(max_length=MAX_DIMS)]
    data_offsets: Annotated[list[Count], Field(min_length=2, max_length=2)]


@dataclass(frozen=True)
class TensorEntry:
    """A checked tensor entry: its numpy dtype, shape and byte range within the data."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Header:
    """A checked safetensors header: the tensors by name and the metadata strings."""

    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]


def open_regular(path: Path) -> int:
    """A read-only descriptor of `path`, refusing anything but a regular file before reading.

    O_NONBLOCK keeps a FIFO swapped in after the check from blocking `open`; fstat then checks
    what was really opened. Raises HeaderProblem (missing, folder, FIFO, device) or OSError.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise
    if stat.S_ISDIR(st.st_mode):
        raise HeaderProblem("is a folder, not a snapshot file")
    if not stat.S_ISREG(st.st_mode):
        raise HeaderProblem(f"is {_kind(st.st_mode)}, not a snapshot file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise HeaderProblem("is not a plain file, not a snapshot file")
    return fd


def _kind(mode: int) -> str:
    for test, words in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return words
    return "not a plain file"


def read_header(path: Path) -> Header:
    """The checked header of the safetensors file at `path`; HeaderProblem says what is wrong.

    After this, every tensor's bytes lie inside the file, end to end with no overlap, and
    their sizes match their shapes, so reading them cannot fail or allocate beyond the file.
    """
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(HEADER_LEN.size)
        if len(head) < HEADER_LEN.size:
            raise HeaderProblem("is not a snapshot (it is too short to be one)")
        (n,) = HEADER_LEN.unpack(head)
        if n == 0 or n > MAX_HEADER:
            raise HeaderProblem("is not a snapshot (not a safetensors file)")
        raw = f.read(n)
    if not raw.lstrip().startswith(b"{"):
        raise HeaderProblem("is not a snapshot (not a safetensors file)")
    if len(raw) < n:
        raise HeaderProblem("is truncated (its header is cut short)")
    try:
        parsed = parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, HeaderProblem):
        raise HeaderProblem("is not a snapshot (not a safetensors file)") from None
    if not isinstance(parsed, dict):
        raise HeaderProblem("is not a snapshot (not a safetensors file)")
    metadata = parsed.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise HeaderProblem("is corrupted (its metadata is not a map of strings)")
    tensors = {name: _entry(name, info) for name, info in parsed.items()}
    _check_layout(tensors, size - HEADER_LEN.size - n)
    return Header(tensors, metadata)


def _entry(name: str, info: Any) -> TensorEntry:
    try:
        e = _Entry.model_validate(info)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "entry"
        raise HeaderProblem(
            f"is corrupted (tensor {shown(name)}: {where}: {first['msg'].lower()})"
        ) from None
    dtype = DTYPES.get(e.dtype)
    if dtype is None:
        raise HeaderProblem(
            f"is corrupted (tensor {shown(name)} has the unknown dtype {shown(e.dtype)})"
        )
    begin, end = e.data_offsets
    count = 1
    for dim in e.shape:
        count *= dim
    if end < begin or end - begin != count * dtype.itemsize:
        raise HeaderProblem(
            f"is corrupted (tensor {shown(name)} has {end - begin} bytes for shape {e.shape})"
        )
    return TensorEntry(name, dtype, tuple(e.shape), begin, end)


def _check_layout(tensors: dict[str, TensorEntry], available: int) -> None:
    """The byte ranges tile the data exactly: from 0, no gap, no overlap, to the file's end."""
    at = 0
    for t in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if t.begin != at:
            raise HeaderProblem(
                f"is corrupted (tensor {shown(t.name)} overlaps another or leaves a gap)"
            )
        at = t.end
    if at > available:
        raise HeaderProblem(f"is truncated ({available} of {at} data bytes)")
    if at < available:
        raise HeaderProblem(f"is corrupted ({available - at} stray bytes after the data)")


# ---- writing ----------------------------------------------------------------------------------


def write_safetensors(f: BinaryIO, tensors: dict[str, np.ndarray], metadata: dict[str, str]):
    """Stream `tensors` (contiguous arrays of a DTYPES dtype) and `metadata` into `f` as a
    safetensors file: the header, padded with spaces to 8 bytes as safetensors does, then each
    array's bytes in little-endian order."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    at = 0
    order = sorted(tensors)
    for name in order:
        arr = tensors[name]
        header[name] = {
            "dtype": _NAMES[arr.dtype.newbyteorder("=")],
            "shape": list(arr.shape),
            "data_offsets": [at, at + arr.nbytes],
        }
        at += arr.nbytes
    raw = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    f.write(HEADER_LEN.pack(len(raw)))
    f.write(raw)
    for name in order:
        arr = np.ascontiguousarray(tensors[name])
        if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not _little()):
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        if arr.nbytes:
            f.write(memoryview(arr.reshape(-1)).cast("B"))


def _little() -> bool:
    import sys

    return sys.byteorder == "little"


def read_tagged_header(
    src: Path,
    *,
    error: type[Exception],
    key: str,
    fmt: str,
    newest: int,
    noun: str,
    damaged_hint: str = "",
) -> tuple[Header, dict[str, Any]]:
    """The checked header of one of our safetensors files and its manifest (a dict).

    Snapshots and concept files share the checks and differ in words: `key` is the metadata
    entry holding the manifest, `fmt` the manifest's
    "format", `newest` the newest version this code reads, `noun` what the file is called in
    a sentence ("snapshot", "concept file"), `damaged_hint` what to do about a damaged file
    ("; capture the run again"). Every problem is `error` with one sentence; the manifest's
    own schema is checked by the caller.
    """
    try:
        header = read_header(src)
    except FileNotFoundError:
        raise error(f"there is no file {src}; check the path") from None
    except HeaderProblem as problem:
        words = str(problem).replace("snapshot", noun)
        damaged = ("is corrupted", "is truncated", "has a damaged", "is inconsistent", "lacks")
        raise error(f"{src} {words}{damaged_hint if words.startswith(damaged) else ''}") from None
    except OSError as err:
        raise error(f"cannot read {src} ({err.strerror or err})") from None
    kind = noun.split()[0]
    text = header.metadata.get(key)
    if text is None:
        raise error(f"{src} is a safetensors file but not a neuroscope {kind}")
    try:
        manifest = parse_json(text)
    except JSONProblem as problem:
        raise error(f"{src} has a damaged manifest ({problem.reason}){damaged_hint}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise error(f"{src} is a safetensors file but not a neuroscope {kind}")
    version = manifest.get("version")
    if type(version) is not int or version < 1:
        raise error(f"{src} has no valid format version{damaged_hint}")
    if version > newest:
        raise error(
            f"{src} was made by a newer neuroscope-tui (format {version}, this reads up to "
            f"{newest}); upgrade with pip install -U neuroscope-tui"
        )
    return header, manifest

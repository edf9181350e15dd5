"""One tensor at a time from a safetensors weights file, by plain reads: no memory map.

`safe_open` maps the whole file, and every page a comparison touches stays in the process's
resident set until the file is closed: streaming a checkpoint against two references showed
three models' worth of resident memory (SmolLM2: 1.6 GB of mapped pages beside 0.5 GB of
our own). `WeightFile.get_tensor` reads one tensor's bytes into a fresh buffer instead, so
what stays resident is the tensors being compared; the kernel's page cache still serves
repeated reads. The header is checked before it is trusted: bounded length, known dtypes,
byte ranges inside the file that match the shapes.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import torch

from neuroscope_tui.models.checkpoints import NoWeightFiles

MAX_HEADER = 100_000_000  # safetensors' own limit

TORCH_DTYPES: dict[str, torch.dtype] = {
    name: dtype
    for name, dtype in {
        "F64": torch.float64,
        "F32": torch.float32,
        "F16": torch.float16,
        "BF16": torch.bfloat16,
        "F8_E4M3": getattr(torch, "float8_e4m3fn", None),
        "F8_E5M2": getattr(torch, "float8_e5m2", None),
        "I64": torch.int64,
        "I32": torch.int32,
        "I16": torch.int16,
        "I8": torch.int8,
        "U8": torch.uint8,
        "BOOL": torch.bool,
    }.items()
    if dtype is not None
}


class WeightFile:
    """An open safetensors file: `keys()` and `get_tensor(name)` (CPU, a fresh buffer)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 (closed by close / __exit__)
        except OSError as err:
            raise NoWeightFiles(f"cannot read {self.path} ({err.strerror or err})") from None
        try:
            self._entries, self._start = self._header()
        except BaseException:
            self._file.close()
            raise

    def _bad(self, why: str) -> NoWeightFiles:
        return NoWeightFiles(f"{self.path} is not a usable safetensors file ({why})")

    def _header(self) -> tuple[dict[str, tuple[torch.dtype, list[int], int, int]], int]:
        size = os.fstat(self._file.fileno()).st_size
        raw = self._file.read(8)
        if len(raw) < 8:
            raise self._bad("shorter than its header")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER or 8 + n > size:
            raise self._bad("its header length is past the end of the file")
        try:
            header = json.loads(self._file.read(n))
        except (ValueError, RecursionError):
            raise self._bad("its header is not JSON") from None
        if not isinstance(header, dict):
            raise self._bad("its header is not a JSON object")
        entries = {}
        data = size - 8 - n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            try:
                dtype = TORCH_DTYPES[info["dtype"]]
                shape = [int(d) for d in info["shape"]]
                start, end = (int(x) for x in info["data_offsets"])
            except (KeyError, TypeError, ValueError):
                why = f"tensor {name!r} has a dtype, shape or range drift cannot read"
                raise self._bad(why) from None
            nbytes = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
            if min(shape, default=0) < 0 or not 0 <= start <= end <= data or end - start != nbytes:
                raise self._bad(f"tensor {name!r} has a byte range that does not fit its shape")
            entries[str(name)] = (dtype, shape, start, end)
        return entries, 8 + n

    def keys(self) -> list[str]:
        return list(self._entries)

    def get_tensor(self, name: str) -> torch.Tensor:
        dtype, shape, start, end = self._entries[name]
        buf = bytearray(end - start)
        self._file.seek(self._start + start)
        if self._file.readinto(buf) != len(buf):
            raise self._bad(f"tensor {name!r} is cut short")
        if not buf:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(shape)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> WeightFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Fuzzing the snapshot reader with hypothesis: generated manifests (valid and invalid JSON
values for every manifest field) and byte-level mutations of the real snapshots in tests/data,
through `load_snapshot`, `info` and every export. The contract, for every input: success, or
exactly one clean sentence on stderr with exit 2; never a traceback, a hang, or raw control
bytes on the terminal.

Bounded for CI: derandomized (the same examples every run) and about 30-60 s in all; set
HYPOTHESIS_PROFILE=deep for a longer local search.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuroscope_tui.analysis.exports import EXPORTS
from neuroscope_tui.cli import main
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.snapshot import load_snapshot

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,  # a shared CI machine's timing varies; hangs are caught by the alarm below
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("deep", parent=settings.get_profile("ci"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DATA = sorted((Path(__file__).parent / "data").glob("*.nscope"))
SEEDS = [p.read_bytes() for p in DATA]
EXPORT_KINDS = list(EXPORTS)
PER_EXAMPLE_SECONDS = 20
# Raw control bytes a terminal would act on: C0 except \n and \t, DEL, and the 8-bit CSI.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\x9b]")


@contextlib.contextmanager
def time_limit(seconds: int):
    def hung(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_contract(path: Path) -> None:
    """load_snapshot, info and every export on `path`: success or one sentence and exit 2."""
    with time_limit(PER_EXAMPLE_SECONDS):
        try:
            load_snapshot(path)
        except SnapshotError as err:
            assert "\n" not in str(err)
        runs = [["info", str(path)], ["info", str(path), "--json"]]
        runs += [["export", str(path), kind] for kind in EXPORT_KINDS]
        for argv in runs:
            code, out, err = run_main(argv)
            assert code in (0, 2), (argv, code, err)
            assert "Traceback" not in err
            if code == 2:
                lines = err.splitlines()
                assert len(lines) == 1 and lines[0].startswith("neuroscope-tui: "), (argv, err)
            # Passes on the CI examples; a deeper search (HYPOTHESIS_PROFILE=deep) may still find
            # a model name or note printed raw by `info` until issue 9 item 4 (`visible()`) lands.
            assert not CONTROL.search(out + err), (argv, out[:200], err)


# ---- generated manifests -----------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities included: json.dumps writes them
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


def _manifest_paths(value, prefix=()) -> list[tuple]:
    paths = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            paths += _manifest_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            paths += _manifest_paths(v, (*prefix, i))
    return paths


def _header_and_data(seed: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", seed[:8])
    return json.loads(seed[8 : 8 + n]), seed[8 + n :]


@st.composite
def changed_manifests(draw) -> bytes:
    """A real snapshot whose manifest has one field (at any depth) replaced or removed, or a
    new field added: the header and the arrays stay valid."""
    seed = draw(st.sampled_from(SEEDS))
    header, data = _header_and_data(seed)
    manifest = json.loads(header["__metadata__"]["neuroscope"])
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _manifest_paths(manifest) if p]
        path = draw(st.sampled_from(paths))
        parent = manifest
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        else:
            parent[path[-1]] = draw(json_values)
    header["__metadata__"] = {"neuroscope": json.dumps(manifest)}
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@given(content=changed_manifests())
def test_generated_manifests_keep_the_contract(tmp_path_factory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "m.nscope"
    path.write_bytes(content)
    assert_contract(path)


# ---- byte-level mutations ---------------------------------------------------------------------


@st.composite
def mutated_files(draw) -> bytes:
    """A real snapshot with bit flips, a truncation, an insertion, a deletion or an overwrite,
    mostly in the header (where a flip changes meaning rather than a number)."""
    buf = bytearray(draw(st.sampled_from(SEEDS)))
    (n,) = struct.unpack("<Q", buf[:8])
    for _ in range(draw(st.integers(1, 4))):
        if not buf:
            break
        end = len(buf) if draw(st.booleans()) else min(len(buf), 8 + n)
        at = draw(st.integers(0, max(end - 1, 0)))
        kind = draw(st.sampled_from(["flip", "flip", "truncate", "insert", "delete", "overwrite"]))
        if kind == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del buf[at : at + draw(st.integers(1, 16))]
        else:
            patch = draw(st.binary(min_size=1, max_size=8))
            buf[at : at + len(patch)] = patch
    return bytes(buf)


@given(content=mutated_files())
@settings(max_examples=2 * settings.default.max_examples)
def test_mutated_snapshots_keep_the_contract(tmp_path_factory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "b.nscope"
    path.write_bytes(content)
    assert_contract(path)


@pytest.mark.parametrize("seed", DATA, ids=lambda p: p.name)
def test_the_unmutated_seeds_load(seed: Path) -> None:
    """The fuzz starts from files that really load (else it would test only refusals)."""
    assert load_snapshot(seed).n_tokens > 0
    code, _out, err = run_main(["info", str(seed)])
    assert code == 0 and err == ""

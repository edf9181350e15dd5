"""Writing files (atomic_file.py): a full disk, a writer's own error, SIGTERM and kill -9 during
a save leave the previous file intact and no temporary file behind; every file we write gets
a normal document's mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from _fixtures_app import synthetic_trace
from _fixtures_e2e import error_sentence, run_cli
from neuroscope_tui.atomic_file import STALE_AFTER, TEMP_SUFFIX, remove_stale_temps, temp_path
from neuroscope_tui.errors import OutputPathError
from neuroscope_tui.snapshot import load_snapshot, save_snapshot

ROOT = Path(__file__).resolve().parents[1]


def big_trace():
    """The synthetic trace plus 256 KiB of data: more than the small disk below holds."""
    trace = synthetic_trace()
    trace.extras["filler"] = np.ones(64 * 1024, dtype=np.float32)
    return trace


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 64 KiB tmpfs (we run as root in CI); skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_full_disk_is_one_sentence_and_keeps_the_old_file(small_disk: Path) -> None:
    old = small_disk / "run.nscope"
    old.write_bytes(b"the previous run")
    for target, force in ((small_disk / "new.nscope", False), (old, True)):
        with pytest.raises(OutputPathError, match="No space left on device") as info:
            save_snapshot(big_trace(), target, force=force)
        assert "\n" not in str(info.value)
    assert old.read_bytes() == b"the previous run"
    assert not (small_disk / "new.nscope").exists()
    assert leftovers(small_disk) == []


def test_a_writers_own_error_type_becomes_one_sentence(tmp_path: Path, monkeypatch) -> None:
    """safetensors raises SafetensorError (not OSError) on a full disk; any such error of a
    writer is an OutputPathError and leaves nothing behind."""
    from safetensors import SafetensorError

    import neuroscope_tui.snapshot

    def broken(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(neuroscope_tui.snapshot, "write_safetensors", broken)
    with pytest.raises(OutputPathError, match=r"could not write .*No space left"):
        save_snapshot(synthetic_trace(), tmp_path / "run.nscope")
    assert os.listdir(tmp_path) == []


def test_capture_on_a_full_disk_is_exit_2(small_disk: Path, tmp_path: Path) -> None:
    from tiny_models import build_tiny

    model = build_tiny("llama", tmp_path / "llama")
    (small_disk / "filler").write_bytes(b"\0" * 60 * 1024)  # leave about 4 KiB
    out = small_disk / "run.nscope"
    proc = run_cli("capture", model, "--prompt", "the cat sat", "-o", out, "--full-layers", "all")
    assert proc.returncode == 2, proc.stderr
    assert "No space left on device" in error_sentence(proc.stderr)
    assert not out.exists() and leftovers(small_disk) == []


# ---- signals ---------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    import neuroscope_tui.snapshot as snapshot
    from _fixtures_app import synthetic_trace

    real = snapshot.write_safetensors

    def slow(f, tensors, metadata):  # half the file, then a long pause: a save in progress
        f.write(b"x" * 4096)
        f.flush()
        print("writing", flush=True)
        time.sleep(60)
        real(f, tensors, metadata)

    snapshot.write_safetensors = slow
    snapshot.save_snapshot(synthetic_trace(), sys.argv[1])
    """
)


def start_slow_save(target: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(target)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "writing"
    (tmp,) = [p for p in target.parent.iterdir() if p.name.endswith(TEMP_SUFFIX)]
    assert tmp.name.startswith(f".{target.name}.{child.pid}.")
    return child


def test_sigterm_during_a_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "run.nscope"
    child = start_slow_save(target)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM  # still ends as SIGTERM would
    assert os.listdir(tmp_path) == []


def test_kill_9_leftover_is_removed_by_the_next_save(tmp_path: Path) -> None:
    target = tmp_path / "run.nscope"
    child = start_slow_save(target)
    child.kill()
    child.wait(timeout=30)
    assert len(leftovers(tmp_path)) == 1  # kill -9 cannot be caught...
    save_snapshot(synthetic_trace(), tmp_path / "next.nscope")
    assert leftovers(tmp_path) == []  # ...so the next save into the folder removes it
    assert load_snapshot(tmp_path / "next.nscope").n_tokens == synthetic_trace().n_tokens


def test_stale_rule_keeps_live_writers_and_other_files(tmp_path: Path) -> None:
    live = temp_path(tmp_path / "a.nscope")  # our own pid: alive
    live.write_bytes(b"")
    other = tmp_path / ".a.nscope.tmp"  # not our naming
    other.write_bytes(b"")
    old = tmp_path / f".b.nscope.1.0123abcd{TEMP_SUFFIX}"  # pid 1 lives, but untouched
    old.write_bytes(b"")
    past = time.time() - STALE_AFTER - 60
    os.utime(old, (past, past))
    assert remove_stale_temps(tmp_path) == [old]
    assert live.exists() and other.exists()
    assert remove_stale_temps(tmp_path, now=time.time() + STALE_AFTER + 60) == [live]


# ---- modes -----------------------------------------------------------------------------------


def test_every_written_file_has_a_documents_mode(tmp_path: Path) -> None:
    """Snapshots, `export -o` tables and (through the same write_text) the app's CSV files get
    0666 less the umask, not mkstemp's private 0600."""
    from neuroscope_tui.tables_io import write_text

    previous = os.umask(0o022)
    try:
        snap = save_snapshot(synthetic_trace(), tmp_path / "run.nscope")
        table = write_text(str(tmp_path / "t.csv"), "a,b\n", force=False)
        proc = run_cli("export", snap, "heatmap", "-o", tmp_path / "heatmap.csv")
        assert proc.returncode == 0, proc.stderr
    finally:
        os.umask(previous)
    for path in (snap, table, tmp_path / "heatmap.csv"):
        assert path.stat().st_mode & 0o777 == 0o644, path
    assert leftovers(tmp_path) == []

"""Writing a file so that it appears complete or not at all, and no temporary file outlives us.

Every file neuroscope-tui writes (snapshots, `export -o` tables, the app's CSV files) goes
through `write_atomically`: the content goes to `.<name>.<pid>.<random>.nscope-tmp` in the
target's folder, is flushed to disk, given the mode a new document gets (0666 less the umask),
then renamed over the target and the folder flushed. An existing file is never touched unless
asked to overwrite it, and even then only by the final rename.

Temporary files are removed on every failure, on SIGTERM (a handler, active only while a write
is in progress, removes them and then lets the signal do what it did before) and at exit. A
`kill -9` cannot be caught, so each write first removes stale temporary files of our naming in
its folder: those whose writer process is gone, or that nobody has touched for STALE_AFTER.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from neuroscope_tui.errors import NeuroscopeError, OutputPathError

TEMP_SUFFIX = ".nscope-tmp"
STALE_AFTER = 15 * 60  # seconds without a write after which a live writer counts as stuck
_TEMP_NAME = re.compile(r"^\..*\.(\d+)\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")

_registered: set[str] = set()  # temporary files of this process, removed on a signal or exit
_lock = threading.Lock()


def temp_path(target: Path) -> Path:
    """A fresh temporary name beside `target` that says whose it is (our pid) and what it is."""
    stem = target.name[:80]
    return target.parent / f".{stem}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def _remove_registered() -> None:
    with _lock:
        paths = list(_registered)
        _registered.clear()
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


atexit.register(_remove_registered)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # someone else's live process (or a nonsense pid: treat as gone)
    return True


def remove_stale_temps(folder: Path, *, now: float | None = None) -> list[Path]:
    """Remove our temporary files in `folder` whose writer is dead or that are STALE_AFTER
    old; return what was removed. Best effort: a folder that cannot be listed is left alone."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or entry.path in _registered:
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if _pid_alive(int(match.group(1))) and age < STALE_AFTER:
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def _cleanup_on_sigterm() -> Iterator[None]:
    """While writing, SIGTERM removes our temporary files first, then acts as it did before
    (by default: the process ends with the signal). Only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        yield
        return

    def on_sigterm(signum: int, frame: object) -> None:
        _remove_registered()
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)
        else:
            os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def probe_folder(folder: Path) -> None:
    """OutputPathError when a file cannot be created in `folder` (a read-only mount, say;
    probed by creating one, so it holds even for root)."""
    probe = temp_path(folder / "probe")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the name
        raise OutputPathError(
            f"cannot write in the folder {folder} ({getattr(err, 'strerror', None) or err}); "
            "choose another path"
        ) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def write_atomically(
    target: Path, write: Callable[[BinaryIO], None], *, overwrite: bool = False
) -> Path:
    """Create `target` with what `write(f)` writes into a binary file; return `target`.

    Raises OutputPathError (one sentence) when anything fails: the folder cannot be written,
    the disk is full, `write` itself fails, or `target` exists and not `overwrite` (also when
    it appeared while we wrote). On any failure the temporary file is gone and an existing
    `target` is untouched.
    """
    folder = target.parent
    remove_stale_temps(folder)
    tmp = temp_path(target)
    with _lock:
        _registered.add(str(tmp))
    try:
        with _cleanup_on_sigterm():
            try:
                # 0666 through open(): the umask applies as for any new document.
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except (OSError, ValueError) as err:  # ValueError: a NUL byte in the name
                reason = getattr(err, "strerror", None) or err
                raise OutputPathError(
                    f"cannot write in the folder {folder} ({reason}); choose another path"
                ) from None
            try:
                with os.fdopen(fd, "wb") as f:
                    write(f)
                    f.flush()
                    os.fsync(f.fileno())
                _move_into_place(tmp, target, overwrite)
            except NeuroscopeError:
                raise
            except Exception as err:  # a full disk raises OSError, or a writer's own error type
                reason = err.strerror if isinstance(err, OSError) and err.strerror else err
                raise OutputPathError(
                    f"could not write {target} ({reason}); check the disk and try again"
                ) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        with _lock:
            _registered.discard(str(tmp))
    _fsync_dir(folder)
    return target


def _move_into_place(tmp: Path, target: Path, overwrite: bool) -> None:
    """Rename `tmp` to `target`; without `overwrite`, a hard link refuses an existing target
    atomically (a file that appeared since the check is never replaced)."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise OutputPathError(f"{target} already exists; pass --force to overwrite it") from None
    except OSError:
        # No hard links here (some network and FAT file systems): check, then rename.
        if target.exists():
            raise OutputPathError(
                f"{target} already exists; pass --force to overwrite it"
            ) from None
        os.replace(tmp, target)


def _fsync_dir(folder: Path) -> None:
    """Flush the folder entry so the rename survives a power cut (where the OS allows)."""
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

"""What the screenshot scripts share: waiting for the app headless (`python scripts/make_*.py`
puts this folder first on sys.path, so `from shots import wait` finds it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait(condition: Callable[[], object], what: str, timeout: float = 1200.0) -> None:
    """Poll `condition` until it holds; a script that waits longer than `timeout` fails loudly
    rather than shooting a half-drawn screen."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)

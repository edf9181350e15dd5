"""The Hugging Face hub's failures, each turned into one sentence that says what to do.

transformers wraps the hub's errors in OSError / ValueError; the original error is on the
exception chain, so we look there first and at the message only as a fallback.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from neuroscope_tui.errors import ModelLoadError, ModelNotFoundError


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers a TCP connection, so a missing network fails in seconds, not
    after a minute of retries. True whenever we cannot tell (a proxy is configured)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_error(name: str, revision: str | None, err: BaseException) -> Exception:
    """The one-sentence error for a hub (or disk) failure to fetch `name`."""
    from huggingface_hub import errors as hub

    chain = _chain(err)

    def has(*types: type) -> bool:
        return any(isinstance(e, types) for e in chain)

    text = " ".join(str(e) for e in chain)
    if has(hub.GatedRepoError) or "gated repo" in text:
        return ModelLoadError(
            f"{name} is a gated model: accept its licence on https://huggingface.co/{name}, "
            "then log in with `hf auth login`"
        )
    if has(hub.RevisionNotFoundError):
        return ModelNotFoundError(
            f"{name} has no revision {revision!r} on the hub; check --revision"
        )
    if has(hub.RepositoryNotFoundError, hub.HFValidationError) or "not a valid model" in text:
        return ModelNotFoundError(
            f"no model called {name} on the Hugging Face hub or on disk; check the name"
        )
    offline = (hub.LocalEntryNotFoundError, hub.OfflineModeIsEnabled, ConnectionError, TimeoutError)
    if has(*offline) or "couldn't connect" in text:
        return ModelNotFoundError(
            f"could not reach the Hugging Face hub to fetch {name}; connect, or pass a local "
            "folder or .gguf file"
        )
    if has(hub.EntryNotFoundError):
        return ModelNotFoundError(
            f"{name} has no config.json, so it is not a transformers model; check the name"
        )
    return ModelLoadError(f"could not load {name} ({first_line(err)}); check the name and files")


def _chain(err: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        out.append(cur)
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return out


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]

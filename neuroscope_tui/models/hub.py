"""The Hugging Face hub's failures, each turned into one sentence that says what to do.

transformers wraps the hub's errors in OSError / ValueError; the original error is on the
exception chain, so we look there first and at the message only as a fallback.
"""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlparse

from neuroscope_tui.errors import ModelLoadError, ModelNotFoundError
from neuroscope_tui.models.aliases import ALIASES

_PROBE_TTL = 60.0  # seconds one connection probe stands for (locate and load both ask)
_probes: dict[tuple[str, int], tuple[float, bool]] = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers a TCP connection, so a missing network fails in seconds, not
    after a minute of retries. True whenever we cannot tell (a proxy is configured)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    key = (url.hostname or "huggingface.co", port)
    seen = _probes.get(key)
    if seen is not None and time.monotonic() - seen[0] < _PROBE_TTL:
        return seen[1]
    try:
        with socket.create_connection(key, timeout=timeout):
            answer = True
    except OSError:
        answer = False
    _probes[key] = (time.monotonic(), answer)
    return answer


def offline_error(name: str) -> ModelNotFoundError:
    """No network to the hub and `name` not in its local cache: say what works offline."""
    aliases = " or ".join(ALIASES)
    return ModelNotFoundError(
        f"could not reach the Hugging Face hub to fetch {name}, and it is not in the local hub "
        f"cache; connect, run the offline model {aliases} (neuroscope-tui {next(iter(ALIASES))}), "
        "or pass a local folder written by save_pretrained or a .gguf file"
    )


def in_hub_cache(name: str, revision: str | None = None) -> bool:
    """Whether the local hub cache holds `name`'s config.json (so it loads offline).

    Raises ModelNotFoundError for a name that cannot be a hub id at all."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        found = try_to_load_from_cache(name, "config.json", revision=revision)
    except HFValidationError:
        raise ModelNotFoundError(
            f"no model called {name} on the Hugging Face hub or on disk; check the name"
        ) from None
    return isinstance(found, str)


def check_hub_model(name: str, revision: str | None = None) -> None:
    """Fail in seconds, before anything loads, when `name` cannot come from the hub.

    Offline: it must be in the local hub cache (else `offline_error`). Online: the hub must
    know it (a typo gets "no model called"). Failures we cannot judge here (a gated repo, a
    flaky network) are left to the loading call, which words them.
    """
    if in_hub_cache(name, revision):
        return
    if not hub_reachable():
        raise offline_error(name)
    from huggingface_hub import HfApi
    from huggingface_hub import errors as hub

    try:
        HfApi().model_info(name, revision=revision, timeout=10)
    except (hub.RepositoryNotFoundError, hub.RevisionNotFoundError, hub.HFValidationError) as e:
        if isinstance(e, hub.GatedRepoError):  # a subclass of RepositoryNotFoundError
            return
        raise hub_error(name, revision, e) from None
    except Exception:  # gated, rate-limited, a timeout: the loader tries and says why
        return


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
        return offline_error(name)
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

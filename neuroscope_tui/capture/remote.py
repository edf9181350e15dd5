"""A whole run as one nnsight request: on this machine (the tests), or on NDIF (`--remote`).

A remote engine keeps no state between requests, so the token-by-token loop of
capture/nnsight_backend.py (one trace per token, the KV cache carried between them) cannot
travel. Here the run is one `generate` trace instead: the engine decodes greedily and, at
every step of its loop, the trace body runs the backend's `reduce_step`, so only the
per-token summaries come back, all of them when the run is finished (the app shows a waiting
state until then).

What NDIF needs and where it comes from:
- the API key, from the environment variable NDIF_API_KEY only (never a file in the repo, never
  a command-line argument);
- the model's structure, config and tokenizer, read here from the Hugging Face hub; the
  weights stay on NDIF (the model is built on the meta device, no download);
- our reduction code, shipped by value with the request (`nnsight.register`), since
  neuroscope-tui is not installed on the server.

Every way this can fail (no nnsight, no key, no network, a model NDIF does not serve, a queue
that does not finish in time, an error on the server) is a BackendError of one sentence.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from neuroscope_tui.capture.anatomy import find_anatomy
from neuroscope_tui.capture.intervening import Intervener
from neuroscope_tui.capture.interventions import Intervention, Patch
from neuroscope_tui.capture.nnsight_backend import (
    make_plan,
    reduce_step,
    require_nnsight,
    start_backend_trace,
)
from neuroscope_tui.capture.recorder import Recorder
from neuroscope_tui.capture.run import (
    _ANCHOR,
    GenerationOptions,
    _eos_ids,
    token_texts,
)
from neuroscope_tui.errors import BackendError, UsageError
from neuroscope_tui.models.types import LoadedModel
from neuroscope_tui.trace import HEADS_MISSING_NOTE, CaptureSpec, Trace

NDIF_KEY_ENV = "NDIF_API_KEY"
NDIF_HOST_ENV = "NDIF_HOST"  # nnsight's own name for another NDIF deployment
DEFAULT_NDIF_HOST = "https://api.ndif.us"
REMOTE_NOTE = "ndif"
QUEUE_TIMEOUT_S = 600.0  # how long a remote run may wait in NDIF's queue and run, in all
POLL_EVERY_S = 2.0
REMOTE_HEADS_NOTE = (
    "head scores and attention patterns were not recorded: a remote run cannot reach the "
    "attention probabilities inside the engine's fused attention kernel"
)

# what a caller hears while a remote run waits: NDIF's status word (QUEUED, RUNNING...)
StatusCallback = Callable[[str], None]


def ndif_host(environ: Mapping[str, str] | None = None) -> str:
    """NDIF's address: NDIF_HOST when set (a private deployment), else the public one."""
    return (os.environ if environ is None else environ).get(NDIF_HOST_ENV) or DEFAULT_NDIF_HOST


def api_key(environ: Mapping[str, str] | None = None) -> str:
    """The NDIF API key from NDIF_API_KEY, or BackendError saying where it goes."""
    key = (os.environ if environ is None else environ).get(NDIF_KEY_ENV, "").strip()
    if not key:
        raise BackendError(
            f"--remote needs your NDIF API key in the {NDIF_KEY_ENV} environment variable "
            "(get one at https://login.ndif.us); it is never read from a file or an option."
        )
    return key


def remote_model(name: str, revision: str | None = None) -> tuple[Any, LoadedModel]:
    """(the nnsight model, its LoadedModel) for `name` without its weights: the structure on
    the meta device, the config and tokenizer from the hub. BackendError when they cannot be
    read (no network, a name the hub does not know)."""
    nnsight = require_nnsight()
    try:
        from transformers import AutoTokenizer

        kwargs = {"revision": revision} if revision else {}
        # the tokenizer named outright: the pipeline's guess fails for some repos
        tokenizer = AutoTokenizer.from_pretrained(name, **kwargs)
        lm = nnsight.TransformersModel(name, task="text-generation", tokenizer=tokenizer, **kwargs)
    except Exception as err:  # OSError, HTTP and hub errors, a config transformers refuses
        raise BackendError(
            f"cannot read {name}'s configuration and tokenizer from the Hugging Face hub "
            f"({_short(err)}); check the model name and the network."
        ) from None
    model = lm._module
    bundle = LoadedModel(
        model=model,
        tokenizer=lm.tokenizer,
        name=name,
        source="ndif",
        revision=revision,
        device="cpu",  # inputs are built here on the CPU; the engine moves them
        dtype=str(getattr(model.config, "dtype", None) or "float32").replace("torch.", ""),
        anatomy=find_anatomy(model),
        context_length=_context_length(model.config),
    )
    return lm, bundle


def _context_length(config: Any) -> int | None:
    from neuroscope_tui.models.loader import context_length

    return context_length(config)


def _short(err: BaseException) -> str:
    """An exception as a short clause: its first line, at most 160 characters."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def served_models(host: str, timeout_s: float = 10.0) -> set[str]:
    """The repo ids NDIF says it runs now (its /status), lower-cased. BackendError when NDIF
    cannot be reached."""
    import httpx  # a dependency of nnsight

    try:
        response = httpx.get(f"{host}/status", timeout=timeout_s)
        response.raise_for_status()
        deployments = response.json().get("deployments", {})
    except (httpx.HTTPError, ValueError, AttributeError) as err:
        raise BackendError(
            f"cannot reach NDIF at {host} ({_short(err)}); check the network and try again."
        ) from None
    values = deployments.values() if isinstance(deployments, dict) else deployments
    return {str(v.get("repo_id", "")).lower() for v in values if isinstance(v, dict)}


def check_served(name: str, served: set[str]) -> None:
    """BackendError when NDIF does not run `name` now."""
    if name.lower() not in served:
        some = ", ".join(sorted(served)[:4]) or "none right now"
        raise BackendError(
            f"NDIF does not serve {name} now (it runs: {some}); choose one of its models."
        )


def ndif_backend(lm: Any, key: str, host: str) -> Any:
    """nnsight's RemoteBackend for `lm`, non-blocking (submit, then poll with our deadline)."""
    from nnsight.intervention.backends.remote import RemoteBackend

    try:
        model_key = lm.to_model_key()  # canonicalises the repo id through the hub
    except Exception as err:
        raise BackendError(
            f"cannot name {lm.repo_id} for NDIF ({_short(err)}); check the network."
        ) from None
    return RemoteBackend(model_key, host=host, api_key=key, blocking=False)


def _ship_our_code() -> None:
    """neuroscope-tui is not installed on NDIF: its functions travel by value."""
    require_nnsight().register("neuroscope_tui")


def whole_run(
    lm: Any,
    bundle: LoadedModel,
    prompt: str,
    spec: CaptureSpec | None = None,
    options: GenerationOptions | None = None,
    *,
    backend: Any = None,
    wait: Callable[[Any], dict] | None = None,
    interventions: Sequence[Intervention] = (),
) -> Trace:
    """The run as one `generate` trace; returns the whole Trace when it is finished.

    `backend` None runs it here (nnsight's local execution); otherwise the block is serialised
    for it (our code shipped by value) and, where it only submits, `wait(backend)` returns the
    saved values (`poll_until_done`); a backend that runs the block (nnsight's local
    simulation of a server) leaves them in place. Greedy decoding only: a
    remote engine's sampler is not ours, and a run that cannot be repeated is not one to
    compare. Head scores are not recorded (the note says why). `interventions` that need no
    second prompt (zero and mean ablations, steering) are written as nnsight edits at every
    step on the engine, as the local backend writes them; patches and resampling are refused
    (their second prompt's activations would need a run of their own there).
    """
    require_nnsight()
    spec = spec or CaptureSpec()
    options = options or GenerationOptions()
    if options.temperature > 0:
        raise UsageError(
            "a remote run decodes greedily; leave out --temperature (or run it locally)."
        )
    refuse_second_prompts(interventions)  # before anything would run them here
    ids, trace, edits = start_backend_trace(bundle, prompt, spec, options, interventions)
    if spec.head_scores or spec.pattern_heads:
        # the trace's spec says what was recorded, so nothing downstream waits for head rows
        spec = replace(spec, head_scores=False, pattern_heads=())
        trace.spec = spec
        trace.notes[HEADS_MISSING_NOTE] = REMOTE_HEADS_NOTE
    steps = request_steps(lm, bundle, ids, spec, options, backend=backend, wait=wait, edits=edits)
    _fill(trace, bundle, ids, steps, options)
    return trace


def refuse_second_prompts(interventions: Sequence[Intervention]) -> None:
    """UsageError for a patch or a resample: their second prompt's activations would be read
    with a forward pass here, where the model has no weights."""
    enabled = [iv for iv in interventions if iv.enabled]
    if any(isinstance(iv, Patch) or getattr(iv, "mode", "") == "resample" for iv in enabled):
        raise UsageError(
            "a remote run takes ablations by zero or mean and steering; patches and resampling "
            "need a second prompt's activations, so run those locally (--backend nnsight)."
        )


def request_steps(
    lm: Any,
    bundle: LoadedModel,
    ids: list[int],
    spec: CaptureSpec,
    options: GenerationOptions,
    *,
    backend: Any = None,
    wait: Callable[[Any], dict] | None = None,
    edits: Intervener | None = None,
) -> list[dict]:
    """The one request: per forward pass of the engine's loop, reduce_step's saved values
    ({"rows", "last", "cache": None}), the list NDIF sends back. `spec` records no head scores
    (whole_run has taken them out); `edits` travels with the request and writes at every
    step."""
    nnsight = require_nnsight()
    edited = list(edits.by_site) if edits is not None else []
    plan = make_plan(bundle, spec, keep_cache=False, keep_last_logits=False, edited=edited)
    rec = Recorder(bundle.anatomy, spec)
    rec.anatomy = None  # the recorder travels with the request; the model's modules must not
    n_steps = _steps(bundle, len(ids), options)
    asked = spec.lens_positions
    n_prompt = len(ids)
    encoding = {
        "input_ids": torch.tensor([ids]),
        "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
    }
    # no EOS stop inside the engine: run() forwards the EOS token too (its rows are part of
    # the trace), and _fill cuts the run after it; every position's logits, not only the last
    # (generate keeps one by default)
    gen = {"max_new_tokens": n_steps, "do_sample": False, "eos_token_id": None, "logits_to_keep": 0}
    if backend is not None:
        _ship_our_code()
    with torch.inference_mode(), lm.generate(encoding, backend=backend, **gen) as tracer:
        steps = []
        start = 0
        for _step in tracer.iter[0:n_steps]:
            if edits is not None:  # the positions this pass covers, as run() announces them
                edits.begin(start, n_prompt if start == 0 else 1)
            steps.append(reduce_step(lm, plan, rec, start, asked, edits))
            start = n_prompt if start == 0 else start + 1
        nnsight.save(steps)
    if wait is not None:  # a request submitted, not run: its saved values come back later
        steps = wait(backend)["steps"]
    return steps


def _steps(bundle: LoadedModel, n_prompt: int, options: GenerationOptions) -> int:
    """Forward passes of the run: the prompt's and one per generated token, within context."""
    n = 1 + options.max_new_tokens
    if bundle.context_length:
        n = min(n, max(1, bundle.context_length - n_prompt + 1))
    return n


def _fill(
    trace: Trace, bundle: LoadedModel, ids: list[int], steps: list[dict], options: GenerationOptions
) -> None:
    """Append each step's rows as run() does, token by token, and stop where it would."""
    eos = _eos_ids(bundle) if options.stop_at_eos else set()
    id_text: dict[str, str] = {}
    trace.stop_reason = "length"
    new = list(ids)
    for i, step in enumerate(steps):
        rows = step["rows"]
        for name in ("logits.top_ids", "lens.top_ids"):
            for t in np.unique(rows.get(name, np.empty(0, np.int32))):
                if int(t) >= 0:
                    id_text.setdefault(str(int(t)), bundle.tokenizer.decode([int(t)]))
        texts = token_texts(bundle.tokenizer, new, trace.token_ids[-_ANCHOR:])
        trace.append(new, texts, rows)
        if i == 0:
            trace.n_prompt = len(ids)
        elif new[0] in eos:
            trace.stop_reason = "eos"
            break
        new = [int(step["last"])]
    if bundle.context_length and trace.n_tokens >= bundle.context_length:
        trace.stop_reason = "context" if trace.stop_reason == "length" else trace.stop_reason
    trace.notes["id_text"] = id_text
    trace.finished = True


def poll_until_done(
    backend: Any,
    timeout_s: float = QUEUE_TIMEOUT_S,
    on_status: StatusCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    stop: threading.Event | None = None,
) -> dict:
    """The saved values of a submitted request, polled until NDIF says it is done.

    BackendError when it reports an error, when it cannot be reached, when `timeout_s`
    passes first, or when `stop` is set (the app's Esc) (the request may still run there;
    nothing here is lost: nothing was written).
    """
    if stop is not None:  # Esc answers at once, not after the rest of a poll interval
        sleep = stop.wait
    from nnsight.intervention.backends.remote import RemoteError

    deadline = clock() + timeout_s
    last = None
    while True:
        try:
            result = backend.poll()
        except RemoteError as err:
            raise BackendError(f"NDIF could not run the request: {_short(err)}.") from None
        except Exception as err:  # httpx errors: the network went away while waiting
            raise BackendError(
                f"lost NDIF while waiting for the run ({_short(err)}); try again."
            ) from None
        if result is not None:
            return result
        status = getattr(getattr(backend, "status", None), "value", None)
        if on_status is not None and status and status != last:
            on_status(status)
        last = status
        if clock() >= deadline:
            raise BackendError(
                f"NDIF did not finish the run within {timeout_s:.0f} s (last status: "
                f"{last or 'none'}); try again later, when its queue is shorter."
            )
        sleep(POLL_EVERY_S)
        if stop is not None and stop.is_set():
            raise BackendError(
                f"stopped waiting for NDIF after {last or 'sending'}; nothing came back, so "
                "nothing was kept (NDIF may still finish the run)."
            )


@dataclass
class RemoteSession:
    """What a remote run needs, checked once for every prompt: the nnsight model (meta), its
    LoadedModel (structure, config, tokenizer), and the request backend's settings."""

    lm: Any
    bundle: LoadedModel
    key: str
    host: str


def connect(
    name: str,
    revision: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> RemoteSession:
    """Check, in the order that costs least, that `name` can run on NDIF: nnsight, the key,
    what NDIF serves now, the model's config. Each failure is one BackendError."""
    require_nnsight()
    key = api_key(environ)
    host = ndif_host(environ)
    check_served(name, served_models(host))
    lm, bundle = remote_model(name, revision)
    return RemoteSession(lm=lm, bundle=bundle, key=key, host=host)


def run_remote(
    session: RemoteSession,
    prompt: str,
    spec: CaptureSpec | None = None,
    options: GenerationOptions | None = None,
    *,
    timeout_s: float = QUEUE_TIMEOUT_S,
    on_status: StatusCallback | None = None,
    stop: threading.Event | None = None,
    interventions: Sequence[Intervention] = (),
) -> Trace:
    """`prompt` run on NDIF as one request: the whole Trace once it is finished.

    `on_status` hears NDIF's status words while the run waits (the waiting state); `stop`
    set ends the wait (a BackendError). Every failure is a BackendError (UsageError for
    sampling); nothing is written before it returns.
    """
    from nnsight.intervention.backends.remote import RemoteError

    backend = ndif_backend(session.lm, session.key, session.host)

    def wait(b: Any) -> dict:
        return poll_until_done(b, timeout_s, on_status, stop=stop)

    try:
        trace = whole_run(
            session.lm, session.bundle, prompt, spec, options, backend=backend, wait=wait,
            interventions=interventions,
        )  # fmt: skip
    except RemoteError as err:
        raise remote_failure(err, session.host) from None
    trace.notes["remote"] = REMOTE_NOTE
    return trace


def remote_failure(err: BaseException, host: str) -> BackendError:
    """nnsight's RemoteError as one sentence: NDIF unreachable, or NDIF's own refusal."""
    import httpx

    cause = err.__cause__
    if isinstance(cause, httpx.HTTPError) and not isinstance(cause, httpx.HTTPStatusError):
        return BackendError(
            f"cannot reach NDIF at {host} ({_short(cause)}); check the network and try again."
        )
    reason = _short(err).removeprefix("Failed to send request: ")
    return BackendError(f"NDIF refused the request: {reason.rstrip('.')}.")

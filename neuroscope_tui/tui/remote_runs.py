"""The app's runs on NDIF (`neuroscope-tui MODEL --remote`): the engine's side.

NDIF keeps no state between requests, so a run is one request (capture/remote.py) and nothing
of it arrives before it is finished: while it waits the worker posts RemoteWaiting with NDIF's
status word (the app shows it with the time elapsed, tui/remote_waiting.py), then the whole
trace at once. "Loading" is connecting: NDIF is asked whether it serves the model and the
model's structure, config and tokenizer come from the hub, its weights stay on NDIF. The
structure here sits on the meta device, so no view task can run it (the app refuses them).

What a remote run asks for: the per-token summaries and the logit lens (computed on NDIF,
small), not the full rows (about 50x the summaries, docs/remote.md); head scores are not
reachable inside the engine's fused attention (the trace's notes say so, the views show it).
Plain threading and messages, like tui/engine.py; torch only inside functions.
"""

from __future__ import annotations

import time
from typing import Any

from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.trace import CaptureSpec
from neuroscope_tui.tui.messages import (
    LoadFailed,
    LoadProgress,
    ModelReady,
    RemoteWaiting,
    RunEnded,
    TraceGrew,
)


def connect_remote(engine: Any, name: str, options: dict[str, Any]) -> None:
    """The engine's `load` for --remote: posts LoadProgress, then ModelReady or LoadFailed."""
    from neuroscope_tui.tui.engine import describe

    try:
        engine.post(LoadProgress(f"asking NDIF whether it serves {name}"))
        from neuroscope_tui.capture.remote import connect

        with engine.lock:
            session = connect(name, options.get("revision"))
        engine.remote = session
        engine.model = session.bundle
        engine.post(ModelReady(session.bundle))
    except NeuroscopeError as err:
        engine.post(LoadFailed(str(err)))
    except Exception as err:  # still one sentence, never a traceback
        engine.post(LoadFailed(f"connecting to NDIF for {name} failed ({describe(err)})"))


def remote_spec(bundle: Any, options: dict[str, Any]) -> CaptureSpec:
    """What a remote run records: summaries and (unless --no-lens) the lens, no full rows;
    sampled as asked (--every-layer...). UsageError for sampling the model rules out."""
    spec = CaptureSpec(full_layers=(), lens_positions=None if options.get("lens", True) else ())
    sampling = options.get("sampling")
    if sampling is not None:
        a = bundle.anatomy
        spec = sampling.apply(spec, a.n_layers, a.d_mlp, bundle.name)
    return spec


def generate_remote(engine: Any, prompt: str, options: dict[str, Any], interventions=()) -> None:
    """The engine's `generate` for --remote: RemoteWaiting while NDIF has the run, then one
    TraceGrew with the whole trace and RunEnded (or RunEnded with one sentence). Esc (the
    engine's cancel event) stops the wait; the run is then not kept (nothing came back).
    Ablations and steering travel with the request (capture/remote.py); a run without them
    is kept as the clean run they are compared with."""
    from neuroscope_tui.capture.remote import run_remote
    from neuroscope_tui.capture.run import GenerationOptions
    from neuroscope_tui.tui.engine import describe

    since = time.monotonic()
    ended = RunEnded(None, "the remote run did not start")
    ivs = list(interventions)
    try:
        spec = remote_spec(engine.model, options)
        engine.post(RemoteWaiting("SENT", since))
        trace = run_remote(
            engine.remote,
            prompt,
            spec,
            GenerationOptions.among(options),
            on_status=lambda status: engine.post(RemoteWaiting(status, since)),
            stop=engine.cancel,
            interventions=ivs,  # nnsight edits on NDIF; patches are refused (one sentence)
        )
        if not ivs:  # what an intervened run of the same prompt is compared with
            engine.interventions.keep_clean(trace, prompt, dict(options))
        engine.latest = TraceGrew(trace, trace.n_tokens, None, None)
        ended = RunEnded(trace, None)
    except NeuroscopeError as err:
        ended = RunEnded(None, str(err))
    except Exception as err:
        ended = RunEnded(None, f"the run on NDIF failed ({describe(err)}); nothing came back")
    finally:
        engine.running = False  # before the UI hears the end: Enter right after it runs
        engine.post(ended)

"""`capture MODEL --remote`: each prompt sent to NDIF as one request, its snapshot written when
the whole run comes back.

The model is not loaded here: its structure, config and tokenizer come from the hub, its
weights stay on NDIF. While a run waits in NDIF's queue, stderr says so (the waiting state).
Every failure (no key, no network, a model NDIF does not serve, a queue that does not finish)
is one sentence and exit 2, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neuroscope_tui.capture.sampling import sampling_from
from neuroscope_tui.cli.model_options import capture_spec
from neuroscope_tui.concept_file import add_concept_rows
from neuroscope_tui.snapshot import save_snapshot
from neuroscope_tui.text_safety import visible

Say = Callable[[str], None]


def connect_saying(model: str, revision: str | None, say: Say) -> Any:
    """capture/remote.py `connect`, told on stderr (the CLI's and the no-terminal app's)."""
    from neuroscope_tui.capture.remote import connect

    say(f"asking NDIF for {model} (its weights stay there)")
    return connect(model, revision)


def run_saying(session: Any, prompt: str, spec: Any, options: Any, say: Say, **kw: Any) -> Any:
    """capture/remote.py `run_remote`, with NDIF's statuses told as they change."""
    from neuroscope_tui.capture.remote import run_remote

    say("sent to NDIF; the whole run comes back when it is finished")
    on_status = lambda status: say(f"  NDIF: {status.lower()}")  # noqa: E731
    return run_remote(session, prompt, spec, options, on_status=on_status, **kw)


def capture_remote(args: argparse.Namespace, prompts: list[str], outputs: list[Path]) -> int:
    """Connect once, then run and save each prompt in turn."""
    from neuroscope_tui.capture.interventions import check_interventions, describe
    from neuroscope_tui.capture.run import GenerationOptions, model_info
    from neuroscope_tui.cli.capture import summary_line
    from neuroscope_tui.cli.intervention_options import interventions_from_args

    def say(text: str) -> None:
        print(visible(text, newlines=True), file=sys.stderr, flush=True)

    session = connect_saying(args.model, args.revision, say)
    anatomy = session.bundle.anatomy
    interventions = interventions_from_args(args)  # no --steer-diff here (checked before)
    check_interventions(interventions, model_info(session.bundle))  # before any request
    for iv in interventions:
        say(f"intervention: {describe(iv)} (an nnsight edit on NDIF)")
    for concept in args.concepts:
        concept.check_model(anatomy.n_layers, anatomy.d_model, args.model)
    sampling = sampling_from(args)
    spec = capture_spec(args, anatomy.n_layers, anatomy.n_heads, args.model)
    spec = sampling.apply(spec, anatomy.n_layers, anatomy.d_mlp, args.model)
    if spec.full_layers is None or spec.full_layers:
        # full rows are what makes a remote result big (docs/performance.md): say so once
        say(
            "note: full rows come back too (about 50x the summaries); "
            "--full-layers none keeps only the per-token summaries"
        )
    options = GenerationOptions(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        too_long=args.too_long,
        chat=args.chat,
    )
    for i, (prompt, out) in enumerate(zip(prompts, outputs, strict=True), start=1):
        if len(prompts) > 1:
            say(f"prompt {i}/{len(prompts)}")
        trace = run_saying(session, prompt, spec, options, say, interventions=interventions)
        if "truncated" in trace.notes:
            say(f"note: {trace.notes['truncated']}")
        add_concept_rows(trace, args.concepts)
        save_snapshot(trace, out, force=args.force)
        if args.json:
            summary = {
                "path": str(out),
                "n_prompt": trace.n_prompt,
                "n_generated": trace.n_generated,
                "stop_reason": trace.stop_reason,
                "generated": trace.generated_text,
                "remote": "ndif",
            }
            print(json.dumps(summary), flush=True)
        else:
            print(visible(summary_line(out, trace)), flush=True)
    return 0

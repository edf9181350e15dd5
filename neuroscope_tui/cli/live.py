"""`neuroscope-tui [MODEL]`: load a model and open the live scan.

The model name is checked (alias, file, folder or hub id) before the screen starts, so a typo
is one sentence and exit status 2; the app's screen then opens at once and the model loads
in its worker (a prompt typed meanwhile runs when it is ready); a failure there shows on
screen and is printed again on exit, with status 2. Without a terminal (a script), `--prompt`
prints the run instead of opening the app. A crash or SIGTERM in the app saves the run first
(tui/recovery.py) and exits non-zero, saying where.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

from neuroscope_tui.capture.sampling import sampling_from
from neuroscope_tui.cli.backend_options import (
    add_backend_arguments,
    backend_of,
    check_backend_options,
)
from neuroscope_tui.cli.model_options import (
    add_generation_arguments,
    add_model_arguments,
    add_sampling_arguments,
    add_watch_arguments,
    check_generation,
    loader_options,
    watch_patterns,
)
from neuroscope_tui.cli.terminal import require_terminal, stdout_is_terminal
from neuroscope_tui.cli.view import check_save_dir
from neuroscope_tui.errors import UsageError
from neuroscope_tui.text_safety import visible


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--prompt", default=None, metavar="TEXT", help="run TEXT at once")
    parser.add_argument(
        "--save-dir",
        default=None,
        metavar="DIR",
        help="where s (snapshot) and S (SVG screenshot) write (default: the working folder)",
    )
    parser.add_argument(
        "--no-lens",
        action="store_true",
        help="skip the per-layer logit lens (on CPU it about halves the token rate)",
    )
    parser.add_argument(
        "--concept",
        action="append",
        default=[],
        metavar="FILE",
        help="a fitted concept (neuroscope-tui concept fit): a heatmap metric (m cycles to it)",
    )
    parser.add_argument(
        "--concept-set",
        action="append",
        default=[],
        metavar="FILE",
        help="labelled examples the concept view (key 0) fits first (as concept fit --set)",
    )
    parser.add_argument(
        "--concept-transfer",
        action="append",
        default=[],
        metavar="FILE",
        help="the second labelled set of the concept view (as concept fit --transfer)",
    )
    add_generation_arguments(parser)
    add_sampling_arguments(parser)
    add_backend_arguments(parser)
    add_watch_arguments(parser)


def generation_options(args: argparse.Namespace) -> dict:
    """The GenerationOptions fields from the command line; UsageError for bad values."""
    check_generation(args)
    return {
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "seed": args.seed,
        "chat": bool(getattr(args, "chat", False)),
        "lens": not getattr(args, "no_lens", False),
        "sampling": sampling_from(args),  # checked here, before the screen starts
        # modules to watch (capture/watch.py); the engine puts them in the run's spec
        **watch_patterns(args),
        # the engine runs capture/nnsight_backend.py instead of capture/run.py
        **({"backend": "nnsight"} if backend_of(args) == "nnsight" else {}),
    }


@dataclass
class Checked:
    """What `check_arguments` read: the generation options and the concepts to preload."""

    generation: dict
    concepts: list = field(default_factory=list)
    concept_sets: list[str] = field(default_factory=list)
    concept_transfer: list[str] = field(default_factory=list)


def check_arguments(args: argparse.Namespace) -> Checked:
    """Everything that can be refused before a screen starts (or a browser tab opens, for
    `serve`): the prompt, the model's name, the save folder, concepts and concept sets."""
    from neuroscope_tui.models.loader import locate

    if args.prompt is not None:
        from neuroscope_tui.cli.capture import read_prompts

        read_prompts(args)  # an empty prompt is refused here, as `capture` refuses it
    check_backend_options(args, interventions=False)  # nnsight missing, no NDIF key: one sentence
    if not args.remote:  # a remote model is a hub id that NDIF serves, checked on connecting
        locate(args.model)  # a typo fails here, before the screen starts
    check_save_dir(args.save_dir)
    from neuroscope_tui.concept_file import load_concept

    concepts = [load_concept(path) for path in getattr(args, "concept", [])]
    concept_sets = list(getattr(args, "concept_set", []))
    concept_transfer = list(getattr(args, "concept_transfer", []))
    if concept_sets:
        from neuroscope_tui.concept_sets import read_sets

        labels = read_sets(concept_sets).classes  # a bad set: one sentence, before the screen
        if concept_transfer:
            read_sets(concept_transfer, what="--concept-transfer").label_ids(labels)
    return Checked(generation_options(args), concepts, concept_sets, concept_transfer)


def run(args: argparse.Namespace) -> int:
    from neuroscope_tui.concept_file import register_concept_metrics

    checked = check_arguments(args)
    concepts, concept_sets, concept_transfer = (
        checked.concepts,
        checked.concept_sets,
        checked.concept_transfer,
    )
    register_concept_metrics(concepts)
    gen = checked.generation
    instead = "pass --prompt TEXT to print a run, or use `neuroscope-tui capture` to save one"
    if not stdout_is_terminal():  # a script reads our output: give it the run, not a screen
        if args.prompt is None:
            raise UsageError(
                f"the live scan needs a terminal, but standard output is not one; {instead}"
            )
        return print_run(args, gen)
    require_terminal("the live scan", instead)
    from neuroscope_tui.tui.app import NeuroscopeApp
    from neuroscope_tui.tui.recovery import report_exit

    app = NeuroscopeApp(
        model_name=args.model,
        load_options=app_load_options(args),
        prompt=args.prompt,
        generation=gen,
        save_dir=args.save_dir,
        concepts=concepts,
        concept_sets=concept_sets,
        concept_transfer=concept_transfer,
    )
    app.run()
    status = 0
    if app.load_error:
        print(f"neuroscope-tui: {visible(app.load_error, newlines=True)}", file=sys.stderr)
        status = 2
    crashed = report_exit(app)  # a crash or SIGTERM: where the run was saved
    if crashed is not None:
        status = crashed
    if not app.engine.wait_idle(timeout=2.0):
        # Quit during a load (or a forward pass that outlasts the stop): a worker thread cannot
        # be interrupted, and Python would wait for it at exit. Nothing of ours is half-written
        # (snapshots and the GGUF cache are renamed into place), so leave now.
        if crashed is None:
            print("neuroscope-tui: stopped while the model was busy.", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def app_load_options(args: argparse.Namespace) -> dict:
    """What the app's engine loads with: the loader's options, or, for --remote, what
    connecting to NDIF needs (tui/remote_runs.py)."""
    if args.remote:
        return {"remote": True, "revision": args.revision}
    return loader_options(args)


def print_run(args: argparse.Namespace, gen: dict) -> int:
    """Without a terminal: run the prompt and print the generated text and a summary (a
    script gets its answer, or the error and exit 2, instead of a screen nobody sees)."""
    from neuroscope_tui.capture.run import GenerationOptions
    from neuroscope_tui.capture.run import run as capture_run

    if gen.get("backend") == "nnsight":
        from neuroscope_tui.capture.nnsight_backend import run_nnsight as capture_run
    from neuroscope_tui.models.loader import load_model
    from neuroscope_tui.trace import CaptureSpec

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    options = GenerationOptions.among(gen)
    # only the text is printed, so record as little as the run allows
    watch = {"watch": gen.get("watch", ()), "watch_full": gen.get("watch_full", ())}
    spec = CaptureSpec(full_layers=(), head_scores=False, lens_positions=(), **watch)
    if args.remote:  # one request to NDIF; the whole run comes back when it is finished
        from neuroscope_tui.cli.capture_remote import connect_saying, run_saying

        session = connect_saying(args.model, args.revision, say)
        trace = run_saying(session, args.prompt, spec, options, say)
    else:
        say(f"loading {args.model}")
        bundle = load_model(args.model, progress=say, **loader_options(args))
        trace = capture_run(bundle, args.prompt, spec, options)
    print(f"generated: {trace.generated_text!r}")
    print(
        f"{trace.n_prompt} prompt + {trace.n_generated} generated tokens "
        f"(stop: {trace.stop_reason or 'unknown'}); no terminal, so no screen: "
        "`neuroscope-tui capture MODEL --prompt TEXT -o FILE` keeps a snapshot to `view` later"
    )
    return 0

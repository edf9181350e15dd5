"""`neuroscope-tui capture MODEL --prompt TEXT -o FILE`: run a prompt and write a snapshot, no UI.

With `--prompt-file FILE` (one prompt a line, blank lines skipped) `-o` is a folder that gets
one snapshot per prompt: prompt-001.nscope, prompt-002.nscope, ... Everything that can be
checked without the model (the prompts, the output paths, the option syntax) is checked before
the model loads, so a mistake costs a second, not a model load. Progress goes to stderr, the
summary of what was written to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from neuroscope_tui.capture.sampling import plan_for_model, sampling_from
from neuroscope_tui.cli.backend_options import (
    add_backend_arguments,
    backend_of,
    check_backend_options,
)
from neuroscope_tui.cli.intervention_options import (
    add_intervention_arguments,
    check_intervention_options,
    has_interventions,
    interventions_from_args,
)
from neuroscope_tui.cli.model_options import (
    add_capture_arguments,
    add_generation_arguments,
    add_model_arguments,
    add_sampling_arguments,
    add_watch_arguments,
    capture_spec,
    check_generation,
    loader_options,
    parse_heads,
    parse_layer_list,
)
from neuroscope_tui.concept_file import add_concept_rows, load_concept
from neuroscope_tui.errors import ModelLoadError, OutputPathError, PromptError, UsageError
from neuroscope_tui.prompt_sets import read_prompt_file
from neuroscope_tui.snapshot import SUFFIX, check_output_path, save_snapshot
from neuroscope_tui.text_safety import visible
from neuroscope_tui.trace import Trace


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """MODEL, the prompt(s), the output, and how to load, generate and record."""
    add_model_arguments(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="the text to run")
    source.add_argument(
        "--prompt-file", type=Path, metavar="FILE", help="one prompt a line; -o is then a folder"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="PATH",
        help=f"snapshot file to write (a folder with --prompt-file); suffix {SUFFIX} suggested",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing snapshots")
    add_generation_arguments(parser)
    add_capture_arguments(parser)
    add_watch_arguments(parser)
    add_sampling_arguments(parser)
    add_intervention_arguments(parser)
    add_backend_arguments(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per snapshot written (with the memory estimate)",
    )
    parser.add_argument(
        "--concept",
        action="append",
        default=[],
        metavar="FILE",
        help="a fitted concept (neuroscope-tui concept fit): its projection per layer and "
        "token is kept in the snapshot (needs the full residual rows, --full-layers)",
    )
    parser.add_argument(
        "--attribution",
        action="store_true",
        help="attribute the last generated token to the input tokens (occlusion, integrated "
        "gradients, gradient x input) and keep it in the snapshot",
    )
    parser.add_argument(
        "--foil",
        metavar="TEXT",
        default=None,
        help="with --attribution: contrast with this token, e.g. ' London' (its first token)",
    )
    parser.add_argument(
        "--target",
        metavar="TEXT",
        default=None,
        help="with --attribution: explain this continuation of the prompt (its first token), "
        "e.g. ' Berlin', instead of the model's own last token",
    )


def read_prompts(args: argparse.Namespace) -> list[str]:
    """The prompts to run: `--prompt`, or the non-blank lines of `--prompt-file`."""
    if args.prompt is not None:
        if not args.prompt.strip():
            raise PromptError("the prompt is empty; give some text with --prompt")
        return [args.prompt]
    return read_prompt_file(args.prompt_file)


def output_paths(args: argparse.Namespace, n_prompts: int) -> tuple[list[Path], Path | None]:
    """Where each prompt's snapshot goes, all checked writable before anything runs, and the
    folder this call created (None if it made none), so a failed run can remove it again."""
    if args.prompt is not None:
        return [check_output_path(args.output, force=args.force)], None
    folder: Path = args.output
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{folder} is a file; with --prompt-file, -o names a folder")
    created = None
    if not folder.exists():
        if not folder.parent.is_dir():
            raise OutputPathError(f"the folder {folder.parent} does not exist; create it first")
        try:
            folder.mkdir()
        except OSError as err:
            raise OutputPathError(
                f"cannot create the folder {folder} ({err.strerror or err}); choose another path"
            ) from None
        created = folder
    width = max(3, len(str(n_prompts)))
    paths = [folder / f"prompt-{i:0{width}d}{SUFFIX}" for i in range(1, n_prompts + 1)]
    try:
        return [check_output_path(p, force=args.force) for p in paths], created
    except BaseException:
        _remove_if_empty(created)
        raise


def _remove_if_empty(folder: Path | None) -> None:
    """Take back a folder we created when nothing was written into it (a failed run)."""
    if folder is None:
        return
    with contextlib.suppress(OSError):
        folder.rmdir()  # only succeeds on an empty folder: a written snapshot keeps it


def _check_options(args: argparse.Namespace) -> None:
    """Option values that are wrong whatever the model is."""
    check_generation(args)
    parse_layer_list(args.full_layers)
    parse_heads(args.heads)
    sampling_from(args)
    check_intervention_options(args)
    check_backend_options(args, interventions=has_interventions(args))
    if args.foil is not None and not args.attribution:
        raise UsageError("--foil only means something with --attribution; add --attribution")
    if args.foil == "":
        # caught here, not after loading the model and generating
        raise UsageError("--foil is empty; give a word such as ' London'")
    if args.target is not None and not args.attribution:
        raise UsageError("--target only means something with --attribution; add --attribution")
    if args.target == "":
        raise UsageError("--target is empty; give a continuation such as ' Berlin'")


def _check_attribution_words(bundle, args: argparse.Namespace) -> None:
    """--target and --foil must be tokens of this model: checked once it is loaded, before
    any prompt runs (one sentence, exit 2, instead of an error after a long run)."""
    from neuroscope_tui.capture.attribution_runs import single_token_id

    target = None if args.target is None else single_token_id(bundle, args.target, "target")
    foil = None if args.foil is None else single_token_id(bundle, args.foil, "foil")
    if target is not None and foil is not None and target[0] == foil[0]:
        raise UsageError(
            f"--target {args.target!r} and --foil {args.foil!r} are the same token; choose "
            "another foil"
        )


def summary_line(path: Path, trace: Trace) -> str:
    """One line: where, how many tokens, why it stopped, and the generated text."""
    return (
        f"wrote {path}: {trace.n_prompt} prompt + {trace.n_generated} generated tokens "
        f"(stop: {trace.stop_reason or 'unknown'}); generated: {trace.generated_text!r}"
    )


def json_summary(path: Path, trace: Trace, fitted) -> dict:
    """What `--json` prints for one snapshot: the summary line's figures and the memory plan."""
    return {
        "path": str(path),
        "n_prompt": trace.n_prompt,
        "n_generated": trace.n_generated,
        "stop_reason": trace.stop_reason,
        "generated": trace.generated_text,
        "memory": {**fitted.estimate.to_dict(), "budget": fitted.budget},
        "reduced": fitted.reduced,
        "sampling": trace.spec.sampling_notes(trace.model.n_layers, trace.model.d_mlp),
    }


def run(args: argparse.Namespace) -> int:
    """Check everything cheap, load the model, capture each prompt, write each snapshot."""
    _check_options(args)
    args.concepts = [load_concept(path) for path in args.concept]  # checked before the load
    prompts = read_prompts(args)
    outputs, created = output_paths(args, len(prompts))
    try:
        if args.remote:
            from neuroscope_tui.cli.capture_remote import capture_remote

            return capture_remote(args, prompts, outputs)
        return _capture_all(args, prompts, outputs)
    except BaseException:
        _remove_if_empty(created)  # a run that wrote nothing leaves no empty folder behind
        raise


def _capture_all(args: argparse.Namespace, prompts: list[str], outputs: list[Path]) -> int:
    """Load the model once, then capture and save each prompt in turn."""
    from neuroscope_tui.capture.interventions import check_interventions, describe
    from neuroscope_tui.capture.run import GenerationOptions, model_info, tokenize_prompt
    from neuroscope_tui.capture.run import run as capture_run
    from neuroscope_tui.models.loader import load_model

    if backend_of(args) == "nnsight":
        from neuroscope_tui.capture.nnsight_backend import run_nnsight as capture_run

    def say(text: str) -> None:
        print(visible(text, newlines=True), file=sys.stderr, flush=True)

    say(f"loading {args.model}")
    bundle = load_model(args.model, progress=say, **loader_options(args))
    if args.attribution:
        _check_attribution_words(bundle, args)
    interventions = interventions_from_args(args, bundle)
    check_interventions(interventions, model_info(bundle))  # before any prompt runs
    for iv in interventions:
        say(f"intervention: {describe(iv)}")
    anatomy = bundle.anatomy
    for concept in args.concepts:
        concept.check_model(anatomy.n_layers, anatomy.d_model, bundle.name)
    sampling = sampling_from(args)
    spec = capture_spec(args, anatomy.n_layers, anatomy.n_heads, args.model)
    if spec.watch or spec.watch_full:
        from neuroscope_tui.capture.watch import watch_plan

        watch_plan(bundle.model, spec)  # a pattern matching nothing: refused before any run
    spec = sampling.apply(spec, anatomy.n_layers, anatomy.d_mlp, args.model)
    options = GenerationOptions(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        too_long=args.too_long,
        chat=args.chat,
    )
    cancel = threading.Event()
    with _first_ctrl_c_stops(cancel, say) as received:
        for i, (prompt, out) in enumerate(zip(prompts, outputs, strict=True), start=1):
            if len(prompts) > 1:
                say(f"prompt {i}/{len(prompts)}")
            n_prompt = len(tokenize_prompt(bundle, prompt, options))
            # refused before it runs
            fitted = plan_for_model(bundle, spec, n_prompt, options.max_new_tokens, sampling)
            say(fitted.line())
            trace = _capture_one(
                capture_run, bundle, prompt, fitted.spec, options, out, args, cancel, interventions
            )
            if args.side_by_side and not cancel.is_set():
                _compare_with_clean(bundle, trace, fitted.spec, options, interventions, say)
            if "truncated" in trace.notes:
                say(f"note: {trace.notes['truncated']}")
            if args.attribution and not cancel.is_set():
                _attribute(bundle, trace, args, say)
            add_concept_rows(trace, args.concepts)
            save_snapshot(trace, out, force=args.force)
            if args.json:
                print(json.dumps(json_summary(out, trace, fitted)), flush=True)
            else:
                print(visible(summary_line(out, trace)), flush=True)
            if cancel.is_set():
                say(f"interrupted: stopped after {i} of {len(prompts)} prompt(s), saved above")
                return 128 + (received[0] if received else signal.SIGINT)  # 130, SIGTERM 143
    return 0


def _attribute(bundle, trace: Trace, args: argparse.Namespace, say: Callable[[str], None]) -> None:
    """Attribute the last token, or with --target that continuation of the prompt; say when
    integrated gradients ran out of steps before its scores settled."""
    from neuroscope_tui.analysis.attribution_trust import convergence_text
    from neuroscope_tui.capture.attribution_runs import attribute_continuation, attribute_last_token

    if args.target is None:
        say("attributing the last token")
        attribute_last_token(bundle, trace, foil=args.foil)
    else:
        say(f"attributing {args.target!r} as the continuation of the prompt")
        attribute_continuation(bundle, trace, args.target, foil=args.foil)
    note = trace.notes["attribution"]
    if args.target is not None and note["target_text"] != args.target:
        first = note["target_text"]
        say(f"note: {args.target!r} is several tokens; explained its first, {first!r}")
    ig = note["methods"].get("integrated_gradients", {})
    if ig.get("converged") is False:
        say(f"note: integrated gradients {convergence_text(ig)}; read its scores with care")


@contextmanager
def _first_ctrl_c_stops(cancel: threading.Event, say: Callable[[str], None]) -> Iterator[list[int]]:
    """The first Ctrl-C (or SIGTERM) ends the run after the current token and still saves
    what was captured; a second one quits at once. Yields the signals received, so the exit
    status can say which (130 for Ctrl-C, 143 for SIGTERM)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # signal handlers can only be set from the main thread
        return

    def stop(signum: int, frame: object) -> None:
        if cancel.is_set():
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        received.append(signum)
        cancel.set()
        again = "Ctrl-C" if signum == signal.SIGINT else "a second SIGTERM"
        say(f"stopping after this token to save the run ({again} to quit without saving)")

    previous = signal.signal(signal.SIGINT, stop)
    previous_term = signal.signal(signal.SIGTERM, stop)
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)


def _compare_with_clean(bundle, trace: Trace, spec, options, interventions, say) -> None:
    """Run the prompt without the interventions and keep, in `trace`, the clean run's tokens
    and the per-token logit difference (analysis/interventions.py reads them)."""
    from neuroscope_tui.analysis.interventions import LOGIT_DIFF
    from neuroscope_tui.capture.run import run as capture_run
    from neuroscope_tui.capture.side_by_side import intervened_logit_difference

    say("running the prompt without the interventions, for the side by side")
    clean = capture_run(bundle, trace.prompt, spec, options)
    trace.notes["clean_run"] = {
        "token_ids": list(clean.token_ids),
        "token_text": list(clean.token_text),
    }
    trace.extras[LOGIT_DIFF] = intervened_logit_difference(bundle, clean, interventions)
    say(f"without them it generates: {clean.generated_text!r}")


def _capture_one(
    capture_run, bundle, prompt, spec, options, out, args, cancel, interventions=()
) -> Trace:
    """One run, counting tokens as they come on a terminal; out of memory saves the partial
    trace (so nothing captured is lost)."""
    import torch

    live = sys.stderr.isatty()

    def on_step(trace: Trace, start: int, stop: int) -> None:
        if live:
            count = f"{trace.n_generated}/{options.max_new_tokens}"
            print(f"\r  {count} tokens", end="", file=sys.stderr, flush=True)

    try:
        trace = capture_run(
            bundle,
            prompt,
            spec,
            options,
            on_step=on_step,
            cancel=cancel,
            interventions=interventions,
        )
    except torch.cuda.OutOfMemoryError as err:
        partial = getattr(err, "trace", None)
        saved = ""
        if partial is not None and partial.n_tokens:
            partial.stop_reason = "out of memory"
            save_snapshot(partial, out, force=args.force)
            saved = f" the {partial.n_tokens} tokens captured so far are in {out};"
        raise ModelLoadError(
            f"the run ran out of GPU memory;{saved} try --full-layers none, fewer "
            "--max-new-tokens or a shorter prompt"
        ) from None
    if live:
        print(file=sys.stderr)
    return trace

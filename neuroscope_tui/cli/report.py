"""`neuroscope-tui report`: run every diagnostic over a prompt set and write the report.

    neuroscope-tui report [MODEL] [--prompt-file FILE] -o report.html|report.md [--json]
    neuroscope-tui report SNAPSHOT... -o report.html

With a model: one pass per prompt (the shipped varied set unless --prompt-file), MLP neuron
statistics, and one backward pass per prompt for gradient health (--no-gradients skips it).
With snapshot files: no model is loaded; the detectors read what the snapshots kept, and
those that need the model (neurons, gradients) or arrays a snapshot lacks are listed as
skipped with the reason. The output's suffix picks the format (.html/.htm or .md); `--json`
prints the report to stdout as well (or instead, without -o).

Everything that can be wrong with the arguments (a mix of models and snapshots, an empty
prompt file, an output that cannot be written, an unknown suffix) is one sentence and exit 2
before any model loads. A run where no detector can say anything is one sentence and exit 2;
otherwise whatever could be checked is reported. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import numbers
import sys
import time
from pathlib import Path
from typing import Any

from neuroscope_tui.cli.model_options import DEFAULT_MODEL, add_model_arguments, loader_options
from neuroscope_tui.errors import UsageError
from neuroscope_tui.report import FORMATS
from neuroscope_tui.report.content import summary_sentence
from neuroscope_tui.snapshot import SUFFIX
from neuroscope_tui.text_safety import json_safe, visible

MODEL_FILE_SUFFIXES = (".gguf", ".safetensors", ".bin")  # files that name a model, not a run
NO_NEURONS = "neuron health needs the model (hooks on each MLP); a snapshot does not keep it"
NO_GRADIENTS_SNAPSHOT = "gradient health needs the model (a backward pass per prompt)"
NO_GRADIENTS_FLAG = "gradients were not computed (--no-gradients); run without it to check them"


EXAMPLES = f"""examples:
  neuroscope-tui report smollm2 -o report.html
  neuroscope-tui report gpt2 --prompt-file prompts.txt -o report.md --no-gradients
  neuroscope-tui report run1{SUFFIX} run2{SUFFIX} -o saved-runs.html
  neuroscope-tui report smollm2 --json > report.json"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "sources",
        nargs="*",
        metavar="MODEL|SNAPSHOT",
        help=f"a model to examine (default {DEFAULT_MODEL}), or snapshot files ({SUFFIX})",
    )
    parser.add_argument(
        "--prompt-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="one prompt a line (default: a small varied set shipped with neuroscope-tui)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE",
        help="the report to write: .html (one self-contained file) or .md",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument(
        "--no-gradients",
        action="store_true",
        help="skip the backward pass per prompt (gradient health is then not checked)",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=128,
        metavar="N",
        help="each prompt's first N tokens are examined (default 128)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    add_model_arguments(parser, positional=False)


def is_snapshot_argument(arg: str) -> bool:
    """A snapshot is named by its suffix, or is an existing file that is not a model file
    (a model is an alias, a hub id, a folder, or a .gguf / weights file)."""
    path = Path(arg).expanduser()
    if path.suffix.lower() == SUFFIX:
        return True
    return path.is_file() and path.suffix.lower() not in MODEL_FILE_SUFFIXES


def split_sources(sources: list[str]) -> tuple[str | None, list[str]]:
    """(the model name, or None) and the snapshot paths; UsageError for a mix or two models."""
    if not sources:
        return DEFAULT_MODEL, []
    snaps = [s for s in sources if is_snapshot_argument(s)]
    models = [s for s in sources if s not in snaps]
    if snaps and models:
        raise UsageError(
            f"give one model or snapshot files, not both: {models[0]} is a model name and "
            f"{snaps[0]} a snapshot"
        )
    if len(models) > 1:
        raise UsageError(
            f"report examines one model at a time; got {len(models)} model names "
            f"({', '.join(models[:3])}); give snapshot files with the {SUFFIX} suffix to "
            "report on saved runs"
        )
    return (models[0] if models else None), snaps


def check_output(args: argparse.Namespace) -> tuple[Path | None, str]:
    """The output path (checked writable) and its suffix, before anything loads."""
    if args.output is None:
        if not args.json:
            raise UsageError("give -o report.html (or report.md) to write the report, or --json")
        return None, ""
    suffix = args.output.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            f"{args.output}: the report is written as .html, .htm or .md, "
            f"not {suffix or 'a file without a suffix'}"
        )
    from neuroscope_tui.snapshot import check_output_path

    return check_output_path(args.output, force=args.force), suffix


def run(args: argparse.Namespace) -> int:
    model, snapshots = split_sources(list(args.sources))
    if snapshots and args.prompt_file is not None:
        raise UsageError(
            "snapshots hold their own prompts; --prompt-file is for a model (give a MODEL)"
        )
    if not 1 <= args.max_tokens <= 100_000:
        raise UsageError(f"--max-tokens must be between 1 and 100000, not {args.max_tokens}")
    out, suffix = check_output(args)
    bundle = None  # the loaded model, for plugin analyses that need one
    if snapshots:
        inputs, source = _inputs_from_snapshots(snapshots), _snapshots_name(snapshots)
        timings: dict[str, float] = {}
    else:
        from neuroscope_tui.prompt_sets import default_prompts, read_prompt_file

        prompts = (
            read_prompt_file(args.prompt_file)
            if args.prompt_file is not None
            else default_prompts()
        )
        inputs, timings, bundle = _inputs_from_model(args, model or DEFAULT_MODEL, prompts)
        source = model or DEFAULT_MODEL
    report = _run_detectors(inputs, source, timings)
    prompts_shown = inputs.prompts or [t.prompt for t in inputs.traces]
    tokens = [list(t.token_text) for t in inputs.traces]
    if out is not None:
        from neuroscope_tui.atomic_file import write_atomically
        from neuroscope_tui.report import render
        from neuroscope_tui.report.content import plugin_sections

        sections = plugin_sections(inputs.traces, bundle)  # plugin analyses: failures are notes
        text = render(
            report, suffix, prompts=prompts_shown, tokens=tokens, plugin_sections=sections
        )
        data = text.encode("utf-8")
        write_atomically(out, lambda f: f.write(data), overwrite=args.force)
        say(f"wrote the report to {out}")
    if args.json:
        doc = report.to_dict()
        doc["prompts"] = prompts_shown
        print(json_safe(plain_json(doc), indent=2))
    return 0


def say(text: str) -> None:
    """A progress line on stderr, control characters made visible."""
    print(visible(text, newlines=True), file=sys.stderr, flush=True)


def _snapshots_name(paths: list[str]) -> str:
    return paths[0] if len(paths) == 1 else f"{len(paths)} snapshots ({paths[0]}, ...)"


def _inputs_from_snapshots(paths: list[str]):
    """DiagnosticInputs from snapshot files: the traces they kept, no neurons or gradients."""
    from neuroscope_tui.analysis.diagnostics.inputs import DiagnosticInputs
    from neuroscope_tui.snapshot import load_snapshot

    traces = []
    for path in paths:
        say(f"reading {path}")
        traces.append(load_snapshot(path))
    first = traces[0].model
    for path, trace in zip(paths[1:], traces[1:], strict=True):
        m = trace.model
        if (m.name, m.n_layers, m.d_model) != (first.name, first.n_layers, first.d_model):
            raise UsageError(
                f"{path} is a run of {m.name}, {paths[0]} of {first.name}; a report covers "
                "one model, so give snapshots of the same model"
            )
    return DiagnosticInputs(
        traces=traces,
        source="snapshot",
        prompts=[t.prompt for t in traces],
        missing={"neurons": NO_NEURONS, "gradients": NO_GRADIENTS_SNAPSHOT},
    )


def _inputs_from_model(args: argparse.Namespace, name: str, prompts: list[str]):
    """Load the model, run every prompt (and the backward passes); (inputs, seconds by stage,
    the loaded model)."""
    from neuroscope_tui.capture.diagnostics import diagnostic_inputs
    from neuroscope_tui.models.loader import load_model

    say(f"loading {name}")
    start = time.perf_counter()
    bundle = load_model(name, progress=say, **loader_options(args))
    timings = {"load model": time.perf_counter() - start}
    shown = [-1]

    def progress(fraction: float, text: str) -> None:
        step = int(fraction * 10)  # a line per tenth of the work: readable in a log
        if step != shown[0]:
            shown[0] = step
            say(f"{fraction:4.0%} {text}")

    say(f"examining {len(prompts)} prompts" + ("" if args.no_gradients else " (with gradients)"))
    start = time.perf_counter()
    inputs = diagnostic_inputs(
        bundle,
        prompts,
        neurons=True,
        gradients=not args.no_gradients,
        progress=progress,
        max_tokens=args.max_tokens,
    )
    # the capture's own stages ("capture.traces", "capture.gradients") where it gives them
    timings.update(inputs.timings or {"capture": time.perf_counter() - start})
    if args.no_gradients:
        inputs.missing.setdefault("gradients", NO_GRADIENTS_FLAG)
    return inputs, timings, bundle


def _run_detectors(inputs, source: str, timings: dict[str, float]):
    """Every detector over `inputs`; UsageError when not one of them could run."""
    from neuroscope_tui.analysis.diagnostics.runner import run_detectors

    report = run_detectors(inputs, source=source)
    report.timings = {**timings, **report.timings}
    if not report.model and inputs.traces:
        report.model = inputs.traces[0].model.to_dict()
    if not report.ran:
        first = report.skipped[0] if report.skipped else None
        why = f" ({first.detector}: {first.reason.rstrip('.')})" if first else ""
        raise UsageError(
            f"nothing can be reported on {source}: no detector can run on what it holds{why}"
        )
    ran, skipped = len(report.ran), len(report.skipped)
    say(f"{ran} detectors ran, {skipped} skipped: {summary_sentence(report)}")
    return report


def plain_json(value: Any) -> Any:
    """`value` as strict JSON: NaN and inf become null (JSON has no such numbers), numpy
    scalars and arrays become Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return plain_json(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        x = float(value)
        return x if x == x and abs(x) != float("inf") else None
    return str(value)

"""The `neuroscope-tui` command: `neuroscope-tui [MODEL]` opens the live scan; subcommands
work without a screen (`capture`, `info`, `export`, `heads`, `compare`, `concept`, `patch`,
`report`, `drift`, `plugins`) or open a snapshot (`view`); `serve` runs the app in a browser.

Each subcommand lives in its own module with `add_arguments(parser)` and `run(args) -> int`.
Every user mistake is a `NeuroscopeError`: one sentence on stderr, exit status 2. Nothing here
imports torch at module level, so `--help` and `view` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from neuroscope_tui.errors import NeuroscopeError
from neuroscope_tui.text_safety import visible

# name -> (module under neuroscope_tui.cli, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "capture": ("capture", "run a prompt through a model and write a snapshot, no screen"),
    "info": ("info", "print what a snapshot holds"),
    "view": ("view", "open a snapshot in the app, read-only, without the model"),
    "export": ("export", "write one view's numbers from a snapshot as CSV or JSON"),
    "heads": ("heads", "print every attention head's scores and types"),
    "compare": ("compare", "compare two prompts (or two snapshots) layer by layer"),
    "concept": ("concept", "fit a concept (two labelled prompt sets) per layer, save it"),
    "patch": ("patch", "patch a clean prompt's activations into a corrupted one, cell by cell"),
    "report": ("report", "check a model (or snapshots) for problems and write an HTML/MD report"),
    "drift": ("drift", "compare a base model with its fine-tuned checkpoints, layer by layer"),
    "serve": ("serve", "the same app in a browser (textual-serve), on loopback by default"),
    "plugins": ("plugins", "list the installed plugins (views, metrics, analyses) and their state"),
}


def _epilog() -> str:
    lines = ["subcommands (neuroscope-tui SUBCOMMAND --help for each):"]
    lines += [f"  {name:<9} {desc}" for name, (_, desc) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in SUBCOMMANDS:
            module_name, desc = SUBCOMMANDS[args[0]]
            module = importlib.import_module(f"neuroscope_tui.cli.{module_name}")
            parser = argparse.ArgumentParser(prog=f"neuroscope-tui {args[0]}", description=desc)
            module.add_arguments(parser)
            status = int(module.run(parser.parse_args(args[1:])) or 0)
            sys.stdout.flush()  # a full disk or a closed stdout shows here, not at exit
            return status
        from neuroscope_tui.cli import live

        parser = argparse.ArgumentParser(
            prog="neuroscope-tui",
            description="An fMRI for language models: watch a causal LM think, token by token.",
            epilog=_epilog(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        live.add_arguments(parser)
        status = int(live.run(parser.parse_args(args)) or 0)
        sys.stdout.flush()
        return status
    except NeuroscopeError as err:
        # the sentence may quote a file or model name: no control character goes out raw
        print(f"neuroscope-tui: {visible(str(err), newlines=True)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neuroscope-tui: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as other Unix tools do.
        _discard_stdout()
        return 141
    except OSError as err:
        # Our own files fail as NeuroscopeErrors; what reaches here is the output itself
        # (`> /dev/full`, a closed stdout) or a file we did not expect to fail: one sentence.
        reason = err.strerror or str(err)
        text = (
            f"{err.filename}: {reason}"
            if err.filename
            else f"could not write the output ({reason})"
        )
        print(f"neuroscope-tui: {text}.", file=sys.stderr)
        _discard_stdout()
        return 2


def _discard_stdout() -> None:
    """Point stdout at /dev/null so Python's flush at exit does not fail a second time."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # stdout closed or gone: nothing to flush
        pass

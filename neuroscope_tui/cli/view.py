"""`neuroscope-tui view FILE`: open a snapshot in the app, read-only, without torch.

The snapshot is read before the screen starts, so a missing or corrupted file is one sentence
on stderr and exit status 2, never a half-drawn app; so is a missing terminal (stdin closed,
output piped). A file from `drift -o` opens on the drift view (key ~).
"""

from __future__ import annotations

import argparse
from typing import Any

from neuroscope_tui.cli.terminal import require_terminal
from neuroscope_tui.errors import OutputPathError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a .nscope snapshot file")
    parser.add_argument(
        "--save-dir",
        default=None,
        metavar="DIR",
        help="where s (snapshot) and S (SVG screenshot) write (default: the working folder)",
    )


def check_save_dir(save_dir: str | None) -> None:
    """OutputPathError when --save-dir is given but is not an existing folder."""
    from pathlib import Path

    if save_dir is not None and not Path(save_dir).expanduser().is_dir():
        raise OutputPathError(f"--save-dir {save_dir} is not an existing folder; create it first")


def drift_of(trace: Any, path: str) -> Any:
    """The drift comparison a snapshot from `drift -o` carries (notes["drift"]), checked, or
    None; a damaged one is a SnapshotError (one sentence), raised before the screen starts."""
    if not isinstance(trace.notes.get("drift"), dict):
        return None
    try:
        from neuroscope_tui.drift_file import drift_from_trace
    except ImportError:  # an install without drift files: the base's run opens as usual
        return None
    return drift_from_trace(trace, path)


def run(args: argparse.Namespace) -> int:
    from neuroscope_tui.snapshot import load_snapshot

    check_save_dir(args.save_dir)
    trace = load_snapshot(args.file)
    from neuroscope_tui.concept_file import register_concept_metrics

    # concept rows a capture kept (capture --concept) become heatmap metrics
    register_concept_metrics([], trace)
    drift = drift_of(trace, args.file)
    if drift is not None and drift.traces:  # the same run, without the comparison's arrays
        trace = drift.traces[0]
    require_terminal(
        "view",
        "run it in a terminal, or use `neuroscope-tui info` or `export` for the numbers",
    )
    from neuroscope_tui.tui.app import NeuroscopeApp
    from neuroscope_tui.tui.recovery import report_exit

    app = NeuroscopeApp(
        snapshot=trace, snapshot_path=args.file, save_dir=args.save_dir, drift=drift
    )
    app.run()
    return report_exit(app) or 0  # a crash: one sentence after textual's traceback, exit 3

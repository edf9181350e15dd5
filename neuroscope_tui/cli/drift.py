"""`neuroscope-tui drift BASE CKPT...`: how fine-tuning moved a model's insides, layer by layer.

    neuroscope-tui drift BASE CKPT [CKPT...] [--prompt-file F] [-o drift.nscope] [--json]

Each of BASE and CKPT is anything `neuroscope-tui MODEL` accepts, a snapshot file, or one
folder of trainer `checkpoint-<step>` subfolders (expanded, ordered by step). The prompt set
(default: the small varied set shipped with the package) runs through one model at a time;
weights are compared tensor by tensor from the checkpoint files (capture/drift.py).

Everything that can be refused is refused before any model loads: the prompt file, the output
path (-o), the inputs (a missing path, a folder with no checkpoints) and their compatibility
(different architectures or widths, with the reason). Progress goes to stderr, and at the end
one line per checkpoint. `-o` keeps the comparison (drift_file.py), `--json` prints its figures
on stdout; with neither, the app opens on the drift view (tui/views/drift.py), or, without a
terminal on stdout (a pipe, a file), the summary table is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from neuroscope_tui.cli.model_options import add_model_arguments, loader_options
from neuroscope_tui.cli.terminal import require_terminal, stdout_is_terminal
from neuroscope_tui.errors import UsageError
from neuroscope_tui.text_safety import visible


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "base",
        nargs="?",
        default=None,
        metavar="BASE",
        help="the base model: hub id, local folder, .gguf file, alias, or a snapshot",
    )
    parser.add_argument(
        "checkpoints",
        nargs="*",
        metavar="CKPT",
        help="fine-tuned checkpoints, in order; a folder of checkpoint-* folders counts as all",
    )
    parser.add_argument(
        "--prompt-file",
        type=Path,
        default=None,
        metavar="F",
        help="prompts to compare on, one a line (default: a small varied set)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=None, metavar="FILE", help="save the comparison"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    add_model_arguments(parser, positional=False)


def _say(text: str) -> None:
    print(visible(text, newlines=True), file=sys.stderr, flush=True)


class Progress:
    """measure_drift's `progress(fraction, text)` on stderr: one line rewritten in place on a
    terminal; in a log, a line at each new step ("prompt 1/12" once, not each prompt)."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.last = ""

    def __call__(self, fraction: float, text: str) -> None:
        if self.live:
            line = visible(f"  {100 * fraction:5.1f}%  {text}")[:100]
            print(f"\r{line:<100}", end="", file=sys.stderr, flush=True)
        elif re.sub(r"\d+/\d+", "", text) != re.sub(r"\d+/\d+", "", self.last):
            _say(f"  {100 * fraction:5.1f}%  {text}")
        self.last = text

    def done(self) -> None:
        if self.live and self.last:
            print(file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from neuroscope_tui.prompt_sets import default_prompts, read_prompt_file
    from neuroscope_tui.snapshot import check_output_path

    if args.base is None or not args.checkpoints:
        raise UsageError(
            "drift needs a base model and at least one checkpoint, e.g. "
            "`neuroscope-tui drift ./base ./run` (a folder of checkpoint-* folders counts as all)"
        )
    prompts = read_prompt_file(args.prompt_file) if args.prompt_file else default_prompts()
    if args.output is not None:
        check_output_path(args.output, force=args.force)
    opens_app = args.output is None and not args.json and stdout_is_terminal()
    if opens_app:
        require_terminal("the drift view", "add --json or -o FILE to keep the figures")
    from neuroscope_tui.models.checkpoints import check_compatible, resolve_checkpoints

    checkpoints = resolve_checkpoints(args.base, args.checkpoints)
    check_compatible(checkpoints)
    # a snapshot holds one prompt's run: measure_drift compares on that prompt only
    snapshots = any(c.kind == "snapshot" for c in checkpoints)
    on = "the snapshot's prompt" if snapshots else f"{len(prompts)} prompt(s)"
    _say(f"drift of {len(checkpoints) - 1} checkpoint(s) against {checkpoints[0].label} on {on}")
    from neuroscope_tui.capture.drift import measure_drift

    progress = Progress()
    try:
        result = measure_drift(
            checkpoints, prompts, progress=progress, load_options=loader_options(args)
        )
    finally:
        progress.done()  # end the progress line, also when a model fails or ^C stops it
    if args.output is not None:
        from neuroscope_tui.drift_file import save_drift

        save_drift(result, args.output, force=args.force)
        _say(f"wrote the comparison to {args.output}")
    if args.json:
        print(json.dumps(drift_json(result), ensure_ascii=True, allow_nan=False))
    elif args.output is None:
        if opens_app:
            return _open_app(result)
        print(summary_table(result))  # it ends with the summary lines
        return 0
    for line in summary_lines(result):
        _say(line)
    return 0


def _open_app(result: Any) -> int:
    """Open the app on the drift view; its exit status."""
    from neuroscope_tui.tui.views.drift import open_drift_app

    return int(open_drift_app(result) or 0)


# ---- figures -------------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    """A JSON number, or None for a measure that is missing (NaN)."""
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


def _lists(arr: np.ndarray) -> Any:
    if arr.dtype.kind in "iu":
        return arr.tolist()
    return np.vectorize(_num, otypes=[object])(arr).tolist() if arr.size else arr.tolist()


def checkpoint_summary(result: Any, c: int) -> dict[str, Any]:
    """Checkpoint c's headline figures against the base (None where a measure was skipped)."""
    a = result.arrays
    out: dict[str, Any] = {"checkpoint": result.checkpoints[c].label}
    weights = a.get("weights.base")
    if weights is not None and np.isfinite(weights[c]).any():
        layer = int(np.nanargmax(weights[c]))
        out["max_weight_change"] = _num(weights[c, layer])
        # an unchanged checkpoint has no layer of largest change
        out["max_weight_change_layer"] = layer if weights[c, layer] > 0 else None
    else:
        out["max_weight_change"] = out["max_weight_change_layer"] = None
    cka = a.get("cka.base")
    if cka is not None and np.isfinite(cka[c]).any():
        layer = int(np.nanargmin(cka[c]))
        out["min_cka"], out["min_cka_layer"] = _num(cka[c, layer]), layer
    else:
        out["min_cka"] = out["min_cka_layer"] = None
    kl = a.get("kl.base")
    finite = kl[c][np.isfinite(kl[c])] if kl is not None else np.zeros(0)
    out["mean_kl"] = _num(finite.mean()) if finite.size else None
    split = a.get("lens.split.base")
    out["lens_split_layer"] = None if split is None else int(split[c])  # -1: never splits
    return out


def summary_lines(result: Any) -> list[str]:
    """One line per checkpoint: max weight change, min CKA and its layer, mean KL, lens split."""

    def fig(value: Any, fmt: str) -> str:
        return "skipped" if value is None else format(value, fmt)

    lines = []
    for c in range(result.n_checkpoints):
        s = checkpoint_summary(result, c)
        weight = "max weight change " + fig(s["max_weight_change"], ".4g")
        if s["max_weight_change_layer"] is not None:
            weight += f" (layer {s['max_weight_change_layer']})"
        elif s["max_weight_change"] == 0:
            weight = "no weight changed"
        cka = fig(s["min_cka"], ".4f")
        if s["min_cka_layer"] is not None:
            cka += f" at layer {s['min_cka_layer']}"
        split = s["lens_split_layer"]
        lens = (
            "lens split skipped"
            if split is None
            else ("the lens never splits" if split < 0 else f"the lens splits at layer {split}")
        )
        lines.append(
            f"{s['checkpoint']}: {weight}, min CKA {cka}, "
            f"mean KL {fig(s['mean_kl'], '.4g')} nats, {lens}"
        )
    return lines


def drift_json(result: Any) -> dict[str, Any]:
    """Every figure of `result` as JSON: a summary per checkpoint, the checkpoint x layer
    tables as matrices (vs base and vs the previous checkpoint), the long-format tables that
    `export` writes (analysis/drift.py `drift_rows`: layers, modules, heads, neurons, prompts,
    checkpoints) and the measures skipped with their reasons."""
    from neuroscope_tui.analysis.drift import drift_rows

    c, layers = result.n_checkpoints, result.n_layers
    per_layer = {
        name: _lists(np.asarray(arr))
        for name, arr in sorted(result.arrays.items())
        if np.shape(arr) == (c, layers)
    }
    return {
        "base": result.base.to_dict(),
        "checkpoints": [ck.to_dict() for ck in result.checkpoints],
        "prompts": list(result.prompts),
        "n_layers": result.n_layers,
        "n_heads": result.n_heads,
        "d_mlp": result.d_mlp,
        "summary": [checkpoint_summary(result, i) for i in range(c)],
        "per_layer": per_layer,
        "tables": drift_rows(result),
        "skipped": dict(result.skipped),
    }


def summary_table(result: Any) -> str:
    """CKA and weight change against the base: one row per layer, one column per checkpoint."""
    labels = [visible(ck.label)[:12] for ck in result.checkpoints]
    lines = [f"base {result.base.label}; {len(result.prompts)} prompt(s)", ""]
    for name, title in (("cka.base", "linear CKA vs base"), ("weights.base", "weight change")):
        arr = result.arrays.get(name)
        if arr is None:
            lines += [f"{title}: not measured", ""]
            continue
        lines.append(f"{title} (rows: layers)")
        lines.append(f"{'layer':>5}  " + "  ".join(f"{label:>12}" for label in labels))
        for layer in range(result.n_layers):
            cells = (_num(arr[c, layer]) for c in range(result.n_checkpoints))
            text = "  ".join(f"{'-' if v is None else f'{v:.4f}':>12}" for v in cells)
            lines.append(f"{layer:>5}  {text}")
        lines.append("")
    lines += [f"skipped {what}: {why}" for what, why in result.skipped.items()]
    lines += summary_lines(result)
    return "\n".join(visible(line) for line in lines)

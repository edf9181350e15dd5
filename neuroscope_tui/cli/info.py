"""`neuroscope-tui info FILE [--json]`: what a snapshot holds, without the model or torch.

Prints the model, the prompt, the generated text, why the run stopped, and every array with
its shape, dtype and size; `--json` prints `Trace.summary()` plus sizes for machines.

`neuroscope-tui info MODEL --modules` loads the model instead and prints its module tree:
each module's name, class, parameter count and output shape on a short prompt (the names
`--watch` patterns match; capture/module_tree.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from neuroscope_tui.cli.model_options import add_model_arguments, loader_options
from neuroscope_tui.snapshot import EXTRAS_PREFIX, load_snapshot, read_manifest
from neuroscope_tui.text_safety import json_safe, visible
from neuroscope_tui.trace import Trace


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE and the output format."""
    parser.add_argument(
        "file",
        type=Path,
        metavar="FILE",
        help="a snapshot written by capture (with --modules: a model, as the live command takes)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--modules",
        action="store_true",
        help="load FILE as a model and print its module tree with output shapes (what "
        "--watch patterns match)",
    )
    add_model_arguments(parser, positional=False)


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB': sizes as a person reads them."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def describe(path: Path, trace: Trace, manifest: dict[str, Any]) -> dict[str, Any]:
    """`trace.summary()` plus the file, its format and every array's size in bytes."""
    out = trace.summary()
    named = {**trace.arrays, **{EXTRAS_PREFIX + k: v for k, v in trace.extras.items()}}
    out["arrays"] = {
        name: {"shape": list(arr.shape), "dtype": str(arr.dtype), "bytes": int(arr.nbytes)}
        for name, arr in sorted(named.items())
    }
    out["file"] = str(path)
    out["file_bytes"] = path.stat().st_size
    out["format_version"] = manifest["version"]
    out["written_by"] = manifest.get("written_by", "")
    out["n_tokens"] = trace.n_tokens
    out["finished"] = trace.finished
    out["spec"] = trace.spec.to_dict()
    out["notes"] = {k: v for k, v in trace.notes.items() if k != "id_text"}
    return out


NOTE_WIDTH = 100  # a note longer than this is cut; `info --json` prints it whole


def note_text(key: str, value: Any) -> str:
    """One line for a note: text as it is, attributions as their target and gaps, anything
    else as compact JSON cut to NOTE_WIDTH (notes can hold whole analysis records)."""
    if key == "chat_template" and isinstance(value, str):
        # the whole templated text, on one line: the model read this, not the bare prompt
        text = "prompt wrapped in the model's chat template: " + repr(value)
        return text if len(text) <= NOTE_WIDTH else text[: NOTE_WIDTH - 1] + "…"
    if isinstance(value, str):
        return value
    if key == "patching" and isinstance(value, dict) and "rows" in value:
        partial = ", partial (cancelled)" if value.get("partial") else ""
        return (
            f"{value.get('site')} sweep of {len(value['rows'])} rows, "
            f"{value.get('target')!r} vs {value.get('foil')!r}: clean difference "
            f"{value.get('clean_diff', float('nan')):.3f}, corrupted "
            f"{value.get('corrupt_diff', float('nan')):.3f}{partial}"
        )
    if key == "drift" and isinstance(value, dict) and isinstance(value.get("checkpoints"), list):
        labels = [c.get("label") for c in value["checkpoints"] if isinstance(c, dict)]
        base = value.get("base") if isinstance(value.get("base"), dict) else {}
        prompts = value.get("prompts") if isinstance(value.get("prompts"), list) else []
        text = (
            f"drift of {len(labels)} checkpoint(s) against {base.get('label')!r} on "
            f"{len(prompts)} prompt(s): {', '.join(map(str, labels))}"
        )
        return text if len(text) <= NOTE_WIDTH else text[: NOTE_WIDTH - 1] + "…"
    if key == "clean_run" and isinstance(value, dict):
        texts = value.get("token_text") or []
        return f"the run without interventions ({len(texts)} tokens): {''.join(texts)!r}"
    if key == "attribution" and isinstance(value, dict) and "target_text" in value:
        foil = value.get("foil_text")
        parts = [f"why {value['target_text']!r} at position {value.get('position')}"]
        if foil is not None:
            parts[0] += f" rather than {foil!r}"
        from neuroscope_tui.analysis.attribution_trust import completeness_gap, convergence_text

        for method, fig in (value.get("methods") or {}).items():
            gap = completeness_gap(method, fig)  # None for occlusion: it is not additive
            if gap is not None:
                settled = convergence_text(fig, short=True)
                parts.append(
                    f"{method.replace('_', ' ')} gap {100 * gap:.1f}%"
                    + (f", {settled}" if settled else "")
                )
        return "; ".join(parts)
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    if len(text) > NOTE_WIDTH:
        text = text[: NOTE_WIDTH - 1] + "… (info --json shows it all)"
    return text


def intervention_text(item: Any) -> str:
    """One line for an intervention recorded in the snapshot (checked when it was loaded)."""
    from neuroscope_tui.capture.interventions import describe, intervention_from_dict

    return describe(intervention_from_dict(item))


def render(info: dict[str, Any]) -> str:
    """The human-readable report of `describe`'s dict; every line printable (the file's
    texts, which may hold terminal escapes, show their control characters as escapes)."""
    m = info["model"]
    device = f"{m.get('dtype', '?')} on {m.get('device', '?')}"
    shape = (
        f"{m.get('n_layers')} layers x {m.get('n_heads')} heads "
        f"({m.get('n_kv_heads')} KV), d_model {m.get('d_model')}"
    )
    lines = [
        f"snapshot   {info['file']} ({human_bytes(info['file_bytes'])}, "
        f"format {info['format_version']}, {info['written_by']})",
        f"model      {m['name']} ({m.get('architecture') or '?'}, {shape}, {device})",
        f"prompt     {info['prompt']!r} ({info['n_prompt']} tokens)",
        f"generated  {info['generated']!r} ({info['n_generated']} tokens, "
        f"stop: {info['stop_reason'] or 'unknown'})",
    ]
    for item in info.get("interventions") or []:
        lines.append(f"intervened {intervention_text(item)}")
    for key, value in info["notes"].items():
        lines.append(f"note       {key}: {note_text(key, value)}")
    arrays = info["arrays"]
    lines.append(f"arrays     {len(arrays)}")
    width = max((len(n) for n in arrays), default=4)
    for name, a in arrays.items():
        shape_text = "[" + ", ".join(str(s) for s in a["shape"]) + "]"
        lines.append(
            f"  {name:<{width}}  {shape_text:<16} {a['dtype']:<8} {human_bytes(a['bytes']):>10}"
        )
    return "\n".join(visible(line) for line in lines)


def modules_text(rows: list[Any], as_json: bool) -> str:
    """The module tree (capture/module_tree.py rows) as indented lines, or JSON."""
    if as_json:
        return json_safe(
            [
                {
                    "name": r.name,
                    "class": r.kind,
                    "params": r.params,
                    "shape": None if r.shape is None else list(r.shape),
                }
                for r in rows
            ],
            indent=2,
        )
    width = max((2 * r.depth + len(r.name.rsplit(".", 1)[-1]) for r in rows), default=4)
    lines = []
    for r in rows:
        # the last part of the name, indented by depth; the full name is the path to it
        label = "  " * r.depth + r.name.rsplit(".", 1)[-1]
        shape = "-" if r.shape is None else "[" + ", ".join(str(n) for n in r.shape) + "]"
        lines.append(f"{label:<{width}}  {r.kind:<24} {r.params:>12,}  {shape}  {r.name}")
    return "\n".join(visible(line) for line in lines)


def print_modules(args: argparse.Namespace) -> str:
    """Load the model FILE names and return its module tree's text."""
    from neuroscope_tui.capture.module_tree import module_tree
    from neuroscope_tui.models.loader import load_model

    bundle = load_model(str(args.file), **loader_options(args))
    return modules_text(module_tree(bundle), args.json)


def run(args: argparse.Namespace) -> int:
    """Read the snapshot and print its description (or, with --modules, a model's tree)."""
    path: Path = args.file
    if args.modules:
        text = print_modules(args)
    else:
        trace = load_snapshot(path)
        info = describe(path, trace, read_manifest(path))
        # Every text in a snapshot is the file's author's: no control character is printed
        # raw (JSON keeps the exact strings, escaped; the report shows them as escapes).
        text = json_safe(info, indent=2, default=str) if args.json else render(info)
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # The reader left early (`info run.nscope | head`): not an error, and no traceback
        # when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0

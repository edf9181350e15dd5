"""`neuroscope-tui concept fit MODEL --set A --set B [--transfer ...] -o FILE [--json]`:
fit a concept's per-layer directions and probes, print the accuracy per layer, save the file.

A set is a text file per label (or LABEL=PATH), a CSV/JSONL file with text,label, a folder of
.txt files, or `example:NAME` (the shipped examples). Every file is checked before the model
loads, so a bad set costs no load time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

from neuroscope_tui.cli.model_options import add_model_arguments, loader_options
from neuroscope_tui.errors import ConceptError, UsageError
from neuroscope_tui.text_safety import visible

POSITIONS = ("last", "mean")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="fit|score")
    fit = sub.add_parser("fit", help="fit a concept's directions and probes per layer")
    add_model_arguments(fit)
    fit.add_argument(
        "--set",
        dest="sets",
        action="append",
        required=True,
        metavar="FILE",
        help="labelled examples: a .txt per label (or LABEL=FILE), a CSV/JSONL with text,label, "
        "a folder of .txt files, or example:NAME (sentiment_en, sentiment_fr, requests)",
    )
    fit.add_argument(
        "--transfer",
        action="append",
        default=[],
        metavar="FILE",
        help="a second labelled set with the same labels (another language, say)",
    )
    fit.add_argument("-o", "--output", required=True, type=Path, metavar="FILE")
    fit.add_argument("--force", action="store_true", help="overwrite an existing file")
    fit.add_argument(
        "--position",
        default="last",
        choices=POSITIONS,
        help="the residual at the prompt's last token (default) or its mean over the prompt",
    )
    fit.add_argument("--name", default=None, help="the concept's name (default: the file name)")
    fit.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    fit.add_argument("--json", action="store_true", help="print the result as one JSON object")
    score = sub.add_parser("score", help="print a concept's projection per layer and token")
    add_model_arguments(score)
    score.add_argument("--concept", required=True, metavar="FILE", help="a fitted concept")
    score.add_argument("--prompt", required=True, help="the text to score")
    score.add_argument("--json", action="store_true", help="print one JSON object")


def concept_name(text: str) -> str:
    """A name safe as an array key and on screen: letters, digits, '_', '-', '.'."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._")[:40]
    return name or "concept"


def run(args: argparse.Namespace) -> int:
    if args.action == "score":
        return _score(args)
    from neuroscope_tui.concept_sets import read_sets
    from neuroscope_tui.snapshot import check_output_path

    if not 2 <= args.folds <= 50:
        raise UsageError(f"--folds must be between 2 and 50, not {args.folds}")
    sets = read_sets(args.sets)
    transfer = read_sets(args.transfer, what="--transfer") if args.transfer else None
    labels = sets.classes
    y = sets.label_ids(labels)
    ty = transfer.label_ids(labels) if transfer is not None else None
    for label in labels:
        if sets.count(label) < 2:
            raise ConceptError(f"the label {label!r} has one example; give it at least two")
    check_output_path(args.output, force=args.force)
    return _fit(args, sets, transfer, labels, y, ty)


def _fit(args, sets, transfer, labels, y, ty) -> int:
    import numpy as np

    from neuroscope_tui.analysis.concepts import fit_concept
    from neuroscope_tui.capture.concepts import collect_activations
    from neuroscope_tui.concept_file import concept_from_fit, save_concept
    from neuroscope_tui.models.loader import load_model

    def say(text: str) -> None:
        print(visible(text, newlines=True), file=sys.stderr, flush=True)

    say(f"loading {args.model}")
    bundle = load_model(args.model, progress=say, **loader_options(args))
    last = [-1.0]

    def progress(fraction: float, text: str) -> None:
        if fraction - last[0] >= 0.25 or fraction >= 1.0:
            last[0] = fraction
            say(text)

    x = collect_activations(bundle, sets.texts, args.position, progress=progress)
    tx = None
    if transfer is not None:
        last[0] = -1.0
        tx = collect_activations(
            bundle, transfer.texts, args.position, progress=progress, label="transfer prompt"
        )
    fit = fit_concept(
        x,
        np.array(y),
        transfer_x=tx,
        transfer_y=None if ty is None else np.array(ty),
        folds=args.folds,
    )
    a = bundle.anatomy

    def records(s) -> list[dict]:
        # per label: where its examples came from, how many, and a hash of exactly them
        out = []
        for lab in s.classes:
            texts = [t for t, la in zip(s.texts, s.labels, strict=True) if la == lab]
            digest = hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()
            sources = sorted({src for src in s.sources})
            out.append({"label": lab, "sources": sources, "n": len(texts), "sha256": digest})
        return out

    concept = concept_from_fit(
        fit,
        name=concept_name(args.name or args.output.stem),
        labels=(labels[0], labels[1]),
        position=args.position,
        model={
            "name": bundle.name,
            "architecture": a.architecture,
            "n_layers": a.n_layers,
            "d_model": a.d_model,
        },
        sets=records(sets),
        transfer_sets=records(transfer) if transfer is not None else [],
    )
    out = save_concept(concept, args.output, force=args.force)
    rows = layer_rows(concept)
    if args.json:
        print(
            json.dumps(
                {
                    "file": str(out),
                    "name": concept.name,
                    "labels": list(concept.labels),
                    "position": args.position,
                    "best_layer": concept.manifest.best_layer,
                    "layers": rows,
                }
            )
        )
    else:
        print(visible(table_text(concept), newlines=True))
        print(visible(f"wrote {out}"))
    return 0


def layer_rows(concept) -> list[dict]:
    """Per layer: cross-validated probe accuracy, the direction's own accuracy, transfer."""
    arr = concept.arrays
    rows = []
    for layer in range(concept.manifest.model.n_layers):
        row = {"layer": layer, "cv_accuracy": round(float(arr["accuracy.cv"][layer]), 4)}
        for key, name in (
            ("accuracy.direction", "direction_accuracy"),
            ("accuracy.transfer", "transfer_accuracy"),
            ("auc.transfer", "transfer_auc"),
        ):
            if key in arr:
                row[name] = round(float(arr[key][layer]), 4)
        rows.append(row)
    return rows


def table_text(concept) -> str:
    rows = layer_rows(concept)
    keys = [
        k
        for k in ("cv_accuracy", "direction_accuracy", "transfer_accuracy", "transfer_auc")
        if k in rows[0]
    ]
    heads = {
        "cv_accuracy": "probe cv",
        "direction_accuracy": "direction",
        "transfer_accuracy": "transfer",
        "transfer_auc": "transfer AUC",
    }
    a, b = concept.labels
    lines = [
        f"concept {concept.name}: {a} vs {b}, {concept.manifest.position} token",
        "layer  " + "  ".join(f"{heads[k]:>12}" for k in keys),
    ]
    for r in rows:
        lines.append(f"{r['layer']:>5}  " + "  ".join(f"{r[k]:>12.3f}" for k in keys))
    lines.append(f"best layer (probe cv): {concept.manifest.best_layer}")
    return "\n".join(lines)


def _score(args: argparse.Namespace) -> int:
    """Per layer and token: u . x - b of the concept (positive = its first label's side)."""
    from neuroscope_tui.concept_file import load_concept

    concept = load_concept(args.concept)  # a bad file fails before the model loads
    if not args.prompt.strip():
        raise UsageError("the prompt is empty; give some text with --prompt")
    from neuroscope_tui.analysis.concepts import project
    from neuroscope_tui.capture.concepts import prompt_rows
    from neuroscope_tui.models.loader import load_model

    def say(text: str) -> None:
        print(visible(text, newlines=True), file=sys.stderr, flush=True)

    say(f"loading {args.model}")
    bundle = load_model(args.model, progress=say, **loader_options(args))
    a = bundle.anatomy
    concept.check_model(a.n_layers, a.d_model, bundle.name)
    tokens, rows = prompt_rows(bundle, args.prompt)  # [L, T, D]
    values = project(rows.transpose(1, 0, 2), concept.direction, concept.midpoint).T  # [L, T]
    if args.json:
        out = {
            "concept": concept.name,
            "labels": list(concept.labels),
            "tokens": tokens,
            "projection": [[round(float(v), 5) for v in row] for row in values],
        }
        print(json.dumps(out, ensure_ascii=False))
        return 0
    first, second = concept.labels
    print(
        visible(
            f"concept {concept.name}: u.x-b per layer (rows) and token (columns); "
            f"> 0 leans {first}, < 0 leans {second}"
        )
    )
    print("layer " + " ".join(f"{visible(t)[:8]:>8}" for t in tokens))
    for layer, row in enumerate(values):
        print(f"{layer:>5} " + " ".join(f"{v:8.2f}" for v in row))
    return 0

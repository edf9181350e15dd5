"""A fitted concept as one file: safetensors arrays per layer and a JSON manifest.

Arrays (L = the model's layers, D = its width), all float32:
    direction [L, D]   unit difference-of-means direction, toward the first label
    midpoint [L]       u . (mean0 + mean1) / 2; a residual x projects to u . x - midpoint
    probe.weight [L, D], probe.bias [L]   logistic probe in raw units (> 0 means label 1)
    accuracy.cv [L], accuracy.direction [L]   and, with a transfer set,
    accuracy.transfer [L], auc.transfer [L]
The manifest (metadata key "neuroscope_concept") says what the model was, the two labels, the
position rule, the sets (file names, sizes, sha256 of their examples) and the best layer.
Written atomically (atomic_file.py); read with the checked header of safetensors_file.py and a
strict schema, so a hostile or foreign file is one ConceptError sentence. No torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from neuroscope_tui import __version__
from neuroscope_tui.analysis.concepts import ConceptFit, best_layer
from neuroscope_tui.atomic_file import write_atomically
from neuroscope_tui.errors import ConceptError
from neuroscope_tui.safetensors_file import (
    read_tagged_header,
    shown,
    write_safetensors,
)
from neuroscope_tui.snapshot import check_output_path

CONCEPT_FORMAT = "neuroscope-tui concept"
CONCEPT_VERSION = 1
MANIFEST_KEY = "neuroscope_concept"
MAX_LAYERS = 10_000
MAX_WIDTH = 1_000_000

REQUIRED = ("direction", "midpoint", "probe.weight", "probe.bias", "accuracy.cv")
OPTIONAL = ("accuracy.direction", "accuracy.transfer", "auc.transfer")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class SetRecord(_Strict):
    label: str = ""
    sources: list[str] = Field(default_factory=list)
    n: Annotated[int, Field(ge=0, le=10_000_000)] = 0
    sha256: str = ""


class ModelRecord(_Strict):
    name: str
    architecture: str = ""
    n_layers: Annotated[int, Field(ge=1, le=MAX_LAYERS)]
    d_model: Annotated[int, Field(ge=1, le=MAX_WIDTH)]


class ConceptManifest(_Strict):
    format: Literal["neuroscope-tui concept"]
    version: Annotated[int, Field(ge=1)]
    name: str
    labels: Annotated[list[str], Field(min_length=2, max_length=2)]
    position: Literal["last", "mean"]
    model: ModelRecord
    sets: list[SetRecord] = Field(default_factory=list)
    transfer_sets: list[SetRecord] = Field(default_factory=list)
    folds: Annotated[int, Field(ge=0, le=1000)] = 0
    best_layer: Annotated[int, Field(ge=0, le=MAX_LAYERS)] = 0
    written_by: str = ""


@dataclass
class Concept:
    """A fitted concept: its manifest and its per-layer arrays (see the module docstring)."""

    manifest: ConceptManifest
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    path: str = ""

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def labels(self) -> tuple[str, str]:
        a, b = self.manifest.labels
        return a, b

    @property
    def direction(self) -> np.ndarray:
        return self.arrays["direction"]

    @property
    def midpoint(self) -> np.ndarray:
        return self.arrays["midpoint"]

    def check_model(self, n_layers: int, d_model: int, model_name: str = "") -> None:
        """ConceptError unless this concept fits a model of `n_layers` x `d_model`."""
        m = self.manifest.model
        if (m.n_layers, m.d_model) != (n_layers, d_model):
            where = f" {self.path}" if self.path else ""
            raise ConceptError(
                f"the concept{where} was fitted on {shown(m.name)} ({m.n_layers} layers, width "
                f"{m.d_model}) but {shown(model_name) if model_name else 'this model'} has "
                f"{n_layers} layers of width {d_model}; fit it again on this model"
            )


def concept_from_fit(
    fit: ConceptFit,
    *,
    name: str,
    labels: tuple[str, str],
    position: str,
    model: dict,
    sets: list[dict],
    transfer_sets: list[dict] | None = None,
) -> Concept:
    """A Concept (ready to save) from a ConceptFit and what describes it."""
    arrays = {
        "direction": fit.direction,
        "midpoint": fit.midpoint,
        "probe.weight": fit.probe_weight,
        "probe.bias": fit.probe_bias,
        "accuracy.cv": fit.cv_accuracy,
        "accuracy.direction": fit.direction_accuracy,
    }
    if fit.transfer_accuracy is not None and fit.transfer_auc is not None:
        arrays["accuracy.transfer"] = fit.transfer_accuracy
        arrays["auc.transfer"] = fit.transfer_auc
    manifest = ConceptManifest(
        format=CONCEPT_FORMAT,
        version=CONCEPT_VERSION,
        name=name,
        labels=list(labels),
        position=position,  # type: ignore[arg-type]
        model=ModelRecord(**model),
        sets=[SetRecord(**s) for s in sets],
        transfer_sets=[SetRecord(**s) for s in transfer_sets or []],
        folds=fit.folds,
        best_layer=best_layer(fit.cv_accuracy),
        written_by=f"neuroscope-tui {__version__}",
    )
    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
    return Concept(manifest=manifest, arrays=arrays)


def save_concept(concept: Concept, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write `concept` to `path` atomically; OutputPathError says why it cannot."""
    out = check_output_path(path, force=force)
    meta = {MANIFEST_KEY: json.dumps(concept.manifest.model_dump(), ensure_ascii=False)}
    write_atomically(out, lambda f: write_safetensors(f, concept.arrays, meta), overwrite=force)
    return out


def load_concept(path: str | os.PathLike[str]) -> Concept:
    """The concept in the file at `path`, checked; ConceptError says what is wrong."""
    src = Path(path).expanduser()
    header, raw = read_tagged_header(
        src,
        error=ConceptError,
        key=MANIFEST_KEY,
        fmt=CONCEPT_FORMAT,
        newest=CONCEPT_VERSION,
        noun="concept file",
    )
    try:
        manifest = ConceptManifest.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise ConceptError(
            f"{src} has a damaged manifest ({where}: {first['msg'].lower()})"
        ) from None
    _check_tensors(src, header.tensors, manifest)
    arrays = _read(src, header.tensors)
    for name, arr in arrays.items():
        if not np.all(np.isfinite(arr)):
            raise ConceptError(f"{src} is corrupted (the array {name} holds NaN or infinity)")
    return Concept(manifest=manifest, arrays=arrays, path=str(src))


def _check_tensors(src: Path, tensors: dict, manifest: ConceptManifest) -> None:
    n, d = manifest.model.n_layers, manifest.model.d_model
    missing = [k for k in REQUIRED if k not in tensors]
    if missing:
        raise ConceptError(f"{src} is corrupted (it lacks the array {missing[0]})")
    for name, entry in tensors.items():
        if name not in REQUIRED + OPTIONAL:
            raise ConceptError(f"{src} is corrupted (an unknown array {shown(name)})")
        want = (n, d) if name in ("direction", "probe.weight") else (n,)
        if entry.dtype != np.dtype(np.float32) or entry.shape != want:
            raise ConceptError(
                f"{src} is corrupted (the array {name} is {entry.dtype} {list(entry.shape)}, "
                f"expected float32 {list(want)})"
            )
    if manifest.best_layer >= n:
        raise ConceptError(f"{src} is corrupted (its best layer {manifest.best_layer} >= {n})")


def _read(src: Path, tensors: dict) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    try:
        with safe_open(str(src), framework="np") as f:
            return {name: f.get_tensor(name) for name in tensors}
    except Exception as err:  # the file changed since its header was checked
        raise ConceptError(f"{src} could not be read ({shown(str(err))})") from None


CONCEPT_EXTRA = "concept."  # trace.extras key prefix of a concept's [layer, token] projections


def add_concept_rows(trace, concepts: list[Concept]) -> None:
    """Keep each concept's projection of the trace's residual rows in `trace.extras`
    ("concept.NAME", [layer, token]) and say what they are in `trace.notes["concepts"]`."""
    from neuroscope_tui.analysis.concepts import trace_projection

    if not concepts:
        return
    notes = []
    for c in concepts:
        trace.extras[CONCEPT_EXTRA + c.name] = trace_projection(trace, c.direction, c.midpoint)
        notes.append({"name": c.name, "labels": list(c.labels), "position": c.manifest.position})
    trace.notes["concepts"] = notes


def concept_metric(concept: Concept):
    """The scan heatmap's metric for `concept`: each cell is the projection u . x - b of that
    layer's residual at that token (positive = the first label's side).

    Reads the trace's "concept.NAME" rows where a capture kept them, else computes them from
    the trace's full residual rows; NaN (empty cells) for a trace of another model's shape.
    """
    from neuroscope_tui.analysis.concepts import trace_projection
    from neuroscope_tui.analysis.metrics import Metric

    key = CONCEPT_EXTRA + concept.name
    model = concept.manifest.model

    def values(trace) -> np.ndarray:
        shape = (len(trace.layers()), trace.n_tokens)
        if (trace.model.n_layers, trace.model.d_model) != (model.n_layers, model.d_model):
            return np.full(shape, np.nan, dtype=np.float32)
        kept = trace.extras.get(key)
        if kept is not None and kept.shape == shape:
            return np.asarray(kept, dtype=np.float32)
        return trace_projection(trace, concept.direction, concept.midpoint)

    a, b = concept.labels
    return Metric(name=key, label=f"concept {concept.name} ({a} vs {b})", unit="u·x-b", fn=values)


def stored_concept_metric(trace, name: str):
    """A metric for "concept.NAME" rows a snapshot holds (no concept file needed)."""
    from neuroscope_tui.analysis.metrics import Metric

    key = CONCEPT_EXTRA + name
    labels = next(
        (c.get("labels") for c in trace.notes.get("concepts", []) if c.get("name") == name),
        None,
    )
    words = (
        f" ({labels[0]} vs {labels[1]})" if isinstance(labels, list) and len(labels) == 2 else ""
    )

    def values(t) -> np.ndarray:
        kept = t.extras.get(key)
        shape = (len(t.layers()), t.n_tokens)
        if kept is None or kept.shape != shape:
            return np.full(shape, np.nan, dtype=np.float32)
        return np.asarray(kept, dtype=np.float32)

    return Metric(name=key, label=f"concept {name}{words}", unit="u·x-b", fn=values)


def register_concept_metrics(concepts: list[Concept], trace=None) -> list[str]:
    """Add a heatmap metric per concept (and per concept row a snapshot `trace` holds);
    return their metric names, in the order the metric key reaches them."""
    from neuroscope_tui.analysis.metrics import add_metric

    names = []
    for c in concepts:
        add_metric(concept_metric(c))
        names.append(CONCEPT_EXTRA + c.name)
    if trace is not None:
        for key in sorted(trace.extras):
            if key.startswith(CONCEPT_EXTRA) and key not in names:
                add_metric(stored_concept_metric(trace, key[len(CONCEPT_EXTRA) :]))
                names.append(key)
    return names

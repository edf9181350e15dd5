"""Drift files: a whole drift comparison kept in one ordinary snapshot.

There is one snapshot format, so a drift file is a normal snapshot (snapshot.py) of the base's
trace of the first prompt, and `view`, `info` and `export` open it like any other. What makes
it a drift file:

    extras  drift.<array>              every array of DriftResult.arrays (drift_record.py)
            drift.trace.<m>.<name>     model m's trace arrays (m = 1..M-1; 0 is the snapshot's own)
    notes   drift                      version, base, checkpoints, prompts, sizes, modules,
                                       head_types, skipped, model, and per other trace its
                                       tokens, spec, model and notes

Reading trusts nothing: the note is validated with a strict pydantic schema, every drift
array's shape is checked against the counts it must have (C checkpoints, M models, L layers,
H heads, N neurons, P prompts, W modules) and every other model's trace goes through the same
manifest check as a snapshot of its own. Anything wrong is one SnapshotError sentence. Writes
are atomic (save_snapshot). No torch, no pickle.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from neuroscope_tui.analysis.drift_record import (
    DRIFT_VERSION,
    HEAD_SCORE_NAMES,
    Checkpoint,
    DriftResult,
)
from neuroscope_tui.errors import SnapshotError
from neuroscope_tui.safetensors_file import Header, HeaderProblem, TensorEntry, shown
from neuroscope_tui.snapshot_manifest import (
    MAX_LAYERS,
    MAX_WIDTH,
    ModelSchema,
    check_manifest,
)
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace

NOTE = "drift"
PREFIX = "drift."
TRACE_PREFIX = "drift.trace."
MAX_MODELS = 10_000
MAX_PROMPTS = 1_000_000

Layers = Annotated[int, Field(ge=0, le=MAX_LAYERS)]
Width = Annotated[int, Field(ge=0, le=MAX_WIDTH)]


# ---- the note's schema ---------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class CheckpointNote(_Strict):
    name: str
    label: str
    step: Annotated[int, Field(ge=0, le=2**62)] | None = None
    kind: Literal["model", "snapshot"] = "model"


class TraceNote(_Strict):
    """Another model's trace: the snapshot manifest's keys (checked by check_manifest)."""

    index: Annotated[int, Field(ge=1, le=MAX_MODELS)]
    manifest: dict[str, Any]


class DriftNote(_Strict):
    version: Annotated[int, Field(ge=1)]
    base: CheckpointNote
    checkpoints: Annotated[list[CheckpointNote], Field(max_length=MAX_MODELS)]
    prompts: Annotated[list[str], Field(max_length=MAX_PROMPTS)]
    n_layers: Layers
    n_heads: Layers
    d_mlp: Width
    arrays: list[str] = []
    modules: Annotated[list[str], Field(max_length=MAX_WIDTH)] = []
    head_types: list[dict[str, Annotated[str, Field(max_length=32)]]] = []
    skipped: dict[str, str] = {}
    model: dict[str, Any] = {}
    base_trace: bool = True  # False: the snapshot's trace is a placeholder (no traces kept)
    traces: list[TraceNote] = []


# ---- shapes --------------------------------------------------------------------------------

_PAIRS = ("cka", "cos", "weights")


def expected_shape(name: str, r: DriftResult, n_prompts: int | None = None) -> tuple[int, ...]:
    """The shape array `name` must have in `r` (drift_record.py's table). A name the table
    does not know (an optional array a later version adds) must lead with C or M: its shape
    is checked on that axis only, and () is returned for the rest."""
    c, m, layers = r.n_checkpoints, len(r.models), r.n_layers
    p = len(r.prompts) if n_prompts is None else n_prompts
    for pair in _PAIRS:
        if name in (f"{pair}.base", f"{pair}.prev"):
            return (c, layers)
    if name in ("weights.module.base", "weights.module.prev"):
        return (c, len(r.modules))
    if name.startswith("heads.") and name[len("heads.") :] in HEAD_SCORE_NAMES:
        return (m, layers, r.n_heads)
    if name == "neurons.mean":
        return (m, layers, r.d_mlp)
    if name in ("kl.base", "kl.prev"):
        return (c, p)
    if name == "lens.agree.base":
        return (c, layers)
    if name == "lens.split.base":
        return (c,)
    return ()


def array_problem(name: str, arr: np.ndarray, r: DriftResult) -> str:
    """What is wrong with drift array `name` in `r` ('' when nothing is)."""
    if not re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)*", name) or name.startswith("trace."):
        return f"the drift array {shown(name)} has a name this version cannot read"
    if arr.dtype.kind not in "iuf":
        return f"the drift array {shown(name)} holds {arr.dtype}, not numbers"
    if name == "lens.split.base" and arr.dtype.kind not in "iu":
        return "the drift array lens.split.base holds fractions, not layer numbers"
    want = expected_shape(name, r)
    if want and tuple(arr.shape) != want:
        return f"the drift array {shown(name)} has shape {list(arr.shape)}, not {list(want)}"
    if not want and (arr.ndim == 0 or arr.shape[0] not in (r.n_checkpoints, len(r.models))):
        return (
            f"the drift array {shown(name)} has shape {list(arr.shape)}, which does not lead "
            f"with the {r.n_checkpoints} checkpoints or {len(r.models)} models"
        )
    if name == "lens.split.base" and arr.size and (arr.min() < -1 or arr.max() >= r.n_layers):
        return "the drift array lens.split.base names a layer the model does not have"
    return ""


def result_problem(r: DriftResult) -> str:
    """What in `r` contradicts itself ('' when nothing does): array shapes, head types, traces."""
    for name, arr in sorted(r.arrays.items()):
        problem = array_problem(name, np.asarray(arr), r)
        if problem:
            return problem
    if r.head_types and len(r.head_types) != len(r.models):
        return f"{len(r.head_types)} head-type maps for {len(r.models)} models"
    for types in r.head_types:
        for key in types:
            where = re.fullmatch(r"(\d{1,6})\.(\d{1,6})", key)
            if where is None or int(where[1]) >= r.n_layers or int(where[2]) >= r.n_heads:
                return f"the head types name a head {shown(key)} the model does not have"
    if r.traces and len(r.traces) != len(r.models):
        return f"{len(r.traces)} traces for {len(r.models)} models"
    for m, trace in enumerate(r.traces):
        if trace.n_layers != r.n_layers or trace.n_heads != r.n_heads:
            return (
                f"model {m}'s trace has {trace.n_layers} layers and {trace.n_heads} heads, "
                f"not {r.n_layers} and {r.n_heads}"
            )
    return ""


# ---- writing -------------------------------------------------------------------------------


def is_drift_snapshot(trace: Trace) -> bool:
    """Whether `trace` (a loaded snapshot) carries a drift comparison."""
    return isinstance(trace.notes.get(NOTE), dict)


def drift_to_trace(result: DriftResult) -> Trace:
    """The snapshot Trace that keeps `result` (the base's first-prompt trace, not modified).

    ValueError when `result` contradicts itself: that is a bug of the caller, not the user's.
    """
    problem = result_problem(result)
    if problem:
        raise ValueError(f"cannot save this drift result: {problem}")
    if result.traces:
        own = result.traces[0]
    else:  # no traces kept: a placeholder with the model's shape and no tokens
        own = Trace(model=_model_info(result), spec=CaptureSpec(), finished=True)
    extras = {k: v for k, v in own.extras.items() if not k.startswith(PREFIX)}
    for name, arr in result.arrays.items():
        extras[PREFIX + name] = np.asarray(arr)
    others = []
    for m, trace in enumerate(result.traces[1:], start=1):
        from neuroscope_tui.snapshot import _to_tensors

        tensors, manifest = _to_tensors(trace)
        for name, arr in tensors.items():
            extras[f"{TRACE_PREFIX}{m}.{name}"] = arr
        # text extras stay in the sub-manifest, which keeps them as values
        others.append({"index": m, "manifest": manifest})
    note = {
        "version": result.version,
        "base": result.base.to_dict(),
        "checkpoints": [c.to_dict() for c in result.checkpoints],
        "prompts": list(result.prompts),
        "n_layers": int(result.n_layers),
        "n_heads": int(result.n_heads),
        "d_mlp": int(result.d_mlp),
        "arrays": sorted(result.arrays),
        "modules": list(result.modules),
        "head_types": [dict(t) for t in result.head_types],
        "skipped": dict(result.skipped),
        "model": dict(result.model),
        "base_trace": bool(result.traces),
        "traces": others,
    }
    return Trace(
        model=own.model,
        spec=own.spec,
        token_ids=list(own.token_ids),
        token_text=list(own.token_text),
        n_prompt=own.n_prompt,
        arrays=dict(own.arrays),
        extras=extras,
        notes={**own.notes, NOTE: note},
        prompt=own.prompt,
        finished=own.finished,
        stop_reason=own.stop_reason,
        version=own.version,
        interventions=list(own.interventions),
    )


def _model_info(result: DriftResult) -> ModelInfo:
    info = ModelInfo.from_dict(result.model) if result.model.get("name") else None
    if info is None:
        info = ModelInfo(name=result.base.name)
    info.n_layers, info.n_heads, info.d_mlp = result.n_layers, result.n_heads, result.d_mlp
    return info


def save_drift(result: DriftResult, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write `result` to `path` (atomically) and return the path; OutputPathError says why not."""
    from neuroscope_tui.snapshot import save_snapshot

    return save_snapshot(drift_to_trace(result), path, force=force)


# ---- reading -------------------------------------------------------------------------------


def load_drift(path: str | os.PathLike[str]) -> DriftResult:
    """The drift comparison kept in the snapshot at `path`; SnapshotError (one sentence) for a
    bad file or a snapshot that holds no comparison."""
    from neuroscope_tui.snapshot import load_snapshot

    src = Path(path).expanduser()
    return drift_from_trace(load_snapshot(src), str(src))


def drift_from_trace(trace: Trace, source: str = "this snapshot") -> DriftResult:
    """The DriftResult a loaded snapshot carries, checked; SnapshotError names what is wrong."""
    if not is_drift_snapshot(trace):
        raise SnapshotError(
            f"{source} holds no drift comparison; make one with "
            "`neuroscope-tui drift BASE CHECKPOINT -o FILE`"
        )
    try:
        return _from_trace(trace, source)
    except _Damaged as problem:
        raise SnapshotError(
            f"{source} has a damaged drift comparison ({problem}); make it again with "
            "`neuroscope-tui drift`"
        ) from None


class _Damaged(Exception):
    """What is wrong with a drift note or its arrays, as words after "a damaged ... (".."""


def _from_trace(trace: Trace, source: str) -> DriftResult:
    raw = trace.notes[NOTE]
    version = raw.get("version")
    if type(version) is int and version > DRIFT_VERSION:
        raise SnapshotError(
            f"{source} holds a drift comparison made by a newer neuroscope-tui (drift format "
            f"{version}, this reads up to {DRIFT_VERSION}); upgrade with "
            "pip install -U neuroscope-tui"
        )
    try:
        note = DriftNote.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = shown(".".join(str(p) for p in first["loc"]) or "note")[1:-1]
        words = f"{first['msg'][:1].lower()}{first['msg'][1:]}"
        raise _Damaged(f"notes.drift.{where}: {words}") from None
    if note.model:
        try:
            ModelSchema.model_validate(note.model)
        except ValidationError:
            raise _Damaged("notes.drift.model is not a model description") from None
    arrays = {
        k[len(PREFIX) :]: v
        for k, v in trace.extras.items()
        if k.startswith(PREFIX) and not k.startswith(TRACE_PREFIX)
    }
    if sorted(arrays) != sorted(note.arrays):
        missing = sorted(set(note.arrays) - set(arrays)) or sorted(set(arrays) - set(note.arrays))
        raise _Damaged(f"the note and the file disagree on the array {shown(missing[0])}")
    result = DriftResult(
        base=Checkpoint.from_dict(note.base.model_dump()),
        checkpoints=[Checkpoint.from_dict(c.model_dump()) for c in note.checkpoints],
        prompts=list(note.prompts),
        n_layers=note.n_layers,
        n_heads=note.n_heads,
        d_mlp=note.d_mlp,
        arrays=arrays,
        modules=list(note.modules),
        head_types=[dict(t) for t in note.head_types],
        skipped=dict(note.skipped),
        model=dict(note.model),
        version=note.version,
    )
    result.traces = _traces(trace, note, len(result.models))
    problem = result_problem(result)
    if problem:
        raise _Damaged(problem)
    return result


def _traces(trace: Trace, note: DriftNote, n_models: int) -> list[Trace]:
    """Every model's trace (the snapshot's own first), each checked like a snapshot."""
    if not note.base_trace:
        if note.traces:
            raise _Damaged("it keeps other models' traces but not the base's")
        return []
    indices = [t.index for t in note.traces]
    if indices != list(range(1, n_models)):
        raise _Damaged(f"it keeps traces of models {indices[:5]}, not 1 to {n_models - 1}")
    own = Trace(
        model=trace.model,
        spec=trace.spec,
        token_ids=list(trace.token_ids),
        token_text=list(trace.token_text),
        n_prompt=trace.n_prompt,
        arrays=dict(trace.arrays),
        extras={k: v for k, v in trace.extras.items() if not k.startswith(PREFIX)},
        notes={k: v for k, v in trace.notes.items() if k != NOTE},
        prompt=trace.prompt,
        finished=trace.finished,
        stop_reason=trace.stop_reason,
        version=trace.version,
        interventions=list(trace.interventions),
    )
    return [own, *(_other_trace(trace, t) for t in note.traces)]


def _other_trace(trace: Trace, t: TraceNote) -> Trace:
    """Model t.index's trace from its arrays and manifest, through the snapshot's own check."""
    from neuroscope_tui.snapshot import SNAPSHOT_FORMAT, SNAPSHOT_VERSION, trace_from_manifest
    from neuroscope_tui.snapshot_manifest import EXTRAS_PREFIX

    prefix = f"{TRACE_PREFIX}{t.index}."
    tensors = {k[len(prefix) :]: v for k, v in trace.extras.items() if k.startswith(prefix)}
    header = Header(
        tensors={
            name: TensorEntry(name, arr.dtype, tuple(arr.shape), 0, 0)
            for name, arr in tensors.items()
        },
        metadata={},
    )
    manifest = {**t.manifest, "format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION}
    try:
        m, spec = check_manifest(manifest, header)
    except HeaderProblem as problem:
        raise _Damaged(f"model {t.index}'s trace {problem}") from None
    listed = set(m.arrays) | {EXTRAS_PREFIX + n for n in m.extras}
    if set(tensors) != listed:
        extra = sorted(set(tensors) - listed)
        raise _Damaged(f"model {t.index}'s trace has an unlisted array {shown(extra[0])}")
    arrays = {k: v for k, v in tensors.items() if not k.startswith(EXTRAS_PREFIX)}
    extras = {k[len(EXTRAS_PREFIX) :]: v for k, v in tensors.items() if k.startswith(EXTRAS_PREFIX)}
    return trace_from_manifest(m, spec, t.manifest, arrays, extras)

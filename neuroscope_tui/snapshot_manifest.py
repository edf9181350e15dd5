"""The snapshot manifest's schema, checked once when a file is opened, against its arrays.

`check_manifest` validates the manifest (already parsed by the bounded JSON reader) with
pydantic in strict mode, so every known key has its type (a float is not a token id, a string
is not a bool, a list is not a map), then bounds every count by the tensors the header says the
file holds: tokens by the arrays' token axis, layers and heads by their axes, array names by the
header. Unknown keys are ignored (a newer writer may add some). After it, loading trusts the
manifest: no reader indexes out of range or allocates by a number it did not check.

Notes are free-form JSON, but the keys that readers use have their shapes checked here:
`id_text` (token id -> text), `attribution` (the attribution view and export), `features`
(stored projections and clusters) and `heads_probe` (the heads view's types).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from neuroscope_tui.safetensors_file import Header, HeaderProblem, shown
from neuroscope_tui.trace import CaptureSpec, Trace

EXTRAS_PREFIX = "extras/"
MAX_ID = 2**31 - 1  # token ids are stored as int32
MAX_LAYERS = 10_000  # bounds for counts no array pins down (a model with no layer arrays)
MAX_WIDTH = 10_000_000

Count = Annotated[int, Field(ge=0, le=MAX_WIDTH)]
TokenId = Annotated[int, Field(ge=0, le=MAX_ID)]
Index = Annotated[int, Field(ge=-MAX_ID, le=MAX_ID)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class ModelSchema(_Strict):
    name: str
    architecture: str = ""
    revision: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    n_layers: Annotated[int, Field(ge=0, le=MAX_LAYERS)] = 0
    n_heads: Annotated[int, Field(ge=0, le=MAX_LAYERS)] = 0
    n_kv_heads: Annotated[int, Field(ge=0, le=MAX_LAYERS)] = 0
    d_model: Count = 0
    d_head: Count = 0
    d_mlp: Count = 0
    vocab_size: Annotated[int, Field(ge=0, le=MAX_ID + 1)] = 0
    context_length: Annotated[int, Field(ge=0, le=MAX_ID)] | None = None


class SpecSchema(_Strict):
    """The CaptureSpec keys this version knows; others pass through to CaptureSpec.from_dict."""

    sites: list[str] | None = None
    layers: list[Annotated[int, Field(ge=0, le=MAX_LAYERS)]] | None = None
    full_layers: list[Annotated[int, Field(ge=0, le=MAX_LAYERS)]] | None = None
    head_scores: bool = True
    pattern_heads: list[Annotated[list[Index], Field(min_length=2, max_length=2)]] = []
    top_k: Count = 10
    lens_positions: list[Index] | None = None
    near_zero: float = 1e-2
    neuron_subset: list[Annotated[int, Field(ge=0, le=MAX_WIDTH)]] | None = None
    full_neurons: bool = True
    neuron_sampling: str = ""
    full_dtype: str = "float32"
    watch: list[str] = []
    watch_full: list[str] = []


class TextExtra(_Strict):
    shape: Annotated[list[Count], Field(max_length=16)]
    values: Any

    def check(self, name: str) -> None:
        _check_nested(self.values, self.shape, f"text_extras.{name}.values")


class AttributionMethod(_Strict):
    """One method's numbers; the four the attribution view reads are required where the file
    holds attribution arrays (checked against the arrays below)."""

    f_input: float | None = None
    f_baseline: float | None = None
    sum: float | None = None
    relative_gap: float | None = None
    additive: bool | None = None  # False: occlusion, which has no completeness gap
    steps: int | None = None

    def lacks(self) -> list[str]:
        numbers = ("f_input", "f_baseline", "sum")
        if self.additive is not False:  # older files say nothing: they hold a gap
            numbers += ("relative_gap",)
        return [n for n in numbers if getattr(self, n) is None]


class AttributionNote(_Strict):
    position: Index | None = None
    n_inputs: Index | None = None
    target_id: TokenId | None = None
    target_text: str = "?"
    foil_id: TokenId | None = None
    foil_text: str | None = None
    methods: dict[str, AttributionMethod] = {}


class FeatureNote(_Strict):
    k: Count | None = None
    silhouette: dict[str, float] = {}
    explained: list[float] = []


class ProbeRow(_Strict):
    layer: Index
    head: Index
    types: list[str]


class ProbeNote(_Strict):
    model: str = ""
    heads: list[ProbeRow]


class PatchingNote(_Strict):
    """A patching sweep's figures (analysis/patching.py); its grid is in the extras."""

    site: str
    rows: list[str]
    clean_diff: float
    corrupt_diff: float
    target: str = ""
    foil: str = ""
    target_id: Index = -1
    foil_id: Index = -1
    clean: str = ""
    corrupt: str = ""
    partial: bool = False


class CleanRunNote(_Strict):
    """The run without interventions that an intervened run is compared with."""

    token_ids: list[TokenId] = []
    token_text: list[str] = []


class NotesSchema(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")
    id_text: dict[str, str] = {}
    attribution: AttributionNote | None = None
    features: dict[str, FeatureNote] = {}
    heads_probe: ProbeNote | None = None
    patching: PatchingNote | None = None
    clean_run: CleanRunNote | None = None
    # the module names a run's `--watch` patterns matched, in the order of the watch.* rows
    watch_modules: list[str] = []

    @field_validator("id_text")
    @classmethod
    def _ids_are_numbers(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.fullmatch(r"[0-9]{1,10}", key) or int(key) > MAX_ID:
                raise ValueError("token ids must be whole numbers")
        return value


class ManifestSchema(_Strict):
    format: str
    version: int
    trace_version: Annotated[int, Field(ge=1, le=MAX_ID)] = 1
    written_by: str = ""
    model: ModelSchema
    spec: SpecSchema = SpecSchema()
    token_ids: list[TokenId]
    token_text: list[str]
    n_prompt: Count
    prompt: str = ""
    finished: bool = True
    stop_reason: str = ""
    notes: NotesSchema = NotesSchema()
    # what was done to the model; each checked by capture/interventions.py (older files: none)
    interventions: list[dict[str, Any]] = []
    arrays: list[str] = []
    extras: list[str] = []
    text_extras: dict[str, TextExtra] = {}


def _check_nested(values: Any, shape: list[int], where: str) -> None:
    """`values` is a nested list of strings with exactly `shape` (iteratively: no recursion)."""
    stack = [(values, 0, where)]
    while stack:
        item, dim, at = stack.pop()
        if dim == len(shape):
            if not isinstance(item, str):
                raise HeaderProblem(f"has a damaged manifest ({at}: expected text)")
            continue
        if not isinstance(item, list) or len(item) != shape[dim]:
            raise HeaderProblem(f"has a damaged manifest ({at}: does not have the shape {shape})")
        stack.extend((v, dim + 1, at) for v in item)


def _problem_words(err: ValidationError) -> str:
    first = err.errors()[0]
    where = shown(".".join(str(p) for p in first["loc"]) or "manifest")[1:-1]
    return f"{where}: {first['msg'][:1].lower()}{first['msg'][1:]}"


def check_manifest(manifest: dict[str, Any], header: Header) -> tuple[ManifestSchema, CaptureSpec]:
    """The validated manifest and its CaptureSpec; HeaderProblem (words finishing "<file> has
    a ..." or "<file> is ...") names the first thing wrong."""
    try:
        m = ManifestSchema.model_validate(manifest)
    except ValidationError as err:
        raise HeaderProblem(f"has a damaged manifest ({_problem_words(err)})") from None
    for name, extra in m.text_extras.items():
        extra.check(name)
    try:
        spec = CaptureSpec.from_dict(manifest.get("spec") or {})
    except (TypeError, ValueError, OverflowError, KeyError, AttributeError) as err:
        raise HeaderProblem(f"has a damaged manifest (spec: {type(err).__name__})") from None
    _check_interventions(m)
    problem = _against_arrays(m, header)
    if problem.startswith("lacks"):
        raise HeaderProblem(problem)
    if problem:
        raise HeaderProblem(f"is inconsistent ({problem})")
    return m, spec


def _check_interventions(m: ManifestSchema) -> None:
    """Each intervention is one `intervention_from_dict` accepts and fits the model."""
    from neuroscope_tui.capture.interventions import (
        InterventionError,
        check_interventions,
        intervention_from_dict,
    )
    from neuroscope_tui.trace import ModelInfo

    try:
        ivs = [intervention_from_dict(d) for d in m.interventions]
        check_interventions(ivs, ModelInfo(**m.model.model_dump()))
    except InterventionError as err:
        words = shown(str(err))[1:-1]
        raise HeaderProblem(f"has a damaged manifest (interventions: {words})") from None


def _against_arrays(m: ManifestSchema, header: Header) -> str:
    """What in the manifest contradicts the tensors the header holds ('' when nothing does)."""
    names = set(header.tensors)
    missing = [n for n in m.arrays if n not in names]
    missing += [EXTRAS_PREFIX + n for n in m.extras if EXTRAS_PREFIX + n not in names]
    if missing:
        return "lacks the arrays " + ", ".join(shown(n)[1:-1] for n in missing)
    n_tok = len(m.token_ids)
    if len(m.token_text) != n_tok:
        return f"{n_tok} token ids but {len(m.token_text)} token texts"
    if m.n_prompt > n_tok:
        return f"n_prompt {m.n_prompt} is outside 0..{n_tok}"
    clean = m.notes.clean_run
    if clean is not None and len(clean.token_text) != len(clean.token_ids):
        return "notes.clean_run has unequal numbers of token ids and texts"
    model, spec = m.model, m.spec
    layers = spec.layers if spec.layers is not None else list(range(model.n_layers))
    if any(layer >= model.n_layers for layer in layers):
        return f"spec.layers name a layer past the model's {model.n_layers}"
    full = layers if spec.full_layers is None else spec.full_layers
    attribution = m.notes.attribution
    if attribution is not None and any(n.startswith(EXTRAS_PREFIX + "attribution.") for n in names):
        for method, numbers in attribution.methods.items():
            if numbers.lacks():
                return f"notes.attribution.methods.{shown(method)} lacks {numbers.lacks()[0]}"
    for name, t in sorted(header.tensors.items()):
        shape = t.shape
        if name.startswith(EXTRAS_PREFIX):
            if len(shape) == 0:
                return f"array {shown(name)} has no axes"
            patching = m.notes.patching
            if name.startswith(EXTRAS_PREFIX + "patching."):
                rows = len(patching.rows) if patching is not None else -1
                if list(shape) != [rows, n_tok]:
                    return f"array {shown(name)} has shape {list(shape)} for the sweep's cells"
            if name == EXTRAS_PREFIX + "interventions.logit_diff":
                clean = m.notes.clean_run
                if clean is None or list(shape) != [len(clean.token_ids)]:
                    return f"array {shown(name)} has shape {list(shape)} for the clean run"
            if name.startswith(EXTRAS_PREFIX + "attribution.") and (
                len(shape) != 1 or shape[0] > n_tok
            ):
                return f"array {shown(name)} has shape {list(shape)} for {n_tok} tokens"
            continue
        if name.startswith("pattern."):
            where = re.fullmatch(r"pattern\.(\d+)\.(-?\d+)", name)
            if where is None or int(where.group(1)) not in layers:
                return f"array {shown(name)} names no layer of the run"
            if not -1 <= int(where.group(2)) < model.n_heads:
                return f"array {shown(name)} names a head past the model's {model.n_heads}"
            if len(shape) != 2 or shape[0] != shape[1] or shape[0] > n_tok:
                return f"array {shown(name)} has shape {list(shape)} for {n_tok} tokens"
            continue
        axis = Trace.token_axis(name)
        if len(shape) <= axis or shape[axis] != n_tok:
            return f"array {shown(name)} has shape {list(shape)} for {n_tok} tokens"
        if name.startswith("watch."):
            problem = _watch_problem(name, shape, len(m.notes.watch_modules))
            if problem:
                return problem
            continue
        if axis == 1:
            rows = len(full) if name.endswith(".full") else len(layers)
            if shape[0] != rows and not (name.endswith(".full") and shape[0] == 0):
                return f"array {shown(name)} has {shape[0]} layers where the manifest says {rows}"
        kept = len(spec.neuron_subset or ())
        if name == "neurons.full" and kept and len(shape) == 3 and shape[0] and shape[2] != kept:
            return f"array neurons.full has {shape[2]} neurons where the spec keeps {kept}"
        if name.startswith("heads.") and (len(shape) != 3 or shape[2] != model.n_heads):
            return f"array {shown(name)} has shape {list(shape)} for {model.n_heads} heads"
    return ""


def _watch_problem(name: str, shape: tuple[int, ...] | list[int], n_watched: int) -> str:
    """What is wrong with a watched module's array (capture/watch.py), '' when nothing is:
    summaries hold one row per name in notes.watch_modules, full rows name one of them."""
    full = re.fullmatch(r"watch\.full\.(\d+)", name)
    if full is not None:
        if int(full.group(1)) >= n_watched or len(shape) != 2:
            return f"array {shown(name)} names no watched module of the run"
        return ""
    if len(shape) != 2 or shape[0] != n_watched:
        return f"array {shown(name)} has {shape[0]} rows where notes.watch_modules has {n_watched}"
    return ""

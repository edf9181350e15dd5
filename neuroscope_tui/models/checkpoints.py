"""The inputs of a drift comparison: which models, in which order, and whether they fit together.

`resolve_checkpoints(base, others)` turns what the user typed into `Checkpoint`s (base first):
each name is anything `neuroscope-tui MODEL` accepts, a snapshot file, or one folder holding
trainer-style `checkpoint-<step>` subfolders (expanded and ordered by step, not by name).
`check_compatible(checkpoints)` refuses models of different shapes with the reason, reading
only config.json, GGUF metadata or a snapshot's manifest: no weights, no torch.
`weight_files(source)` lists the safetensors files a loaded model's weights can be streamed
from (a folder, a sharded index, the dequantized GGUF cache, the hub cache), or says why not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuroscope_tui.analysis.drift_record import Checkpoint
from neuroscope_tui.errors import ModelNotFoundError, NeuroscopeError, UsageError

_STEP = re.compile(r"^checkpoint-(\d+)$")

# What must match between the base and a checkpoint, and how a user calls it.
SHAPE_FIELDS = {
    "architecture": "architecture",
    "n_layers": "number of layers",
    "d_model": "width (hidden size)",
    "n_heads": "number of attention heads",
    "n_kv_heads": "number of key/value heads",
    "d_mlp": "MLP width",
    "vocab_size": "vocabulary size",
}


def trainer_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, folder) of the `checkpoint-<step>` subfolders of `folder`, ordered by step."""
    found = []
    for child in folder.iterdir():
        match = _STEP.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def _is_snapshot_file(path: Path) -> bool:
    if path.suffix.lower() == ".nscope":
        return True
    if path.suffix.lower() == ".gguf":
        return False
    from neuroscope_tui.errors import SnapshotError
    from neuroscope_tui.snapshot import read_manifest

    try:
        read_manifest(path)
    except SnapshotError:
        return False
    return True


def _label(name: str) -> str:
    """A short on-screen name: a folder's or file's name, an alias, a hub id's last part."""
    path = Path(name).expanduser()
    if path.exists():
        return path.resolve().name or name
    return name.rstrip("/").split("/")[-1] or name


def _expand(name: str, *, as_base: bool = False) -> list[Checkpoint]:
    """One name -> its Checkpoints (several for a folder of trainer checkpoints).

    A trainer's output folder often holds the final model too (`trainer.save_model()` writes
    config.json beside the checkpoint-* folders): as a checkpoint it stands for the whole run,
    its checkpoints by step and then the final model; as the base, for the final model only.
    """
    from neuroscope_tui.models.loader import locate

    path = Path(name).expanduser()
    if path.is_file() and _is_snapshot_file(path):
        return [Checkpoint(name=name, label=_label(name), kind="snapshot")]
    is_model = path.is_dir() and ((path / "config.json").is_file() or any(path.glob("*.gguf")))
    steps = trainer_checkpoints(path) if path.is_dir() else []
    if path.is_dir() and not is_model and not steps:
        raise ModelNotFoundError(
            f"the folder {name} holds no model (no config.json) and no checkpoint-* "
            "folders; pass a model folder or a training run's output folder"
        )
    if as_base and is_model:
        steps = []  # the base is the run's final model, not its checkpoints
    found = [Checkpoint(name=str(p), label=p.name, step=s) for s, p in steps]
    if is_model or not path.is_dir():
        locate(name)  # raises the loader's sentence for a missing path, a typo, an unknown id
        final = f"{_label(name)} (final)" if steps else _label(name)
        found.append(Checkpoint(name=name, label=final))
    return found


def resolve_checkpoints(base: str, others: Sequence[str]) -> list[Checkpoint]:
    """The base then every checkpoint, in order. Raises ModelNotFoundError / UsageError (one
    sentence) for a missing path, a folder without a model or checkpoints, no checkpoints."""
    if not others:
        raise UsageError("give at least one checkpoint to compare with the base model")
    found = _expand(base, as_base=True)
    if len(found) > 1:
        raise UsageError(
            f"the base must be one model, but {base} holds {len(found)} checkpoints; pass "
            f"one of them (e.g. {found[0].name}) as the base"
        )
    first = found[0]
    checkpoints = [Checkpoint(name=first.name, label="base", step=first.step, kind=first.kind)]
    for name in others:
        checkpoints.extend(_expand(name))
    seen: dict[str, int] = {"base": 1}
    for ckpt in checkpoints[1:]:  # labels name the rows on screen: make them unique
        count = seen.get(ckpt.label, 0)
        seen[ckpt.label] = count + 1
        if count:
            ckpt.label = f"{ckpt.label} ({count + 1})"
    return checkpoints


# ---- shapes without loading ----------------------------------------------------------------


def shape_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """The SHAPE_FIELDS of a config.json dict (None where the config does not say)."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else None
    cfg = {**config, **text} if text else config

    def pick(*keys: str) -> Any:
        for key in keys:
            value = cfg.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None

    d_model = pick("hidden_size", "n_embd", "d_model")
    n_heads = pick("num_attention_heads", "n_head", "num_heads")
    d_mlp = pick("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size")
    if d_mlp is None and config.get("model_type") == "gpt2" and d_model:
        d_mlp = 4 * d_model  # gpt2's n_inner None means 4 x width
    return {
        "architecture": config.get("model_type"),
        "n_layers": pick("num_hidden_layers", "n_layer", "num_layers"),
        "d_model": d_model,
        "n_heads": n_heads,
        "n_kv_heads": pick("num_key_value_heads", "multi_query_group_num") or n_heads,
        "d_mlp": d_mlp,
        "vocab_size": pick("vocab_size", "padded_vocab_size"),
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read {path} ({err}); is the model folder complete?") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a model config (not a JSON object)")
    return data


def _shape_from_gguf(path: Path) -> dict[str, Any]:
    """SHAPE_FIELDS from a GGUF file: its dequantized cache's config.json, else its metadata."""
    from neuroscope_tui.models import gguf_cache

    folder = gguf_cache.cached(path)
    if folder is not None and (folder / "config.json").is_file():
        return shape_from_config(_read_json(folder / "config.json"))
    try:
        from gguf import GGUFReader
    except ImportError:
        raise UsageError(
            f"reading {path.name}'s shape needs the gguf package; run: pip install gguf"
        ) from None
    try:
        reader = GGUFReader(str(path))
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read {path} as a GGUF model ({err})") from None

    def value(key: str) -> Any:
        item = reader.fields.get(key)
        if item is None:
            return None
        try:
            return item.contents()
        except (AttributeError, ValueError, IndexError):
            return None

    arch = value("general.architecture")
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    return {
        "architecture": arch,
        "n_layers": value(f"{arch}.block_count"),
        "d_model": value(f"{arch}.embedding_length"),
        "n_heads": value(f"{arch}.attention.head_count"),
        "n_kv_heads": value(f"{arch}.attention.head_count_kv"),
        "d_mlp": value(f"{arch}.feed_forward_length"),
        "vocab_size": len(tokens.data) if tokens is not None else None,
    }


def _hub_file(repo: str, filename: str) -> Path | None:
    """A file of hub repo `repo` from the local hub cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    got = try_to_load_from_cache(repo, filename)
    return Path(got) if isinstance(got, str) else None


def model_shape(ckpt: Checkpoint) -> dict[str, Any]:
    """SHAPE_FIELDS of one input, from config.json, GGUF metadata or a snapshot's manifest."""
    if ckpt.kind == "snapshot":
        from neuroscope_tui.snapshot import read_manifest

        model = read_manifest(ckpt.name).get("model", {})
        return {key: model.get(key) or None for key in SHAPE_FIELDS}
    from neuroscope_tui.models.loader import locate

    source = locate(ckpt.name)
    if source.kind == "gguf":
        return _shape_from_gguf(Path(source.where))
    if source.kind == "folder":
        return shape_from_config(_read_json(Path(source.where) / "config.json"))
    config = _hub_file(source.where, "config.json")
    if config is None:
        return {key: None for key in SHAPE_FIELDS}  # checked once loaded; nothing to read now
    return shape_from_config(_read_json(config))


def check_compatible(checkpoints: Sequence[Checkpoint]) -> dict[str, Any]:
    """The base's shape; UsageError naming the first checkpoint whose shape differs and how.

    Reads config files and metadata only (no model is loaded). A field one side does not
    state is not compared (a hub model not in the cache has no config to read yet).
    """
    base = model_shape(checkpoints[0])
    for ckpt in checkpoints[1:]:
        shape = model_shape(ckpt)
        for key, words in SHAPE_FIELDS.items():
            mine, theirs = shape.get(key), base.get(key)
            if mine is not None and theirs is not None and mine != theirs:
                raise UsageError(
                    f"{ckpt.label} cannot be compared with the base {checkpoints[0].name}: "
                    f"its {words} is {mine}, the base's is {theirs}"
                )
    return base


# ---- where the weights are -------------------------------------------------------------------


class NoWeightFiles(NeuroscopeError):
    """A model's weights cannot be streamed from files (the reason is the message)."""


def _folder_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise NoWeightFiles(f"{index} has no weight_map")
        files = sorted({folder / str(name) for name in weight_map.values()})
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise NoWeightFiles(f"{folder} lacks the shard {missing[0]} its index names")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files
    if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
        raise NoWeightFiles(
            f"{folder} holds PyTorch pickle weights, which are not streamed; save the model "
            "with safetensors (save_pretrained's default)"
        )
    raise NoWeightFiles(f"{folder} holds no safetensors weights")


def weight_files(source: str) -> list[Path]:
    """The safetensors files holding the weights of a model loaded from `source` (a loaded
    model's `LoadedModel.source`: a folder, the GGUF cache folder, a .gguf file or a hub id).

    Raises NoWeightFiles with the reason when there are none to stream.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return _folder_files(path)
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            from neuroscope_tui.models import gguf_cache

            folder = gguf_cache.cached(path)
            if folder is None:
                raise NoWeightFiles(
                    f"{path.name} has no dequantized safetensors cache to stream from"
                )
            return _folder_files(folder)
        raise NoWeightFiles(f"{path} is not a model folder")
    index = _hub_file(source, "model.safetensors.index.json")
    single = _hub_file(source, "model.safetensors")
    if index is not None:
        return _folder_files(index.parent)
    if single is not None:
        return [single]
    raise NoWeightFiles(f"the hub cache holds no safetensors weights of {source}")

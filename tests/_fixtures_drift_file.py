"""Hand-made drift results (numpy only) for the drift file, export and CLI tests."""

from __future__ import annotations

import numpy as np

from neuroscope_tui.analysis.drift_record import HEAD_SCORE_NAMES, Checkpoint, DriftResult
from neuroscope_tui.trace import CaptureSpec, ModelInfo, Trace


def tiny_trace(seed: int, n_layers: int = 3, n_heads: int = 2, n_tokens: int = 4) -> Trace:
    """A small trace with summary, head and pattern arrays and a text extra."""
    rng = np.random.default_rng(seed)
    model = ModelInfo(
        name=f"m{seed}",
        architecture="llama",
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_heads,
        d_model=8,
        d_mlp=5,
        vocab_size=50,
    )
    trace = Trace(
        model=model,
        spec=CaptureSpec(pattern_heads=((0, -1),)),
        prompt="a b c d",
        finished=True,
        stop_reason="length",
    )
    trace.token_ids = [1, 2, 3, 4][:n_tokens]
    trace.token_text = ["a", " b", " c", " d"][:n_tokens]
    trace.n_prompt = n_tokens
    trace.arrays = {
        "resid.norm": rng.random((n_layers, n_tokens)).astype(np.float32),
        "heads.entropy": rng.random((n_layers, n_tokens, n_heads)).astype(np.float32),
        "logits.top_ids": rng.integers(0, 50, (n_tokens, 3)).astype(np.int32),
        "pattern.0.-1": np.tril(rng.random((n_tokens, n_tokens))).astype(np.float32),
    }
    trace.extras = {"labels": np.array(["x", "y"])}
    trace.notes = {"id_text": {"1": "a"}}
    return trace


def make_result(
    n_ckpt: int = 2,
    n_layers: int = 3,
    n_heads: int = 2,
    d_mlp: int = 5,
    n_prompts: int = 2,
    traces: bool = True,
    seed: int = 0,
) -> DriftResult:
    """A DriftResult with every array of drift_record.py's table, filled at random."""
    rng = np.random.default_rng(seed)
    c, m, layers = n_ckpt, n_ckpt + 1, n_layers
    modules = [f"model.layers.{i}.mlp.up_proj.weight" for i in range(layers)]
    modules += ["model.embed_tokens.weight", "model.norm.weight"]
    arrays: dict[str, np.ndarray] = {}
    for ref in ("base", "prev"):
        arrays[f"cka.{ref}"] = rng.random((c, layers)).astype(np.float32)
        arrays[f"cos.{ref}"] = rng.random((c, layers)).astype(np.float32)
        arrays[f"weights.{ref}"] = rng.random((c, layers)).astype(np.float32)
        arrays[f"weights.module.{ref}"] = rng.random((c, len(modules))).astype(np.float32)
        arrays[f"kl.{ref}"] = rng.random((c, n_prompts)).astype(np.float32)
    for score in HEAD_SCORE_NAMES:
        arrays[f"heads.{score}"] = rng.random((m, layers, n_heads)).astype(np.float32)
    arrays["neurons.mean"] = rng.standard_normal((m, layers, d_mlp)).astype(np.float32)
    arrays["lens.agree.base"] = rng.random((c, layers)).astype(np.float32)
    arrays["lens.split.base"] = np.array([(i % (layers + 1)) - 1 for i in range(c)], np.int32)
    checkpoints = [
        Checkpoint(
            name=f"/runs/checkpoint-{100 * (i + 1)}",
            label=f"checkpoint-{100 * (i + 1)}",
            step=100 * (i + 1),
        )
        for i in range(c)
    ]
    return DriftResult(
        base=Checkpoint(name="/runs/base", label="base"),
        checkpoints=checkpoints,
        prompts=[f"prompt {i}" for i in range(n_prompts)],
        n_layers=layers,
        n_heads=n_heads,
        d_mlp=d_mlp,
        arrays=arrays,
        modules=modules,
        head_types=[{"0.1": "P", "2.0": "I"} for _ in range(m)],
        traces=[tiny_trace(i, layers, n_heads) for i in range(m)] if traces else [],
        skipped={"weights.embed": "tied to the unembedding"},
        model=ModelInfo(
            name="/runs/base", architecture="llama", n_layers=layers, n_heads=n_heads, d_mlp=d_mlp
        ).to_dict(),
    )


SEED_FILE = "drift_tiny.nscope"  # in tests/data: a seed of the snapshot fuzz


def build_seed(folder) -> object:
    """A real drift file of a tiny llama and one fine-tuned checkpoint on one prompt; rebuild
    tests/data/drift_tiny.nscope with `python tests/_fixtures_drift_file.py`."""
    from pathlib import Path

    from neuroscope_tui.capture.drift import measure_drift
    from neuroscope_tui.drift_file import save_drift
    from neuroscope_tui.models.checkpoints import resolve_checkpoints
    from tests.tiny_checkpoints import save_finetuned

    base, run = save_finetuned(Path(folder), n_layers=2, block=1, steps=(2,))
    checkpoints = resolve_checkpoints(str(base), [str(run)])
    result = measure_drift(checkpoints, ["The cat sat on the mat."], load_options={"device": "cpu"})
    # the folders are temporary: keep their names short and stable
    result.base.name, result.checkpoints[0].name = "base", "run/checkpoint-2"
    out = Path(__file__).parent / "data" / SEED_FILE
    return save_drift(result, out, force=True)


if __name__ == "__main__":
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    with tempfile.TemporaryDirectory() as tmp:
        print(build_seed(tmp))

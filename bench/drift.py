"""What `neuroscope-tui drift` costs per checkpoint, and its peak memory against one model
plus one trace.

    python bench/drift.py                 # SmolLM2-135M and two fine-tuned copies
    python bench/drift.py --tiny          # a random tiny llama (seconds; a smoke test)
    python bench/drift.py --steps 2,4 --layer 15 --keep DIR

First the checkpoints are made in a temporary folder: the base saved as safetensors, then a
few AdamW steps on one middle layer only (every other parameter frozen), saved after each
count of --steps as `run/checkpoint-<step>`, as a trainer writes them.

Then, each in a fresh process so the kernel's peak resident set (ru_maxrss from os.wait4) is
that command's alone, in the same run:
  - reference: `neuroscope-tui capture BASE --prompt P -o x.nscope` (one model + one trace,
    the capture command's default spec: full rows, lens, per-layer patterns)
  - drift: `measure_drift(base, run/checkpoint-*)` on the shipped prompt set, timed per model
    with wrappers on capture/drift.py's own steps (loading, the summary capture, and the
    weight streaming), then the comparison saved with save_drift.

Prints per model: load, summary capture and weight streaming (wall and process CPU), and
the two peaks with their ratio. Other helpers share this machine: the load average is
printed, and CPU seconds are the figure to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TINY_SHAPE = dict(
    num_hidden_layers=6,
    hidden_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=512,
    max_position_embeddings=512,
)
LR = 1e-4  # Adam on SmolLM2's block: a small, real fine-tuning step


# ---- making the checkpoints ------------------------------------------------------------------


def make_checkpoints(root: Path, tiny: bool, layer: int, steps: list[int]) -> tuple[Path, Path]:
    """The base folder and the run folder (checkpoint-<step> subfolders): the base saved,
    then a copy fine-tuned with only block `layer` trainable (tests/tiny_checkpoints.py)."""
    from tests.tiny_checkpoints import finetune_steps, save_finetuned

    if tiny:
        return save_finetuned(root, n_layers=TINY_SHAPE["num_hidden_layers"], block=layer,
                              steps=steps, **{k: v for k, v in TINY_SHAPE.items()
                                              if k != "num_hidden_layers"})  # fmt: skip
    from neuroscope_tui.models.gguf_cache import make_serializable
    from neuroscope_tui.models.loader import load_model

    bundle = load_model("smollm2", device="cpu", dtype="float32")
    model, tokenizer = bundle.model, bundle.tokenizer
    make_serializable(model)
    base, run = root / "base", root / "run"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    done = 0
    for total in steps:
        finetune_steps(model, tokenizer, layer, total - done, lr=LR)
        done = total
        model.save_pretrained(run / f"checkpoint-{total}")
        tokenizer.save_pretrained(run / f"checkpoint-{total}")
    return base, run


# ---- the measured processes ------------------------------------------------------------------


def child_drift(base: str, run: str, out: str, timings: str) -> None:
    """Run measure_drift with timers around its steps; write the timings as JSON."""
    import threading

    from neuroscope_tui.capture import drift as capture_drift
    from neuroscope_tui.drift_file import save_drift
    from neuroscope_tui.models.checkpoints import check_compatible, resolve_checkpoints
    from neuroscope_tui.prompt_sets import default_prompts

    rows: list[dict[str, float | str]] = []
    phase = ["other"]  # the step running now, for the memory sampler
    peaks: dict[str, list[int]] = {}  # step -> [anonymous, file-backed] peak KiB
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            anon, file = _rss_kib(os.getpid())
            got = peaks.setdefault(phase[0], [0, 0])
            got[0], got[1] = max(got[0], anon), max(got[1], file)
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()

    def timed(name: str, func):
        def wrapper(*args, **kwargs):
            w, c = time.perf_counter(), time.process_time()
            phase[0] = name
            try:
                return func(*args, **kwargs)
            finally:
                phase[0] = "other"
                row = rows[-1]
                row[f"{name}_wall"] = row.get(f"{name}_wall", 0.0) + time.perf_counter() - w
                row[f"{name}_cpu"] = row.get(f"{name}_cpu", 0.0) + time.process_time() - c

        return wrapper

    load = capture_drift.load_model

    def load_next(name: str, **kwargs):
        rows.append({"model": Path(name).name})
        return timed("load", load)(name, **kwargs)

    capture_drift.load_model = load_next
    capture_drift.summarise_model = timed("capture", capture_drift.summarise_model)
    capture_drift.weight_change = timed("weights", capture_drift.weight_change)
    checkpoints = resolve_checkpoints(base, [run])
    check_compatible(checkpoints)
    prompts = default_prompts()
    w, c = time.perf_counter(), time.process_time()
    result = capture_drift.measure_drift(
        checkpoints, prompts, load_options={"device": "cpu", "dtype": "float32"}
    )
    total = {"total_wall": time.perf_counter() - w, "total_cpu": time.process_time() - c}
    stop.set()
    save_drift(result, out, force=True)
    tokens = sum(t.n_tokens for t in result.traces[:1])
    Path(timings).write_text(
        json.dumps(
            {
                "rows": rows,
                **total,
                "prompts": len(prompts),
                "first_tokens": tokens,
                "peaks": peaks,
            }
        )
    )


def _rss_kib(pid: int) -> tuple[int, int]:
    """(anonymous, file-backed) resident KiB of `pid` now, from /proc (0, 0 if gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    got = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    kib = lambda key: int(got.get(key, "0 kB").split()[0])  # noqa: E731
    return kib("RssAnon"), kib("RssFile")


def measured(cmd: list[str]) -> dict[str, float]:
    """Run `cmd`: its wall seconds, peak resident set in MiB (its own, from wait4), and the
    peaks of its anonymous and file-backed parts, sampled every 50 ms. File-backed pages are
    mapped files (the weights safetensors maps): page cache the kernel can drop, unlike
    anonymous memory (tensors, arrays)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    anon = file = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        a, f = _rss_kib(proc.pid)
        anon, file = max(anon, a), max(file, f)
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with status {proc.returncode}")
    return {
        "wall": time.perf_counter() - start,
        "peak": usage.ru_maxrss / 1024,  # KiB on Linux
        "anon": anon / 1024,
        "file": file / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="a random tiny llama")
    parser.add_argument("--layer", type=int, default=None, help="the layer fine-tuned")
    parser.add_argument("--steps", default="2,6", help="save after these step counts")
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep the checkpoints here (reused if there)"
    )
    parser.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_drift(*args.child)
        return
    layer = args.layer if args.layer is not None else (3 if args.tiny else 15)
    steps = [int(s) for s in args.steps.split(",")]
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        base, run = root / "base", root / "run"
        if args.keep is None or not (base / "config.json").is_file():
            w = time.perf_counter()
            base, run = make_checkpoints(root, args.tiny, layer, steps)
            made = time.perf_counter() - w
            print(f"made the checkpoints in {made:.1f} s (layer {layer}, steps {steps})")
        py = sys.executable
        one = ["capture", str(base), "--prompt", "The capital of France is"]
        one += ["--max-new-tokens", "8", "--device", "cpu", "--dtype", "float32"]
        ref = measured(
            [py, "-m", "neuroscope_tui", *one, "-o", str(root / "one.nscope"), "--force"]
        )
        timings = root / "timings.json"
        drift = measured(
            [py, __file__, "--child", str(base), str(run), str(root / "drift.nscope"), str(timings)]
        )
        t = json.loads(timings.read_text())
        size = (root / "drift.nscope").stat().st_size / 2**20
    print(f"load average {os.getloadavg()[0]:.1f} (1 min), {os.cpu_count()} CPUs")
    print(f"prompt set: {t['prompts']} prompts; drift file {size:.1f} MiB")
    head = f"{'model':<16}{'load s':>14}{'capture s':>16}{'weights s':>16}"
    print(head + "    (wall / cpu)")
    for row in t["rows"]:

        def cell(name: str, row: dict = row) -> str:
            if f"{name}_wall" not in row:
                return f"{'-':>16}"
            return f"{row[name + '_wall']:>8.2f} /{row[name + '_cpu']:>6.2f}"

        print(f"{row['model']:<16}{cell('load'):>14}{cell('capture'):>16}{cell('weights'):>16}")
    print(f"measure_drift total: wall {t['total_wall']:.1f} s, cpu {t['total_cpu']:.1f} s")
    print("peak memory (MiB)              RSS    anonymous  file-backed   wall s")
    for what, m in (
        ("capture (one model + one trace)", ref),
        (f"drift ({len(t['rows'])} models)", drift),
    ):
        print(f"{what:<30}{m['peak']:>6.0f}{m['anon']:>13.0f}{m['file']:>13.0f}{m['wall']:>9.1f}")
    steps = ", ".join(
        f"{name} {a / 1024:.0f} / {f / 1024:.0f}" for name, (a, f) in t["peaks"].items()
    )
    print(f"drift's peaks by step, anonymous / file-backed MiB: {steps}")
    print(
        f"drift / capture: RSS {drift['peak'] / ref['peak']:.2f}x, "
        f"anonymous {drift['anon'] / max(ref['anon'], 1):.2f}x"
    )


if __name__ == "__main__":
    main()

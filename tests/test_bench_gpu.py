"""bench/gpu.py runs without a GPU on a tiny shape (`--device cpu --tiny`), needs no textual,
and prints its table: every variant of every length, generation, and the memory estimate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RUN = """
import runpy, sys
sys.modules["textual"] = None  # a bare GPU box has torch, transformers, safetensors, numpy
sys.argv = ["bench/gpu.py", "--device", "cpu", "--tiny", "--rounds", "1"]
runpy.run_path("bench/gpu.py", run_name="__main__")
"""


def test_gpu_bench_runs_on_cpu_with_a_tiny_shape():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", RUN], capture_output=True, text=True, cwd=ROOT, env=env,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("device: CPU (cpu), dtype float32")
    assert lines[1] == "| shape | tokens | variant | ms | x plain | estimate | peak | est/peak |"
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[3:]]
    seen = {(r[1], r[2]) for r in rows}
    for n in ("32", "64"):
        assert {(n, "plain"), (n, "summaries"), (n, "heads")} <= seen
    gen = [r for r in rows if r[2].startswith("generate")]
    assert len(gen) == 1 and gen[0][1] == "64+8"
    plain, captured = (float(x) for x in gen[0][3].split(" / "))
    assert plain > 0 and captured > 0
    # the ratio is printed from the unrounded times, the times to 0.1 ms: allow that rounding
    ratio = float(gen[0][4])
    assert abs(ratio - captured / plain) <= 0.05 * (1 + ratio) / plain + 0.001
    for r in rows:
        assert float(r[4]) > 0
        if r[2] != "plain":
            assert r[5].endswith("iB")  # the estimate of capture/memory.py

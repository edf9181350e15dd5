"""docs/snapshot-format.md stays true: its reading recipe works without neuroscope or torch, and
every array a real capture writes is in its table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from neuroscope_tui.snapshot import save_snapshot

DOC = Path(__file__).resolve().parents[1] / "docs" / "snapshot-format.md"


def documented_names() -> list[re.Pattern[str]]:
    """Each backticked name in the first column of the doc's tables, as a regex
    (`pattern.{l}.{h}` matches pattern.3.1; `extras/projection.*` matches any suffix)."""
    names: list[re.Pattern[str]] = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        first_cell = line.split("|")[1]
        for name in re.findall(r"`([^`]+)`", first_cell):
            regex = re.escape(name).replace(r"\{l\}", r"\d+").replace(r"\{h\}", r"\d+")
            names.append(re.compile(regex.replace(r"\*", ".+") + "$"))
    return names


def test_reading_recipe_runs_without_neuroscope(tmp_path: Path) -> None:
    from test_snapshot_roundtrip import make_trace

    save_snapshot(make_trace(), tmp_path / "run.nscope")
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None
    blocker = "import sys; sys.modules['torch'] = None; sys.modules['neuroscope_tui'] = None\n"
    done = subprocess.run(
        [sys.executable, "-c", blocker + code.group(1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["a b c ->  d é", "(3, 5)"]


def test_every_captured_array_is_documented() -> None:
    from neuroscope_tui.capture.run import GenerationOptions, run
    from neuroscope_tui.trace import CaptureSpec
    from tiny_models import tiny_bundle

    bundle = tiny_bundle("llama")
    spec = CaptureSpec(full_layers=None, pattern_heads=((1, 2),))
    trace = run(bundle, "the cat sat", spec, GenerationOptions(max_new_tokens=2))
    names = documented_names()
    undocumented = [n for n in trace.arrays if not any(p.match(n) for p in names)]
    assert undocumented == []
    assert len(trace.arrays) > 30  # the capture really produced the full set

"""neuroscope_tui/plugins.py and where plugins show: the example package's view (a key and the
command palette), metric (the scan's cycle, `export`) and analysis (`export --list`, `export`,
the report); broken plugins (an import that raises, a metric that raises when it runs, a name
that takes a built-in's, something that is not a function) are reported once and left out;
`neuroscope-tui plugins` lists all of them and exits 0.

The example (examples/neuroscope-plugin-example) is used as CI installs it (`pip install -e`);
where it is not installed, a dist-info made on the fly from its pyproject.toml stands in.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _fixtures_app import SCAN_FIXTURE, synthetic_trace
from neuroscope_tui import plugins
from neuroscope_tui.analysis.exports import EXPORTS
from neuroscope_tui.analysis.metrics import METRICS, heatmap_table, metric_values, next_metric
from neuroscope_tui.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "neuroscope-plugin-example"
SIZE = (120, 40)
USES_PLUGINS = True  # conftest: this module sees the installed plugins


def _write_dist(where: Path, name: str, groups: dict[str, dict[str, str]]) -> None:
    """A distribution importlib.metadata finds on sys.path: METADATA and entry_points.txt."""
    info = where / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    text = "".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
        for group, eps in groups.items()
    )
    (info / "entry_points.txt").write_text(text)


def _example_installed() -> bool:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("neuroscope-plugin-example")
    except PackageNotFoundError:
        return False
    return True


def _entry_point_tables(pyproject: str) -> dict[str, dict[str, str]]:
    """The [project.entry-points."group"] tables of a pyproject.toml (tomllib is 3.11+)."""
    groups: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in pyproject.splitlines():
        header = re.fullmatch(r'\[project\.entry-points\."([^"]+)"\]', line.strip())
        if header:
            current = groups.setdefault(header.group(1), {})
        elif line.startswith("["):
            current = None
        elif current is not None and "=" in line and not line.lstrip().startswith("#"):
            key, value = (part.strip() for part in line.split("=", 1))
            current[key] = value.strip('"')
    return groups


@pytest.fixture
def example(tmp_path_factory, monkeypatch):
    """The example plugin discoverable (installed, or a stand-in dist-info), a fresh cache."""
    if not _example_installed():
        where = tmp_path_factory.mktemp("example-dist")
        groups = _entry_point_tables((EXAMPLE / "pyproject.toml").read_text())
        _write_dist(where, "neuroscope-plugin-example", groups)
        monkeypatch.syspath_prepend(str(where))
        monkeypatch.syspath_prepend(str(EXAMPLE))
    plugins.reset()
    yield
    plugins.reset()


BROKEN_MODULES = {
    "broken_plugin_import.py": "raise RuntimeError('this plugin cannot start')\n",
    "broken_plugin_late.py": (
        "import numpy as np\n"
        "def explodes(trace):\n"
        "    raise ZeroDivisionError('no tokens to divide by')\n"
        "def wrong_shape(trace):\n"
        "    return np.zeros(3)\n"
        "NOT_A_FUNCTION = 42\n"
        "def shadow(trace):\n"
        "    return None\n"
        "def bad_table(trace):\n"
        "    return 'a string'\n"
    ),
    "broken_plugin_view.py": (
        "from neuroscope_tui.tui.views.base import TraceView\n"
        "class Crashing(TraceView):\n"
        "    name = 'crashing'\n"
        "    title = 'Crashes when drawn'\n"
        "    def render(self):\n"
        "        raise KeyError('resid.nope')\n"
    ),
}
BROKEN_GROUPS = {
    "neuroscope_tui.views": {
        "cannot-import": "broken_plugin_import:View",
        "crashing": "broken_plugin_view:Crashing",
    },
    "neuroscope_tui.metrics": {
        "explodes": "broken_plugin_late:explodes",
        "wrong-shape": "broken_plugin_late:wrong_shape",
        "resid.norm": "broken_plugin_late:shadow",
    },
    "neuroscope_tui.analyses": {
        "not-a-function": "broken_plugin_late:NOT_A_FUNCTION",
        "bad-table": "broken_plugin_late:bad_table",
    },
}


@pytest.fixture
def broken(tmp_path, monkeypatch, example) -> Path:
    """A broken distribution beside the example: one plugin of each way to fail."""
    for name, text in BROKEN_MODULES.items():
        (tmp_path / name).write_text(text)
    _write_dist(tmp_path, "broken-plugin", BROKEN_GROUPS)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset()
    return tmp_path


@pytest.fixture
def snapshot_file(tmp_path) -> Path:
    from neuroscope_tui.snapshot import save_snapshot

    return save_snapshot(synthetic_trace(), tmp_path / "run.nscope")


# ---- the example: its numbers ------------------------------------------------------------------


def test_the_example_metric_is_the_mlp_over_attention_norm(example):
    from neuroscope_plugin_example.metric import mlp_attn_ratio

    trace = synthetic_trace()
    got = mlp_attn_ratio(trace)
    mlp, attn = trace.get("mlp.norm"), trace.get("attn.norm")
    for row in range(len(trace.layers())):
        for t in range(trace.n_tokens):
            assert got[row, t] == pytest.approx(float(mlp[row, t]) / float(attn[row, t]), 1e-6)


def test_the_example_bars_scale_to_the_largest_ratio(example):
    from neuroscope_plugin_example.view import bar_lines

    lines = bar_lines([1.0, 2.0, float("nan")], [0, 1, 2], width=10)
    assert lines[0].count("█") == 5 and lines[1].count("█") == 10
    assert "not recorded" in lines[2]


# ---- discovery and registration ------------------------------------------------------------------


def test_the_example_gives_a_view_a_metric_and_an_analysis(example):
    names = {kind: [p.name for p in plugins.loaded(kind)] for kind in plugins.GROUPS}
    assert "mlp-attn" in names["views"]
    assert "mlp-attn-ratio" in names["metrics"]
    assert "layer-summary" in names["analyses"]
    assert plugins.problems() == []


def test_the_metric_joins_the_scans_cycle_and_the_heatmap_export(example):
    trace = synthetic_trace()
    plugins.register()
    assert "mlp-attn-ratio" in METRICS and METRICS["mlp-attn-ratio"].label.endswith("(plugin)")
    cycle, name = [], next(iter(METRICS))
    for _ in range(len(METRICS)):
        cycle.append(name)
        name = next_metric(name)
    assert "mlp-attn-ratio" in cycle
    want = trace.get("mlp.norm") / trace.get("attn.norm")
    np.testing.assert_allclose(metric_values(trace, "mlp-attn-ratio"), want, rtol=1e-6)
    table = heatmap_table(trace)
    assert "mlp-attn-ratio" in table.columns
    plugins.reset()
    assert "mlp-attn-ratio" not in METRICS and "layer-summary" not in EXPORTS


def test_export_lists_and_writes_the_metric_and_the_analysis(example, snapshot_file, capsys):
    assert main(["export", "--list"]) == 0
    listed = capsys.readouterr().out
    for name in ("mlp-attn-ratio", "layer-summary"):
        line = next(x for x in listed.splitlines() if x.startswith(name))
        assert "(plugin)" in line
    trace = synthetic_trace()
    out = snapshot_file.parent / "ratio.json"
    assert main(["export", str(snapshot_file), "mlp-attn-ratio", "-o", str(out)]) == 0
    records = json.loads(out.read_text())["records"]
    assert len(records) == len(trace.layers()) * trace.n_tokens
    first = records[0]
    ratio = trace.get("mlp.norm")[0, 0] / trace.get("attn.norm")[0, 0]
    assert first["mlp-attn-ratio"] == pytest.approx(float(ratio), rel=1e-6)
    capsys.readouterr()
    assert main(["export", str(snapshot_file), "layer-summary"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))  # token texts hold newlines
    assert rows[0][:4] == ["layer", "resid_norm_mean", "resid_norm_max", "peak_token_index"]
    assert len(rows) == 1 + len(trace.layers())


# ---- broken plugins ----------------------------------------------------------------------------


def test_broken_plugins_are_reported_once_and_left_out(broken):
    plugins.register()  # metrics and analyses (what `export` loads)
    plugins.plugins("views")  # views: the app loads them
    found = {(p.kind, p.name) for p in plugins.problems()}
    assert found == {
        ("views", "cannot-import"),
        ("metrics", "resid.norm"),
        ("analyses", "not-a-function"),
    }
    sentences = {p.name: p.sentence() for p in plugins.problems()}
    assert "broken-plugin" in sentences["cannot-import"]
    assert "failed to import (RuntimeError: this plugin cannot start)" in sentences["cannot-import"]
    assert "built-in metric" in sentences["resid.norm"]
    assert "not a function" in sentences["not-a-function"]
    # the built-in kept its own function; the example still works beside the broken ones
    assert METRICS["resid.norm"].array == "resid.norm"
    assert "mlp-attn-ratio" in METRICS and "layer-summary" in EXPORTS
    assert len(plugins.new_problems()) == 3 and plugins.new_problems() == []


def test_a_metric_that_fails_when_it_runs_is_an_empty_grid_and_one_notice(broken):
    plugins.register()
    heard: list[plugins.PluginProblem] = []
    plugins.set_reporter(heard.append)
    trace = synthetic_trace()
    for _ in range(3):  # the scan redraws: one notice, not one a frame
        for name in ("explodes", "wrong-shape"):
            values = metric_values(trace, name)
            assert values.shape == (len(trace.layers()), trace.n_tokens)
            assert np.isnan(values).all()
    assert [(p.name, p.error) for p in heard] == [
        ("explodes", "failed: ZeroDivisionError: no tokens to divide by"),
        ("wrong-shape", "returned an array of shape (3,), not [layer, token] (6, 11)"),
    ]
    assert not np.isnan(heatmap_table(trace).rows[0][4])  # the other columns still fill


def test_exporting_a_failing_plugin_is_one_sentence(broken, snapshot_file, capsys):
    assert main(["export", str(snapshot_file), "bad-table"]) == 2
    err = capsys.readouterr().err
    assert "returned str, not a Table" in err and "Traceback" not in err
    assert main(["export", str(snapshot_file), "explodes"]) == 2
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_the_report_has_a_section_per_analysis_and_notes_for_failures(broken):
    from _fixtures_report import sample_report
    from neuroscope_tui.report import render
    from neuroscope_tui.report.content import plugin_sections

    trace = synthetic_trace()
    sections = {s.name: s for s in plugin_sections([trace, trace])}
    summary = sections["layer-summary"]
    assert summary.columns[:2] == ["prompt", "layer"] and len(summary.rows) == 12
    assert summary.note == ""
    assert "not a Table" in sections["bad-table"].note and not sections["bad-table"].rows
    assert sections["not-a-function"].note.startswith("skipped: it is not a function")
    md = render(sample_report(), ".md", plugin_sections=list(sections.values()))
    assert "## Plugin analysis: layer-summary" in md and "not a Table" in md
    html = render(sample_report(), ".html", plugin_sections=list(sections.values()))
    assert 'id="plugin-layer-summary"' in html


def test_no_plugins_variable_turns_every_plugin_off(broken, monkeypatch):
    monkeypatch.setenv("NEUROSCOPE_NO_PLUGINS", "1")
    assert plugins.register() == [] and "mlp-attn-ratio" not in METRICS
    from neuroscope_tui.cli.plugins import listing

    assert listing() == "Plugins are turned off (NEUROSCOPE_NO_PLUGINS is set)."
    monkeypatch.setenv("NEUROSCOPE_NO_PLUGINS", "0")
    assert "mlp-attn-ratio" in [p.name for p in plugins.loaded("metrics")]


def test_the_plugins_command_lists_every_plugin_and_exits_0(broken):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), *sys.path) if p)
    done = subprocess.run(
        [sys.executable, "-m", "neuroscope_tui", "plugins"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "views (neuroscope_tui.views)" in out and "analyses (neuroscope_tui.analyses)" in out
    line = next(x for x in out.splitlines() if "mlp-attn-ratio" in x)
    assert "neuroscope-plugin-example" in line and line.rstrip().endswith("ok")
    line = next(x for x in out.splitlines() if "cannot-import" in x)
    assert "broken-plugin 0.1" in line and "broken: it failed to import" in line


# ---- the app -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_view_opens_on_its_key_and_from_the_palette(example):
    from neuroscope_tui.tui.app import NeuroscopeApp
    from neuroscope_tui.tui.plugin_views import PLUGIN_KEYS

    app = NeuroscopeApp(snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE))
    async with app.run_test(size=SIZE) as pilot:
        entry = next(p.entry for p in app.plugin_views if p.entry.name == "mlp-attn")
        assert entry.key in PLUGIN_KEYS
        await pilot.press(entry.key)
        await pilot.pause(0.2)
        assert app.current_view == "mlp-attn"
        drawn = str(app.view.render())
        assert "||MLP|| / ||attention|| at token 0" in drawn and "L5" in drawn
        # the scan's metric key reaches the plugin metric
        await pilot.press("1")
        await pilot.pause(0.2)
        while app.view.metric != "mlp-attn-ratio":
            await pilot.press("m")
        await pilot.pause(0.2)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"balance")
        await pilot.pause(0.5)
        options = [str(o.prompt) for o in app.screen.query_one("CommandList")._options]
        assert options and options[0].startswith("MLP / attention balance (plugin)")
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.current_view == "mlp-attn"
        assert not [n for n in app._notifications if n.severity != "information"]


@pytest.mark.anyio
async def test_the_app_tells_of_broken_plugins_once_and_goes_on(broken):
    from neuroscope_tui.tui.app import NeuroscopeApp

    app = NeuroscopeApp(snapshot=synthetic_trace(), snapshot_path=str(SCAN_FIXTURE))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        warned = [n for n in app._notifications if n.title == "plugins left out"]
        assert len(warned) == 1 and warned[0].severity == "warning"
        assert "cannot-import" in warned[0].message and "resid.norm" in warned[0].message
        # a metric that raises: the scan shows empty cells and one notice, and keeps drawing
        while app.view.metric != "explodes":
            await pilot.press("m")
        await pilot.pause(0.2)
        await pilot.press("m", "m", "m")  # round the cycle again: no second notice
        while app.view.metric != "explodes":
            await pilot.press("m")
        await pilot.pause(0.2)
        # one notice per failing metric (passing wrong-shape on the way told of it too)
        failed = [n.message for n in app._notifications if n.title == "plugin failed"]
        assert len([m for m in failed if "'explodes'" in m]) == 1
        assert "ZeroDivisionError" in failed[0] and len(failed) <= 2
        assert app.current_view == "scan" and app.is_running
        # a view that raises while it draws says so in its place, once; the app goes on
        crashing = next(p.entry for p in app.plugin_views if p.entry.name == "crashing")
        await pilot.press(crashing.key)
        await pilot.pause(0.3)
        assert app.current_view == "crashing" and app.is_running
        assert "failed: KeyError: 'resid.nope'" in str(app.view.render())
        await pilot.press("1", crashing.key)
        await pilot.pause(0.3)
        failed = [n.message for n in app._notifications if n.title == "plugin failed"]
        assert len([m for m in failed if "'crashing'" in m]) == 1
        assert app.current_view == "crashing" and app.is_running


def test_plugin_keys_are_bound_nowhere_else():
    from neuroscope_tui.tui.plugin_views import PLUGIN_KEYS

    sources = (ROOT / "neuroscope_tui" / "tui").rglob("*.py")
    text = "".join(p.read_text() for p in sources if p.name != "plugin_views.py")
    bound = {k.strip() for b in re.findall(r'Binding\(\s*"([^"]+)"', text) for k in b.split(",")}
    assert bound and not bound & set(PLUGIN_KEYS)


def test_past_the_ninth_plugin_view_the_palette_opens_it(example):
    from neuroscope_tui.tui.help import key_rows
    from neuroscope_tui.tui.plugin_views import PALETTE_ONLY, PLUGIN_KEYS, plugin_views

    first = plugin_views(set())[0]
    assert first.entry.key == PLUGIN_KEYS[0] and first.keyed
    late = plugin_views(set(PLUGIN_KEYS))[0]  # every safe key taken
    assert late.entry.key == PALETTE_ONLY and not late.keyed
    assert key_rows([late.binding()]) == [("palette", "MLP / attention balance (plugin)")]

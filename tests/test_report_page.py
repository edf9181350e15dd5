"""The shareable page (`neuroscope-tui export FILE html -o run.html`): valid HTML5, no URL and
no script, hostile token text escaped, every number the one the trace holds, long runs binned
by their maximum, missing parts said in their place, and no console error in a real browser."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from _fixtures_report import NS, parse
from neuroscope_tui.analysis.heads import SCORES, head_scores
from neuroscope_tui.analysis.lens import token_text
from neuroscope_tui.analysis.metrics import METRICS, metric_values
from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.cli import main
from neuroscope_tui.report.page import MAX_COLUMNS, render_page
from neuroscope_tui.report.svg import esc, fmt
from neuroscope_tui.snapshot import load_snapshot, save_snapshot
from neuroscope_tui.trace import ModelInfo, Trace
from tiny_models import tiny_bundle

HOSTILE = "<script>alert(1)</script>\x1b[2J\u202e"


@pytest.fixture(scope="module")
def trace() -> Trace:
    """A real capture of a tiny llama (heads, lens, every heatmap metric), with one token's
    text made hostile, as a tokenizer or a snapshot could make it."""
    got = run(
        tiny_bundle("llama"),
        "the cat sat on the mat",
        options=GenerationOptions(max_new_tokens=4, stop_at_eos=False),
    )
    got.token_text[2] = HOSTILE
    got.model.name = "tiny <b>model</b>"
    return got


@pytest.fixture(scope="module")
def page(trace) -> str:
    return render_page(trace, source="run.nscope")


def test_the_page_is_valid_html5_with_no_url_and_no_script(page) -> None:
    tree = parse(page)
    assert tree.find(".//h:script", NS) is None and tree.find(".//s:script", NS) is None
    for el in tree.iter():
        for name, value in el.attrib.items():
            local = name.split("}")[-1]
            assert not local.startswith("on"), (el.tag, name)
            if local in ("src", "href", "action", "srcset", "data"):
                raise AssertionError(f"{el.tag} refers to {value!r}")
            assert "url(" not in value
    for style in tree.iter("{" + NS["h"] + "}style"):
        assert "url(" not in style.text and "@import" not in style.text
    assert not re.search(r"https?:|//", page.replace("</", ""))


def test_hostile_text_is_escaped_and_made_visible(page) -> None:
    assert "<script>" not in page and "\x1b" not in page and "\u202e" not in page
    assert "<b>model" not in page
    text = "".join(parse(page).itertext())
    assert "<script>alert(1)</script>" in text and "\\x1b[2J" in text


def _cell_titles(page: str, panel: str) -> list[str]:
    tree = parse(page)
    found = tree.find(f".//*[@id='{panel}']")
    assert found is not None, panel
    return [t.text for t in found.iter("{" + NS["s"] + "}title")][1:]  # [0]: the figure's


def test_every_recorded_metric_has_a_tab_and_exact_cell_values(page, trace) -> None:
    tree = parse(page)
    labels = [lab.text for lab in tree.iterfind(".//h:div[@id='metric']/h:label", NS)]
    recorded = [m for name, m in METRICS.items() if np.isfinite(metric_values(trace, name)).any()]
    assert labels == [f"{m.label} ({m.unit})" for m in recorded]
    for i, metric in enumerate(recorded):
        values = metric_values(trace, metric.name)
        titles = _cell_titles(page, f"metric-{i}-panel")
        assert len(titles) == values.size  # one column per token: this run is short
        layer, token = 1, 3
        want = f"L{layer} t{token} {trace.token_text[token]!r}: {fmt(float(values[layer, token]))}"
        assert titles[layer * trace.n_tokens + token] == want


def test_heads_overview_shows_each_score_and_the_types(page, trace) -> None:
    scores = head_scores(trace)
    tree = parse(page)
    labels = [lab.text for lab in tree.iterfind(".//h:div[@id='score']/h:label", NS)]
    assert labels == list(SCORES)
    titles = _cell_titles(page, "score-1-panel")  # "first": the weight on the first token
    value = float(scores.values["first"][1, 2])
    assert any(t.startswith(f"L1.H2 first {fmt(value)}") for t in titles)


def test_the_lens_table_shows_each_layers_top_guess(page, trace) -> None:
    tree = parse(page)
    table = tree.find(".//h:table[@class='lens']", NS)
    rows = table.findall(".//h:tbody/h:tr", NS)
    assert [r.find("h:th", NS).text for r in rows] == [f"L{la}" for la in trace.layers()]
    top = trace.get("lens.top_ids")[1, -1, 0]
    cell = rows[1].findall("h:td", NS)[-1]
    assert cell.get("title").startswith(f"L1 position {trace.n_tokens - 1}: ")
    word = esc(token_text(trace, int(top)))
    assert cell.get("title") == (
        f"L1 position {trace.n_tokens - 1}: {html.unescape(word)} "
        f"p={fmt(float(trace.get('lens.top_probs')[1, -1, 0]))}"
    )


def test_a_long_run_is_binned_by_each_bins_maximum() -> None:
    n = 1000
    rng = np.random.default_rng(0)
    trace = Trace(model=ModelInfo(name="long", n_layers=2), n_prompt=900)
    norms = rng.random((2, n)).astype(np.float32)
    norms[0, 517] = 50.0  # a spike must survive binning
    trace.append(list(range(n)), [f"w{i}" for i in range(n)], {"resid.norm": norms})
    page = render_page(trace)
    titles = _cell_titles(page, "metric-0-panel")
    assert len(titles) == 2 * MAX_COLUMNS
    assert any(": 50" in t and "t5" in t for t in titles[:MAX_COLUMNS])
    first = titles[0]
    match = re.match(r"L0 t0-(\d+): (.*)", first)
    assert match, first
    stop = int(match.group(1)) + 1
    assert match.group(2) == fmt(float(norms[0, :stop].max()))
    assert f"The run's {n} tokens are shown in {MAX_COLUMNS} columns" in page
    # no head scores, no lens: each part says so, the page still stands
    assert "kept no head scores" in page and "has no logit lens" in page


def test_export_writes_the_page_and_refuses_what_it_cannot(trace, tmp_path: Path, capsys) -> None:
    snap = tmp_path / "run.nscope"
    save_snapshot(trace, snap)
    out = tmp_path / "run.html"
    assert main(["export", str(snap), "html", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_page(load_snapshot(snap), source="run.nscope")
    capsys.readouterr()
    assert main(["export", str(snap), "html"]) == 2  # a page needs a file
    assert main(["export", str(snap), "html", "-o", str(tmp_path / "run.csv")]) == 2
    assert main(["export", str(snap), "html", "-o", str(out)]) == 2  # exists: --force
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("neuroscope-tui: ") for line in err)
    assert main(["export", "--list"]) == 0
    assert "html" in capsys.readouterr().out


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (CI installs Debian's chromium)")
def test_the_page_opens_in_a_real_browser_without_errors(page, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a test extra")
    path = tmp_path / "run.html"
    path.write_text(page, encoding="utf-8")
    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        view = browser.new_page()
        view.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        view.on("pageerror", lambda e: problems.append(str(e)))
        view.on("request", lambda r: requests.append(r.url))
        view.goto(path.as_uri())
        assert view.locator("#metric-0-panel").is_visible()
        assert not view.locator("#metric-1-panel").is_visible()
        view.click("label[for=metric-1]")  # a tab switch, with no script
        assert view.locator("#metric-1-panel").is_visible()
        assert not view.locator("#metric-0-panel").is_visible()
        assert view.locator("#heads svg rect").count() > 0
        browser.close()
    assert problems == []
    assert requests == [path.as_uri()]  # nothing but the file itself

"""One story about how far to trust an attribution, told alike by `info`, `export` and the
app's attribution view: occlusion has no completeness gap (it is not additive), integrated
gradients shows its gap and, beside it, how far its scores moved when the steps last doubled,
and says when the step budget ran out first (issue 9, items 19 and 25)."""

from __future__ import annotations

import csv
import io

import pytest

from _fixtures_e2e import run_cli
from _fixtures_features import ViewHost, attribution_trace
from neuroscope_tui.snapshot import save_snapshot
from neuroscope_tui.trace import Trace


def stored(converged: bool) -> Trace:
    """The fixture's attribution, with the gap an older capture stored for occlusion (991%,
    as the issue found) and integrated gradients' convergence figures."""
    trace = attribution_trace()
    methods = trace.notes["attribution"]["methods"]
    methods["occlusion"]["relative_gap"] = 9.91
    change = 0.014 if converged else 0.092
    methods["integrated_gradients"].update(score_change=change, converged=converged)
    return trace


@pytest.mark.parametrize("converged", [True, False])
def test_info_gives_no_occlusion_gap_and_the_score_change_beside_the_ig_gap(tmp_path, converged):
    snap = save_snapshot(stored(converged), tmp_path / "a.nscope")
    proc = run_cli("info", snap)
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("note       attribution")]
    assert "occlusion" not in line and "991" not in line
    if converged:
        assert "integrated gradients gap 0.5%, moved 1.4% at 64 steps" in line
    else:
        assert "integrated gradients gap 0.5%, not converged: moved 9.2% at 64 steps" in line


def test_export_leaves_occlusions_gap_empty_and_keeps_the_convergence_figures(tmp_path):
    snap = save_snapshot(stored(True), tmp_path / "a.nscope")
    proc = run_cli("export", snap, "attribution")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    occlusion = [r for r in rows if r["method"] == "occlusion"]
    ig = [r for r in rows if r["method"] == "integrated_gradients"]
    assert len(occlusion) == len(ig) == 5
    assert all(r["relative_gap"] == r["score_change"] == r["converged"] == "" for r in occlusion)
    assert {(r["score_change"], r["converged"]) for r in ig} == {("0.014", "true")}
    assert float(ig[0]["relative_gap"]) == pytest.approx(abs(0.79 - 0.786) / 0.786)


@pytest.mark.anyio
@pytest.mark.parametrize("converged", [True, False])
async def test_the_view_shows_the_score_change_beside_the_gap(converged):
    from neuroscope_tui.tui.views.attribution import AttributionView

    view = AttributionView()
    async with ViewHost(view, stored(converged)).run_test(size=(140, 36)) as pilot:
        await pilot.pause()
        lines = str(view.query_one("#attr-gaps").render()).splitlines()
    (occlusion,) = [ln for ln in lines if ln.strip().startswith("occlusion")]
    assert "%" not in occlusion and "not additive" in occlusion
    (ig,) = [ln for ln in lines if "integrated gradients" in ln]
    assert "gap 0.5%" in ig
    if converged:
        assert ig.endswith("gap 0.5% · scores moved 1.4% from 32 to 64 steps")
    else:
        assert ig.endswith("· not converged: scores moved 9.2% from 32 to 64 steps")


def test_a_snapshot_whose_occlusion_has_no_gap_loads(tmp_path):
    """What capture now writes for occlusion (additive: false, no gap) passes the manifest
    check; an additive method without its gap is still refused."""
    from neuroscope_tui.errors import SnapshotError
    from neuroscope_tui.snapshot import load_snapshot

    trace = attribution_trace()
    occlusion = trace.notes["attribution"]["methods"]["occlusion"]
    occlusion.pop("relative_gap", None)
    occlusion.pop("gap", None)
    occlusion["additive"] = False
    loaded = load_snapshot(save_snapshot(trace, tmp_path / "a.nscope"))
    assert loaded.notes["attribution"]["methods"]["occlusion"]["additive"] is False
    trace.notes["attribution"]["methods"]["integrated_gradients"].pop("relative_gap")
    with pytest.raises(SnapshotError, match="relative_gap"):
        load_snapshot(save_snapshot(trace, tmp_path / "b.nscope"))

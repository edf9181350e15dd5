"""A patching sweep's result: how much of the clean answer each patched cell brings back.

Torch-free: `capture/patching.py` computes a PatchSweep in the model worker; the app draws it,
`export` writes its table, and a sweep file (`neuroscope-tui patch -o sweep.nscope`) holds it
as a Trace of the corrupted prompt's tokens with the grid in `extras` and the figures in
`notes["patching"]`, so it is saved, checked and loaded like any snapshot.

recovered[row, t] = (diff_patched - corrupt_diff) / (clean_diff - corrupt_diff), where a diff
is logit(target) - logit(foil) at the last position: 1 where patching cell (row, t) from the
clean run fully restores the clean difference, 0 where it does nothing; NaN where not computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neuroscope_tui.analysis.exports import Table
from neuroscope_tui.trace import ModelInfo, Trace

RECOVERED = "patching.recovered"
LOGIT_DIFF = "patching.logit_diff"


@dataclass
class PatchSweep:
    """One sweep: rows (layers, or layer.head) x positions of the corrupted prompt."""

    site: str  # "resid" (before block l), "heads" (a head's output), "mlp" (the MLP's output)
    tokens: list[str]  # the corrupted prompt's tokens, as text
    rows: list[str]  # "L0".."L29", or "L3.H5"
    recovered: np.ndarray  # [rows, positions] float32, NaN where not computed
    clean_diff: float
    corrupt_diff: float
    target: str
    foil: str
    clean: str
    corrupt: str
    partial: bool = False
    target_id: int = -1
    foil_id: int = -1
    # logit(target) - logit(foil) with the cell patched [rows, positions]
    logit_diff: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    @staticmethod
    def recovery(diff: np.ndarray, clean_diff: float, corrupt_diff: float) -> np.ndarray:
        """The fraction of the clean logit difference that `diff` restores."""
        gap = clean_diff - corrupt_diff
        with np.errstate(divide="ignore", invalid="ignore"):
            return ((np.asarray(diff, np.float64) - corrupt_diff) / gap).astype(np.float32)

    def done(self) -> int:
        """How many cells hold a figure."""
        return int(np.isfinite(self.recovered).sum())

    def note(self) -> dict[str, Any]:
        """The JSON figures (`notes["patching"]` of a sweep file)."""
        return {
            "site": self.site,
            "rows": list(self.rows),
            "clean_diff": float(self.clean_diff),
            "corrupt_diff": float(self.corrupt_diff),
            "target": self.target,
            "foil": self.foil,
            "target_id": int(self.target_id),
            "foil_id": int(self.foil_id),
            "clean": self.clean,
            "corrupt": self.corrupt,
            "partial": bool(self.partial),
        }

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(extras arrays, the note) for a Trace; `from_arrays` reads them back."""
        extras = {RECOVERED: np.asarray(self.recovered, np.float32)}
        if self.logit_diff.size:
            extras[LOGIT_DIFF] = np.asarray(self.logit_diff, np.float32)
        return extras, self.note()

    @classmethod
    def from_arrays(
        cls, extras: dict[str, np.ndarray], note: dict[str, Any], tokens: list[str]
    ) -> PatchSweep:
        return cls(
            site=str(note["site"]),
            tokens=list(tokens),
            rows=[str(r) for r in note["rows"]],
            recovered=np.asarray(extras[RECOVERED], np.float32),
            clean_diff=float(note["clean_diff"]),
            corrupt_diff=float(note["corrupt_diff"]),
            target=str(note["target"]),
            foil=str(note["foil"]),
            clean=str(note["clean"]),
            corrupt=str(note["corrupt"]),
            partial=bool(note.get("partial", False)),
            target_id=int(note.get("target_id", -1)),
            foil_id=int(note.get("foil_id", -1)),
            logit_diff=np.asarray(extras.get(LOGIT_DIFF, np.zeros((0, 0))), np.float32),
        )

    def to_trace(self, model: ModelInfo, token_ids: list[int]) -> Trace:
        """A Trace of the corrupted prompt holding this sweep (a sweep file when saved)."""
        extras, note = self.to_arrays()
        return Trace(
            model=model,
            token_ids=list(token_ids),
            token_text=list(self.tokens),
            n_prompt=len(token_ids),
            extras=extras,
            notes={"patching": note},
            prompt=self.corrupt,
            finished=not self.partial,
            stop_reason="patching sweep",
        )

    @classmethod
    def from_trace(cls, trace: Trace) -> PatchSweep:
        """The sweep a sweep file holds; KeyError when the trace holds none."""
        note = trace.notes.get("patching")
        if not isinstance(note, dict) or RECOVERED not in trace.extras:
            raise KeyError("a patching sweep: write one with `neuroscope-tui patch ... -o FILE`")
        return cls.from_arrays(trace.extras, note, trace.token_text)

    def table(self) -> Table:
        """Long format: one row per cell (row label, layer, head, position, token, figures)."""
        out = []
        diff = self.logit_diff if self.logit_diff.size else None
        for r, label in enumerate(self.rows):
            layer, _, head = label[1:].partition(".H")
            for t, token in enumerate(self.tokens):
                out.append(
                    [
                        label,
                        int(layer),
                        int(head) if head else None,
                        t,
                        token,
                        float(self.recovered[r, t]),
                        None if diff is None else float(diff[r, t]),
                    ]
                )
        columns = ["row", "layer", "head", "position", "token", "recovered", "logit_diff"]
        return Table(columns, out)


def patching_table(trace: Trace) -> Table:
    """The export table of a sweep file (`neuroscope-tui export sweep.nscope patching`)."""
    return PatchSweep.from_trace(trace).table()

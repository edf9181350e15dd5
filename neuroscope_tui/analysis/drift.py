"""Drift measures and tables: pure numpy over the summaries and a DriftResult. No torch.

The measures (`linear_cka`, `mean_cosine`, `mean_kl`, `lens_agreement`, `lens_split`) are
what `capture/drift.py` applies to each checkpoint's summaries; the readers (`top_moved_neurons`,
`top_moved_heads`, `changed_head_types`, `drift_rows`) are what the view, `--json` and `export`
show. Axes as in `drift_record.py`: c indexes checkpoints (0 = the first after the base),
m indexes models (0 = the base).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuroscope_tui.analysis.drift_record import HEAD_SCORE_NAMES, DriftResult

# ---- measures ---------------------------------------------------------------------------------


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two representations of the same n samples: x [n, d1], y [n, d2].

    CKA = <Kx, Ky>_F / (||Kx||_F ||Ky||_F) with Kx = Xc Xc^T the Gram matrix of the centred
    rows (the HSIC form of Kornblith et al. 2019; equal to ||Yc^T Xc||^2 / (||Xc^T Xc||
    ||Yc^T Yc||)). The cheaper of the two forms is used: n x n Grams when n < d. Float64,
    centred in float64 because residual streams have large common means. 1 for x = y up to
    an orthogonal transform and isotropic scaling; NaN when either is constant.
    """
    xc = np.asarray(x, dtype=np.float64)
    yc = np.asarray(y, dtype=np.float64)
    if xc.shape[0] != yc.shape[0]:
        raise ValueError(f"CKA needs the same samples: {xc.shape[0]} rows vs {yc.shape[0]}")
    xc = xc - xc.mean(axis=0)
    yc = yc - yc.mean(axis=0)
    if xc.shape[0] <= max(xc.shape[1], yc.shape[1]):
        kx, ky = xc @ xc.T, yc @ yc.T  # [n, n]
        cross = float(np.sum(kx * ky))
        denom = float(np.linalg.norm(kx) * np.linalg.norm(ky))
    else:
        cross = float(np.linalg.norm(yc.T @ xc) ** 2)
        denom = float(np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    if denom <= 0:
        return float("nan")
    return min(1.0, max(0.0, cross / denom))


def mean_cosine(x: np.ndarray, y: np.ndarray) -> float:
    """Mean over rows of cos(x_i, y_i) for x, y [n, d] (a zero row counts as cosine 0,
    or 1 when both rows are zero)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dots = np.sum(a * b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((na > 0) & (nb > 0), dots / (na * nb), np.where(na == nb, 1.0, 0.0))
    return float(np.clip(cos, -1.0, 1.0).mean())


def mean_kl(logp_ref: np.ndarray, logp: np.ndarray) -> float:
    """Mean over positions of KL(ref || other) in nats, from log-probabilities [T, V]."""
    p = np.asarray(logp_ref, dtype=np.float64)
    q = np.asarray(logp, dtype=np.float64)
    kl = np.sum(np.exp(p) * (p - q), axis=-1)
    return float(np.maximum(kl, 0.0).mean())


def lens_agreement(top_ref: np.ndarray, top: np.ndarray) -> np.ndarray:
    """[L] fraction of tokens where two models' logit-lens top-1 [L, T] is the same token."""
    return (np.asarray(top_ref) == np.asarray(top)).mean(axis=1)


def lens_split(agree: np.ndarray) -> int:
    """The first layer from which the agreement stays below one half; -1 when it never does."""
    below = np.asarray(agree) < 0.5
    if not below.size or not below[-1]:
        return -1
    above = np.flatnonzero(~below)
    return int(above[-1] + 1) if above.size else 0


# ---- readers ---------------------------------------------------------------------------------


def _versus(ref: str) -> str:
    if ref not in ("base", "prev"):
        raise ValueError(f"ref must be 'base' or 'prev', not {ref!r}")
    return ref


def _ref_model(c: int, ref: str) -> int:
    """The model index (M axis) checkpoint c is compared with."""
    return 0 if _versus(ref) == "base" else c


def top_moved_neurons(
    result: DriftResult, c: int, layer: int, k: int = 10, ref: str = "base"
) -> list[tuple[int, float]]:
    """The k neurons of `layer` whose mean activation moved most in checkpoint c (against the
    base or the previous model): (neuron, shift), largest |shift| first."""
    means = result.arrays.get("neurons.mean")
    if means is None:
        return []
    shift = means[c + 1, layer].astype(np.float64) - means[_ref_model(c, ref), layer]
    order = np.argsort(-np.abs(shift), kind="stable")[:k]
    return [(int(i), float(shift[i])) for i in order]


def head_shift(result: DriftResult, c: int, ref: str = "base") -> dict[str, np.ndarray]:
    """Per score, [L, H] change of checkpoint c's head score means against the reference."""
    out = {}
    for name in HEAD_SCORE_NAMES:
        arr = result.arrays.get(f"heads.{name}")
        if arr is not None:
            out[name] = arr[c + 1].astype(np.float64) - arr[_ref_model(c, ref)]
    return out


def top_moved_heads(
    result: DriftResult, c: int, layer: int, k: int = 5, ref: str = "base"
) -> list[tuple[int, str, float]]:
    """The k heads of `layer` whose scores moved most: (head, the score that moved most,
    its change), ordered by that change's size."""
    shifts = head_shift(result, c, ref)
    moved = []
    for head in range(result.n_heads):
        best = max(shifts, key=lambda n: abs(shifts[n][layer, head]), default=None)
        if best is not None:
            moved.append((head, best, float(shifts[best][layer, head])))
    moved.sort(key=lambda item: -abs(item[2]))
    return moved[:k]


def changed_head_types(
    result: DriftResult, c: int, ref: str = "base", layer: int | None = None
) -> list[tuple[int, int, str, str]]:
    """Heads whose type letters differ between checkpoint c and the reference:
    (layer, head, before, after), optionally of one layer only."""
    if len(result.head_types) < c + 2:
        return []
    before = result.head_types[_ref_model(c, ref)]
    after = result.head_types[c + 1]
    out = []
    for key in sorted(set(before) | set(after), key=lambda s: tuple(map(int, s.split(".")))):
        lay, head = (int(p) for p in key.split("."))
        if layer is not None and lay != layer:
            continue
        if before.get(key, "") != after.get(key, ""):
            out.append((lay, head, before.get(key, ""), after.get(key, "")))
    return out


def _num(value: Any) -> float | None:
    v = float(value)
    return None if np.isnan(v) else round(v, 6)


def drift_rows(result: DriftResult, k: int = 5) -> dict[str, list[dict[str, Any]]]:
    """The comparison as tables for export and --json: name -> list of JSON-able rows.

    layers: checkpoint x layer (CKA, cosine, weight change vs base and previous, lens
    agreement); modules: checkpoint x weight module; heads: checkpoint x head (score deltas
    vs base, type before/after); neurons: the k most moved neurons per checkpoint x layer;
    prompts: checkpoint x prompt KL; checkpoints: one row each (lens split, mean KL).
    """
    a = result.arrays
    tables: dict[str, list[dict[str, Any]]] = {
        "layers": [],
        "modules": [],
        "heads": [],
        "neurons": [],
        "prompts": [],
        "checkpoints": [],
    }
    layer_measures = [
        ("cka_base", "cka.base"),
        ("cka_prev", "cka.prev"),
        ("cos_base", "cos.base"),
        ("cos_prev", "cos.prev"),
        ("weights_base", "weights.base"),
        ("weights_prev", "weights.prev"),
        ("lens_agree_base", "lens.agree.base"),
    ]
    for c, ckpt in enumerate(result.checkpoints):
        who = {"checkpoint": ckpt.label, "step": ckpt.step}
        for layer in range(result.n_layers):
            row: dict[str, Any] = {**who, "layer": layer}
            for col, name in layer_measures:
                row[col] = _num(a[name][c, layer]) if name in a else None
            tables["layers"].append(row)
        for w, module in enumerate(result.modules):
            row = {**who, "module": module}
            for col, name in (("base", "weights.module.base"), ("prev", "weights.module.prev")):
                row[col] = _num(a[name][c, w]) if name in a else None
            tables["modules"].append(row)
        shifts = head_shift(result, c)
        types_before = result.head_types[0] if result.head_types else {}
        types_after = result.head_types[c + 1] if len(result.head_types) > c + 1 else {}
        for layer in range(result.n_layers):
            for head in range(result.n_heads):
                key = f"{layer}.{head}"
                row = {**who, "layer": layer, "head": head}
                for name, shift in shifts.items():
                    row[f"{name}_delta"] = _num(shift[layer, head])
                row["types_base"] = types_before.get(key, "")
                row["types"] = types_after.get(key, "")
                tables["heads"].append(row)
            for rank, (neuron, shift) in enumerate(top_moved_neurons(result, c, layer, k)):
                tables["neurons"].append(
                    {**who, "layer": layer, "rank": rank, "neuron": neuron, "shift": _num(shift)}
                )
        for p, prompt in enumerate(result.prompts):
            row = {**who, "prompt": p, "text": prompt}
            for col, name in (("kl_base", "kl.base"), ("kl_prev", "kl.prev")):
                row[col] = _num(a[name][c, p]) if name in a else None
            tables["prompts"].append(row)
        summary: dict[str, Any] = {**who, "name": ckpt.name, "kind": ckpt.kind}
        split = a.get("lens.split.base")
        summary["lens_split"] = int(split[c]) if split is not None else None
        for col, name in (("kl_base", "kl.base"), ("kl_prev", "kl.prev")):
            summary[col] = _num(np.nanmean(a[name][c])) if name in a else None
        tables["checkpoints"].append(summary)
    return tables

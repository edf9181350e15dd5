"""Where the attention tap's time goes, for one layer, beside sdpa and a second implementation.

For one SmolLM2-135M-shaped layer (9 query heads, 3 KV heads, head width 64) on random Q, K, V
it times, in CPU milliseconds on one thread:

    sdpa      torch's scaled_dot_product_attention (what a plain forward runs)
    tap       the attention tap's own per-call work (`attention_tap._observe`): the attention
              output from its own probabilities plus the six scores of every head
    chunked   `chunked_scores` below, written independently of the tap: the same output and
              scores in blocks of `--chunk` queries against only the keys a block can see,
              entropy as log z - sum p (s - max), dup/induction from the few matching
              (query, key) pairs. At 2048 tokens it was 5x faster than the tap's first version
              (`attention_probs` + `head_stats` beside sdpa); the tap has since taken the
              same steps and is now as fast.

and checks that all give the same output and scores (max abs difference). Causal masks only.

    python bench/attention_kernels.py [--lengths 512,2048] [--chunk 32]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from neuroscope_tui.capture.attention_scores import attention_probs, head_stats

MASKED = -1e30  # finite, so p * (s - max) is 0, not NaN, where a key is masked


def block_scores(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float,
    ids: torch.Tensor, q_offset: int, with_output: bool,
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:  # fmt: skip
    """Scores name -> [q, H] of queries q_offset.. against keys 0..k (causal), + output."""
    n_heads, n_q, d = query.shape
    n_kv, n_k, _ = key.shape
    group = n_heads // n_kv
    # [KV, group*q, D] @ [KV, D, k] -> [H, q, k]; grouped heads share K without a copy
    q = (query.float() * scaling).reshape(n_kv, group * n_q, d)
    s = torch.bmm(q, key.float().transpose(1, 2)).view(n_heads, n_q, n_k)
    q_pos = torch.arange(n_q) + q_offset
    cols = torch.arange(n_k).view(1, -1)
    s.masked_fill_(cols > q_pos.view(-1, 1), MASKED)
    s.sub_(s.amax(-1, keepdim=True))  # s - max
    p = s.exp()
    z = p.sum(-1, keepdim=True)
    p.div_(z)
    rows = torch.arange(n_q)
    prev = p[:, rows, (q_pos - 1).clamp(min=0)]
    out = {
        "entropy": (z[..., 0].log() - torch.linalg.vecdot(p, s)).T,  # -sum p log p
        "first": p[..., 0].T,
        "self": p[:, rows, q_pos].T,
        "prev": torch.where(q_pos >= 1, prev, torch.zeros_like(prev)).T,
    }
    q_ids = ids[q_pos]
    earlier = cols < q_pos.view(-1, 1)
    after = torch.cat([ids.new_full((1,), -1), ids[: n_k - 1]])  # token before key j
    for name, key_ids in (("dup", ids[:n_k]), ("induction", after)):
        t, j = torch.nonzero((key_ids.view(1, -1) == q_ids.view(-1, 1)) & earlier, as_tuple=True)
        acc = torch.zeros(n_heads, n_q)
        acc.index_add_(1, t, p[:, t, j])
        out[name] = acc.T
    output = None
    if with_output:
        output = torch.bmm(p.view(n_kv, group * n_q, n_k), value.float()).view(n_heads, n_q, d)
    return out, output


def chunked_scores(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scaling: float,
    ids: torch.Tensor, chunk: int = 32, with_output: bool = False,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """The six per-query scores [T, H] of one layer, `chunk` queries at a time."""
    n_q = query.shape[1]
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, n_q, chunk):
        stop = min(n_q, start + chunk)
        # keys after the block's last query are masked for all of it: leave them out
        got, _ = block_scores(
            query[:, start:stop], key[:, :stop], value[:, :stop], scaling, ids[:stop],
            start, with_output,
        )  # fmt: skip
        for name, val in got.items():
            parts.setdefault(name, []).append(val)
    return {name: torch.cat(vals) for name, vals in parts.items()}


def cpu_ms(fn: Callable[[], object], repeat: int = 3) -> float:
    fn()
    t0 = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - t0) / repeat * 1000


class _NoSink:
    """The tap's sink for a benchmark: asks for no patterns, keeps the last scores."""

    stats: dict[str, torch.Tensor] | None = None

    def wants_patterns(self, layer: int) -> list[int]:
        return []

    def attention(self, layer: int, stats: dict, rows: dict) -> None:
        self.stats = stats


def measure(n: int, chunk: int) -> tuple[float, float, float, float, float]:
    """CPU ms of sdpa, the tap and the chunked variant at n tokens; max output and score diffs."""
    from neuroscope_tui.capture.attention_tap import _observe, _Tap, _Workspace

    n_heads, n_kv, d = 9, 3, 64
    scaling = d**-0.5
    q, k, v = torch.randn(n_heads, n, d), torch.randn(n_kv, n, d), torch.randn(n_kv, n, d)
    ids = torch.randint(0, 300, (n,))
    k_all, v_all = k.repeat_interleave(3, 0)[None], v.repeat_interleave(3, 0)[None]
    sink = _NoSink()
    tap = _Tap(0, sink, lambda: ids, _Workspace())

    def run_tap() -> torch.Tensor:  # [1, q, H, D]
        return _observe(tap, q[None], k[None], v[None], None, {"scaling": scaling})

    def run_sdpa() -> torch.Tensor:  # [1, H, q, D]
        return F.scaled_dot_product_attention(q[None], k_all, v_all, is_causal=True)

    ref = head_stats(attention_probs(q, k, None, scaling, None, 0), torch.arange(n), ids)
    out_tap = run_tap()[0].transpose(0, 1)
    got = chunked_scores(q, k, v, scaling, ids, chunk)
    diff_out = float((out_tap - run_sdpa()[0]).abs().max())
    diff = max(
        max(float((ref[name] - got[name]).abs().max()) for name in ref),
        max(float((ref[name] - sink.stats[name]).abs().max()) for name in ref),
    )
    return (
        cpu_ms(run_sdpa),
        cpu_ms(run_tap),
        cpu_ms(lambda: chunked_scores(q, k, v, scaling, ids, chunk, True)),
        diff_out,
        diff,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="512,2048")
    parser.add_argument("--chunk", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print("one layer, 9 heads / 3 KV heads, width 64, CPU ms on 1 thread")
    print(f"{'tokens':>6} {'sdpa':>7} {'tap':>8} {'chunked':>8} {'out diff':>9} {'diff':>8}")
    for n in [int(x) for x in args.lengths.split(",")]:
        sdpa, tap, chunked, diff_out, diff = measure(n, args.chunk)
        print(f"{n:>6} {sdpa:7.1f} {tap:8.1f} {chunked:8.1f} {diff_out:9.1e} {diff:8.1e}")


if __name__ == "__main__":
    main()

"""Time a concept fit on SmolLM2: the forward passes versus the probes.

`python bench/concepts.py [--model smollm2] [--threads N]` fits the shipped English sentiment
set (80 prompts of 6-14 tokens) with the French set as transfer (80 more) and prints wall and
process-CPU seconds for (a) the forward passes (`collect_activations`, one per prompt) and
(b) the probes (`fit_concept`: 30 layers x 5 folds of logistic regression, plus the final
probes and the directions). The issue asks that (a) dominates.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    import torch

    from neuroscope_tui.analysis.concepts import fit_concept
    from neuroscope_tui.capture.concepts import collect_activations
    from neuroscope_tui.concept_sets import read_sets
    from neuroscope_tui.models.loader import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = load_model(args.model, device="cpu", dtype="float32")
    en, fr = read_sets(["example:sentiment_en"]), read_sets(["example:sentiment_fr"])
    labels = en.classes
    w0, c0 = time.perf_counter(), time.process_time()
    x = collect_activations(bundle, en.texts)
    tx = collect_activations(bundle, fr.texts)
    w1, c1 = time.perf_counter(), time.process_time()
    fit = fit_concept(
        x,
        np.array(en.label_ids(labels)),
        transfer_x=tx,
        transfer_y=np.array(fr.label_ids(labels)),
    )
    w2, c2 = time.perf_counter(), time.process_time()
    n = len(en) + len(fr)
    print(f"load average {os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}")
    print(f"forward passes ({n} prompts): wall {w1 - w0:6.1f} s  cpu {c1 - c0:6.1f} s")
    print(f"probes ({x.shape[1]} layers):       wall {w2 - w1:6.1f} s  cpu {c2 - c1:6.1f} s")
    print(
        f"best layer {fit.best_layer}, transfer peak layer {int(np.argmax(fit.transfer_accuracy))}"
    )


if __name__ == "__main__":
    main()

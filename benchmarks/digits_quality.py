"""How often the bundled digits model draws the digit its prompt asks for.

Generates images for every digit from prompts in several wordings through workflows/digits.yaml, and
classifies them with a support-vector classifier trained on scikit-learn's real digits (brought to the
same 32×32 → 8×8 round trip the generated ones take). Prints per-digit and overall accuracy.

    python benchmarks/digits_quality.py                    # 50 images per digit (the reported figure)
    python benchmarks/digits_quality.py --per-digit 10 --steps 10
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dgraph import Graph  # noqa: E402
from dgraph.training.datasets import DIGIT_NAMES, digits_images  # noqa: E402

# Wordings beside the trained ones ("write a 7" style is trained; "a picture of ..." is not).
BENCHMARK_WORDINGS = ("a handwritten {name}", "the number {digit}", "{digit}", "{name}", "a picture of the digit {name}")


def to_features(images: torch.Tensor) -> np.ndarray:
    """32×32 images in [-1, 1] → the 8×8 grid of 0..16 the classifier reads (area average)."""
    small = F.adaptive_avg_pool2d(images.float().clamp(-1, 1), 8)
    return ((small + 1) * 8).flatten(1).numpy()


def train_classifier():
    """An RBF support-vector classifier on every real digit after the same upscale/downscale round trip."""
    from sklearn.svm import SVC

    images, labels = digits_images(32)
    return SVC(gamma=0.001, C=10.0).fit(to_features(images), labels)


def prompts_for(per_digit: int) -> tuple[list[str], list[int]]:
    prompts, labels = [], []
    for digit in range(10):
        for i in range(per_digit):
            prompts.append(BENCHMARK_WORDINGS[i % len(BENCHMARK_WORDINGS)].format(digit=digit, name=DIGIT_NAMES[digit]))
            labels.append(digit)
    return prompts, labels


def generate(prompts: list[str], seed: int = 0, steps: int = 20, guidance_scale: float = 4.0,
             workflow: str | Path = ROOT / "workflows" / "digits.yaml", batch: int = 250) -> torch.Tensor:
    """Images (N, 1, 32, 32) in [-1, 1] for `prompts`, generated in batches through the workflow."""
    graph = Graph.load(str(workflow))
    out = []
    for start in range(0, len(prompts), batch):
        result = graph.execute(["image"], prompt=prompts[start:start + batch], seed=seed + start, steps=steps,
                               guidance_scale=guidance_scale)
        out.append(result["image"].to_range(-1.0, 1.0).tensor.cpu())
    return torch.cat(out)


def accuracy(per_digit: int = 50, seed: int = 0, steps: int = 20, guidance_scale: float = 4.0,
             workflow: str | Path = ROOT / "workflows" / "digits.yaml") -> tuple[np.ndarray, float]:
    """(accuracy of each digit, overall accuracy) over `per_digit` images per digit."""
    classifier = train_classifier()
    prompts, labels = prompts_for(per_digit)
    predicted = classifier.predict(to_features(generate(prompts, seed, steps, guidance_scale, workflow)))
    correct = predicted == np.array(labels)
    per = np.array([correct[np.array(labels) == d].mean() for d in range(10)])
    return per, float(correct.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-digit", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance-scale", type=float, default=4.0)
    parser.add_argument("--workflow", default=str(ROOT / "workflows" / "digits.yaml"))
    args = parser.parse_args()
    started = time.perf_counter()
    per, overall = accuracy(args.per_digit, args.seed, args.steps, args.guidance_scale, args.workflow)
    for digit, value in enumerate(per):
        print(f"digit {digit} ({DIGIT_NAMES[digit]}): {value:.1%}")
    print(f"overall: {overall:.1%} over {10 * args.per_digit} images "
          f"({args.steps} DDIM steps, guidance {args.guidance_scale}, seed {args.seed}) "
          f"in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()

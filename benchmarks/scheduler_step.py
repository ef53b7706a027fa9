"""Per-step overhead of each scheduler, beside diffusers' same scheduler in the same process.

A 1×4×64×64 latent, an identity "model" (the model output is its input), 50 steps per loop; the time
is the whole loop (scale_model_input + step) divided by the number of model calls, best of several
repeats. Prints both times and the ratio dgraph / diffusers (below 1 means dgraph is faster).

    python benchmarks/scheduler_step.py [--steps 50] [--repeats 7] [--threads 1]
"""
from __future__ import annotations

import argparse
import inspect
import time
import warnings

import torch

import dgraph.schedulers as ours


def _loop(stepper, x: torch.Tensor, generator: torch.Generator) -> int:
    # diffusers' deterministic schedulers (PNDM, DEIS, ...) take no generator.
    options = {"generator": generator} if "generator" in inspect.signature(stepper.step).parameters else {}
    calls = 0
    for t in stepper.timesteps:
        model_input = stepper.scale_model_input(x, t)
        x = stepper.step(model_input, t, x, **options).prev_sample
        calls += 1
    return calls


def per_step_seconds(make_steppers, repeats: int) -> list[float]:
    """Best time per model call of each stepper factory, alternating them so load spikes hit both."""
    best = [float("inf")] * len(make_steppers)
    for _ in range(repeats):
        for i, make_stepper in enumerate(make_steppers):
            stepper = make_stepper()
            x = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0))
            generator = torch.Generator().manual_seed(1)
            begin = time.perf_counter()
            calls = _loop(stepper, x * stepper.init_noise_sigma, generator)
            best[i] = min(best[i], (time.perf_counter() - begin) / calls)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 keeps timings stable)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import diffusers  # the reference is a test/benchmark dependency only

    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, {args.threads} thread(s), "
          f"latent 1x4x64x64, {args.steps} steps, best of {args.repeats}")
    print(f"{'scheduler':34s} {'dgraph µs/step':>15s} {'diffusers µs/step':>18s} {'ratio':>7s}")
    for name, cls in ours.SCHEDULERS.items():
        reference_cls = getattr(diffusers, name)

        def make_ours(cls=cls):
            return cls().start(args.steps)

        def make_theirs(reference_cls=reference_cls):
            scheduler = reference_cls()
            scheduler.set_timesteps(args.steps)
            return scheduler

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mine, theirs = per_step_seconds([make_ours, make_theirs], args.repeats)
        print(f"{name:34s} {mine * 1e6:15.1f} {theirs * 1e6:18.1f} {mine / theirs:7.2f}")


if __name__ == "__main__":
    main()

"""Real-time factor of each vocoder: seconds of compute per second of audio (below 1 is faster than real time).

    python benchmarks/vocoder_speed.py                 # 5 s of 22.05 kHz audio on the CPU
    python benchmarks/vocoder_speed.py --device cuda --seconds 10

Each vocoder runs at its default number of steps with the published network size (random weights: the
speed does not depend on their values): FastDiff with its published 4-step schedule, DiffWave with its
6-step fast schedule, HiFi-GAN V1 in one pass, and Griffin-Lim (60 iterations) as the weight-free
reference. The diffusion loops are the papers' samplers written out over the published betas.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from typing import Callable

import torch

from dgraph.audio import FASTDIFF, HIFIGAN, griffin_lim
from dgraph.models import DiffWaveModel, FastDiffModel, HiFiGANGenerator
from dgraph.models.vocoders import DIFFWAVE_FAST_SCHEDULE, DIFFWAVE_TRAINING_BETAS, FASTDIFF_TRAINING_BETAS, fastdiff_schedule


def training_alpha_bars(config: dict) -> torch.Tensor:
    betas = torch.linspace(config["beta_start"], config["beta_end"], config["num_train_timesteps"], dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


def continuous_steps(alpha_bars: torch.Tensor, train_alpha_bars: torch.Tensor) -> list[float]:
    """The fractional training step whose sqrt(ᾱ) equals each inference sqrt(ᾱ) (linear interpolation)."""
    train, steps = train_alpha_bars.sqrt(), []
    for a in alpha_bars.sqrt():
        if a >= train[0]:
            steps.append(0.0)
        elif a <= train[-1]:
            steps.append(float(len(train) - 1))
        else:
            t = int(torch.nonzero(train >= a).max())
            steps.append(t + float((train[t] - a) / (train[t] - train[t + 1])))
    return steps


@torch.inference_mode()
def ddpm_vocode(predict_noise: Callable, betas: list[float], train: dict, shape: tuple[int, ...],
                generator: torch.Generator, device: torch.device, clamp: bool) -> torch.Tensor:
    """Ancestral sampling over a short explicit beta schedule, each step at its matching training step."""
    beta = torch.tensor(betas, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - beta, dim=0)
    steps = continuous_steps(alpha_bar, training_alpha_bars(train))
    x = torch.randn(shape, generator=generator).to(device)
    for n in reversed(range(len(betas))):
        eps = predict_noise(x, torch.tensor([steps[n]], device=device))
        x = (x - float(beta[n] / (1 - alpha_bar[n]).sqrt()) * eps) / float((1 - beta[n]).sqrt())
        if n > 0:
            sigma = float(((1 - alpha_bar[n - 1]) / (1 - alpha_bar[n]) * beta[n]).sqrt())
            x = x + sigma * torch.randn(shape, generator=generator).to(device)
        if clamp:
            x = x.clamp(-1, 1)
    return x


def timed(run: Callable[[], torch.Tensor], device: torch.device, repeats: int) -> float:
    if device.type == "cuda":
        run()  # warm-up: CUDA context, cuDNN autotuning, allocator
    best = math.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the audio to generate")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per vocoder (the best is kept)")
    args = parser.parse_args()
    device = torch.device(args.device)
    sample_rate, hop = 22050, 256
    frames = math.ceil(args.seconds * sample_rate / hop)
    audio_seconds = frames * hop / sample_rate
    generator = torch.Generator().manual_seed(0)
    mel = torch.randn(1, 80, frames, generator=generator).to(device) - 4.0

    fastdiff = FastDiffModel().to(device).eval()
    diffwave = DiffWaveModel().to(device).eval()
    hifigan = HiFiGANGenerator.from_preset("v1").to(device).eval()
    rows = [
        ("FastDiff", 4, fastdiff.num_parameters(), lambda: ddpm_vocode(
            lambda x, t: fastdiff(x, mel, t), fastdiff_schedule(4), FASTDIFF_TRAINING_BETAS, (1, 1, frames * hop),
            generator, device, clamp=False)),
        ("DiffWave", 6, diffwave.num_parameters(), lambda: ddpm_vocode(
            lambda x, t: diffwave(x, t, mel.clamp(0, 1))[:, 0], DIFFWAVE_FAST_SCHEDULE, DIFFWAVE_TRAINING_BETAS,
            (1, frames * hop), generator, device, clamp=True)),
        ("HiFi-GAN V1", 1, hifigan.num_parameters(), lambda: torch.inference_mode()(hifigan)(mel)),
        ("Griffin-Lim", 60, 0, lambda: griffin_lim(mel.clamp(max=0.5), HIFIGAN, n_iter=60, generator=generator)),
    ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    # A shared machine's load slows every row alike; print it so that runs can be compared.
    load = ", load average {:.1f}".format(os.getloadavg()[0]) if hasattr(os, "getloadavg") else ""
    print(f"{audio_seconds:.2f} s of {sample_rate} Hz audio ({frames} mel frames) on {name}{load}, torch {torch.__version__}")
    print(f"{'vocoder':<12} {'steps':>5} {'params':>11} {'seconds':>8} {'RTF':>7} {'x real time':>11}")
    for label, steps, params, run in rows:
        seconds = timed(run, device, args.repeats)
        rtf = seconds / audio_seconds
        print(f"{label:<12} {steps:>5} {params:>11,} {seconds:>8.2f} {rtf:>7.3f} {1 / rtf:>11.1f}")


if __name__ == "__main__":
    main()

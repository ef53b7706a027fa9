"""Real-time factor of each vocoder: seconds of compute per second of audio (below 1 is faster than real time).

    python benchmarks/vocoder_speed.py                 # 5 s of 22.05 kHz audio on the CPU
    python benchmarks/vocoder_speed.py --device cuda --seconds 10
    python benchmarks/vocoder_speed.py --audioldm-only # just AudioLDM from text, dgraph and diffusers

Each vocoder runs at its default number of steps with the published network size (random weights: the
speed does not depend on their values): FastDiff with its published 4-step schedule, DiffWave with its
6-step fast schedule, HiFi-GAN V1 in one pass, and Griffin-Lim (60 iterations) as the weight-free
reference. The diffusion loops are the papers' samplers written out over the published betas.

AudioLDM (text to audio: CLAP text, UNet, VAE and SpeechT5 HiFi-GAN at the sizes of
cvssp/audioldm-s-full-v2, random weights saved by diffusers in a temporary folder) runs end to end at
its defaults (10 DDIM steps, guidance 2.5) through dgraph's graph and through diffusers'
AudioLDMPipeline, one after the other in this process, with their ratio (needs diffusers installed).
"""
from __future__ import annotations

import argparse
import math
import os
import time
from typing import Callable

import torch

from dgraph.audio import HIFIGAN, griffin_lim
from dgraph.models import DiffWaveModel, FastDiffModel, HiFiGANGenerator
from dgraph.sampling import VocoderDenoiser, sample
from dgraph.schedulers import DIFFWAVE_BETAS_6, DIFFWAVE_TRAINING, FASTDIFF_BETAS_4, FASTDIFF_TRAINING, DDPMScheduler


@torch.inference_mode()
def ddpm_vocode(model, mel: torch.Tensor, betas, training: dict, shape: tuple[int, ...], generator: torch.Generator,
                clamp: float | None) -> torch.Tensor:
    """The library's explicit-beta DDPM sampler (what the fastdiff/diffwave workflows run)."""
    run = DDPMScheduler(**training, clip_sample=False).start(device=mel.device, betas=betas)
    noise = torch.randn(shape, generator=generator).to(mel.device)
    return sample(VocoderDenoiser(model, mel), run, noise, generator=generator, clamp=clamp)


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
    parser.add_argument("--audioldm-seconds", type=float, default=5.12, help="length of the AudioLDM clip")
    parser.add_argument("--audioldm-only", action="store_true", help="only the AudioLDM rows")
    parser.add_argument("--skip-audioldm", action="store_true", help="leave out AudioLDM (needs diffusers)")
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
            fastdiff, mel, FASTDIFF_BETAS_4, FASTDIFF_TRAINING, (1, 1, frames * hop), generator, clamp=None)),
        ("DiffWave", 6, diffwave.num_parameters(), lambda: ddpm_vocode(
            diffwave, mel.clamp(0, 1), DIFFWAVE_BETAS_6, DIFFWAVE_TRAINING, (1, 1, frames * hop), generator, clamp=1.0)),
        ("HiFi-GAN V1", 1, hifigan.num_parameters(), lambda: torch.inference_mode()(hifigan)(mel)),
        ("Griffin-Lim", 60, 0, lambda: griffin_lim(mel.clamp(max=0.5), HIFIGAN, n_iter=60, generator=generator)),
    ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    # A shared machine's load slows every row alike; print it so that runs can be compared.
    load = ", load average {:.1f}".format(os.getloadavg()[0]) if hasattr(os, "getloadavg") else ""
    if not args.audioldm_only:
        print(f"{audio_seconds:.2f} s of {sample_rate} Hz audio ({frames} mel frames) on {name}{load}, "
              f"torch {torch.__version__}")
        print(f"{'vocoder':<12} {'steps':>5} {'params':>11} {'seconds':>8} {'RTF':>7} {'x real time':>11}")
        for label, steps, params, run in rows:
            seconds = timed(run, device, args.repeats)
            rtf = seconds / audio_seconds
            print(f"{label:<12} {steps:>5} {params:>11,} {seconds:>8.2f} {rtf:>7.3f} {1 / rtf:>11.1f}")
    if not args.skip_audioldm:
        from audioldm_speed import audioldm_rows

        audioldm_rows(args.audioldm_seconds, device, args.repeats, name + load)


if __name__ == "__main__":
    main()

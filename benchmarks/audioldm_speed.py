"""AudioLDM's real-time factor from text, dgraph's graph against diffusers' AudioLDMPipeline in one process.

    python benchmarks/audioldm_speed.py                    # 5.12 s clip on the CPU
    python benchmarks/vocoder_speed.py --audioldm-only     # the same rows from the vocoder benchmark

The components have the architecture of cvssp/audioldm-s-full-v2 (CLAP's RoBERTa-base text tower with its
512-wide projection, the 4-level UNet, the 8-channel one-channel-in KL VAE, the SpeechT5 HiFi-GAN at
16 kHz) with random weights, saved by diffusers into a temporary folder that both sides load. Speed does
not depend on the weights' values; both runs draw the same latents, so their outputs are also compared.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import torch

# cvssp/audioldm-s-full-v2's component configs (diffusers / transformers keys).
UNET = dict(sample_size=128, in_channels=8, out_channels=8, block_out_channels=(128, 256, 384, 640),
            layers_per_block=2, attention_head_dim=8, cross_attention_dim=(128, 256, 384, 640),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            class_embed_type="simple_projection", projection_class_embeddings_input_dim=512,
            class_embeddings_concat=True)
VAE = dict(in_channels=1, out_channels=1, latent_channels=8, block_out_channels=(128, 256, 512),
           down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
           layers_per_block=2, sample_size=512, scaling_factor=0.9227914214134216)
VOCODER = dict(model_in_dim=64, sampling_rate=16000, upsample_initial_channel=1024, upsample_rates=[5, 4, 2, 2, 2],
               upsample_kernel_sizes=[16, 16, 8, 4, 4], resblock_kernel_sizes=[3, 7, 11],
               resblock_dilation_sizes=[[1, 3, 5]] * 3, normalize_before=False)
SCHEDULER = dict(beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear", clip_sample=False,
                 set_alpha_to_one=False)
PROMPT = "a hammer hitting a wooden surface"


def _tokenizer():
    from transformers import RobertaTokenizer

    # A small byte-level vocabulary in RoBERTa's id layout (the real one is not downloadable here); the text
    # tower still pads every prompt to its 512 positions, as AudioLDM's tokenizer does.
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", *letters,
                                         *(f"Ġ{c}" for c in letters)])}
    return RobertaTokenizer(vocab=vocab, merges=[], model_max_length=512)


def save_pipeline(folder: Path) -> dict[str, int]:
    """A random AudioLDM-S pipeline saved by diffusers; returns each component's parameter count."""
    import diffusers
    from transformers import ClapTextConfig, ClapTextModelWithProjection, SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(0)
    parts = dict(unet=diffusers.UNet2DConditionModel(**UNET), vae=diffusers.AutoencoderKL(**VAE),
                 text_encoder=ClapTextModelWithProjection(ClapTextConfig(projection_dim=512)),
                 vocoder=SpeechT5HifiGan(SpeechT5HifiGanConfig(**VOCODER)))
    pipe = diffusers.AudioLDMPipeline(tokenizer=_tokenizer(), scheduler=diffusers.DDIMScheduler(**SCHEDULER), **parts)
    pipe.save_pretrained(folder, safe_serialization=True)
    return {name: sum(p.numel() for p in model.parameters()) for name, model in parts.items()}


def _timed_pair(first, second, device: torch.device, repeats: int):
    """Best-of-`repeats` seconds of two runs, taken in turns, so a shared machine's changing load falls on both."""
    best, results = [math.inf, math.inf], [None, None]
    for _ in range(repeats):
        for i, run in enumerate((first, second)):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            results[i] = run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[i] = min(best[i], time.perf_counter() - start)
    return best, results


def audioldm_rows(seconds: float, device: torch.device, repeats: int = 1, machine: str = "") -> None:
    """Print AudioLDM's end-to-end RTF through dgraph and diffusers, and their ratio."""
    import diffusers

    from dgraph.graph import Graph
    from dgraph.node import derive_seed

    with tempfile.TemporaryDirectory() as tmp:
        counts = save_pipeline(Path(tmp))
        graph = Graph.from_pretrained(tmp)
        pipe = diffusers.AudioLDMPipeline.from_pretrained(tmp).to(device)
        pipe.set_progress_bar_config(disable=True)

        runs = {"ours": 0, "theirs": 0}

        # A new prompt and seed per run: dgraph's cache would otherwise answer a repeated run (or its text
        # encoding) without computing it. Only the loaded models are reused, as diffusers keeps its own.
        def ours(**short):
            runs["ours"] += 1
            options = {"seconds": seconds, **short}
            return graph.execute(outputs=["audio"], prompt=f"{PROMPT} {runs['ours']}", seed=runs["ours"],
                                 device=str(device), output_dir=tmp, **options).audio.waveform.cpu()

        def theirs():
            runs["theirs"] += 1
            generator = torch.Generator().manual_seed(derive_seed(runs["theirs"], "noise"))
            return torch.from_numpy(pipe(f"{PROMPT} {runs['theirs']}", audio_length_in_s=seconds,
                                         generator=generator).audios)

        ours(steps=1, seconds=0.32)  # loads the weights (later runs reuse them, as diffusers' pipeline object does)
        runs["ours"] = 0
        (graph_seconds, pipe_seconds), (a, b) = _timed_pair(ours, theirs, device, repeats)
    total = sum(counts.values())
    print(f"AudioLDM (cvssp/audioldm-s-full-v2 sizes, {total / 1e6:.0f} M parameters: "
          + ", ".join(f"{k} {v / 1e6:.1f} M" for k, v in counts.items())
          + f"), {seconds:.2f} s at 16 kHz, 10 DDIM steps, guidance 2.5, on {machine or device}")
    print(f"{'pipeline':<22} {'seconds':>8} {'RTF':>7} {'x real time':>11}")
    for label, value in (("AudioLDM dgraph", graph_seconds), ("AudioLDM diffusers", pipe_seconds)):
        print(f"{label:<22} {value:>8.2f} {value / seconds:>7.3f} {seconds / value:>11.3g}")
    print(f"dgraph / diffusers time ratio {graph_seconds / pipe_seconds:.3f}; "
          f"largest output difference {(a - b).abs().max().item():.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.12, help="clip length")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per side, in turns (the best is kept)")
    args = parser.parse_args()
    name = f"CPU, {torch.get_num_threads()} threads" if args.device == "cpu" else args.device
    load = ", load average {:.1f}".format(os.getloadavg()[0]) if hasattr(os, "getloadavg") else ""
    audioldm_rows(args.seconds, torch.device(args.device), args.repeats, name + load)


if __name__ == "__main__":
    main()

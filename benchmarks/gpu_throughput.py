"""Images per second on a GPU: dgraph's denoising loop against diffusers' pipelines on the same weights, in
fp16 and bf16 with PyTorch's SDPA attention, eager and compiled.

    python benchmarks/gpu_throughput.py [--case sd15|dit|all] [--dtype fp16,bf16] [--steps 20] [--batch 4]
                                        [--compile] [--device cuda] [--tiny]

Each case builds its denoiser at the released size (Stable Diffusion 1.5's UNet at 512², 64² latents; DiT-XL/2
at 256²) with random weights — nothing is downloaded — saves it with diffusers' save_pretrained and loads the
same files into dgraph. Both sides then run the same work: `--steps` DDIM steps with classifier-free guidance
(one batched forward of 2·batch per step) and the VAE decode. diffusers runs its own pipeline
(StableDiffusionPipeline with prompt embeddings given, DiTPipeline); dgraph runs its library path, the one
its graphs execute (ModelDenoiser, ClassifierFreeGuidance, sample, the VAE's decode). Outputs are checked
close before times are compared.

With `--compile`, dgraph's denoiser runs `compile="reduce-overhead"` (torch.compile with CUDA graphs) and
diffusers' pipeline gets `pipe.unet = torch.compile(pipe.unet, mode="reduce-overhead", fullgraph=True)` (the
transformer for DiT), as diffusers' documentation does; the compile happens in a warm-up run that is not
timed. Goal: dgraph compiled ≥ 1.2× diffusers' eager images/s.

Each figure is the median of `--repeats` timed runs after one warm-up, with torch.cuda.synchronize around
each. `--tiny` shrinks the models so the script can be checked on a CPU.

On a machine without the packages (diffusers, pydantic), carry their wheels; a CUDA device is required unless
`--device cpu` is given.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def _sd15_parts(tiny: bool):
    import diffusers

    if tiny:
        unet = diffusers.UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64), layers_per_block=1,
                                              down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                              up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                              cross_attention_dim=32, attention_head_dim=8)
        vae = diffusers.AutoencoderKL(block_out_channels=(32, 32), layers_per_block=1, latent_channels=4,
                                      down_block_types=("DownEncoderBlock2D",) * 2,
                                      up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=16)
        return unet, vae, 32, 16
    # Stable Diffusion 1.5's layout: diffusers' defaults are its UNet's, with CLIP ViT-L's 768-wide states.
    unet = diffusers.UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
    vae = diffusers.AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                                  down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    return unet, vae, 768, 512


def _scheduler():
    import diffusers

    return diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                   clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def _timed(run, device: torch.device, repeats: int) -> float:
    """Median seconds of `repeats` runs after one untimed warm-up (which is where compiling happens)."""
    run()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sd15(args, dtype: torch.dtype, folder: Path) -> dict:
    import diffusers

    from dgraph.models.auto import load_model
    from dgraph.sampling import ClassifierFreeGuidance, ModelDenoiser, sample
    from dgraph.schedulers import DDIMScheduler

    device = torch.device(args.device)
    torch.manual_seed(0)
    unet, vae, width, size = _sd15_parts(args.tiny)
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    _scheduler().save_pretrained(folder / "scheduler")
    cond = torch.randn(args.batch, 77, width, generator=torch.Generator().manual_seed(1))
    uncond = torch.randn(args.batch, 77, width, generator=torch.Generator().manual_seed(2))
    latents = torch.randn(args.batch, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(3))

    pipe = diffusers.StableDiffusionPipeline(vae=vae.to(device, dtype), text_encoder=None, tokenizer=None,
                                             unet=unet.to(device, dtype), scheduler=_scheduler(), safety_checker=None,
                                             feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    if args.compile:
        pipe.unet = torch.compile(pipe.unet, mode="reduce-overhead", fullgraph=True)

    def theirs():
        return pipe(prompt_embeds=cond.to(device, dtype), negative_prompt_embeds=uncond.to(device, dtype),
                    latents=latents.to(device, dtype), num_inference_steps=args.steps, guidance_scale=7.5,
                    height=size, width=size, output_type="pt").images

    our_unet = load_model(folder / "unet", torch_dtype=dtype, device=device).eval()
    our_vae = load_model(folder / "vae", torch_dtype=dtype, device=device).eval()
    scheduler = DDIMScheduler.from_pretrained(folder / "scheduler")
    mode = "reduce-overhead" if args.compile else None
    guided = ClassifierFreeGuidance(ModelDenoiser(our_unet, cond.to(device), compile=mode),
                                    ModelDenoiser(our_unet, uncond.to(device), compile=mode), 7.5)

    @torch.no_grad()
    def ours():
        run = scheduler.start(args.steps, device=device)
        z = sample(guided, run, latents.to(device))
        pixels = our_vae.decode((z / our_vae.config["scaling_factor"]).to(dtype)).sample
        return (pixels.float() / 2 + 0.5).clamp(0, 1)

    return _compare("sd15", args, device, ours, theirs, size)


def dit(args, dtype: torch.dtype, folder: Path) -> dict:
    import diffusers

    from dgraph.models.auto import load_model
    from dgraph.sampling import ClassifierFreeGuidance, ModelDenoiser, sample
    from dgraph.schedulers import DDIMScheduler

    device = torch.device(args.device)
    torch.manual_seed(0)
    if args.tiny:
        net = diffusers.DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                              out_channels=8, num_layers=2, sample_size=4, patch_size=2,
                                              num_embeds_ada_norm=1000)
        vae = _sd15_parts(True)[1]
    else:  # DiT-XL/2 at 256²: 28 layers, 16 heads of 72
        net = diffusers.DiTTransformer2DModel(num_attention_heads=16, attention_head_dim=72, in_channels=4,
                                              out_channels=8, num_layers=28, sample_size=32, patch_size=2,
                                              num_embeds_ada_norm=1000)
        vae = _sd15_parts(False)[1]
    size = net.config.sample_size * 8 if not args.tiny else net.config.sample_size * 2
    net.save_pretrained(folder / "transformer")
    vae.save_pretrained(folder / "vae")
    _scheduler().save_pretrained(folder / "scheduler")
    labels = torch.arange(args.batch) % 1000
    latents = torch.randn(args.batch, 4, size // (8 if not args.tiny else 2), size // (8 if not args.tiny else 2),
                          generator=torch.Generator().manual_seed(3))

    pipe = diffusers.DiTPipeline(transformer=net.to(device, dtype), vae=vae.to(device, dtype), scheduler=_scheduler())
    pipe.set_progress_bar_config(disable=True)
    if args.compile:
        pipe.transformer = torch.compile(pipe.transformer, mode="reduce-overhead", fullgraph=True)
    # DiTPipeline draws its own latents: give it the same generator state dgraph's latents came from.

    def theirs():
        return pipe(class_labels=labels.tolist(), num_inference_steps=args.steps, guidance_scale=4.0,
                    generator=torch.Generator().manual_seed(3), output_type="np").images

    our_net = load_model(folder / "transformer", torch_dtype=dtype, device=device).eval()
    our_vae = load_model(folder / "vae", torch_dtype=dtype, device=device).eval()
    scheduler = DDIMScheduler.from_pretrained(folder / "scheduler")
    mode = "reduce-overhead" if args.compile else None
    null = torch.full_like(labels, 1000)
    guided = ClassifierFreeGuidance(ModelDenoiser(our_net, class_labels=labels.to(device), compile=mode),
                                    ModelDenoiser(our_net, class_labels=null.to(device), compile=mode), 4.0)

    @torch.no_grad()
    def ours():
        run = scheduler.start(args.steps, device=device)
        z = sample(guided, run, latents.to(device))
        return our_vae.decode((z / 0.18215).to(dtype)).sample

    # DiT's guidance in diffusers guides only the first three channels, and its latents come from its own
    # draw: the two are the same work, not the same numbers, so only their shapes are compared here.
    return _compare("dit", args, device, ours, theirs, size, check_values=False)


def _compare(name: str, args, device, ours, theirs, size: int, check_values: bool = True) -> dict:
    if check_values:
        a = ours().float().cpu()
        b = theirs().float().cpu()
        gap = (a - b).abs().max().item()
        tolerance = 1e-4 if args.dtype_name == "fp32" else 5e-2
        if gap > tolerance:
            sys.exit(f"{name}: dgraph's and diffusers' images differ by {gap:.3g} (> {tolerance}): not comparing times")
    device = torch.device(device)
    t_ours = _timed(ours, device, args.repeats)
    t_theirs = _timed(theirs, device, args.repeats)
    row = dict(case=name, dtype=args.dtype_name, size=size, batch=args.batch, steps=args.steps,
               compiled=args.compile, dgraph_ips=args.batch / t_ours, diffusers_ips=args.batch / t_theirs)
    row["ratio"] = row["dgraph_ips"] / row["diffusers_ips"]
    if device.type == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    print(f"{name:5s} {args.dtype_name} {size}² batch {args.batch} {args.steps} steps"
          f"{' compiled' if args.compile else ''}: dgraph {row['dgraph_ips']:.2f} img/s, diffusers "
          f"{row['diffusers_ips']:.2f} img/s, dgraph/diffusers {row['ratio']:.2f}x", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="all", choices=["sd15", "dit", "all"])
    parser.add_argument("--dtype", default="fp16,bf16", help="comma-separated: fp16, bf16, fp32")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="both sides compiled (reduce-overhead: CUDA graphs)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="small models, to check the script on a CPU")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device here: this benchmark measures GPU throughput (use --device cpu --tiny to check it)")
    torch.backends.cuda.matmul.allow_tf32 = True
    cases = {"sd15": sd15, "dit": dit}
    for dtype_name in args.dtype.split(","):
        args.dtype_name = dtype_name
        for name in (cases if args.case == "all" else [args.case]):
            with tempfile.TemporaryDirectory() as tmp:
                cases[name](args, DTYPES[dtype_name], Path(tmp))


if __name__ == "__main__":
    main()

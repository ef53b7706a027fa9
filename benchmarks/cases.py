"""Every benchmark case, declared as a pair: A is dgraph, B what it is measured against.

Goals are on the ratio A/B (below 1: dgraph is faster); `absolute` goals are on A's own figures.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .harness import Case, Command, InProcess
from .sides import digits, engine, ldm, models, ray_cluster, schedulers, stable_diffusion, unclip

ROOT = Path(__file__).resolve().parents[1]
DGRAPH = str(Path(sys.executable).parent / "dgraph")
PROMPT = "a handwritten seven"
SHIPPED = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workflows").glob("*.yaml"))


def _engine_pair(stage: str, what: str, goal: float = 1.3, absolute: str = "") -> Case:
    small, large = 1_000, 10_000
    setup = getattr(engine, stage)
    return Case(f"engine.{stage}", f"{what}, per node: {large:,} nodes (A) vs {small:,} (B)",
                InProcess(setup, {"n": large}, per=large, label=f"{large // 1000}k nodes"),
                InProcess(setup, {"n": small}, per=small, label=f"{small // 1000}k nodes"),
                goal=goal, atol=0.0, unit="us", absolute=absolute, rounds=3, warmup=1, repeat=3, clock="cpu")


def _scheduler_pair(name: str) -> Case:
    return Case(f"scheduler.{name}", f"{name}: 50-step loop over an identity model, 1x4x64x64",
                InProcess(schedulers.dgraph_side, {"name": name}, per=schedulers.STEPS, label="dgraph"),
                InProcess(schedulers.diffusers_side, {"name": name}, per=schedulers.STEPS, label="diffusers"),
                goal=1.0, atol=1e-4, unit="us", rounds=3, warmup=2, repeat=5)


CASES: list[Case] = [
    # ---- whole processes ------------------------------------------------------------------------------
    Case("cli.digits_cold", f'README\'s main job, a fresh process: `dgraph run workflows/digits.yaml --prompt "{PROMPT}" '
         f'--seed 1` vs the plain diffusers + transformers script (benchmarks/sides/digits_diffusers.py)',
         Command([DGRAPH, "run", "workflows/digits.yaml", "--prompt", PROMPT, "--seed", "1", "-o", "{out}"],
                 digits.png_pixels, label="dgraph run"),
         Command(["{python}", "benchmarks/sides/digits_diffusers.py", "--prompt", PROMPT, "--seed", "1", "--out", "{out}"],
                 digits.png_pixels, label="diffusers script"),
         goal=0.5, atol=0.0, rounds=3, warmup=1, repeat=1),
    Case("cli.help", "`dgraph --help` vs `python -c pass`",
         Command([DGRAPH, "--help"], label="dgraph --help"), Command(["{python}", "-c", "pass"], label="python -c pass"),
         goal=1.5, atol=None, rounds=5, warmup=1, repeat=3, clock="cpu"),
    Case("cli.validate", f"`dgraph validate` over the {len(SHIPPED)} shipped workflows vs `python -c pass`",
         # Exit 1 where a checkout lacks the vocoders' converted weights (reported as missing-source).
         Command([DGRAPH, "validate", *SHIPPED], label="dgraph validate", exit_codes=(0, 1)),
         Command(["{python}", "-c", "pass"], label="python -c pass"),
         atol=None, rounds=3, warmup=1, repeat=2, absolute="< 0.5 s, < 100 MB"),
    # ---- the engine, per node -------------------------------------------------------------------------
    _engine_pair("validate", "validation"),
    _engine_pair("plan", "planning"),
    _engine_pair("canonical", "canonical form"),
    _engine_pair("first_execute", "first execute (plan, keys, every node runs)", absolute="< 50 µs/node"),
    _engine_pair("warm_execute", "warm execute (every node cached)"),
    # ---- pipelines, warm ------------------------------------------------------------------------------
    Case("pipeline.digits_warm", "digits job, models loaded: new prompt and seed each call (equal work)",
         InProcess(digits.dgraph_side, label="dgraph graph"), InProcess(digits.diffusers_side, label="diffusers script"),
         goal=1.0, atol=0.0, rounds=3, warmup=2, repeat=4),
    Case("pipeline.digits_cached", "digits job, same prompt, new seed: dgraph's cache serves the embeddings "
         "(the script encodes again; not equal work)",
         InProcess(digits.dgraph_side, {"cached": True}, label="dgraph graph, cached"),
         InProcess(digits.diffusers_side, {"cached": True}, label="diffusers script"),
         atol=0.0, rounds=3, warmup=2, repeat=4),
    Case("pipeline.ldm_warm", f"LDM text-to-image {ldm.SIZE}px, {ldm.STEPS} DDIM steps, guidance: dgraph graph vs "
         "LDMTextToImagePipeline (equal work)",
         InProcess(ldm.dgraph_side, label="dgraph graph"), InProcess(ldm.diffusers_side, label="diffusers pipeline"),
         goal=1.0, atol=1e-4, rounds=3, warmup=1, repeat=3, prepare=ldm.prepare),
    Case("pipeline.ldm_vs_loop", "the same LDM job: dgraph graph vs a hand-written loop over dgraph's modules",
         InProcess(ldm.dgraph_side, label="dgraph graph"), InProcess(ldm.loop_side, label="hand-written loop"),
         goal=1.05, atol=1e-5, rounds=3, warmup=1, repeat=3, prepare=ldm.prepare),
    Case("pipeline.unclip_warm", f"unCLIP (Karlo's layout, random weights): prior {unclip.STEPS['prior']} + decoder "
         f"{unclip.STEPS['decoder']} (32 px) + super-resolution {unclip.STEPS['super_res']} steps (64 px), guided: "
         "dgraph graph vs UnCLIPPipeline (equal work)",
         InProcess(unclip.dgraph_side, label="dgraph graph"), InProcess(unclip.diffusers_side, label="diffusers pipeline"),
         goal=1.0, atol=1e-4, rounds=3, warmup=1, repeat=3, prepare=unclip.prepare),
    Case("pipeline.sd_warm", f"Stable Diffusion 1.x-like text-to-image {stable_diffusion.SIZE}px, {stable_diffusion.STEPS} "
         "PNDM steps, guidance: dgraph graph vs StableDiffusionPipeline (equal work; peak RSS in results.json)",
         InProcess(stable_diffusion.dgraph_side, label="dgraph graph"),
         InProcess(stable_diffusion.diffusers_side, label="diffusers pipeline"),
         goal=1.0, atol=1e-4, rounds=3, warmup=1, repeat=3, prepare=stable_diffusion.prepare_sd),
    Case("pipeline.sdxl_warm", f"SDXL-like text-to-image {stable_diffusion.SIZE}px, {stable_diffusion.STEPS} Euler "
         "steps, two text encoders, guidance: dgraph graph vs StableDiffusionXLPipeline (equal work; peak RSS in "
         "results.json)",
         InProcess(stable_diffusion.dgraph_side, label="dgraph graph"),
         InProcess(stable_diffusion.diffusers_side, {"xl": True}, label="diffusers pipeline"),
         goal=1.0, atol=1e-4, rounds=3, warmup=1, repeat=3, prepare=stable_diffusion.prepare_sdxl),
    # ---- models and schedulers ------------------------------------------------------------------------
    Case("model.unet_load_forward", "92 M-parameter conditioned UNet: from_pretrained + first forward",
         InProcess(models.load_and_forward, {"library": "dgraph"}, label="dgraph"),
         InProcess(models.load_and_forward, {"library": "diffusers"}, label="diffusers"),
         goal=1.0, atol=1e-4, rounds=3, warmup=1, repeat=2, prepare=models.prepare),
    Case("model.unet_forward", "the same UNet, warm forward (1x4x32x32, 77x768 context)",
         InProcess(models.forward, {"library": "dgraph"}, label="dgraph"),
         InProcess(models.forward, {"library": "diffusers"}, label="diffusers"),
         goal=1.0, atol=1e-4, rounds=3, warmup=2, repeat=5, prepare=models.prepare),
    *(_scheduler_pair(name) for name in ("DDIMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler",
                                          "UniPCMultistepScheduler")),
    # ---- the Ray executor (a local Ray instance in each side's process) ---------------------------------
    Case("ray.chain", "1,000-node math.add chain, per node: executor ray (every node a Ray task) vs local",
         InProcess(ray_cluster.chain_side, {"executor": "ray"}, per=1_000, label="ray"),
         InProcess(ray_cluster.chain_side, {"executor": "local"}, per=1_000, label="local"),
         atol=0.0, unit="us", rounds=3, warmup=1, repeat=1),
    Case("ray.digits_warm", "digits job, models loaded, new prompt and seed each call: executor ray vs local",
         InProcess(ray_cluster.digits_side, {"executor": "ray"}, label="ray"),
         InProcess(ray_cluster.digits_side, {"executor": "local"}, label="local"),
         atol=0.0, rounds=3, warmup=1, repeat=3),
    Case("ray.batch", "4 digits prompts as items over 2 model workers vs 1 (RayExecutor(workers=N))",
         InProcess(ray_cluster.batch_side, {"workers": 2}, label="2 workers"),
         InProcess(ray_cluster.batch_side, {"workers": 1}, label="1 worker"),
         atol=0.0, rounds=3, warmup=1, repeat=1),
]

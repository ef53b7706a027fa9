"""unCLIP (Karlo's layout) on small random weights saved as a diffusers pipeline folder: dgraph's graph of
that folder against diffusers' UnCLIPPipeline.

Equal work on every side: each call a new prompt and a new seed; diffusers' generator is reseeded around each
`prepare_latents` call so that its draws are those of dgraph's noise and sampling nodes, and the images agree.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .calls import calls

STEPS = dict(prior=10, decoder=10, super_res=4)
# Guidance scales: the prior's default; the decoder's below its default 8, because over random weights each
# step of guidance at 8 amplifies float32 rounding (the order of a batched matmul) until the two sides part
# by 2e-4 after 10 steps (5e-6 at scale 1, 3e-5 at 4: measured on these weights).
PRIOR_SCALE, DECODER_SCALE = 4.0, 4.0
PROMPTS = ["a painting of a red fox", "a red house", "two cats at sea", "an old map"]
WIDTH, CROSS = 64, 64


def _random(model, seed: int, scale: float):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    return model.eval()


def prepare(folder: Path) -> dict:
    import diffusers
    from diffusers.pipelines.deprecated.unclip.text_proj import UnCLIPTextProjModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz"
    tokens = ["<|startoftext|>", "<|endoftext|>", *letters, *(f"{c}</w>" for c in letters)]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=77)
    torch.manual_seed(0)
    text_encoder = _random(CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=len(tokens), hidden_size=WIDTH, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        projection_dim=WIDTH, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1)), 1, 0.02)
    prior = _random(diffusers.PriorTransformer(num_attention_heads=4, attention_head_dim=16, num_layers=4,
                                               embedding_dim=WIDTH, num_embeddings=77, additional_embeddings=4), 2, 0.1)
    decoder = _random(diffusers.UNet2DConditionModel(
        sample_size=32, in_channels=3, out_channels=6, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", norm_num_groups=8, attention_head_dim=16,
        cross_attention_dim=CROSS, class_embed_type="identity", resnet_time_scale_shift="scale_shift"), 3, 0.05)

    def super_res(seed: int):
        return _random(diffusers.UNet2DModel(
            sample_size=64, in_channels=6, out_channels=3, block_out_channels=(32, 64), layers_per_block=1,
            down_block_types=("ResnetDownsampleBlock2D",) * 2, up_block_types=("ResnetUpsampleBlock2D",) * 2,
            norm_num_groups=8, resnet_time_scale_shift="scale_shift"), seed, 0.05)

    pipe = diffusers.UnCLIPPipeline(
        prior=prior, text_encoder=text_encoder, tokenizer=tokenizer,
        text_proj=_random(UnCLIPTextProjModel(clip_extra_context_tokens=4, clip_embeddings_dim=WIDTH,
                                              time_embed_dim=128, cross_attention_dim=CROSS), 4, 0.1),
        decoder=decoder, super_res_first=super_res(5), super_res_last=super_res(6),
        prior_scheduler=diffusers.UnCLIPScheduler(prediction_type="sample", clip_sample_range=5.0),
        decoder_scheduler=diffusers.UnCLIPScheduler(variance_type="learned_range"),
        super_res_scheduler=diffusers.UnCLIPScheduler())
    pipe.save_pretrained(folder / "karlo", safe_serialization=True)
    index_file = folder / "karlo" / "model_index.json"
    index = json.loads(index_file.read_text())
    index["text_proj"] = ["unclip", "UnCLIPTextProjModel"]  # as Karlo's repos name it
    index_file.write_text(json.dumps(index))
    return {"folder": str(folder / "karlo")}


def dgraph_side(folder: str):
    from dgraph.graph import Graph

    graph = Graph.from_pretrained(folder)

    def run(prompt: str, seed: int):
        image = graph.execute(outputs=["image"], prompt=prompt, seed=seed, prior_steps=STEPS["prior"],
                              decoder_steps=STEPS["decoder"], super_res_steps=STEPS["super_res"],
                              prior_guidance_scale=PRIOR_SCALE, decoder_guidance_scale=DECODER_SCALE).image
        return image.to_range(0.0, 1.0).tensor.clamp(0, 1).permute(0, 2, 3, 1)
    return calls(run, PROMPTS)


def diffusers_side(folder: str):
    import diffusers
    import diffusers.pipelines
    import diffusers.pipelines.deprecated.unclip as unclip_module

    from dgraph.node import derive_seed

    diffusers.pipelines.unclip = unclip_module  # the module name Karlo's model_index.json uses, since deprecated
    pipe = diffusers.UnCLIPPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    prepare_latents = pipe.prepare_latents
    generator = torch.Generator()
    draws = {"seed": 0, "stages": []}

    def reseeded(*args, **kwargs):
        stage = draws["stages"].pop(0)
        generator.manual_seed(derive_seed(draws["seed"], f"{stage}_noise"))
        latents = prepare_latents(*args, **kwargs)
        generator.manual_seed(derive_seed(draws["seed"], f"{stage}_sample"))
        return latents

    pipe.prepare_latents = reseeded

    def run(prompt: str, seed: int):
        draws.update(seed=seed, stages=["prior", "decoder", "super_res"])
        images = pipe(prompt, generator=generator, prior_num_inference_steps=STEPS["prior"],
                      decoder_num_inference_steps=STEPS["decoder"], super_res_num_inference_steps=STEPS["super_res"],
                      prior_guidance_scale=PRIOR_SCALE, decoder_guidance_scale=DECODER_SCALE, output_type="np").images
        return torch.from_numpy(images)
    return calls(run, PROMPTS)

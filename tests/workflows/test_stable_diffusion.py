"""Stable Diffusion 1.x/2.x and SDXL text-to-image against diffusers' pipelines, on small random components
saved by diffusers (sd_components.py).

diffusers draws all noise from one generator; dgraph gives each random node its own (graph seed, node
name). The references seed the generator for the initial latents ("noise") and reseed it for the sampler's
own draws ("sample"), so both sides see the same numbers.
"""
from __future__ import annotations

import logging
from pathlib import Path

import diffusers
import pytest
import torch

from dgraph.cli import main
from dgraph.graph import Graph
from dgraph.node import derive_seed
from dgraph.pipelines import export_text

TOLERANCE = 1e-4
WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _reseed_after(owner, method: str, generator: torch.Generator, seed: int) -> None:
    original = getattr(owner, method)

    def wrapped(*args, **kwargs):
        result = original(*args, **kwargs)
        generator.manual_seed(seed)
        return result

    setattr(owner, method, wrapped)


def reference(pipe, seed: int, **call) -> torch.Tensor:
    generator = torch.Generator().manual_seed(derive_seed(seed, "noise"))
    _reseed_after(pipe, "prepare_latents", generator, derive_seed(seed, "sample"))
    return pipe(generator=generator, output_type="pt", **call).images


def pixels(result) -> torch.Tensor:
    return (result.image.tensor / 2 + 0.5).clamp(0, 1)


@pytest.mark.parametrize("guidance_scale, negative", [(1.0, ""), (6.0, ""), (6.0, "blurry")])
def test_sd1_equals_diffusers(sd1, guidance_scale, negative):
    prompts = ["a red fox", "the sea at night"]
    ours = Graph.from_pretrained(sd1).execute(outputs=["image"], prompt=prompts, negative_prompt=negative, seed=3,
                                              steps=5, guidance_scale=guidance_scale)
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(sd1)
    theirs = reference(pipe, 3, prompt=prompts, negative_prompt=[negative] * 2 if negative else None, num_inference_steps=5,
                       guidance_scale=guidance_scale)
    assert theirs.shape == (2, 3, 16, 16)
    assert (pixels(ours) - theirs).abs().max() < TOLERANCE


def test_sd2_v_prediction_with_eta_and_rescale_equals_diffusers(sd2_v):
    ours = Graph.from_pretrained(sd2_v).execute(outputs=["image"], prompt="a photo of a fox", seed=5, steps=4,
                                                guidance_scale=5.0, guidance_rescale=0.7, eta=0.5, height=24,
                                                width=16, images_per_prompt=2)
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(sd2_v)
    theirs = reference(pipe, 5, prompt="a photo of a fox", num_inference_steps=4, guidance_scale=5.0,
                       guidance_rescale=0.7, eta=0.5, height=24, width=16, num_images_per_prompt=2)
    assert theirs.shape == (2, 3, 24, 16)
    assert (pixels(ours) - theirs).abs().max() < TOLERANCE


@pytest.mark.parametrize("clip_skip", [1, 2])
def test_clip_skip_reads_earlier_layers_for_both_branches(sd1, clip_skip):
    """diffusers applies clip_skip to the prompt only; dgraph to the negative prompt too (the unconditional
    branch reads the same layer), so the reference encodes each with diffusers' encode_prompt."""
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(sd1)
    # diffusers reaches the final norm as text_encoder.text_model.final_layer_norm, which transformers 5's
    # CLIPTextModel no longer nests; point the old path at the model itself (outside torch's module registry).
    object.__setattr__(pipe.text_encoder, "text_model", pipe.text_encoder)
    cond, _ = pipe.encode_prompt("a red fox", "cpu", 1, False, clip_skip=clip_skip)
    uncond, _ = pipe.encode_prompt("blurry", "cpu", 1, False, clip_skip=clip_skip)
    theirs = reference(pipe, 2, prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=3)
    ours = Graph.from_pretrained(sd1).execute(outputs=["image"], prompt="a red fox", negative_prompt="blurry",
                                              clip_skip=clip_skip, seed=2, steps=3)
    plain = Graph.from_pretrained(sd1).execute(outputs=["image"], prompt="a red fox", negative_prompt="blurry",
                                               seed=2, steps=3)
    assert (pixels(ours) - theirs).abs().max() < TOLERANCE
    assert (pixels(plain) - theirs).abs().max() > 1e-3  # an earlier layer is another conditioning


def test_long_prompts_are_cut_at_77_tokens_with_a_warning(sd1, caplog):
    long = " ".join(["red fox"] * 40) + " the sea"  # 84 tokens with start and end
    with caplog.at_level(logging.WARNING, logger="dgraph"):
        ours = Graph.from_pretrained(sd1).execute(outputs=["image"], prompt=long, seed=1, steps=2)
    assert "a text of 84 tokens was cut to 77; dropped: 'fox red fox red fox the sea'" in caplog.text
    assert "Token indices" not in caplog.text
    theirs = reference(diffusers.StableDiffusionPipeline.from_pretrained(sd1), 1, prompt=long, num_inference_steps=2)
    assert (pixels(ours) - theirs).abs().max() < TOLERANCE


@pytest.mark.parametrize("negative", ["", "blurry"])
def test_sdxl_equals_diffusers(sdxl, negative):
    """An empty negative prompt gives zeros (force_zeros_for_empty_prompt), as diffusers' None does."""
    prompts = ["a red fox", "the sea at night"]
    ours = Graph.from_pretrained(sdxl).execute(outputs=["image"], prompt=prompts, negative_prompt=negative, seed=4,
                                               steps=4, height=16, width=24)
    pipe = diffusers.StableDiffusionXLPipeline.from_pretrained(sdxl)
    theirs = reference(pipe, 4, prompt=prompts, negative_prompt=[negative] * 2 if negative else None,
                       num_inference_steps=4, height=16,
                       width=24)
    assert theirs.shape == (2, 3, 16, 24)
    assert (pixels(ours) - theirs).abs().max() < TOLERANCE


def test_sdxl_size_and_crop_conditioning_equals_diffusers(sdxl):
    ours = Graph.from_pretrained(sdxl).execute(outputs=["image"], prompt="a photo of a fox", seed=6, steps=3,
                                               height=16, width=16, guidance_scale=3.0, clip_skip=1)
    graph = Graph.from_pretrained(sdxl)
    graph.set("sizes.original_height", 48)
    graph.set("sizes.original_width", 32)
    graph.set("sizes.crop_top", 8)
    cropped = graph.execute(outputs=["image"], prompt="a photo of a fox", seed=6, steps=3, height=16, width=16,
                            guidance_scale=3.0, clip_skip=1)
    pipe = diffusers.StableDiffusionXLPipeline.from_pretrained(sdxl)
    common = dict(prompt="a photo of a fox", num_inference_steps=3, height=16, width=16, guidance_scale=3.0,
                  clip_skip=1)
    assert (pixels(ours) - reference(pipe, 6, **common)).abs().max() < TOLERANCE
    theirs = reference(pipe, 6, original_size=(48, 32), crops_coords_top_left=(8, 0), **common)
    assert (pixels(cropped) - theirs).abs().max() < TOLERANCE
    assert (pixels(cropped) - pixels(ours)).abs().max() > 1e-3


SD_COMPONENTS = {"tokenizer": "tokenizer", "text_encoder": "text_encoder", "unet": "unet", "vae": "vae",
                 "scheduler": "scheduler", "safety_checker": "safety_checker", "feature_extractor": "feature_extractor"}


@pytest.mark.parametrize("name, base", [("sd15.yaml", "hf://stable-diffusion-v1-5/stable-diffusion-v1-5"),
                                        ("sd21.yaml", "hf://stabilityai/stable-diffusion-2-1")])
def test_shipped_workflows_are_what_export_writes(name, base):
    assert (WORKFLOWS / name).read_text() == export_text("StableDiffusionPipeline", base, SD_COMPONENTS)


def test_shipped_sd15_file_runs_on_local_components(sd1, tmp_path):
    graph = Graph.load(WORKFLOWS / "sd15.yaml")
    for node in ("tokenizer", "text_encoder", "unet", "vae"):
        graph.set(f"{node}.source", str(sd1 / node))
    graph.set("scheduler.config", str(sd1 / "scheduler"))
    ours = graph.execute(outputs=["image"], prompt="a red fox", seed=2, steps=3, clip_skip=1)
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(sd1)
    object.__setattr__(pipe.text_encoder, "text_model", pipe.text_encoder)
    cond, uncond = pipe.encode_prompt("a red fox", "cpu", 1, False, clip_skip=1)[0], \
        pipe.encode_prompt("", "cpu", 1, False, clip_skip=1)[0]
    theirs = reference(pipe, 2, prompt_embeds=cond, negative_prompt_embeds=uncond, num_inference_steps=3)
    assert (pixels(ours) - theirs).abs().max() < TOLERANCE


def test_run_and_export_an_sdxl_folder(sdxl, tmp_path):
    out = tmp_path / "sdxl.yaml"
    assert main(["export", str(sdxl), "-o", str(out)]) == 0
    assert Graph.load(out).to_dict() == Graph.from_pretrained(sdxl).to_dict()
    code = main(["run", str(sdxl), "--prompt", "a fox", "--steps", "2", "--height", "16", "--width", "16",
                 "-o", str(tmp_path / "images"), "-q"])
    assert code == 0
    assert (tmp_path / "images" / "sdxl_000.png").is_file()


def test_sdxl_repo_from_the_hub_cache_reads_its_pipeline_settings(sdxl, hub_cache, tmp_path):
    hub_cache.add_folder("stabilityai/tiny-sdxl", sdxl)
    nodes = Graph.from_pretrained("hf://stabilityai/tiny-sdxl").to_dict()["nodes"]
    assert nodes["unet"]["inputs"]["source"] == "hf://stabilityai/tiny-sdxl/unet"
    assert nodes["prompt"]["inputs"]["zero_empty_negative"] is True
    # A pipeline saved with force_zeros_for_empty_prompt false encodes the empty negative prompt instead.
    import json
    import shutil

    copy = shutil.copytree(sdxl, tmp_path / "sdxl-encoded-negative")
    index = json.loads((copy / "model_index.json").read_text())
    (copy / "model_index.json").write_text(json.dumps({**index, "force_zeros_for_empty_prompt": False}))
    ours = Graph.from_pretrained(copy)
    assert ours.to_dict()["nodes"]["prompt"]["inputs"]["zero_empty_negative"] is False
    image = ours.execute(outputs=["image"], prompt="a red fox", seed=1, steps=2, height=16, width=16)
    pipe = diffusers.StableDiffusionXLPipeline.from_pretrained(copy)
    theirs = reference(pipe, 1, prompt="a red fox", num_inference_steps=2, height=16, width=16)
    assert (pixels(image) - theirs).abs().max() < TOLERANCE


def test_sdxl_second_prompts_equal_diffusers(sdxl):
    graph = Graph.from_pretrained(sdxl)
    graph.set("prompt.prompt_2", ["the sea at night"])
    graph.set("prompt.negative_prompt_2", "a photo")
    ours = graph.execute(outputs=["image"], prompt="a red fox", negative_prompt="blurry", seed=3, steps=3,
                         height=16, width=16)
    pipe = diffusers.StableDiffusionXLPipeline.from_pretrained(sdxl)
    theirs = reference(pipe, 3, prompt="a red fox", prompt_2="the sea at night", negative_prompt="blurry",
                       negative_prompt_2="a photo", num_inference_steps=3, height=16, width=16)
    plain = Graph.from_pretrained(sdxl).execute(outputs=["image"], prompt="a red fox", negative_prompt="blurry",
                                                seed=3, steps=3, height=16, width=16)
    assert (pixels(ours) - theirs).abs().max() < TOLERANCE
    assert (pixels(plain) - theirs).abs().max() > 1e-3

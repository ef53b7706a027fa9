"""Stable Diffusion / SDXL image-to-image, inpainting and the SDXL base + refiner hand-over against diffusers'
pipelines, on small random components saved by diffusers (sd_components.py).

Seeds line up as in test_stable_diffusion.py: diffusers draws from one generator; before each of its draws
(the image's and the masked image's posterior samples, the initial noise) the reference seeds it with the
seed of the dgraph node that draws there, and after the last with the sampling loop's.
"""
from __future__ import annotations

import importlib

import diffusers
import pytest
import torch
from PIL import Image as PILImage

import sd_components
from dgraph.graph import Graph
from dgraph.node import derive_seed
from test_stable_diffusion import TOLERANCE, WORKFLOWS, one_thread, pixels  # noqa: F401 (one_thread: autouse)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return sd_components.write_image_and_mask(tmp_path_factory.mktemp("pictures"), 16, 24)


def _draws_in_order(pipe, seed: int, names: list[str]) -> torch.Generator:
    """A generator for `pipe`, seeded before each of the pipeline's own draws (posterior samples through
    retrieve_latents, noise through randn_tensor) with the seed of the next node in `names`, then the loop's."""
    generator = torch.Generator()
    module = importlib.import_module(type(pipe).__module__)
    queue = list(names)

    def seeding(function):
        def wrapped(*args, **kwargs):
            if kwargs.get("generator") is generator or any(a is generator for a in args):
                generator.manual_seed(derive_seed(seed, queue.pop(0)))
                result = function(*args, **kwargs)
                if not queue:
                    generator.manual_seed(derive_seed(seed, "sample"))
                return result
            return function(*args, **kwargs)
        return wrapped

    for name in ("retrieve_latents", "randn_tensor"):
        setattr(module, name, seeding(getattr(module, name)))
    return generator


@pytest.fixture(autouse=True)
def _restore_pipeline_modules():
    """_draws_in_order patches module functions; put them back after each test."""
    modules = [importlib.import_module(f"diffusers.pipelines.{name}") for name in (
        "stable_diffusion.pipeline_stable_diffusion_img2img", "stable_diffusion.pipeline_stable_diffusion_inpaint",
        "stable_diffusion_xl.pipeline_stable_diffusion_xl_img2img",
        "stable_diffusion_xl.pipeline_stable_diffusion_xl_inpaint")]
    saved = [(m, m.retrieve_latents, m.randn_tensor) for m in modules]
    yield
    for module, retrieve, randn in saved:
        module.retrieve_latents, module.randn_tensor = retrieve, randn


def _open(path):
    return PILImage.open(path)


# diffusers repeats one image for two prompts, and warns that it will stop doing so.
@pytest.mark.filterwarnings("ignore:You have passed 2 text prompts:FutureWarning")
def test_sd_img2img_equals_diffusers(sd2_v, files):
    image, _ = files
    prompts = ["a red fox", "the sea at night"]
    ours = Graph.from_pretrained(sd2_v, pipeline_class="StableDiffusionImg2ImgPipeline").execute(
        outputs=["image"], prompt=prompts, image=str(image), strength=0.6, seed=3, steps=5, eta=0.7,
        guidance_scale=5.0)
    pipe = diffusers.StableDiffusionImg2ImgPipeline.from_pretrained(sd2_v)
    generator = _draws_in_order(pipe, 3, ["image_latents", "noise"])
    theirs = pipe(prompt=prompts, image=_open(image), strength=0.6, num_inference_steps=5, eta=0.7,
                  guidance_scale=5.0, generator=generator, output_type="pt").images
    assert theirs.shape == (2, 3, 16, 24)
    assert (pixels(ours) - theirs).abs().max() < TOLERANCE


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_sd_inpainting_unet_equals_diffusers(sd_inpaint, files, strength):
    image, mask = files
    prompts = ["a red fox", "the sea at night"]
    ours = Graph.from_pretrained(sd_inpaint).execute(outputs=["image"], prompt=prompts, image=str(image),
                                                     mask=str(mask), strength=strength, seed=3, steps=4,
                                                     guidance_scale=5.0)
    pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(sd_inpaint)
    # At strength 1 a 9-channel UNet's pipeline starts from noise alone and never encodes the image itself.
    names = (["noise"] if strength == 1 else ["image_latents", "noise"]) + ["masked_latents"]
    generator = _draws_in_order(pipe, 3, names)
    theirs = pipe(prompt=prompts, image=_open(image), mask_image=_open(mask), height=16, width=24, strength=strength,
                  num_inference_steps=4, guidance_scale=5.0, generator=generator, output_type="pt").images
    assert theirs.shape == (2, 3, 16, 24)
    assert (pixels(ours) - theirs).abs().max() < TOLERANCE


@pytest.mark.parametrize("strength", [1.0, 0.7])
def test_sd_inpainting_with_an_ordinary_unet_blends_as_diffusers(sd1, files, strength):
    image, mask = files
    ours = Graph.from_pretrained(sd1, pipeline_class="StableDiffusionInpaintPipeline").execute(
        outputs=["image"], prompt="a red fox", image=str(image), mask=str(mask), strength=strength, seed=5, steps=4)
    pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(sd1)
    generator = _draws_in_order(pipe, 5, ["image_latents", "noise", "masked_latents"])
    theirs = pipe(prompt="a red fox", image=_open(image), mask_image=_open(mask), height=16, width=24,
                  strength=strength, num_inference_steps=4, generator=generator, output_type="pt").images
    assert (pixels(ours) - theirs).abs().max() < TOLERANCE


def test_sdxl_refiner_img2img_with_aesthetic_scores_equals_diffusers(refiner, files):
    image, _ = files
    ours = Graph.from_pretrained(refiner).execute(outputs=["image"], prompt="a photo of a fox", image=str(image),
                                                  strength=0.5, seed=2, steps=6, aesthetic_score=7.0,
                                                  negative_aesthetic_score=2.0)
    pipe = diffusers.StableDiffusionXLImg2ImgPipeline.from_pretrained(refiner)
    generator = _draws_in_order(pipe, 2, ["image_latents", "noise"])
    theirs = pipe(prompt="a photo of a fox", image=_open(image), strength=0.5, num_inference_steps=6,
                  aesthetic_score=7.0, negative_aesthetic_score=2.0, generator=generator, output_type="pt").images
    assert theirs.shape == (1, 3, 16, 24)
    assert (pixels(ours) - theirs).abs().max() < TOLERANCE


@pytest.mark.parametrize("folder, strength", [("sdxl", 0.9999), ("sdxl_inpaint", 0.75)])
def test_sdxl_inpainting_equals_diffusers(folder, strength, files, request):
    """The base's 4-channel UNet is blended; the 9-channel one reads the mask."""
    path = request.getfixturevalue(folder)
    image, mask = files
    graph = Graph.from_pretrained(path, pipeline_class="StableDiffusionXLInpaintPipeline")
    ours = graph.execute(outputs=["image"], prompt="a red fox", negative_prompt="blurry", image=str(image),
                         mask=str(mask), strength=strength, seed=4, steps=5)
    pipe = diffusers.StableDiffusionXLInpaintPipeline.from_pretrained(path)
    generator = _draws_in_order(pipe, 4, ["image_latents", "noise", "masked_latents"])
    theirs = pipe(prompt="a red fox", negative_prompt="blurry", image=_open(image), mask_image=_open(mask),
                  height=16, width=24, strength=strength, num_inference_steps=5, generator=generator,
                  output_type="pt").images
    assert (pixels(ours) - theirs).abs().max() < TOLERANCE


def test_sdxl_base_hands_over_to_the_refiner_as_diffusers(sdxl, refiner):
    graph = Graph.from_pretrained([sdxl, refiner])
    result = graph.execute(outputs=["image", "base_latents"], prompt="a red fox", seed=6, steps=8,
                           high_noise_frac=0.75, height=16, width=24)
    base = diffusers.StableDiffusionXLPipeline.from_pretrained(sdxl)
    generator = torch.Generator().manual_seed(derive_seed(6, "noise"))
    latents = base(prompt="a red fox", num_inference_steps=8, denoising_end=0.75, height=16, width=24,
                   generator=generator, output_type="latent").images
    second = diffusers.StableDiffusionXLImg2ImgPipeline.from_pretrained(refiner, text_encoder_2=base.text_encoder_2,
                                                                         vae=base.vae)
    theirs = second(prompt="a red fox", image=latents, num_inference_steps=8, denoising_start=0.75,
                    output_type="pt").images
    assert (result.base_latents.tensor - latents).abs().max() < TOLERANCE
    assert theirs.shape == (1, 3, 16, 24)
    assert (pixels(result) - theirs).abs().max() < TOLERANCE
    # The base keeps its nodes' names: a seed gives it the noise it has alone.
    alone = Graph.from_pretrained(sdxl).to_dict()["nodes"]
    assert graph.to_dict()["nodes"]["noise"] == alone["noise"]


SD = {name: name for name in ("tokenizer", "text_encoder", "unet", "vae", "scheduler", "safety_checker",
                               "feature_extractor")}
SDXL = {name: name for name in ("tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "unet", "vae",
                                 "scheduler")}
REFINER = {name: name for name in ("tokenizer_2", "text_encoder_2", "unet", "vae", "scheduler")}
SDXL_REPOS = [("StableDiffusionXLPipeline", "hf://stabilityai/stable-diffusion-xl-base-1.0", SDXL),
              ("StableDiffusionXLImg2ImgPipeline", "hf://stabilityai/stable-diffusion-xl-refiner-1.0", REFINER)]


@pytest.mark.parametrize("name, class_name, base, chosen", [
    # SD 1.5's repo names StableDiffusionPipeline: its img2img graph is asked for with --pipeline-class.
    ("sd_img2img.yaml", "StableDiffusionImg2ImgPipeline", "hf://stable-diffusion-v1-5/stable-diffusion-v1-5", True),
    ("sd_inpaint.yaml", "StableDiffusionInpaintPipeline", "hf://stabilityai/stable-diffusion-2-inpainting", False)])
def test_shipped_image_workflows_are_what_export_writes(name, class_name, base, chosen):
    from dgraph.pipelines import export_text

    text = export_text(class_name, base, SD, chosen_class=chosen)
    assert (WORKFLOWS / name).read_text() == text
    assert ("--pipeline-class StableDiffusionImg2ImgPipeline`" in text) == chosen


def test_export_names_the_pipeline_class_it_was_asked_for(sd1, tmp_path):
    from dgraph.cli import main

    out = tmp_path / "img2img.yaml"
    assert main(["export", str(sd1), "--pipeline-class", "StableDiffusionImg2ImgPipeline", "-o", str(out)]) == 0
    assert f"# Written by `dgraph export {sd1} --pipeline-class StableDiffusionImg2ImgPipeline`" in out.read_text()
    assert Graph.load(out).to_dict() == Graph.from_pretrained(
        sd1, pipeline_class="StableDiffusionImg2ImgPipeline").to_dict()


def test_shipped_sdxl_is_the_exported_base_and_refiner():
    from dgraph.pipelines import export_cascade_text

    assert (WORKFLOWS / "sdxl.yaml").read_text() == export_cascade_text(SDXL_REPOS)


def test_shipped_sdxl_runs_on_local_components(sdxl, refiner):
    graph = Graph.load(WORKFLOWS / "sdxl.yaml")
    for node in ("tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "unet", "vae"):
        graph.set(f"{node}.source", str(sdxl / node))
    graph.set("scheduler.config", str(sdxl / "scheduler"))
    graph.set("refiner_unet.source", str(refiner / "unet"))
    graph.set("refiner_scheduler.config", str(refiner / "scheduler"))
    ours = graph.execute(outputs=["image"], prompt="a red fox", seed=6, steps=8, high_noise_frac=0.75, height=16,
                         width=24).image
    expected = Graph.from_pretrained([sdxl, refiner]).execute(outputs=["image"], prompt="a red fox", seed=6, steps=8,
                                                              high_noise_frac=0.75, height=16, width=24).image
    assert torch.equal(ours.tensor, expected.tensor)


def test_shipped_inpainting_runs_on_local_components(sd_inpaint, files):
    image, mask = files
    graph = Graph.load(WORKFLOWS / "sd_inpaint.yaml")
    for node in ("tokenizer", "text_encoder", "unet", "vae"):
        graph.set(f"{node}.source", str(sd_inpaint / node))
    graph.set("scheduler.config", str(sd_inpaint / "scheduler"))
    ours = graph.execute(outputs=["image"], prompt="a red fox", image=str(image), mask=str(mask), seed=1, steps=3)
    expected = Graph.from_pretrained(sd_inpaint).execute(outputs=["image"], prompt="a red fox", image=str(image),
                                                         mask=str(mask), seed=1, steps=3)
    assert torch.equal(ours.image.tensor, expected.image.tensor)


def test_a_unet_of_neither_kind_is_refused_naming_its_channels():
    from dgraph.errors import DgraphError
    from dgraph.models import UNet2DConditionModel
    from dgraph.types import Latent
    from nodes.image_to_image import reads_mask

    unet = UNet2DConditionModel(**{**sd_components.SD1_UNET, "in_channels": 5})
    with pytest.raises(DgraphError) as caught:
        reads_mask(unet, Latent(torch.zeros(1, 4, 8, 8)))
    assert str(caught.value) == ("this UNet reads 5 channels: neither the 4 of the latents (an ordinary UNet) nor the "
                                 "9 of an inpainting UNet (latents, mask, masked latents)")


def test_sdxl_base_and_refiner_are_placed_on_two_devices(sdxl, refiner):
    """`--devices cuda:0,cuda:1`: each UNet with its denoising stage on its own device (placement reads only
    safetensors headers, so no GPU is needed to plan it)."""
    from dgraph.engine.placement import place

    graph = Graph.from_pretrained([sdxl, refiner])
    d = place(graph.resolved, graph.plan(), ["cuda:0:64MiB", "cuda:1:64MiB"], base=graph.base).devices
    assert d["unet"] != d["refiner_unet"]
    assert d["unet"] == d["cond"] == d["guided"] == d["sample"]
    assert d["refiner_unet"] == d["refiner_cond"] == d["refiner_guided"] == d["refiner_sample"]

"""DeepFloyd IF's stages and Stable Diffusion's x4 upscaler as workflows, and cascades joined from them.

DeepFloyd IF is the open form of Imagen (Saharia et al. 2022): T5 text states shared by every stage,
pixel-space UNets with learned variance under classifier-free guidance, and super-resolution stages that
read the previous image noise-augmented. Each builder takes the sources of a pipeline's components
(`parts[name]` -> a source string) and returns a workflow dict, or a stage's (nodes, inputs); only node
type names are used, so the engine still never imports the node catalogue.
"""
from __future__ import annotations

from typing import Any, Protocol

from .errors import ConfigError
from .recipe_nodes import guided_pair


class Parts(Protocol):
    """The sources of a pipeline's components, by component name."""

    def __getitem__(self, name: str) -> str: ...


def _weights(source: str) -> dict[str, str]:
    # The IF repos publish float16 weights as an "fp16" variant beside the float32 ones.
    return {"source": source, "dtype": "$dtype", "variant": "$variant"}


def _if_text(parts: Parts) -> dict[str, Any]:
    return {
        "tokenizer": {"type": "load.tokenizer", "inputs": {"source": parts["tokenizer"]}},
        "text_encoder": {"type": "load.text_encoder", "inputs": _weights(parts["text_encoder"])},
        "prompt": {"type": "text.encode_prompt", "inputs": {
            "tokenizer": "@tokenizer.tokenizer", "text_encoder": "@text_encoder.text_encoder", "prompt": "$prompt",
            "negative_prompt": "$negative_prompt", "max_length": 77, "lowercase": True}},
    }


_PROMPT_INPUTS = {
    "prompt": {"type": "Text", "default": "a corgi wearing a crown", "description": "what to draw (or a list of prompts)"},
    "negative_prompt": {"type": "str", "default": "", "description": "what to steer away from"},
    "images_per_prompt": {"type": "int", "default": 1, "description": "images for each prompt"},
    "dtype": {"type": "str", "default": "float16", "description": "weights precision: float16, bfloat16 or float32"},
    "variant": {"type": "str", "default": "fp16",
                "description": "weights files to read: fp16 (the published half-size files) or '' (float32 files)"},
}


def _guided_loop(p: str, nodes: dict[str, Any], denoiser: dict[str, Any], channels: int | None,
                 prompt: str = "prompt", noise: dict[str, Any] | None = None) -> None:
    """Conditional and unconditional denoisers of one UNet, guided, sampled from fresh noise (a latent.noise
    node unless `noise` is given) into {p}sample."""
    nodes.update(guided_pair(p, denoiser["type"], denoiser["inputs"],
                             {"context": (f"@{prompt}.cond", f"@{prompt}.uncond")}, f"${p}guidance_scale"))
    if noise is None:
        noise = {"type": "latent.noise", "inputs": {"unet": f"@{p}unet.unet", "context": f"@{prompt}.cond",
                                                    "images_per_prompt": "$images_per_prompt"}}
        if channels is not None:
            noise["inputs"]["channels"] = channels
    nodes[f"{p}noise"] = noise
    nodes[f"{p}sample"] = {"type": "sample.loop", "inputs": {
        "denoiser": f"@{p}guided.denoiser", "scheduler": f"@{p}scheduler.scheduler", "latents": f"@{p}noise.latent",
        "steps": f"${p}steps"}}


def _if_stage_i(parts: Parts, p: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    nodes: dict[str, Any] = {
        f"{p}unet": {"type": "load.unet", "inputs": _weights(parts["unet"])},
        f"{p}scheduler": {"type": "scheduler.ddpm", "inputs": {"config": parts["scheduler"]}},
    }
    _guided_loop(p, nodes, {"type": "denoiser.model", "inputs": {"unet": f"@{p}unet.unet"}}, None)
    nodes[f"{p}image"] = {"type": "image.from_latent", "inputs": {"latents": f"@{p}sample.latent"}}
    inputs = {f"{p}steps": {"type": "int", "default": 100, "description": "stage I: DDPM steps"},
              f"{p}guidance_scale": {"type": "float", "default": 7.0,
                                     "description": "stage I: classifier-free guidance scale (1 = off)"}}
    return nodes, inputs


def _if_stage_ii(parts: Parts, p: str = "", low_res: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    nodes: dict[str, Any] = {
        f"{p}unet": {"type": "load.unet", "inputs": _weights(parts["unet"])},
        f"{p}scheduler": {"type": "scheduler.ddpm", "inputs": {"config": parts["scheduler"]}},
        f"{p}noising": {"type": "scheduler.ddpm", "inputs": {"config": parts["image_noising_scheduler"]}},
    }
    inputs: dict[str, Any] = {}
    low_res = _low_res_input(p, nodes, inputs, low_res)
    nodes[f"{p}upscaled"] = {"type": "image.noise_augment", "inputs": {
        "image": low_res, "scheduler": f"@{p}noising.scheduler", "unet": f"@{p}unet.unet",
        "noise_level": f"${p}noise_level"}}
    denoiser = {"type": "denoiser.image_conditioned", "inputs": {
        "unet": f"@{p}unet.unet", "image": f"@{p}upscaled.image", "noise_level": f"${p}noise_level"}}
    _guided_loop(p, nodes, denoiser, 3)  # RGB: the UNet reads 6 channels, the sample and the image
    nodes[f"{p}image"] = {"type": "image.from_latent", "inputs": {"latents": f"@{p}sample.latent"}}
    inputs.update({
        f"{p}steps": {"type": "int", "default": 50, "description": "stage II: DDPM steps"},
        f"{p}guidance_scale": {"type": "float", "default": 4.0,
                               "description": "stage II: classifier-free guidance scale (1 = off)"},
        f"{p}noise_level": {"type": "int", "default": 250,
                            "description": "stage II: how strongly the input image is noised (0-999)"}})
    return nodes, inputs


def _low_res_input(p: str, nodes: dict[str, Any], inputs: dict[str, Any], low_res: str | None) -> str:
    """The reference to a stage's input image: the stage before it, or (a stage on its own) a file."""
    if low_res is not None:
        return low_res
    nodes[f"{p}low_res"] = {"type": "image.load", "inputs": {"path": "$image"}}
    inputs["image"] = {"type": "str", "description": "the image to enlarge (e.g. a previous stage's PNG)"}
    return f"@{p}low_res.image"


def _x4_stage(parts: Parts, p: str = "", low_res: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stable Diffusion's x4 upscaler: CLIP text states, the low-resolution image noised by low_res_scheduler
    and concatenated with the latents at its own size, DDIM, then the VAE decodes at 4x."""
    nodes: dict[str, Any] = {
        f"{p}tokenizer": {"type": "load.tokenizer", "inputs": {"source": parts["tokenizer"]}},
        f"{p}text_encoder": {"type": "load.text_encoder", "inputs": _weights(parts["text_encoder"])},
        f"{p}prompt": {"type": "text.encode_prompt", "inputs": {
            "tokenizer": f"@{p}tokenizer.tokenizer", "text_encoder": f"@{p}text_encoder.text_encoder",
            "prompt": "$prompt", "negative_prompt": "$negative_prompt", "max_length": 77}},
        f"{p}unet": {"type": "load.unet", "inputs": _weights(parts["unet"])},
        f"{p}vae": {"type": "load.vae", "inputs": _weights(parts["vae"])},
        f"{p}scheduler": {"type": "scheduler.ddim", "inputs": {"config": parts["scheduler"]}},
        f"{p}noising": {"type": "scheduler.ddpm", "inputs": {"config": parts["low_res_scheduler"]}},
    }
    inputs: dict[str, Any] = {}
    low_res = _low_res_input(p, nodes, inputs, low_res)
    nodes[f"{p}upscaled"] = {"type": "image.noise_augment", "inputs": {
        "image": low_res, "scheduler": f"@{p}noising.scheduler", "noise_level": f"${p}noise_level", "resize": False}}
    denoiser = {"type": "denoiser.image_conditioned", "inputs": {
        "unet": f"@{p}unet.unet", "image": f"@{p}upscaled.image", "noise_level": f"${p}noise_level"}}
    noise = {"type": "latent.noise_for_image", "inputs": {
        "image": f"@{p}upscaled.image", "vae": f"@{p}vae.vae", "context": f"@{p}prompt.cond",
        "images_per_prompt": "$images_per_prompt"}}
    _guided_loop(p, nodes, denoiser, None, prompt=f"{p}prompt", noise=noise)
    nodes[f"{p}sample"]["inputs"]["eta"] = f"${p}eta"
    nodes[f"{p}image"] = {"type": "vae.decode", "inputs": {"vae": f"@{p}vae.vae", "latents": f"@{p}sample.latent"}}
    inputs.update({
        f"{p}steps": {"type": "int", "default": 75, "description": "x4 upscaler: DDIM steps"},
        f"{p}guidance_scale": {"type": "float", "default": 9.0,
                               "description": "x4 upscaler: classifier-free guidance scale (1 = off)"},
        f"{p}noise_level": {"type": "int", "default": 20,
                            "description": "x4 upscaler: how strongly the input image is noised (0-350)"},
        f"{p}eta": {"type": "float", "default": 0.0, "description": "x4 upscaler: DDIM noise scale (0 = deterministic)"}})
    return nodes, inputs


def _if_graph(name: str, description: str, stages: list[tuple[dict, dict]], prefix: str,
              stage_outputs: dict[str, str] | None = None) -> dict[str, Any]:
    nodes, inputs = {}, {}
    for stage_nodes, stage_inputs in stages:
        nodes.update(stage_nodes)
        inputs.update(stage_inputs)
    nodes["save"] = {"type": "image.save", "inputs": {"image": f"@{prefix}image.image", "prefix": name}}
    outputs = {"image": f"@{prefix}image.image", "files": "@save.paths", **(stage_outputs or {})}
    shared = {key: dict(value) for key, value in _PROMPT_INPUTS.items()}  # callers may change a default
    return {"dgraph": 1, "name": name, "description": description, "inputs": {**shared, **inputs},
            "nodes": nodes, "outputs": outputs}


def if_stage_i(parts: Parts) -> dict[str, Any]:
    stage = _if_stage_i(parts)
    return _if_graph("if_stage_i", "DeepFloyd IF stage I: 64 px images from T5 text states.",
                     [(_if_text(parts), {}), stage], "")


def x4_upscaler(parts: Parts) -> dict[str, Any]:
    stage = _x4_stage(parts)
    graph = _if_graph("x4_upscaler", "Stable Diffusion x4 upscaler: an image (--image) enlarged 4x in latent space.",
                      [stage], "")
    graph["inputs"]["prompt"]["default"] = "a photograph"
    return graph


def if_stage_ii(parts: Parts) -> dict[str, Any]:
    stage = _if_stage_ii(parts)
    return _if_graph("if_stage_ii", "DeepFloyd IF stage II: a 64 px image enlarged 4x, guided by T5 text states.",
                     [(_if_text(parts), {}), stage], "")


# How a later stage of a cascade reads the image of the stage before it.
_LATER_STAGES = {"IFSuperResolutionPipeline": _if_stage_ii, "StableDiffusionUpscalePipeline": _x4_stage}


# What each stage does inside a cascade, for the header of exported cascades.
IN_A_CASCADE = {
    "IFPipeline": "T5 text states -> pixel-space UNet (learned variance, DDPM, classifier-free guidance, dynamic "
                  "thresholding) -> an image at its UNet's sample size (64 px for IF-I).",
    "IFSuperResolutionPipeline": "the previous image resized to its UNet's sample size (256 px for IF-II), noised "
                                 "by its image_noising_scheduler, beside the sample of a text-conditioned "
                                 "pixel-space UNet in a DDPM loop.",
    "StableDiffusionUpscalePipeline": "the previous image noised by its low_res_scheduler beside the latents of a "
                                      "CLIP-text-conditioned UNet (DDIM), decoded 4x larger by its VAE.",
}


def cascade_workflow(stages: list[tuple[str, str, Parts]]) -> dict[str, Any]:
    """One workflow from pipeline stages [(class name, base, parts), ...]: the first stage's text
    encoding feeds every stage, and each later stage enlarges the image of the one before.

    Stage I keeps its nodes' names (so a seed gives the same 64 px image as the stage alone); stage k's
    nodes and inputs are prefixed `stage{k}_` (e.g. --stage2_steps).
    """
    (first, first_base, parts), later = stages[0], stages[1:]
    if first != "IFPipeline":
        raise ConfigError(f"{first_base}: a cascade starts with a text-to-image stage (IFPipeline), not {first}")
    if not later:
        raise ConfigError("a cascade needs at least two stages")
    built = [(_if_text(parts), {}), _if_stage_i(parts)]
    previous, stage_outputs = "", {}
    for k, (class_name, base, stage_parts) in enumerate(later, start=2):
        if class_name not in _LATER_STAGES:
            raise ConfigError(f"{base}: {class_name} cannot follow another stage; later stages can be: "
                              f"{', '.join(sorted(_LATER_STAGES))}")
        stage_outputs[f"stage{k - 1}"] = f"@{previous}image.image"
        prefix = f"stage{k}_"
        built.append(_LATER_STAGES[class_name](stage_parts, prefix, f"@{previous}image.image"))
        previous = prefix
    return _if_graph("imagen", f"Imagen as DeepFloyd IF's cascade: {len(stages)} stages, one T5 text encoding.",
                     built, previous, stage_outputs)

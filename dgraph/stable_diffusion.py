"""Stable Diffusion 1.x/2.x and SDXL pipelines as workflows.

SD 1.x/2.x: CLIP text states (optionally `clip_skip` layers back) -> conditioned UNet (epsilon or v-prediction,
as its scheduler config says) in the pipeline's own sampler with classifier-free guidance -> KL decode.
SDXL: two CLIP encoders joined, the pooled vector and size/crop ids added to the time embedding.

Each builder takes the sources of a pipeline's components (`parts[name]`) and returns a workflow dict; only
node type names are used, so the engine still never imports the node catalogue. The sampler is the one the
pipeline's scheduler_config.json names (`load.scheduler`), as diffusers' pipelines load it.
"""
from __future__ import annotations

from typing import Any, Protocol

from .errors import ConfigError
from .recipe_nodes import guided_pair


class Parts(Protocol):
    """The sources of a pipeline's components by name; `settings` holds model_index.json's other values."""

    def __getitem__(self, name: str) -> str: ...


def _settings(parts: Parts) -> dict[str, Any]:
    return getattr(parts, "settings", None) or {}


def _weights(source: str, dtype: bool = True) -> dict[str, str]:
    # The published repos hold float32 files and an "fp16" variant; --dtype float16 --variant fp16 halves them.
    # The VAE stays in float32 (SDXL's overflows in float16, which is why diffusers upcasts it).
    return {"source": source, "variant": "$variant", **({"dtype": "$dtype"} if dtype else {})}


_COMMON_INPUTS: dict[str, Any] = {
    "prompt": {"type": "Text", "default": "a photo of an astronaut riding a horse on mars",
               "description": "what to draw (or a list of prompts); cut at 77 tokens, with a warning"},
    "negative_prompt": {"type": "str", "default": "", "description": "what to steer away from"},
    "steps": {"type": "int", "default": 50, "description": "inference steps"},
    "guidance_scale": {"type": "float", "default": 7.5, "description": "classifier-free guidance scale (1 = off)"},
    "guidance_rescale": {"type": "float", "default": 0.0,
                         "description": "guidance rescale (0 = off; 0.7 for zero-terminal-SNR models)"},
    "eta": {"type": "float", "default": 0.0, "description": "DDIM's noise scale (0 = deterministic; DDIM only)"},
    "clip_skip": {"type": "int", "default": 0,
                  "description": "take the text states this many CLIP layers earlier (1 = one layer before)"},
    "images_per_prompt": {"type": "int", "default": 1, "description": "images for each prompt"},
    "dtype": {"type": "str", "default": "float32",
              "description": "weights precision of the text encoders and UNet: float32, float16 or bfloat16"},
    "variant": {"type": "str", "default": "",
                "description": "weights files to read: '' (float32 files) or fp16 (the half-size files)"},
}


def _inputs(height: int | None, **defaults: Any) -> dict[str, Any]:
    inputs = {key: dict(value) for key, value in _COMMON_INPUTS.items()}
    size = "default: the UNet's sample size × the VAE's factor" if height is None else f"default {height}"
    inputs["height"] = {"type": "int", "default": height, "description": f"image height in pixels (a multiple of 8; {size})"}
    inputs["width"] = {"type": "int", "default": height, "description": "image width in pixels (default: as height)"}
    for key, value in defaults.items():
        inputs[key]["default"] = value
    return inputs


def _models(parts: Parts, p: str = "") -> dict[str, Any]:
    return {
        f"{p}unet": {"type": "load.unet", "inputs": _weights(parts["unet"])},
        f"{p}vae": {"type": "load.vae", "inputs": _weights(parts["vae"], dtype=False)},
        f"{p}scheduler": {"type": "load.scheduler", "inputs": {"config": parts["scheduler"]}},
    }


def _guided(p: str, prompt: str, added: str | None = None) -> dict[str, Any]:
    """Conditional and unconditional denoisers of {p}unet and their guidance."""
    branches = {"context": (f"@{prompt}.cond", f"@{prompt}.uncond")}
    if added is not None:
        branches["added"] = (f"@{added}.cond", f"@{added}.uncond")
    return guided_pair(p, "denoiser.model", {"unet": f"@{p}unet.unet"}, branches, "$guidance_scale",
                       rescale="$guidance_rescale")


def _text_to_image(p: str, prompt: str) -> dict[str, Any]:
    """Fresh latents at the asked size, the guided loop, and the decode."""
    return {
        f"{p}noise": {"type": "latent.noise", "inputs": {
            "unet": f"@{p}unet.unet", "vae": f"@{p}vae.vae", "context": f"@{prompt}.cond", "height": "$height",
            "width": "$width", "images_per_prompt": "$images_per_prompt"}},
        f"{p}sample": {"type": "sample.loop", "inputs": {
            "denoiser": f"@{p}guided.denoiser", "scheduler": f"@{p}scheduler.scheduler",
            "latents": f"@{p}noise.latent", "steps": "$steps", "eta": "$eta"}},
        f"{p}image": {"type": "vae.decode", "inputs": {"vae": f"@{p}vae.vae", "latents": f"@{p}sample.latent"}},
    }


def _graph(name: str, description: str, inputs: dict[str, Any], nodes: dict[str, Any]) -> dict[str, Any]:
    nodes["save"] = {"type": "image.save", "inputs": {"image": "@image.image", "prefix": name}}
    return {"dgraph": 1, "name": name, "description": description, "inputs": inputs, "nodes": nodes,
            "outputs": {"image": "@image.image", "files": "@save.paths"}}


def sd_text(parts: Parts) -> dict[str, Any]:
    """SD 1.x/2.x text encoding: CLIP's last (or `clip_skip`-th earlier) layer, through its final norm."""
    return {
        "tokenizer": {"type": "load.tokenizer", "inputs": {"source": parts["tokenizer"]}},
        "text_encoder": {"type": "load.text_encoder", "inputs": _weights(parts["text_encoder"])},
        "prompt": {"type": "text.encode_prompt", "inputs": {
            "tokenizer": "@tokenizer.tokenizer", "text_encoder": "@text_encoder.text_encoder", "prompt": "$prompt",
            "negative_prompt": "$negative_prompt", "max_length": 77, "clip_skip": "$clip_skip"}},
    }


def sdxl_text(parts: Parts, p: str = "") -> dict[str, Any]:
    """SDXL's text encoding: both encoders (only the second where the pipeline has no first, as the refiner)."""
    nodes: dict[str, Any] = {
        f"{p}tokenizer_2": {"type": "load.tokenizer", "inputs": {"source": parts["tokenizer_2"]}},
        f"{p}text_encoder_2": {"type": "load.text_encoder", "inputs": _weights(parts["text_encoder_2"])},
    }
    inputs: dict[str, Any] = {"tokenizer_2": f"@{p}tokenizer_2.tokenizer",
                              "text_encoder_2": f"@{p}text_encoder_2.text_encoder"}
    if _has(parts, "text_encoder"):
        nodes[f"{p}tokenizer"] = {"type": "load.tokenizer", "inputs": {"source": parts["tokenizer"]}}
        nodes[f"{p}text_encoder"] = {"type": "load.text_encoder", "inputs": _weights(parts["text_encoder"])}
        inputs.update(tokenizer=f"@{p}tokenizer.tokenizer", text_encoder=f"@{p}text_encoder.text_encoder")
    zeros = bool(_settings(parts).get("force_zeros_for_empty_prompt", True))
    nodes[f"{p}prompt"] = {"type": "text.encode_prompt_sdxl", "inputs": {
        **inputs, "prompt": "$prompt", "negative_prompt": "$negative_prompt", "zero_empty_negative": zeros,
        "clip_skip": "$clip_skip"}}
    return nodes


def _has(parts: Parts, name: str) -> bool:
    try:
        parts[name]
    except ConfigError:  # the pipeline has no such component (the refiner has no first text encoder)
        return False
    return True


_IMAGE_INPUTS = {
    "image": {"type": "str", "description": "the image to start from (its size, a multiple of 8, is the output's)"},
    "strength": {"type": "float", "default": 0.8,
                 "description": "how much of the schedule to run from the image (1 = from pure noise)"},
}
_MASK_INPUT = {"mask": {"type": "str", "description": "the mask, the image's size: white is painted, black kept"}}


def _image_start(p: str, prompt: str, inpainting: bool) -> dict[str, Any]:
    """The image's latents (sampled from the VAE's posterior, as diffusers does), noise the size of them, and
    for inpainting the mask, the masked image's latents and the mask the loop blends with."""
    nodes: dict[str, Any] = {
        f"{p}input_image": {"type": "image.load", "inputs": {"path": "$image"}},
        f"{p}image_latents": {"type": "vae.encode", "inputs": {"vae": f"@{p}vae.vae", "image": f"@{p}input_image.image",
                                                               "sample": True}},
        f"{p}noise": {"type": "latent.noise_like", "inputs": {
            "latents": f"@{p}image_latents.latent", "context": f"@{prompt}.cond",
            "images_per_prompt": "$images_per_prompt"}},
    }
    if inpainting:
        nodes.update({
            f"{p}mask_image": {"type": "image.load", "inputs": {"path": "$mask"}},
            f"{p}mask": {"type": "image.mask", "inputs": {"image": f"@{p}mask_image.image"}},
            f"{p}masked": {"type": "image.masked", "inputs": {"image": f"@{p}input_image.image",
                                                              "mask": f"@{p}mask.image"}},
            f"{p}masked_latents": {"type": "vae.encode", "inputs": {"vae": f"@{p}vae.vae", "image": f"@{p}masked.image",
                                                                    "sample": True}},
            f"{p}blend": {"type": "latent.blend_mask", "inputs": {"unet": f"@{p}unet.unet", "mask": f"@{p}mask.image",
                                                                  "latents": f"@{p}image_latents.latent"}},
        })
    return nodes


def _loop(p: str, start: str) -> dict[str, Any]:
    """The guided loop from fresh noise ("text"), from the image ("image"), or inpainting ("inpaint"); the decode."""
    inputs = {"denoiser": f"@{p}guided.denoiser", "scheduler": f"@{p}scheduler.scheduler",
              "latents": f"@{p}noise.latent", "steps": "$steps", "eta": "$eta"}
    if start != "text":
        inputs.update(image=f"@{p}image_latents.latent", strength="$strength")
    if start == "inpaint":
        inputs["mask"] = f"@{p}blend.mask"
    return {f"{p}sample": {"type": "sample.loop", "inputs": inputs},
            f"{p}image": {"type": "vae.decode", "inputs": {"vae": f"@{p}vae.vae", "latents": f"@{p}sample.latent"}}}


def _inpainting_denoisers(p: str, nodes: dict[str, Any]) -> None:
    """An inpainting UNet's denoisers read the mask and the masked image's latents beside the sample."""
    for branch in ("cond", "uncond"):
        nodes[f"{p}{branch}"]["type"] = "denoiser.inpainting"
        nodes[f"{p}{branch}"]["inputs"].update(mask=f"@{p}mask.image", masked_latents=f"@{p}masked_latents.latent")


def _sizes(p: str, prompt: str, start: str) -> dict[str, Any]:
    inputs = {"network": f"@{p}unet.unet", "cond": f"@{prompt}.cond", "uncond": f"@{prompt}.uncond"}
    if start == "text":
        inputs.update(height="$height", width="$width")
    else:  # the image's own size; a refiner UNet reads the aesthetic scores instead of the target size
        inputs.update(image=f"@{p}input_image.image", aesthetic_score="$aesthetic_score",
                      negative_aesthetic_score="$negative_aesthetic_score")
    return {f"{p}sizes": {"type": "condition.text_time", "inputs": inputs}}


_AESTHETIC_INPUTS = {
    "aesthetic_score": {"type": "float", "default": 6.0,
                        "description": "the refiner's aesthetic score for the prompt (a base UNet reads sizes instead)"},
    "negative_aesthetic_score": {"type": "float", "default": 2.5,
                                 "description": "the refiner's aesthetic score for the negative prompt"},
}


def _build(parts: Parts, xl: bool, start: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(nodes, inputs) of one SD or SDXL pipeline: text, models, conditioning, the loop from `start`."""
    nodes = {**(sdxl_text(parts) if xl else sd_text(parts)), **_models(parts)}
    if start != "text":
        nodes.update(_image_start("", "prompt", start == "inpaint"))
    if xl:
        nodes.update(_sizes("", "prompt", start))
    nodes.update(_guided("", "prompt", added="sizes" if xl else None))
    if start == "inpaint":
        _inpainting_denoisers("", nodes)
    if start == "text":
        nodes.update(_text_to_image("", "prompt"))
    else:
        nodes.update(_loop("", start))
    inputs = _inputs(1024 if xl else None, **({"guidance_scale": 5.0} if xl else {}))
    if start != "text":
        del inputs["height"], inputs["width"]
        inputs = {**{k: dict(v) for k, v in _IMAGE_INPUTS.items()}, **(_MASK_INPUT if start == "inpaint" else {}),
                  **inputs}
    if xl and start != "text":
        inputs.update(_AESTHETIC_INPUTS)
    return nodes, inputs


def sd_text_to_image(parts: Parts) -> dict[str, Any]:
    nodes, inputs = _build(parts, xl=False, start="text")
    return _graph("stable_diffusion", "Text-to-image with Stable Diffusion 1.x/2.x: CLIP text states, a conditioned "
                  "UNet in its pipeline's sampler with classifier-free guidance, the KL VAE.", inputs, nodes)


def sd_image_to_image(parts: Parts) -> dict[str, Any]:
    nodes, inputs = _build(parts, xl=False, start="image")
    return _graph("sd_img2img", "Image-to-image with Stable Diffusion: an image noised part-way (--strength) and "
                  "denoised towards the prompt.", inputs, nodes)


def sd_inpainting(parts: Parts) -> dict[str, Any]:
    nodes, inputs = _build(parts, xl=False, start="inpaint")
    inputs["strength"]["default"] = 1.0
    return _graph("sd_inpaint", "Inpainting with Stable Diffusion: the white area of the mask painted anew from the "
                  "prompt (an inpainting UNet reads the mask and the masked image; an ordinary one is blended).",
                  inputs, nodes)


def sdxl_text_to_image(parts: Parts) -> dict[str, Any]:
    nodes, inputs = _build(parts, xl=True, start="text")
    return _graph("sdxl", "Text-to-image with SDXL: two CLIP text encoders, size and crop conditioning, a "
                  "conditioned UNet in its pipeline's sampler with classifier-free guidance, the KL VAE.",
                  inputs, nodes)


def sdxl_image_to_image(parts: Parts) -> dict[str, Any]:
    nodes, inputs = _build(parts, xl=True, start="image")
    inputs["strength"]["default"] = 0.3
    return _graph("sdxl_img2img", "Image-to-image with SDXL (the refiner, or the base): an image noised part-way "
                  "(--strength) and denoised towards the prompt; a refiner UNet reads the aesthetic scores.",
                  inputs, nodes)


def sdxl_inpainting(parts: Parts) -> dict[str, Any]:
    nodes, inputs = _build(parts, xl=True, start="inpaint")
    inputs["strength"]["default"] = 0.9999
    inputs["guidance_scale"]["default"] = 7.5  # StableDiffusionXLInpaintPipeline's, not the other SDXL pipelines' 5
    return _graph("sdxl_inpaint", "Inpainting with SDXL: the white area of the mask painted anew from the prompt "
                  "(an inpainting UNet reads the mask and the masked image; an ordinary one is blended).",
                  inputs, nodes)


def sdxl_base_and_refiner(base: Parts, refiner: Parts) -> dict[str, Any]:
    """SDXL base and refiner as one graph, "ensemble of experts" style: the base denoises the first
    --high-noise-frac of the schedule and hands its still-noisy latents to the refiner, which finishes them.

    The base's nodes keep the names they have alone (a seed gives the base the same noise either way); the
    refiner's are prefixed `refiner_`. The refiner reads the base's second text encoder and its VAE decodes:
    the published refiner ships the same two models, and diffusers' documented base + refiner shares them.
    """
    nodes, inputs = _build(base, xl=True, start="text")
    nodes["sample"]["inputs"]["denoising_end"] = "$high_noise_frac"
    r = "refiner_"
    zeros = bool(_settings(refiner).get("force_zeros_for_empty_prompt", False))
    nodes.update({
        f"{r}unet": {"type": "load.unet", "inputs": _weights(refiner["unet"])},
        f"{r}scheduler": {"type": "load.scheduler", "inputs": {"config": refiner["scheduler"]}},
        f"{r}prompt": {"type": "text.encode_prompt_sdxl", "inputs": {
            "tokenizer_2": "@tokenizer_2.tokenizer", "text_encoder_2": "@text_encoder_2.text_encoder",
            "prompt": "$prompt", "negative_prompt": "$negative_prompt", "zero_empty_negative": zeros,
            "clip_skip": "$clip_skip"}},
        f"{r}sizes": {"type": "condition.text_time", "inputs": {
            "network": f"@{r}unet.unet", "cond": f"@{r}prompt.cond", "uncond": f"@{r}prompt.uncond",
            "height": "$height", "width": "$width", "aesthetic_score": "$aesthetic_score",
            "negative_aesthetic_score": "$negative_aesthetic_score"}},
    })
    nodes.update(_guided(r, f"{r}prompt", added=f"{r}sizes"))
    nodes[f"{r}sample"] = {"type": "sample.loop", "inputs": {
        "denoiser": f"@{r}guided.denoiser", "scheduler": f"@{r}scheduler.scheduler", "latents": "@sample.latent",
        "steps": "$steps", "eta": "$eta", "denoising_start": "$high_noise_frac"}}
    nodes["image"] = {"type": "vae.decode", "inputs": {"vae": "@vae.vae", "latents": f"@{r}sample.latent"}}
    inputs["high_noise_frac"] = {"type": "float", "default": 0.8,
                                 "description": "the part of the schedule the base runs before the refiner takes over"}
    inputs.update({k: dict(v) for k, v in _AESTHETIC_INPUTS.items()})
    graph = _graph("sdxl", "SDXL base and refiner: the base denoises the first --high-noise-frac of the schedule, "
                   "the refiner the rest; then the KL VAE.", inputs, nodes)
    graph["outputs"]["base_latents"] = "@sample.latent"
    return graph


# What each pipeline's workflow makes, for the header of exported workflows ({repo} is filled in).
HEADERS = {
    "sd": "Stable Diffusion 1.x/2.x (Rombach et al. 2022): CLIP text states (--clip-skip layers back) -> "
          "conditioned UNet (epsilon or v-prediction, as its scheduler config says) in {repo}'s own sampler with "
          "classifier-free guidance -> KL decode -> PNG. Prompts are cut at CLIP's 77 tokens, with a warning.",
    "sd_inpaint": "Stable Diffusion inpainting: the white area of --mask in --image painted from the prompt by "
                  "{repo}'s UNet (an inpainting UNet reads the mask and the masked image's latents beside the "
                  "sample; an ordinary one is kept to the image by blending after every step), in its own sampler "
                  "with classifier-free guidance -> KL decode -> PNG.",
    "sd_img2img": "Stable Diffusion image-to-image: --image encoded by the VAE, noised --strength of the way into "
                  "the schedule of {repo}'s own sampler and denoised towards the prompt with classifier-free "
                  "guidance -> KL decode -> PNG.",
    "sdxl_img2img": "SDXL image-to-image (the refiner's pipeline): --image encoded by the VAE, noised --strength of "
                    "the way in and denoised by {repo}'s UNet, which reads the second text encoder and an aesthetic "
                    "score (a refiner) or the size/crop ids (a base) -> KL decode -> PNG.",
    "sdxl_inpaint": "SDXL inpainting: the white area of --mask in --image painted from the prompt by {repo}'s UNet "
                    "(an inpainting UNet reads the mask and the masked image's latents; an ordinary one is kept to "
                    "the image by blending after every step) -> KL decode -> PNG.",
    "sdxl": "SDXL (Podell et al. 2023): two CLIP text encoders (penultimate states joined, the pooled embedding "
            "of the second) and the size/crop ids -> conditioned UNet in {repo}'s own sampler with "
            "classifier-free guidance -> KL decode -> PNG. An empty negative prompt is zeros where the pipeline "
            "says so (force_zeros_for_empty_prompt).",
}

BASE_AND_REFINER = ("SDXL (Podell et al. 2023) base and refiner in one graph: the base ({base}) denoises the "
                    "first --high-noise-frac of the steps from two CLIP text encoders and the size/crop ids, and "
                    "hands its still-noisy latents to the refiner ({refiner}), which finishes them reading the "
                    "second encoder and an aesthetic score; the base's VAE decodes. The refiner shares the base's "
                    "second text encoder and VAE (the same models ship in both repos). With --devices cuda:0,cuda:1 "
                    "the two UNets go to different GPUs.")
REFINER_PART = ("From {refiner} it downloads only the refiner's 2.26 B-parameter UNet (about 9 GB in float32, 4.5 GB "
                "in fp16) and its scheduler config.")
REFINER_MEMORY = ("Memory: the base's 3.47 B parameters and the refiner's UNet (2.26 B): about 23 GB in float32, "
                  "11.5 GB with --dtype float16 --variant fp16, plus (estimated) 3-5 GB of activations at 1024x1024.")


# What the published repos weigh, for the header of exported workflows (parameters counted from their configs;
# memory: the weights plus an estimate of the activations of one guided image at the model's own size).
DOWNLOADS = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5":
        "Downloads stable-diffusion-v1-5/stable-diffusion-v1-5 from the Hugging Face Hub: the CLIP ViT-L/14 text "
        "encoder (123 M parameters) and tokenizer, an 860 M-parameter UNet and an 84 M-parameter KL VAE, 1.07 B in "
        "all: about 4.3 GB in float32, half that with --dtype float16 --variant fp16. Memory: the weights plus "
        "(estimated) 1-2 GB of activations for a 512x512 image; it runs on a CPU, slowly.",
    "stabilityai/stable-diffusion-2-1":
        "Downloads stabilityai/stable-diffusion-2-1 from the Hugging Face Hub: the OpenCLIP ViT-H text encoder "
        "(340 M parameters) and tokenizer, an 866 M-parameter v-prediction UNet and an 84 M-parameter KL VAE, "
        "1.29 B in all: about 5.2 GB in float32, half that with --dtype float16 --variant fp16. Memory: the weights "
        "plus (estimated) 2-3 GB of activations for a 768x768 image.",
    "stabilityai/stable-diffusion-2-inpainting":
        "Downloads stabilityai/stable-diffusion-2-inpainting from the Hugging Face Hub: the OpenCLIP ViT-H text "
        "encoder (340 M parameters) and tokenizer, an 866 M-parameter 9-channel inpainting UNet and an 84 M-parameter "
        "KL VAE, 1.29 B in all: about 5.2 GB in float32, half that with --dtype float16 --variant fp16. Memory: the "
        "weights plus (estimated) 1-2 GB of activations for a 512x512 image.",
    "stabilityai/stable-diffusion-xl-base-1.0":
        "Downloads stabilityai/stable-diffusion-xl-base-1.0 from the Hugging Face Hub: CLIP ViT-L (123 M "
        "parameters) and OpenCLIP bigG (695 M) text encoders with their tokenizers, a 2.57 B-parameter UNet and an "
        "84 M-parameter KL VAE, 3.47 B in all: about 13.9 GB in float32, 7 GB with --dtype float16 --variant fp16. "
        "Memory: the weights plus (estimated) 3-5 GB of activations for a 1024x1024 image.",
    "stabilityai/stable-diffusion-xl-refiner-1.0":
        "Downloads stabilityai/stable-diffusion-xl-refiner-1.0 from the Hugging Face Hub: the OpenCLIP bigG text "
        "encoder (695 M parameters) and tokenizer, a 2.26 B-parameter UNet and an 84 M-parameter KL VAE, 3.04 B "
        "in all: about 12.2 GB in float32, 6.1 GB with --dtype float16 --variant fp16.",
}

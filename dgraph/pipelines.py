"""diffusers pipeline repos as graphs.

`Graph.from_pretrained("CompVis/ldm-text2im-large-256")` reads the repo's `model_index.json` and builds
the equivalent workflow for the pipeline class it names; `dgraph export` writes that workflow out. The
shipped files under workflows/ for these families are exactly what `dgraph export` writes for the
published repos (a test keeps them in step).

Only node type names are used here: the engine still never imports the node catalogue.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from . import cascades, stable_diffusion, unclip
from .configuration import read_json
from .errors import ConfigError, HubError, SourceError
from .hub import Source, as_source, fetch_file
from .recipe_nodes import guided_pair


@dataclass(frozen=True)
class PipelineRecipe:
    build: Callable[["_Parts"], dict[str, Any]]
    header: str  # what the workflow makes; {repo} is filled in


class _Parts:
    """Sources of a pipeline's components: `<repo>/<component>`, or the repo root when a component's
    files sit at the top (as in google/ddpm-cifar10-32)."""

    def __init__(self, base: str, components: dict[str, str | None]):
        self.base, self.components = base.rstrip("/"), components
        self.settings = getattr(components, "settings", {})  # model_index.json's other values, when read

    def __getitem__(self, name: str) -> str:
        if name not in self.components:
            raise ConfigError(f"{self.base}: model_index.json has no component {name!r}")
        sub = self.components[name]
        if sub is None:
            return self.base
        if "@" in self.base:  # hf://owner/repo@rev: the subfolder goes before the revision
            head, revision = self.base.rsplit("@", 1)
            return f"{head}/{sub}@{revision}"
        return f"{self.base}/{sub}"


def _image_out(nodes: dict, prefix: str) -> dict[str, str]:
    nodes["save"] = {"type": "image.save", "inputs": {"image": "@image.image", "prefix": prefix}}
    return {"image": "@image.image", "files": "@save.paths"}


def _pixel_space(parts: _Parts, scheduler: str, steps: int, name: str, with_eta: bool) -> dict[str, Any]:
    inputs: dict[str, Any] = {"steps": {"type": "int", "default": steps, "description": "inference steps"}}
    if with_eta:
        inputs["eta"] = {"type": "float", "default": 0.0, "description": "noise scale: 0 is deterministic, 1 is DDPM-like"}
    inputs["batch_size"] = {"type": "int", "default": 1, "description": "images to make"}
    loop = {"denoiser": "@denoiser.denoiser", "scheduler": "@scheduler.scheduler", "latents": "@noise.latent",
            "steps": "$steps", **({"eta": "$eta"} if with_eta else {})}
    nodes: dict[str, Any] = {
        "unet": {"type": "load.unet", "inputs": {"source": parts["unet"]}},
        "scheduler": {"type": f"scheduler.{scheduler}", "inputs": {"config": parts["scheduler"]}},
        "noise": {"type": "latent.noise", "inputs": {"unet": "@unet.unet", "batch_size": "$batch_size"}},
        "denoiser": {"type": "denoiser.model", "inputs": {"unet": "@unet.unet"}},
        "sample": {"type": "sample.loop", "inputs": loop},
        "image": {"type": "image.from_latent", "inputs": {"latents": "@sample.latent"}},
    }
    return {"dgraph": 1, "name": name, "inputs": inputs, "nodes": nodes, "outputs": _image_out(nodes, name)}


def _ddpm(parts: _Parts) -> dict[str, Any]:
    graph = _pixel_space(parts, "ddpm", 1000, "ddpm", with_eta=False)
    graph["description"] = "Unconditional image generation with DDPM ancestral sampling."
    return graph


def _ddim(parts: _Parts) -> dict[str, Any]:
    graph = _pixel_space(parts, "ddim", 50, "ddim", with_eta=True)
    graph["description"] = "Unconditional image generation with DDIM sampling."
    return graph


def _ldm_uncond(parts: _Parts) -> dict[str, Any]:
    nodes: dict[str, Any] = {
        "unet": {"type": "load.unet", "inputs": {"source": parts["unet"]}},
        "vae": {"type": "load.vae", "inputs": {"source": parts["vqvae"]}},
        "scheduler": {"type": "scheduler.ddim", "inputs": {"config": parts["scheduler"]}},
        "noise": {"type": "latent.noise", "inputs": {"unet": "@unet.unet", "vae": "@vae.vae", "batch_size": "$batch_size"}},
        "denoiser": {"type": "denoiser.model", "inputs": {"unet": "@unet.unet"}},
        "sample": {"type": "sample.loop", "inputs": {
            "denoiser": "@denoiser.denoiser", "scheduler": "@scheduler.scheduler", "latents": "@noise.latent",
            "steps": "$steps", "eta": "$eta"}},
        "image": {"type": "vae.decode", "inputs": {"vae": "@vae.vae", "latents": "@sample.latent"}},
    }
    return {
        "dgraph": 1, "name": "latent_diffusion_uncond",
        "description": "Unconditional latent diffusion: DDIM in the latent space of a VQ autoencoder, then decode.",
        "inputs": {
            "steps": {"type": "int", "default": 50, "description": "inference steps"},
            "eta": {"type": "float", "default": 0.0, "description": "DDIM noise scale (0 = deterministic)"},
            "batch_size": {"type": "int", "default": 1, "description": "images to make"},
        },
        "nodes": nodes, "outputs": _image_out(nodes, "ldm"),
    }


def _ldm_text(parts: _Parts) -> dict[str, Any]:
    text_encoder = "bert" if "bert" in parts.components else "text_encoder"
    vae = "vqvae" if "vqvae" in parts.components else "vae"
    nodes: dict[str, Any] = {
        "tokenizer": {"type": "load.tokenizer", "inputs": {"source": parts["tokenizer"]}},
        "text_encoder": {"type": "load.text_encoder", "inputs": {"source": parts[text_encoder]}},
        "prompt": {"type": "text.encode_prompt", "inputs": {
            "tokenizer": "@tokenizer.tokenizer", "text_encoder": "@text_encoder.text_encoder", "prompt": "$prompt",
            "negative_prompt": "$negative_prompt", "max_length": 77}},
        "unet": {"type": "load.unet", "inputs": {"source": parts["unet"]}},
        "vae": {"type": "load.vae", "inputs": {"source": parts[vae]}},
        "scheduler": {"type": "scheduler.ddim", "inputs": {"config": parts["scheduler"]}},
        **guided_pair("", "denoiser.model", {"unet": "@unet.unet"},
                      {"context": ("@prompt.cond", "@prompt.uncond")}, "$guidance_scale"),
        "noise": {"type": "latent.noise", "inputs": {
            "unet": "@unet.unet", "vae": "@vae.vae", "context": "@prompt.cond", "height": "$height", "width": "$width",
            "images_per_prompt": "$images_per_prompt"}},
        "sample": {"type": "sample.loop", "inputs": {
            "denoiser": "@guided.denoiser", "scheduler": "@scheduler.scheduler", "latents": "@noise.latent",
            "steps": "$steps", "eta": "$eta"}},
        "image": {"type": "vae.decode", "inputs": {"vae": "@vae.vae", "latents": "@sample.latent"}},
    }
    return {
        "dgraph": 1, "name": "latent_diffusion",
        "description": "Text-to-image latent diffusion with classifier-free guidance.",
        "inputs": {
            "prompt": {"type": "Text", "default": "a painting of a fox", "description": "what to draw (or a list of prompts)"},
            "negative_prompt": {"type": "str", "default": "", "description": "what to steer away from"},
            "steps": {"type": "int", "default": 50, "description": "DDIM steps"},
            "guidance_scale": {"type": "float", "default": 6.0, "description": "classifier-free guidance scale (1 = off)"},
            "eta": {"type": "float", "default": 0.0, "description": "DDIM noise scale (0 = deterministic)"},
            "height": {"type": "int", "default": 256, "description": "image height in pixels (a multiple of 8)"},
            "width": {"type": "int", "default": 256, "description": "image width in pixels (a multiple of 8)"},
            "images_per_prompt": {"type": "int", "default": 1, "description": "images for each prompt"},
        },
        "nodes": nodes, "outputs": _image_out(nodes, "ldm"),
    }


def _dit(parts: _Parts) -> dict[str, Any]:
    network = "@transformer.transformer"
    nodes: dict[str, Any] = {
        "transformer": {"type": "load.transformer", "inputs": {"source": parts["transformer"],
                                                               "class_name": "DiTTransformer2DModel"}},
        "vae": {"type": "load.vae", "inputs": {"source": parts["vae"]}},
        "scheduler": {"type": "scheduler.ddim", "inputs": {"config": parts["scheduler"]}},
        "labels": {"type": "labels.from_names", "inputs": {"network": network, "names": "$class_labels",
                                                           "labels": parts.base}},
        **guided_pair("", "denoiser.model", {"network": network},
                      {"class_labels": ("@labels.cond", "@labels.uncond")}, "$guidance_scale"),
        "noise": {"type": "latent.noise", "inputs": {"network": network, "vae": "@vae.vae",
                                                     "class_labels": "@labels.cond"}},
        "sample": {"type": "sample.loop", "inputs": {
            "denoiser": "@guided.denoiser", "scheduler": "@scheduler.scheduler", "latents": "@noise.latent",
            "steps": "$steps"}},
        "image": {"type": "vae.decode", "inputs": {"vae": "@vae.vae", "latents": "@sample.latent"}},
    }
    return {
        "dgraph": 1, "name": "dit",
        "description": "Class-conditional images from a diffusion transformer, with classifier-free guidance.",
        "inputs": {
            "class_labels": {"type": "Text", "default": "golden retriever",
                             "description": "ImageNet class names, one image each (the repo's id2label)"},
            "guidance_scale": {"type": "float", "default": 4.0,
                               "description": "classifier-free guidance scale (1 = off)"},
            "steps": {"type": "int", "default": 50, "description": "DDIM steps"},
        },
        "nodes": nodes, "outputs": _image_out(nodes, "dit"),
    }


def _pixart(parts: _Parts) -> dict[str, Any]:
    network = "@transformer.transformer"
    nodes: dict[str, Any] = {
        "tokenizer": {"type": "load.tokenizer", "inputs": {"source": parts["tokenizer"]}},
        "text_encoder": {"type": "load.text_encoder", "inputs": {"source": parts["text_encoder"]}},
        "prompt": {"type": "text.encode_prompt", "inputs": {
            "tokenizer": "@tokenizer.tokenizer", "text_encoder": "@text_encoder.text_encoder", "prompt": "$prompt",
            "negative_prompt": "$negative_prompt", "max_length": 120, "lowercase": True}},
        "transformer": {"type": "load.transformer", "inputs": {"source": parts["transformer"],
                                                               "class_name": "PixArtTransformer2DModel"}},
        "vae": {"type": "load.vae", "inputs": {"source": parts["vae"]}},
        "scheduler": {"type": "scheduler.dpm_solver", "inputs": {"config": parts["scheduler"]}},
        "size": {"type": "condition.image_size", "inputs": {"height": "$height", "width": "$width",
                                                            "network": network}},
        **guided_pair("", "denoiser.model", {"network": network},
                      {"context": ("@prompt.cond", "@prompt.uncond"),
                       "added": ("@size.added_conditions", "@size.added_conditions")}, "$guidance_scale"),
        "noise": {"type": "latent.noise", "inputs": {
            "network": network, "vae": "@vae.vae", "context": "@prompt.cond", "height": "$height",
            "width": "$width", "images_per_prompt": "$images_per_prompt"}},
        "sample": {"type": "sample.loop", "inputs": {
            "denoiser": "@guided.denoiser", "scheduler": "@scheduler.scheduler", "latents": "@noise.latent",
            "steps": "$steps"}},
        "image": {"type": "vae.decode", "inputs": {"vae": "@vae.vae", "latents": "@sample.latent"}},
    }
    return {
        "dgraph": 1, "name": "pixart",
        "description": "Text-to-image with PixArt-α: T5 text states, a diffusion transformer, classifier-free guidance.",
        "inputs": {
            "prompt": {"type": "Text", "default": "a small cactus with a happy face",
                       "description": "what to draw (or a list of prompts)"},
            "negative_prompt": {"type": "str", "default": "", "description": "what to steer away from"},
            "steps": {"type": "int", "default": 20, "description": "DPM-Solver++ steps"},
            "guidance_scale": {"type": "float", "default": 4.5,
                               "description": "classifier-free guidance scale (1 = off)"},
            "height": {"type": "int", "default": 1024,
                       "description": "image height in pixels (a multiple of 16; the model's own size is best)"},
            "width": {"type": "int", "default": 1024, "description": "image width in pixels (a multiple of 16)"},
            "images_per_prompt": {"type": "int", "default": 1, "description": "images for each prompt"},
        },
        "nodes": nodes, "outputs": _image_out(nodes, "pixart"),
    }


# AudioLDM: CLAP's text embedding conditions the UNet through its class embedding; the latents are mels (time ×
# bands) of the one-channel VAE, which the SpeechT5 HiFi-GAN turns into audio, cut back to the asked length.
def _audioldm(parts: _Parts) -> dict[str, Any]:
    nodes: dict[str, Any] = {
        "tokenizer": {"type": "load.tokenizer", "inputs": {"source": parts["tokenizer"]}},
        "text_encoder": {"type": "load.text_encoder", "inputs": {"source": parts["text_encoder"]}},
        "prompt": {"type": "text.embed_prompt", "inputs": {
            "tokenizer": "@tokenizer.tokenizer", "text_encoder": "@text_encoder.text_encoder", "prompt": "$prompt",
            "negative_prompt": "$negative_prompt"}},
        "unet": {"type": "load.unet", "inputs": {"source": parts["unet"]}},
        "vae": {"type": "load.vae", "inputs": {"source": parts["vae"]}},
        "vocoder": {"type": "load.speecht5_hifigan", "inputs": {"source": parts["vocoder"], "profile": "audioldm"}},
        "scheduler": {"type": "scheduler.ddim", "inputs": {"config": parts["scheduler"]}},
    }
    noise = {"type": "latent.noise_for_audio", "inputs": {
        "unet": "@unet.unet", "vae": "@vae.vae", "vocoder": "@vocoder.vocoder", "seconds": "$seconds",
        "context": "@prompt.cond", "waveforms_per_prompt": "$waveforms_per_prompt"}}
    cascades._guided_loop("", nodes, {"type": "denoiser.class_embedding", "inputs": {"unet": "@unet.unet"}}, None,
                 noise=noise)
    nodes["sample"]["inputs"]["eta"] = "$eta"
    nodes.update({
        "mel": {"type": "vae.decode_mel", "inputs": {"vae": "@vae.vae", "latents": "@sample.latent",
                                                     "profile": "audioldm"}},
        "waveform": {"type": "vocoder.speecht5_hifigan", "inputs": {"vocoder": "@vocoder.vocoder", "mel": "@mel.mel"}},
        "audio": {"type": "audio.pad_or_crop", "inputs": {"audio": "@waveform.audio", "seconds": "$seconds"}},
        "save": {"type": "audio.save", "inputs": {"audio": "@audio.audio", "name": "audioldm.wav"}},
    })
    return {
        "dgraph": 1, "name": "audioldm",
        "description": "Text-to-audio latent diffusion (AudioLDM): a clip of --seconds from a prompt, as a wav.",
        "inputs": {
            "prompt": {"type": "Text", "default": "a hammer hitting a wooden surface",
                       "description": "the sound to make (or a list of prompts)"},
            "negative_prompt": {"type": "str", "default": "", "description": "what to steer away from"},
            "seconds": {"type": "float", "default": 5.12, "description": "clip length in seconds"},
            "steps": {"type": "int", "default": 10, "description": "DDIM steps"},
            "guidance_scale": {"type": "float", "default": 2.5,
                               "description": "classifier-free guidance scale (1 = off)"},
            "eta": {"type": "float", "default": 0.0, "description": "DDIM noise scale (0 = deterministic)"},
            "waveforms_per_prompt": {"type": "int", "default": 1, "description": "clips for each prompt"},
        },
        "nodes": nodes, "outputs": {"mel": "@mel.mel", "audio": "@audio.audio", "files": "@save.paths"},
    }


RECIPES: dict[str, PipelineRecipe] = {
    "DDPMPipeline": PipelineRecipe(_ddpm, "DDPM (Ho et al. 2020): unconditional images, ancestral sampling over "
                                          "1000 steps, with the UNet and scheduler of {repo}."),
    "DDIMPipeline": PipelineRecipe(_ddim, "DDIM (Song et al. 2021): unconditional images in 50 deterministic steps "
                                          "(eta = 0; eta = 1 is DDPM-like), with the UNet and scheduler of {repo}."),
    "LDMPipeline": PipelineRecipe(_ldm_uncond, "Unconditional latent diffusion (Rombach et al. 2022): DDIM in the "
                                               "latent space of {repo}'s VQ autoencoder, then decode."),
    "LDMTextToImagePipeline": PipelineRecipe(_ldm_text, "Text-to-image latent diffusion (Rombach et al. 2022): "
                                                        "BERT tokenizer -> LDM-BERT -> conditioned UNet in a DDIM loop "
                                                        "with classifier-free guidance -> KL decode -> PNG, from {repo}."),
    "IFPipeline": PipelineRecipe(cascades.if_stage_i, "DeepFloyd IF stage I (Imagen's base model, Saharia et al. 2022): T5 text "
                                        "states -> pixel-space UNet with learned variance in a DDPM loop with "
                                        "classifier-free guidance and dynamic thresholding -> 64 px PNG, from {repo}."),
    "IFSuperResolutionPipeline": PipelineRecipe(cascades.if_stage_ii, "DeepFloyd IF stage II: an image (--image) resized, "
                                                        "noise-augmented, and enlarged by a text-conditioned "
                                                        "pixel-space UNet in a DDPM loop, from {repo}."),
    "StableDiffusionUpscalePipeline": PipelineRecipe(cascades.x4_upscaler, "Stable Diffusion x4 upscaler: an image (--image) "
                                                          "noise-augmented beside the latents of a text-conditioned "
                                                          "UNet in a DDIM loop, decoded 4x larger by the VAE of {repo}."),
    "DiTPipeline": PipelineRecipe(_dit, "DiT (Peebles & Xie 2023): class-conditional images from a diffusion "
                                        "transformer over VAE latents, DDIM with classifier-free guidance against "
                                        "the null class, from {repo}. Name the classes with --class-labels."),
    "PixArtAlphaPipeline": PipelineRecipe(_pixart, "PixArt-α (Chen et al. 2023): text-to-image from a diffusion "
                                                   "transformer cross-attending to T5 text states, DPM-Solver++ with "
                                                   "classifier-free guidance, then the KL VAE, from {repo}."),
    "StableDiffusionPipeline": PipelineRecipe(stable_diffusion.sd_text_to_image, stable_diffusion.HEADERS["sd"]),
    "StableDiffusionImg2ImgPipeline": PipelineRecipe(stable_diffusion.sd_image_to_image,
                                                     stable_diffusion.HEADERS["sd_img2img"]),
    "StableDiffusionInpaintPipeline": PipelineRecipe(stable_diffusion.sd_inpainting,
                                                     stable_diffusion.HEADERS["sd_inpaint"]),
    "StableDiffusionXLPipeline": PipelineRecipe(stable_diffusion.sdxl_text_to_image, stable_diffusion.HEADERS["sdxl"]),
    "StableDiffusionXLImg2ImgPipeline": PipelineRecipe(stable_diffusion.sdxl_image_to_image,
                                                       stable_diffusion.HEADERS["sdxl_img2img"]),
    "StableDiffusionXLInpaintPipeline": PipelineRecipe(stable_diffusion.sdxl_inpainting,
                                                       stable_diffusion.HEADERS["sdxl_inpaint"]),
    "AudioLDMPipeline": PipelineRecipe(_audioldm, "AudioLDM (Liu et al. 2023): text -> CLAP text embedding -> UNet "
                                                  "conditioned through its class embedding, in a DDIM loop with "
                                                  "classifier-free guidance -> the KL autoencoder's mel (16 kHz, 64 "
                                                  "bands) -> SpeechT5 HiFi-GAN -> a 16 kHz wav, from {repo}."),
    "UnCLIPPipeline": PipelineRecipe(unclip.text_to_image, unclip.TEXT_TO_IMAGE_HEADER),
    "UnCLIPImageVariationPipeline": PipelineRecipe(unclip.image_variation, unclip.IMAGE_VARIATION_HEADER),
}


class Components(dict):
    """Component name -> subfolder (None: the repo root), with model_index.json's other values as `settings`
    (e.g. SDXL's force_zeros_for_empty_prompt); a plain dict works where there are none."""

    def __init__(self, folders: dict[str, str | None], settings: dict[str, Any] | None = None):
        super().__init__(folders)
        self.settings = settings or {}


def _component_folders(source: Source, index: dict[str, Any]) -> dict[str, str | None]:
    """Each component's subfolder, or None when its files are at the repo root."""
    found: dict[str, str | None] = {}
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or value[0] is None:
            continue
        sub = source.join(name)
        marker = "scheduler_config.json" if "scheduler" in name else (
            "tokenizer_config.json" if "tokenizer" in name else (
                "preprocessor_config.json" if name in ("feature_extractor", "image_processor") else "config.json"))
        try:
            present = fetch_file(sub, marker, required=False) is not None
        except (HubError, SourceError):
            present = False
        found[name] = name if present else None
    settings = {name: value for name, value in index.items()
                if not name.startswith("_") and not isinstance(value, (list, dict))}
    return Components(found, settings)


def read_pipeline(pretrained: str) -> tuple[str, dict[str, str | None], Source]:
    """(pipeline class name, component folders, source) of a diffusers pipeline folder or repo."""
    source = as_source(pretrained)
    index = read_json(fetch_file(source, "model_index.json"))
    return index.get("_class_name", "?"), _component_folders(source, index), source


def cascade_workflow(stages: list[tuple[str, str, dict[str, str | None]]]) -> dict[str, Any]:
    """One cascade workflow from stages [(pipeline class name, base, component folders), ...]
    (see `cascades.cascade_workflow`; SDXL base then refiner: `stable_diffusion.sdxl_base_and_refiner`)."""
    if _is_sdxl_pair(stages):
        return stable_diffusion.sdxl_base_and_refiner(*(_Parts(base, components) for _, base, components in stages))
    return cascades.cascade_workflow([(name, base, _Parts(base, components)) for name, base, components in stages])


def read_stage(pretrained: str) -> tuple[str, str, dict[str, str | None]]:
    """(pipeline class name, base, component folders) of a pipeline folder or repo; the base is the folder as
    given, or the canonical hf:// form of a repo."""
    class_name, components, source = read_pipeline(pretrained)
    return class_name, (pretrained if source.kind == "folder" else str(source)), components


def pipeline_workflow(class_name: str, base: str, components: dict[str, str | None]) -> dict[str, Any]:
    """The workflow dict for a pipeline class whose components live under `base`."""
    if class_name not in RECIPES:
        raise ConfigError(f"{base}: pipeline class {class_name!r} has no graph in dgraph; "
                          f"supported: {', '.join(sorted(RECIPES))}")
    return RECIPES[class_name].build(_Parts(base, components))


# What the published repos weigh, for the header of exported workflows.
DOWNLOADS = {
    "google/ddpm-cifar10-32": "Downloads google/ddpm-cifar10-32 from the Hugging Face Hub: a UNet2DModel of 35.7 M "
                              "parameters (about 143 MB in float32) and its scheduler_config.json.",
    "CompVis/ldm-celebahq-256": "Downloads CompVis/ldm-celebahq-256 from the Hugging Face Hub: a UNet2DModel and a "
                                "VQ autoencoder (f=4), about 330 M parameters in all (about 1.3 GB in float32).",
    "facebook/DiT-XL-2-256": "Downloads facebook/DiT-XL-2-256 from the Hugging Face Hub: the DiT-XL/2 transformer "
                             "(750 M parameters as diffusers stores it, about 3.0 GB in float32) and a KL autoencoder "
                             "(84 M, about 335 MB). Memory in float32: about 4 GB (3.2 GB peak measured for one "
                             "guided 256x256 image through the transformer on the CPU, plus the VAE).",
    "PixArt-alpha/PixArt-XL-2-1024-MS": "Downloads PixArt-alpha/PixArt-XL-2-1024-MS from the Hugging Face Hub: the "
                                        "T5 v1.1 XXL encoder (4.8 B parameters, about 19 GB in float32), the "
                                        "PixArt-XL/2 transformer (611 M, about 2.4 GB) and a KL autoencoder (84 M), "
                                        "plus the T5 tokenizer. In float32 that needs about 23 GB of memory; "
                                        "--set text_encoder.dtype=bfloat16 --set transformer.dtype=bfloat16 halves it.",
    "CompVis/ldm-text2im-large-256": "Downloads CompVis/ldm-text2im-large-256 from the Hugging Face Hub: LDM-BERT, a "
                                     "conditioned UNet and a KL autoencoder, about 1.45 B parameters in all (about "
                                     "5.8 GB in float32), plus the BERT tokenizer.",
    "DeepFloyd/IF-I-XL-v1.0": "Downloads DeepFloyd/IF-I-XL-v1.0 (gated: accept its license on the Hub and log in): "
                              "the T5-v1.1-XXL encoder (4.8 B parameters, about 9.5 GB in the fp16 variant) and the "
                              "4.3 B-parameter stage I UNet (about 8.6 GB in fp16).",
    "DeepFloyd/IF-II-L-v1.0": "Downloads DeepFloyd/IF-II-L-v1.0 (gated, as stage I): the 1.2 B-parameter stage II "
                              "UNet (about 2.5 GB in fp16); alone it also loads that repo's copy of the T5 encoder.",
    "cvssp/audioldm-s-full-v2": "Downloads cvssp/audioldm-s-full-v2 from the Hugging Face Hub: CLAP's text tower "
                                "(RoBERTa-base with its projection, 125 M parameters) and tokenizer, a 185 M-parameter "
                                "UNet, a 55 M-parameter KL autoencoder and a 55 M-parameter SpeechT5 HiFi-GAN, about "
                                "420 M parameters in all (about 1.7 GB in float32). Memory: those weights plus "
                                "(estimated) activations of a few hundred MB for a 10 s clip; it runs on a CPU.",
}

DOWNLOADS.update(unclip.DOWNLOADS)
DOWNLOADS.update(stable_diffusion.DOWNLOADS)
DOWNLOADS["stabilityai/stable-diffusion-x4-upscaler"] = (
    "Downloads stabilityai/stable-diffusion-x4-upscaler: its UNet, CLIP text encoder and 4x VAE, and its two "
    "scheduler configs (DDIM for sampling, DDPM for noising the input).")

# What a cascade needs on a GPU, for the header of exported cascades.
MEMORY = {
    ("DeepFloyd/IF-I-XL-v1.0", "DeepFloyd/IF-II-L-v1.0"):
        "Memory in float16, weights: the T5 encoder about 9.5 GB, stage I about 8.6 GB, stage II about 2.4 GB; "
        "about 21 GB with all three resident on one device, plus activations (DeepFloyd quotes 16 GB of GPU "
        "memory for both stages when the encoder is moved off after encoding).",
    ("DeepFloyd/IF-I-XL-v1.0", "DeepFloyd/IF-II-L-v1.0", "stabilityai/stable-diffusion-x4-upscaler"):
        "Memory in float16, weights: the T5 encoder about 9.5 GB, stage I about 8.6 GB, stage II about 2.4 GB, "
        "plus the x4 upscaler's models; DeepFloyd quotes 24 GB of GPU memory for the three stages when the "
        "encoder is moved off after encoding. Ask for `--output stage2` to stop at 256 px.",
}


def _downloads(base: str) -> str:
    return DOWNLOADS.get(_repo(base), "")


def _with_header(paragraphs: list[str], command: str, workflow: dict[str, Any]) -> str:
    from .engine.workflow import dump_text

    lines = ["# yaml-language-server: $schema=../dgraph-workflow.schema.json", "#"]
    for paragraph in paragraphs:
        if paragraph:
            lines += [f"# {line}" for line in _wrap(paragraph)]
    lines.append(f"# Written by `{command}`; override any source with --set NODE.source=DIR.")
    return "\n".join(lines) + "\n" + dump_text(workflow)


def export_text(class_name: str, base: str, components: dict[str, str | None], downloads: str | None = None,
                chosen_class: bool = False) -> str:
    """The workflow as YAML text with a header comment saying what it makes and what it downloads.
    `chosen_class`: the class was asked for (--pipeline-class), not read from the repo; the header says so."""
    header = RECIPES[class_name].header.format(repo=base)
    workflow = pipeline_workflow(class_name, base, components)
    command = f"dgraph export {base}" + (f" --pipeline-class {class_name}" if chosen_class else "")
    return _with_header([header, _downloads(base) if downloads is None else downloads], command, workflow)


def export_cascade_text(stages: list[tuple[str, str, dict[str, str | None]]]) -> str:
    """A cascade (`cascade_workflow`) as YAML text, its header naming each stage and what it downloads."""
    workflow = cascade_workflow(stages)
    if _is_sdxl_pair(stages):
        (_, base, _), (_, refiner, _) = stages
        paragraphs = [stable_diffusion.BASE_AND_REFINER.format(base=base, refiner=refiner), _downloads(base),
                      stable_diffusion.REFINER_PART.format(refiner=refiner), stable_diffusion.REFINER_MEMORY]
        return _with_header(paragraphs, f"dgraph export {base} {refiner}", workflow)
    paragraphs = [f"Imagen (Saharia et al. 2022) as a cascade of {len(stages)} stages. DeepFloyd IF's stages share "
                  f"one T5 text encoding; each later stage enlarges the image before it, noise-augmented "
                  f"(--stageK_noise_level sets how strongly)."]
    for k, (class_name, base, _) in enumerate(stages, start=1):
        paragraphs.append(f"Stage {k}, {base}: {cascades.IN_A_CASCADE[class_name]}")
        paragraphs.append(_downloads(base))
    paragraphs += [MEMORY.get(tuple(_repo(base) for _, base, _ in stages), "")]
    command = "dgraph export " + " ".join(base for _, base, _ in stages)
    return _with_header(paragraphs, command, workflow)


def _is_sdxl_pair(stages: list[tuple[str, str, Any]]) -> bool:
    return [name for name, _, _ in stages] == ["StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"]


def _repo(base: str) -> str:
    return base.removeprefix("hf://").split("@")[0]


def _wrap(text: str, width: int = 100) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width, break_on_hyphens=False, break_long_words=False)

"""unCLIP (Ramesh et al. 2022, "DALL-E 2"; Karlo's open weights) as workflows: diffusers' `UnCLIPPipeline` and
`UnCLIPImageVariationPipeline`.

Text -> CLIP text states and embedding -> the diffusion prior samples a CLIP image embedding (guided) -> the
decoder UNet, conditioned on it through extra context tokens and its time embedding, samples 64 px (guided,
learned variance) -> two super-resolution UNets take it to 256 px (the first for every step but the last).
Image variations start from the CLIP image embedding of a given picture instead of the prior. Each builder
takes the sources of a pipeline's components (`parts[name]`) and returns a workflow dict; only node type names
are used, so the engine never imports the node catalogue.
"""
from __future__ import annotations

from typing import Any

from .cascades import Parts
from .recipe_nodes import guided_pair


TEXT_TO_IMAGE_HEADER = (
    "unCLIP / DALL-E 2 (Ramesh et al. 2022) as Karlo: CLIP text -> diffusion prior (guided) -> CLIP image embedding "
    "-> decoder UNet (guided, learned variance) -> 64 px -> two super-resolution UNets -> 256 px PNG, from {repo}.")
IMAGE_VARIATION_HEADER = (
    "unCLIP image variations: an image (--image) -> its CLIP image embedding -> decoder (guided) -> two "
    "super-resolution UNets -> 256 px PNGs, from {repo}.")

# What the published repos hold, for the header of exported workflows.
DOWNLOADS = {
    "kakaobrain/karlo-v1-alpha": (
        "Downloads kakaobrain/karlo-v1-alpha from the Hugging Face Hub: CLIP ViT-L/14's text tower with projection "
        "(123 M parameters) and its tokenizer, the prior (20 transformer layers of width 2048, about 1 B "
        "parameters), the text projection, the 64 px decoder UNet, the two 256 px super-resolution UNets and three "
        "scheduler configs. Memory: every model stays loaded, 4 bytes per parameter in float32 (the prior alone "
        "about 4 GB); --dtype float16 halves that on a GPU."),
    "kakaobrain/karlo-v1-alpha-image-variations": (
        "Downloads kakaobrain/karlo-v1-alpha-image-variations from the Hugging Face Hub: CLIP ViT-L/14's text and "
        "image towers with projection (123 M and 304 M parameters), its image preprocessing config, the text "
        "projection, the decoder UNet and the two super-resolution UNets (no prior). Memory: 4 bytes per parameter "
        "in float32; --dtype float16 halves that on a GPU."),
}


def _weights(source: str) -> dict[str, str]:
    return {"source": source, "dtype": "$dtype"}


def _guided(nodes: dict[str, Any], p: str, denoiser: str, inputs: dict[str, Any], cond: str, uncond: str) -> None:
    """{p}cond / {p}uncond denoisers of one network, guided into {p}guided."""
    nodes.update(guided_pair(p, denoiser, inputs, {"context": (cond, uncond)}, f"${p}guidance_scale"))


def _text(parts: Parts, prompt: str) -> dict[str, Any]:
    return {
        "tokenizer": {"type": "load.tokenizer", "inputs": {"source": parts["tokenizer"]}},
        "text_encoder": {"type": "load.text_encoder", "inputs": _weights(parts["text_encoder"])},
        "prompt": {"type": "clip.encode_prompt", "inputs": {
            "tokenizer": "@tokenizer.tokenizer", "text_encoder": "@text_encoder.text_encoder", "prompt": prompt}},
    }


def _decoder_and_super_res(parts: Parts, nodes: dict[str, Any], image_embedding: str) -> None:
    """The decoder from an image embedding, then both super-resolution UNets, into nodes["image"]."""
    nodes.update({
        "text_proj": {"type": "load.text_proj", "inputs": _weights(parts["text_proj"])},
        "decoder": {"type": "load.unet", "inputs": _weights(parts["decoder"])},
        "decoder_scheduler": {"type": "scheduler.unclip", "inputs": {"config": parts["decoder_scheduler"]}},
        "decoder_conditioning": {"type": "unclip.decoder_conditioning", "inputs": {
            "text_proj": "@text_proj.text_proj", "image_embedding": image_embedding, "prompt": "@prompt.cond",
            "uncond": "@prompt.uncond", "images_per_prompt": "$images_per_prompt"}},
    })
    _guided(nodes, "decoder_", "denoiser.unclip_decoder", {"unet": "@decoder.unet"},
            "@decoder_conditioning.cond", "@decoder_conditioning.uncond")
    nodes["decoder_noise"] = {"type": "latent.noise", "inputs": {
        "unet": "@decoder.unet", "context": "@prompt.cond", "images_per_prompt": "$images_per_prompt"}}
    nodes["decoder_sample"] = {"type": "sample.loop", "inputs": {
        "denoiser": "@decoder_guided.denoiser", "scheduler": "@decoder_scheduler.scheduler",
        "latents": "@decoder_noise.latent", "steps": "$decoder_steps"}}
    nodes["decoder_image"] = {"type": "image.from_latent", "inputs": {"latents": "@decoder_sample.latent"}}
    nodes.update({
        "super_res_first": {"type": "load.unet", "inputs": _weights(parts["super_res_first"])},
        "super_res_last": {"type": "load.unet", "inputs": _weights(parts["super_res_last"])},
        "super_res_scheduler": {"type": "scheduler.unclip", "inputs": {"config": parts["super_res_scheduler"]}},
        "upscaled": {"type": "unclip.upscale", "inputs": {"image": "@decoder_image.image",
                                                           "unet": "@super_res_first.unet"}},
        "super_res_first_denoiser": {"type": "denoiser.super_resolution", "inputs": {
            "unet": "@super_res_first.unet", "image": "@upscaled.image"}},
        "super_res_last_denoiser": {"type": "denoiser.super_resolution", "inputs": {
            "unet": "@super_res_last.unet", "image": "@upscaled.image"}},
        # The sample has the image's channels (the UNet reads both: twice as many).
        "super_res_noise": {"type": "latent.noise", "inputs": {
            "unet": "@super_res_first.unet", "channels": 3, "context": "@prompt.cond",
            "images_per_prompt": "$images_per_prompt"}},
        "super_res_sample": {"type": "sample.loop", "inputs": {
            "denoiser": "@super_res_first_denoiser.denoiser", "final_denoiser": "@super_res_last_denoiser.denoiser",
            "scheduler": "@super_res_scheduler.scheduler", "latents": "@super_res_noise.latent",
            "steps": "$super_res_steps"}},
        "image": {"type": "image.from_latent", "inputs": {"latents": "@super_res_sample.latent"}},
    })


_COMMON_INPUTS = {
    "images_per_prompt": {"type": "int", "default": 1, "description": "images for each prompt"},
    "decoder_steps": {"type": "int", "default": 25, "description": "decoder: unCLIP sampler steps (64 px)"},
    "super_res_steps": {"type": "int", "default": 7, "description": "super-resolution: sampler steps (256 px)"},
    "decoder_guidance_scale": {"type": "float", "default": 8.0,
                               "description": "decoder: classifier-free guidance scale (1 = off)"},
    "dtype": {"type": "str", "default": "float32", "description": "weights precision: float32, float16 or bfloat16"},
}


def _graph(name: str, description: str, inputs: dict[str, Any], nodes: dict[str, Any]) -> dict[str, Any]:
    nodes["save"] = {"type": "image.save", "inputs": {"image": "@image.image", "prefix": name}}
    return {"dgraph": 1, "name": name, "description": description, "inputs": {**inputs, **_COMMON_INPUTS},
            "nodes": nodes, "outputs": {"image": "@image.image", "decoder_image": "@decoder_image.image",
                                        "files": "@save.paths"}}


def text_to_image(parts: Parts) -> dict[str, Any]:
    """diffusers' UnCLIPPipeline: prompt -> prior -> decoder -> super-resolution."""
    nodes = _text(parts, "$prompt")
    nodes.update({
        "prior": {"type": "load.prior", "inputs": _weights(parts["prior"])},
        "prior_scheduler": {"type": "scheduler.unclip", "inputs": {"config": parts["prior_scheduler"]}},
    })
    _guided(nodes, "prior_", "denoiser.model", {"network": "@prior.prior"}, "@prompt.cond", "@prompt.uncond")
    nodes["prior_noise"] = {"type": "prior.noise", "inputs": {
        "prior": "@prior.prior", "context": "@prompt.cond", "images_per_prompt": "$images_per_prompt"}}
    nodes["prior_sample"] = {"type": "sample.loop", "inputs": {
        "denoiser": "@prior_guided.denoiser", "scheduler": "@prior_scheduler.scheduler",
        "latents": "@prior_noise.latent", "steps": "$prior_steps"}}
    nodes["image_embedding"] = {"type": "prior.image_embedding", "inputs": {
        "prior": "@prior.prior", "latents": "@prior_sample.latent"}}
    _decoder_and_super_res(parts, nodes, "@image_embedding.image_embedding")
    inputs = {
        "prompt": {"type": "Text", "default": "a high-resolution photograph of a big red frog on a green leaf",
                   "description": "what to draw (or a list of prompts)"},
        "prior_steps": {"type": "int", "default": 25, "description": "prior: unCLIP sampler steps"},
        "prior_guidance_scale": {"type": "float", "default": 4.0,
                                 "description": "prior: classifier-free guidance scale (1 = off)"},
    }
    return _graph("unclip", "unCLIP (DALL-E 2): CLIP text -> prior -> image embedding -> decoder -> 256 px.",
                  inputs, nodes)


def image_variation(parts: Parts) -> dict[str, Any]:
    """diffusers' UnCLIPImageVariationPipeline: an image's CLIP embedding -> decoder -> super-resolution."""
    nodes = _text(parts, "$empty_prompt")  # the decoder reads empty text in both branches
    nodes.update({
        "source_image": {"type": "image.load", "inputs": {"path": "$image"}},
        "image_encoder": {"type": "load.image_encoder", "inputs": _weights(parts["image_encoder"])},
        "image_embedding": {"type": "clip.encode_image", "inputs": {
            "image_encoder": "@image_encoder.image_encoder", "image": "@source_image.image",
            "preprocessor": parts["feature_extractor"]}},
    })
    _decoder_and_super_res(parts, nodes, "@image_embedding.image_embedding")
    inputs = {
        "image": {"type": "str", "description": "the picture to make variations of (PNG, JPEG...)"},
        "empty_prompt": {"type": "Text", "default": "", "description": "the decoder's text: empty, as unCLIP's "
                                                                       "variations are made"},
    }
    return _graph("unclip_variations", "unCLIP image variations: an image's CLIP embedding -> decoder -> 256 px.",
                  inputs, nodes)


def dalle2(parts: Parts, clip_parts: Parts) -> dict[str, Any]:
    """DALL-E 2's sampling as a workflow: unCLIP text-to-image (`parts`, a UnCLIPPipeline's components), then
    every image scored against its prompt by CLIP and reranked, best first; `--set rerank.keep=K` keeps the best
    K of each prompt's images. The image tower comes from `clip_parts` (a pipeline with an image_encoder and
    its feature_extractor, such as Karlo's image-variations repo, whose CLIP is the text encoder's)."""
    graph = text_to_image(parts)
    graph["name"], graph["description"] = "dalle2", ("DALL-E 2 (unCLIP, Karlo's weights): prior -> decoder -> "
                                                     "256 px, reranked by CLIP score.")
    graph["nodes"].update({
        "clip_image_encoder": {"type": "load.image_encoder", "inputs": _weights(clip_parts["image_encoder"])},
        "score": {"type": "clip.score", "inputs": {
            "image_encoder": "@clip_image_encoder.image_encoder", "image": "@image.image", "prompt": "@prompt.cond",
            "preprocessor": clip_parts["feature_extractor"]}},
        "rerank": {"type": "clip.rerank", "inputs": {"image": "@image.image", "scores": "@score.scores", "keep": 0}},
    })
    graph["nodes"]["save"]["inputs"].update(image="@rerank.image", prefix="dalle2")
    graph["outputs"] = {"image": "@rerank.image", "scores": "@score.scores", "candidates": "@image.image",
                        "decoder_image": "@decoder_image.image", "files": "@save.paths"}
    return graph


def dalle2_text(base: str, components: dict[str, str | None], clip_base: str,
                clip_components: dict[str, str | None]) -> str:
    """`dalle2` as YAML text with its header: what it makes, what it downloads, what it needs in memory."""
    from .pipelines import _Parts, _downloads, _with_header  # the pipeline readers import this module

    workflow = dalle2(_Parts(base, components), _Parts(clip_base, clip_components))
    paragraphs = [
        "DALL-E 2 (Ramesh et al. 2022) with Karlo's open unCLIP weights: CLIP text -> diffusion prior (guided) -> "
        "CLIP image embedding -> decoder UNet (guided, learned variance) -> 64 px -> two super-resolution UNets -> "
        "256 px, then, as DALL-E samples, every candidate scored by CLIP against its prompt and sorted best first. "
        "Make several candidates per prompt with --images-per-prompt N and keep the best K with --set rerank.keep=K.",
        _downloads(base),
        f"For the reranking it also downloads the CLIP image tower and its preprocessing config of {clip_base} "
        f"(CLIP ViT-L/14's image tower with projection, 304 M parameters, the counterpart of the text encoder).",
    ]
    return _with_header(paragraphs, "dgraph.unclip.dalle2_text", workflow)

"""GLIDE's sampling against the official code's (fixtures made by tests/fixtures/glide/make_fixtures.py):
classifier-free guidance as text2im.ipynb applies it, the upsampler's respaced DDIM, CLIP guidance and
inpainting, each a full respaced run from the same start and the same per-step noise."""
from __future__ import annotations

import pytest
import torch

import dgraph.schedulers.ddpm as ddpm
from dgraph.models.auto import load_model
from dgraph.sampling import (CLIPGradient, ClassifierFreeGuidance, GradientGuidance, KnownRegion, ModelDenoiser,
                             sample)
from dgraph.schedulers import DDIMScheduler, DDPMScheduler
from dgraph.text import load_tokenizer, tokenize
from glide_fixtures import converted, info, tensors
from unet_parity import one_thread  # noqa: F401 (autouse)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("glide-sampling")
    return {name: converted(name, root) for name in ("base", "upsample", "base-inpaint", "clip-image", "clip-text")}


@pytest.fixture
def replayed_noise(monkeypatch):
    """DDPM's per-step noise taken from a fixture, in order."""
    def use(noise: torch.Tensor):
        steps = list(noise)
        monkeypatch.setattr(ddpm, "gaussian_noise", lambda like, generator, dtype=None: steps.pop(0))
        return steps
    return use


def prompt_denoisers(model, folder, prompt: str, **images):
    batch = tokenize(load_tokenizer(folder), [prompt, ""])
    cond = ModelDenoiser(model, tokens=batch.input_ids[:1], tokens_mask=batch.attention_mask[:1], **images)
    uncond = ModelDenoiser(model, tokens=batch.input_ids[1:], tokens_mask=batch.attention_mask[1:], **images)
    return cond, uncond


def close(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def test_classifier_free_guidance_matches_the_notebook(folders, replayed_noise):
    data, settings = tensors(), info()["cfg"]
    model = load_model(folders["base"])
    cond, uncond = prompt_denoisers(model, folders["base"], settings["prompt"])
    run = DDPMScheduler.from_pretrained(folders["base"]).start(respacing=settings["respacing"])
    left = replayed_noise(data["cfg.noise"])
    out = sample(ClassifierFreeGuidance(cond, uncond, settings["scale"]), run, data["cfg.start"])
    assert len(left) == 1  # every step but the last draws noise
    assert close(out, data["cfg.out"]) < 1e-4


def test_the_upsampler_matches_the_notebooks_respaced_ddim(folders):
    data, settings = tensors(), info()["upsample_run"]
    folder = folders["upsample"]
    model = load_model(folder)
    batch = tokenize(load_tokenizer(folder), [settings["prompt"]])
    denoiser = ModelDenoiser(model, tokens=batch.input_ids, tokens_mask=batch.attention_mask,
                             low_res=data["upsample_run.low_res"])
    scheduler = DDIMScheduler.from_config(DDPMScheduler.load_config(folder))
    run = scheduler.start(None, respacing=settings["respacing"], use_clipped_model_output=True)
    assert len(run) == 27
    out = sample(denoiser, run, data["upsample_run.start"])
    assert close(out, data["upsample_run.out"]) < 1e-4


def test_clip_guidance_matches_the_notebook(folders, replayed_noise):
    data, settings = tensors(), info()["clip_run"]
    model = load_model(folders["base"])
    batch = tokenize(load_tokenizer(folders["base"]), [settings["prompt"]])
    image_encoder, text_encoder = load_model(folders["clip-image"]), load_model(folders["clip-text"])
    text = tokenize(load_tokenizer(folders["clip-text"]), [settings["prompt"]])
    with torch.no_grad():
        features = text_encoder(text.input_ids, text.attention_mask.sum(dim=1))
    guided = GradientGuidance(ModelDenoiser(model, tokens=batch.input_ids, tokens_mask=batch.attention_mask),
                              CLIPGradient(image_encoder, features, image_encoder.config.logit_scale), settings["scale"])
    run = DDPMScheduler.from_pretrained(folders["base"]).start(respacing=settings["respacing"])
    replayed_noise(data["clip_run.noise"])
    out = sample(guided, run, data["clip_run.start"])
    unguided_run = DDPMScheduler.from_pretrained(folders["base"]).start(respacing=settings["respacing"])
    replayed_noise(data["clip_run.noise"])
    unguided = sample(guided.denoiser, unguided_run, data["clip_run.start"])
    assert close(out, data["clip_run.out"]) < 1e-4
    assert close(unguided, data["clip_run.out"]) > 1e-2  # the guidance is what makes the match


def test_inpainting_matches_the_notebook(folders, replayed_noise):
    data, settings = tensors(), info()["inpaint_run"]
    folder = folders["base-inpaint"]
    model = load_model(folder)
    image, mask = data["inpaint_run.image"], data["inpaint_run.mask"]
    cond, uncond = prompt_denoisers(model, folder, settings["prompt"], inpaint_image=image * mask, inpaint_mask=mask)
    scheduler = DDPMScheduler.from_pretrained(folder)
    denoiser = KnownRegion(ClassifierFreeGuidance(cond, uncond, settings["scale"]), image * mask, mask)
    replayed_noise(data["inpaint_run.noise"])
    out = sample(denoiser, scheduler.start(respacing=settings["respacing"]), data["inpaint_run.start"])
    assert close(out, data["inpaint_run.out"]) < 1e-4


def test_clip_guidance_under_ddim_shifts_the_noise_as_the_official_code(folders):
    data, settings = tensors(), info()["clip_ddim_run"]
    model = load_model(folders["base"])
    batch = tokenize(load_tokenizer(folders["base"]), [settings["prompt"]])
    image_encoder, text_encoder = load_model(folders["clip-image"]), load_model(folders["clip-text"])
    text = tokenize(load_tokenizer(folders["clip-text"]), [settings["prompt"]])
    with torch.no_grad():
        features = text_encoder(text.input_ids, text.attention_mask.sum(dim=1))
    guided = GradientGuidance(ModelDenoiser(model, tokens=batch.input_ids, tokens_mask=batch.attention_mask),
                              CLIPGradient(image_encoder, features, image_encoder.config.logit_scale), settings["scale"])
    scheduler = DDIMScheduler.from_config(DDPMScheduler.load_config(folders["base"]))
    run = scheduler.start(None, respacing=settings["respacing"], use_clipped_model_output=True)
    out = sample(guided, run, data["clip_ddim_run.start"])
    assert close(out, data["clip_ddim_run.out"]) < 1e-4

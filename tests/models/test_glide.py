"""GLIDE's models against the official code's outputs (fixtures made by tests/fixtures/glide/make_fixtures.py)."""
from __future__ import annotations

import pytest
import torch

from dgraph.models.auto import load_model
from glide_fixtures import converted, tensors
from unet_parity import one_thread  # noqa: F401 (autouse)

UNETS = ["base", "upsample", "base-inpaint", "upsample-inpaint"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("glide")
    return {name: converted(name, root) for name in UNETS + ["clip-image", "clip-text"]}


@pytest.mark.parametrize("name", UNETS)
def test_unet_matches_the_official_model(folders, name):
    data = tensors()
    model = load_model(folders[name])
    assert type(model).__name__ == "GlideText2ImUNet"
    kwargs = {k: data[f"{name}.{k}"] for k in ("tokens", "mask", "low_res", "inpaint_image", "inpaint_mask")
              if f"{name}.{k}" in data}
    with torch.no_grad():
        out = model(data[f"{name}.x"], data[f"{name}.t"], **kwargs)
    expected = data[f"{name}.out"]
    assert out.shape == expected.shape == (2, 6, 16, 16)
    assert (out - expected).abs().max().item() < 1e-5


def test_clip_encoders_match_the_official_ones(folders):
    data = tensors()
    image_encoder, text_encoder = load_model(folders["clip-image"]), load_model(folders["clip-text"])
    with torch.no_grad():
        image = image_encoder(data["clip-image.image"], data["clip-image.t"])
        text = text_encoder(data["clip-text.text"], data["clip-text.len"])
    assert (image - data["clip-image.out"]).abs().max().item() < 1e-5
    assert (text - data["clip-text.out"]).abs().max().item() < 1e-5


@pytest.mark.parametrize("preset", ["base", "upsample", "base-inpaint", "upsample-inpaint", "clip-image", "clip-text"])
def test_released_layouts_convert_with_every_key_used(preset):
    """The official models built with the released options (their key -> shape listings are fixtures) fit
    the preset exactly: no key missing, none left over, every shape right."""
    from dgraph.convert.glide import convert_glide
    from glide_fixtures import released_layouts

    layout = released_layouts()[preset]
    checkpoint = {key: torch.empty(shape, device="meta") for key, shape in layout.items()}
    model, unused = convert_glide(checkpoint, preset=preset)
    assert unused == []
    official = sum(torch.Size(shape).numel() for shape in layout.values())
    # The CLIP encoders' key projections gain a zero bias; nothing else is added or dropped.
    added = sum(p.shape[0] for k, p in model.state_dict().items() if k.endswith("attn.to_k.bias")) \
        if preset.startswith("clip") else 0
    assert model.num_parameters() == official + added


def test_a_checkpoint_of_another_preset_is_refused_naming_the_keys():
    from dgraph.convert.glide import convert_glide
    from dgraph.errors import WeightsError
    from glide_fixtures import released_layouts

    layout = released_layouts()["base"]
    checkpoint = {key: torch.empty(shape, device="meta") for key, shape in layout.items()}
    with pytest.raises(WeightsError, match=r"does not fit the GLIDE model of preset 'upsample'.*shape mismatches "
                                           r"\['input_blocks.0.0.weight: \(192, 3, 3, 3\) vs \(192, 6, 3, 3\)"):
        convert_glide(checkpoint, preset="upsample")


def test_the_cli_converts_with_options_and_writes_tokenizer_and_scheduler(tmp_path):
    import json

    from safetensors.torch import load_file

    from dgraph.cli import main
    from dgraph.schedulers import DDPMScheduler
    from dgraph.text import load_tokenizer, tokenize
    from glide_fixtures import info, official_checkpoint, options_of

    # A pickled state dict, as the release ships them (read with torch.load(weights_only=True)).
    checkpoint = tmp_path / "tiny.pt"
    torch.save(load_file(official_checkpoint("upsample", tmp_path)), checkpoint)
    (tmp_path / "options.json").write_text(json.dumps(options_of("upsample")))
    assert main(["convert", "glide", str(checkpoint), "-o", str(tmp_path / "out"),
                 "--options", str(tmp_path / "options.json")]) == 0
    folder = tmp_path / "out"
    model = load_model(folder)
    assert model.config.super_res and model.config.channel_mult == "1,2"
    scheduler = DDPMScheduler.from_pretrained(folder)
    # The upsampler's linear schedule, scaled to 1000 steps as the release scales it.
    assert (scheduler.config.beta_schedule, scheduler.config.beta_start, scheduler.config.beta_end,
            scheduler.config.variance_type) == ("linear", 0.0001, 0.02, "learned_range")
    case = info()["tokenizer"][0]
    batch = tokenize(load_tokenizer(folder), [case["prompt"]])
    assert batch.input_ids[0].tolist() == case["padded"][0]
    assert batch.attention_mask[0].bool().tolist() == case["padded"][1]


def test_the_cli_takes_the_preset_from_the_release_file_name(tmp_path, capsys):
    from safetensors.torch import load_file

    from dgraph.cli import main
    from glide_fixtures import official_checkpoint

    checkpoint = official_checkpoint("base", tmp_path)
    assert main(["convert", "glide", str(checkpoint), "-o", str(tmp_path / "out")]) != 0
    assert "not one of the release's file names (base.pt, upsample.pt" in capsys.readouterr().err
    # Named as the release names it, the tiny checkpoint is tried as the released base model (and does not fit).
    released = tmp_path / "base_inpaint.pt"
    torch.save(load_file(checkpoint), released)
    assert main(["convert", "glide", str(released), "-o", str(tmp_path / "out")]) != 0
    assert "does not fit the GLIDE model of preset 'base-inpaint'" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (dict(image_size=32, channel_mult=""), "channel_mult is empty and image_size 32 has no default"),
    (dict(image_size=64, channel_mult="1,2"), "has 2 levels, which the official code allows only for image_size 16"),
    (dict(attention_resolutions="8,x"), "attention_resolutions '8,x' is not a comma-separated list"),
])
def test_options_the_official_code_refuses_are_refused_by_name(options, message):
    from dgraph.errors import ConfigError
    from dgraph.models.glide import GlideText2ImUNet

    with torch.device("meta"), pytest.raises(ConfigError, match=message):
        GlideText2ImUNet(**options)


def test_unknown_options_are_named():
    from dgraph.convert.glide import convert_glide
    from dgraph.errors import ConfigError

    with pytest.raises(ConfigError, match="num_chanels is not an option of create_model_and_diffusion"):
        convert_glide({}, options={"num_chanels": 64})

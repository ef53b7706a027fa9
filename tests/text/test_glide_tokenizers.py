"""GLIDE's two tokenizers (written into converted folders) against the official ones' outputs (fixtures)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dgraph.text import load_tokenizer, tokenize
from dgraph.text.glide_tokenizer import glide_tokenizer, write_tokenizer

FIXTURES = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "glide" / "fixtures.json").read_text())


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("glide-tokenizers")
    write_tokenizer(root / "glide", "glide", 8)
    write_tokenizer(root / "clip", "clip", 77)
    return root


@pytest.mark.parametrize("case", FIXTURES["tokenizer"], ids=lambda case: repr(case["prompt"]))
def test_glide_tokens_and_mask_are_the_official_ones(folders, case):
    assert glide_tokenizer().encode(case["prompt"]).ids == case["ids"]
    batch = tokenize(load_tokenizer(folders / "glide"), [case["prompt"]])  # text_ctx from the folder: 8
    ids, mask = case["padded"]
    assert batch.input_ids[0].tolist() == ids  # cut at text_ctx, padded with the end token 50256
    assert batch.attention_mask[0].bool().tolist() == mask


@pytest.mark.parametrize("case", FIXTURES["clip_tokenizer"], ids=lambda case: repr(case["prompt"]))
def test_clip_tokens_and_length_are_the_official_ones(folders, case):
    batch = tokenize(load_tokenizer(folders / "clip"), [case["prompt"]])
    ids, length = case["padded"]
    assert batch.input_ids[0].tolist() == ids  # start, prompt, end, then zeros
    assert int(batch.attention_mask[0].sum()) == length

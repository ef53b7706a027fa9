"""CLIP's image preprocessing against transformers' CLIPImageProcessor, and the towers' projected embeddings."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import CLIPImageProcessor

from dgraph.errors import ConfigError
from dgraph.text.clip import ImagePreprocessing, read_image_preprocessing, similarity


def _pictures(sizes):
    generator = np.random.default_rng(0)
    return [(generator.random((h, w, 3)) * 255).astype(np.uint8) for h, w in sizes]


# The old feature-extractor form (ints, as Karlo's files are written) and the current one, with other values.
CONFIGS = [
    {"crop_size": 24, "do_center_crop": True, "do_normalize": True, "do_resize": True,
     "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
     "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 24},
    {"crop_size": {"height": 20, "width": 16}, "size": {"shortest_edge": 30}, "resample": 2,
     "image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.3, 0.4], "image_processor_type": "CLIPImageProcessor"},
    {"size": {"height": 18, "width": 22}, "do_center_crop": False, "do_normalize": False},
]


@pytest.mark.parametrize("config", CONFIGS)
def test_preprocessing_equals_transformers(tmp_path, config):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    ours = read_image_preprocessing(tmp_path)
    theirs = CLIPImageProcessor.from_pretrained(tmp_path)
    for array in _pictures([(40, 52), (61, 33), (24, 24)]):
        expected = theirs(images=array, return_tensors="pt").pixel_values
        found = ours(torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255)
        assert found.shape == expected.shape
        assert (found - expected).abs().max() < 1e-6


def test_a_crop_larger_than_the_image_is_refused():
    with pytest.raises(ConfigError) as error:
        ImagePreprocessing(shortest_edge=8, crop=(10, 10))(torch.zeros(1, 3, 8, 8))
    assert str(error.value) == ("CLIP preprocessing: the image is 8x8 after resizing, smaller than the 10x10 crop; "
                                "check size and crop_size")


def test_similarity_is_the_cosine():
    images, texts = torch.tensor([[3.0, 4.0], [1.0, 0.0]]), torch.tensor([[0.0, 2.0], [1.0, 1.0], [-5.0, 0.0]])
    expected = torch.tensor([[0.8, 7 / 5 / 2 ** 0.5, -0.6], [0.0, 1 / 2 ** 0.5, -1.0]])
    assert (similarity(images, texts) - expected).abs().max() < 1e-6

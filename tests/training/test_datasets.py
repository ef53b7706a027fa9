"""Datasets: scikit-learn's digits upscaled with their prompt wordings, and a folder of images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from dgraph.errors import ConfigError
from dgraph.training import digit_prompts, digits_images, load_digits_dataset, load_image_folder
from dgraph.training.denoiser import PromptTable


def test_digit_wordings():
    prompts = digit_prompts(7)
    assert prompts[:5] == ["a handwritten seven", "the number 7", "7", "seven", "a digit 7"]
    assert len(prompts) == len(set(prompts)) == 15


def test_digits_are_upscaled_into_minus_one_one():
    images, labels = digits_images(32)
    assert images.shape == (1797, 1, 32, 32) and labels[:5].tolist() == [0, 1, 2, 3, 4]
    assert images.min().item() == -1.0 and images.max().item() == 1.0
    # bilinear upscaling keeps each 4x4 block's average near its 8x8 pixel (edges soften: pinned)
    from sklearn.datasets import load_digits

    small = torch.nn.functional.avg_pool2d(images[:1], 4)[0, 0]
    original = torch.from_numpy(load_digits().images[0]).float() / 8 - 1
    assert (small - original).abs().mean().item() == pytest.approx(0.15240, abs=1e-5)
    dataset = load_digits_dataset(16)
    assert dataset.images.shape == (1797, 1, 16, 16) and dataset.prompts[0] == digit_prompts(0)


def test_image_folder_with_prompt_files(tmp_path):
    PILImage.fromarray(np.full((20, 40, 3), 255, np.uint8)).save(tmp_path / "a.png")
    PILImage.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "b.jpg")
    (tmp_path / "a.txt").write_text("a white square\n\nsomething bright\n")
    (tmp_path / "notes.md").write_text("not an image")
    dataset = load_image_folder(tmp_path, size=8, channels=3)
    assert dataset.images.shape == (2, 3, 8, 8)
    assert dataset.images[0].min().item() == 1.0 and dataset.images[1].max().item() == -1.0
    assert dataset.prompts == [["a white square", "something bright"], []]


def test_image_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"^data.path: .*missing is not a folder; give a folder of images$"):
        load_image_folder(tmp_path / "missing", 8)
    with pytest.raises(ConfigError, match=r"^data.path: .* holds no images \(.png, .jpg, .jpeg, .webp, .bmp\)$"):
        load_image_folder(tmp_path, 8)


def test_prompt_dropout_picks_the_empty_prompt_row():
    table = PromptTable(torch.zeros(4, 2, 3), torch.ones(4, 2), [[1, 2], [3]])
    index = torch.tensor([0, 1, 0, 1, 0, 1])
    kept = table.pick(torch.Generator().manual_seed(0), index, dropout=0.0)
    assert all(row in ([1, 2] if i == 0 else [3]) for i, row in zip(index.tolist(), kept.tolist()))
    assert table.pick(torch.Generator().manual_seed(0), index, dropout=1.0).tolist() == [0] * 6
    drawn = table.pick(torch.Generator().manual_seed(0), torch.zeros(2000, dtype=torch.long), dropout=0.25)
    assert (drawn == 0).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert (drawn == 1).sum().item() == pytest.approx((drawn == 2).sum().item(), rel=0.15)  # both wordings used

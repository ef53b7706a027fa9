"""Training data: scikit-learn's handwritten digits with varied prompts, and a folder of images.

A dataset here is small enough to sit in memory as one tensor: `images` (N, C, H, W) in [-1, 1] and,
for text conditioning, `prompts` (one list of wordings per image; training picks one at random).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Several ways people ask for a digit, so that free text (not one fixed template) finds it.
PROMPT_TEMPLATES = (
    "a handwritten {name}", "the number {digit}", "{digit}", "{name}", "a digit {digit}",
    "the digit {name}", "handwritten {digit}", "a {name}", "number {name}", "an image of a {name}",
    "a handwritten digit {digit}", "the numeral {digit}", "a drawing of the number {name}",
    "write a {digit}", "digit {name}",
)


def digit_prompts(digit: int) -> list[str]:
    """Every wording of `digit` the digits dataset trains on ("a handwritten seven", "the number 7", "7", ...)."""
    return [t.format(digit=digit, name=DIGIT_NAMES[digit]) for t in PROMPT_TEMPLATES]


@dataclass
class ImageDataset:
    """Images (N, C, H, W) in [-1, 1], with the prompt wordings of each image (empty lists: no text)."""

    images: torch.Tensor
    prompts: list[list[str]]
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.images.shape[0]


def digits_images(size: int = 32) -> tuple[torch.Tensor, np.ndarray]:
    """scikit-learn's 8×8 digits (ink bright, 0..16) upscaled bilinearly to size×size, in [-1, 1]; and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0
    big = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    return (big.clamp(0, 1) * 2 - 1).contiguous(), digits.target


def load_digits_dataset(size: int = 32) -> ImageDataset:
    images, labels = digits_images(size)
    return ImageDataset(images, [digit_prompts(int(d)) for d in labels], torch.from_numpy(labels).long())


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def load_image_folder(path: str | os.PathLike, size: int, channels: int = 3) -> ImageDataset:
    """Every image in `path` (sorted by name), resized on its short side and centre-cropped to size×size.

    A `NAME.txt` beside `NAME.png` holds its prompt (one wording a line).
    """
    from PIL import Image as PILImage

    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"data.path: {folder} is not a folder; give a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"data.path: {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images, prompts = [], []
    for file in files:
        with PILImage.open(file) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            scale = size / min(image.size)
            width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
            image = image.resize((width, height), PILImage.BICUBIC)
            left, top = (width - size) // 2, (height - size) // 2
            array = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array)
        images.append(tensor.unsqueeze(0) if channels == 1 else tensor.permute(2, 0, 1))
        text = file.with_suffix(".txt")
        prompts.append([line.strip() for line in text.read_text(encoding="utf-8").splitlines() if line.strip()]
                       if text.exists() else [])
    return ImageDataset(torch.stack(images) * 2 - 1, prompts)


def load_dataset(data) -> ImageDataset:
    """The dataset a recipe's `data` section names."""
    if data.dataset == "digits":
        return load_digits_dataset(data.size)
    return load_image_folder(data.path, data.size, data.channels)

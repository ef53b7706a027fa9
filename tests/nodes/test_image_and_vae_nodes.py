"""Image save/load and the autoencoder nodes, with numbers."""
from __future__ import annotations

import json

import diffusers
import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from dgraph.errors import DgraphError
from dgraph.graph import Graph
from dgraph.types import Image, Latent


def test_save_then_load_round_trips_8_bit_values(tmp_path):
    pixels = torch.arange(3 * 4 * 5, dtype=torch.float32).reshape(1, 3, 4, 5) / 59.0
    graph = Graph()
    g_in = graph.input("tensor", "Tensor")
    img = graph.add("image.from_tensor", tensor=g_in, low=0.0, high=1.0)
    save = graph.add("image.save", image=img.image, prefix="sub/x")
    graph.output("paths", save.paths)
    (path,) = graph.execute(tensor=pixels, output_dir=tmp_path).paths
    assert path == str((tmp_path / "sub" / "x_000.png").resolve())
    with PILImage.open(path) as png:
        stored = np.asarray(png)
        meta = json.loads(png.text["dgraph:workflow"])
    assert meta["nodes"]["save"]["inputs"]["prefix"] == "sub/x"
    assert np.array_equal(stored, (pixels[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    loaded = Graph({"dgraph": 1, "nodes": {"l": {"type": "image.load", "inputs": {"path": path}}},
                    "outputs": {"i": "@l.image"}}).execute().i
    assert loaded.value_range == (0.0, 1.0)
    assert (loaded.tensor - pixels).abs().max() <= 0.5 / 255 + 1e-6


@pytest.fixture(scope="module")
def kl_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kl")
    torch.manual_seed(0)
    diffusers.AutoencoderKL(block_out_channels=(8, 16), layers_per_block=1, latent_channels=4, norm_num_groups=4,
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                            scaling_factor=0.3).save_pretrained(folder)
    return folder


def test_vae_encode_and_decode_nodes_equal_diffusers(kl_folder):
    torch.manual_seed(1)
    pixels = torch.rand(2, 3, 16, 16)
    graph = Graph()
    image = graph.input("image", "Image")
    vae = graph.add("load.vae", source=str(kl_folder))
    enc = graph.add("vae.encode", vae=vae.vae, image=image)
    dec = graph.add("vae.decode", vae=vae.vae, latents=enc.latent)
    graph.output("latent", enc.latent)
    graph.output("decoded", dec.image)
    result = graph.execute(image=Image(pixels, value_range=(0.0, 1.0)))
    reference = diffusers.AutoencoderKL.from_pretrained(kl_folder)
    with torch.no_grad():
        mean = reference.encode(pixels * 2 - 1).latent_dist.mean
        decoded = reference.decode(mean).sample
    assert result.latent.scaling_factor == pytest.approx(0.3)
    assert result.latent.autoencoder == "AutoencoderKL"
    assert torch.allclose(result.latent.tensor, mean * 0.3, atol=1e-5)
    assert torch.allclose(result.decoded.tensor, decoded, atol=1e-5)


def test_decoding_another_autoencoders_latents_is_refused(kl_folder):
    graph = Graph()
    latents = graph.input("latents", "Latent")
    vae = graph.add("load.vae", source=str(kl_folder))
    graph.output("image", graph.add("vae.decode", vae=vae.vae, latents=latents).image)
    with pytest.raises(DgraphError, match="these latents belong to a VQModel, not to the AutoencoderKL"):
        graph.execute(latents=Latent(torch.zeros(1, 4, 4, 4), 1.0, "VQModel"))

"""Loading a model reads its config.json once and probes for weights no more than it must."""
from __future__ import annotations

import dgraph.configuration as configuration
import dgraph.models.auto as auto
import dgraph.models.modeling as modeling
from dgraph.models.auto import load_model
from dgraph.models.unet_2d import UNet2DModel


def test_load_model_reads_config_once_and_probes_twice(tmp_path, monkeypatch):
    UNet2DModel(sample_size=8, block_out_channels=(8,), down_block_types=("DownBlock2D",),
                up_block_types=("UpBlock2D",), layers_per_block=1, norm_num_groups=4).save_pretrained(tmp_path)
    asked: list[str] = []
    real = modeling.fetch_file

    def counting(source, filename, required=True):
        asked.append(filename)
        return real(source, filename, required)

    for module in (modeling, auto, configuration):
        monkeypatch.setattr(module, "fetch_file", counting)
    load_model(str(tmp_path), expect=("UNet2DModel",))
    assert asked == ["config.json", "diffusion_pytorch_model.safetensors"]

"""The model base: meta-device loading, shards, variants, pickles, and the errors a user sees."""
from __future__ import annotations

import json

import diffusers
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dgraph.configuration import register_to_config
from dgraph.errors import ConfigError, WeightsError
from dgraph.models import ModelMixin, UNet2DModel
from dgraph.models.modeling import add_variant, parse_size

from unet_parity import one_thread  # noqa: F401 (autouse fixture)


class Tiny(ModelMixin):
    @register_to_config
    def __init__(self, width: int = 4):
        super().__init__()
        self.first = nn.Linear(width, width)
        self.second = nn.Linear(width, 2 * width)
        self.register_buffer("steps", torch.arange(width, dtype=torch.float32) * 0.5, persistent=False)

    def forward(self, x):
        return self.second(self.first(x) + self.steps)


class TinyOtherName(Tiny):
    weights_name = "model.safetensors"
    pickle_weights_name = "pytorch_model.bin"


def tiny(width: int = 4, seed: int = 0) -> Tiny:
    torch.manual_seed(seed)
    return Tiny(width)


def test_variant_and_size_helpers():
    assert add_variant("diffusion_pytorch_model.safetensors", "fp16") == "diffusion_pytorch_model.fp16.safetensors"
    assert add_variant("diffusion_pytorch_model.safetensors.index.json", "fp16") == \
        "diffusion_pytorch_model.safetensors.index.fp16.json"
    assert add_variant("model.safetensors", None) == "model.safetensors"
    assert parse_size("5MB") == 5_000_000 and parse_size("2KiB") == 2048 and parse_size(77) == 77
    with pytest.raises(ConfigError, match=r"^max_shard_size 'lots' is not a size; write bytes as an int, or e.g. "
                                          r"'500MB', '2GiB'$"):
        parse_size("lots")


def test_round_trip_keeps_weights_config_and_non_persistent_buffers(tmp_path):
    model = tiny(6)
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert json.loads((tmp_path / "config.json").read_text()) == {"_class_name": "Tiny", "width": 6}
    loaded = Tiny.from_pretrained(tmp_path)
    assert not loaded.training
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    # The buffer is not in the file; it is rebuilt with the value the constructor gives it.
    assert torch.equal(loaded.steps, torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5]))
    x = torch.randn(3, 6)
    assert torch.equal(loaded(x), model.eval()(x))


def test_model_is_built_on_the_meta_device(tmp_path, monkeypatch):
    tiny(4).save_pretrained(tmp_path)
    unet_folder = _tiny_unet_folder(tmp_path / "unet")
    initialised = []
    original = torch.nn.init.kaiming_uniform_

    def spy(tensor, *args, **kwargs):
        initialised.append(tensor.device.type)
        return original(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.nn.init, "kaiming_uniform_", spy)
    Tiny.from_pretrained(tmp_path)
    # The two Linear layers were initialised while the model was on meta: no memory, no random numbers.
    # Tiny has a non-persistent buffer, so one real CPU copy is built to read it (2 more inits).
    assert initialised[:2] == ["meta", "meta"]
    initialised.clear()
    UNet2DModel.from_pretrained(unet_folder)
    assert initialised and set(initialised) == {"meta"}


def _tiny_unet_folder(folder):
    torch.manual_seed(0)
    UNet2DModel(block_out_channels=(8, 8), down_block_types=("DownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4, layers_per_block=1).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_torch_dtype_casts_floating_weights(tmp_path, dtype):
    model = tiny()
    model.save_pretrained(tmp_path)
    loaded = Tiny.from_pretrained(tmp_path, torch_dtype=dtype)
    assert {t.dtype for t in loaded.state_dict().values()} == {dtype}
    assert loaded.dtype == dtype and loaded.steps.dtype == dtype
    assert torch.equal(loaded.first.weight, model.first.weight.to(dtype))


def test_sharded_save_writes_diffusers_layout_and_loads_back(tmp_path):
    model = tiny(8)
    # first: 64 + 8 floats (288 bytes) fit one 300-byte shard; second.weight (512 bytes) is bigger than
    # the limit and gets a shard to itself; second.bias starts the third.
    model.save_pretrained(tmp_path, max_shard_size=300)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["config.json", "diffusion_pytorch_model-00001-of-00003.safetensors",
                     "diffusion_pytorch_model-00002-of-00003.safetensors",
                     "diffusion_pytorch_model-00003-of-00003.safetensors",
                     "diffusion_pytorch_model.safetensors.index.json"]
    index = json.loads((tmp_path / "diffusion_pytorch_model.safetensors.index.json").read_text())
    assert index["metadata"] == {"total_size": (64 + 8 + 128 + 16) * 4}
    assert index["weight_map"] == {"first.weight": "diffusion_pytorch_model-00001-of-00003.safetensors",
                                   "first.bias": "diffusion_pytorch_model-00001-of-00003.safetensors",
                                   "second.weight": "diffusion_pytorch_model-00002-of-00003.safetensors",
                                   "second.bias": "diffusion_pytorch_model-00003-of-00003.safetensors"}
    loaded = Tiny.from_pretrained(tmp_path)
    assert torch.equal(loaded.second.weight, model.second.weight)
    # Saving again unsharded removes the shards and the index: the folder is never a mix.
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]


def test_sharded_unet_loads_in_diffusers_and_diffusers_shards_load_here(tmp_path):
    folder = _tiny_unet_folder(tmp_path / "ours")
    ours = UNet2DModel.from_pretrained(folder)
    ours.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert len(list((tmp_path / "sharded").glob("*-of-*.safetensors"))) > 2
    theirs = diffusers.UNet2DModel.from_pretrained(tmp_path / "sharded")
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert (theirs(x, 3).sample - ours(x, 3).sample).abs().max() < 1e-5
    theirs.save_pretrained(tmp_path / "their-shards", max_shard_size="20KB")
    again = UNet2DModel.from_pretrained(tmp_path / "their-shards")
    with torch.no_grad():
        assert (again(x, 3).sample - ours(x, 3).sample).abs().max() < 1e-6


def test_variant_files_are_chosen_by_variant(tmp_path):
    plain, half = tiny(seed=0), tiny(seed=1)
    plain.save_pretrained(tmp_path)
    half.to(torch.float16).save_pretrained(tmp_path, variant="fp16")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json", "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.safetensors"]
    assert torch.equal(Tiny.from_pretrained(tmp_path).first.weight, plain.first.weight)
    from_variant = Tiny.from_pretrained(tmp_path, variant="fp16")
    assert from_variant.first.weight.dtype == torch.float32  # the model's dtype unless torch_dtype says otherwise
    assert torch.equal(from_variant.first.weight, half.first.weight.float())
    # float16, width 8: first.weight + first.bias = 144 bytes, second.weight 256, second.bias 32 -> 3 shards.
    half = tiny(8, seed=2).to(torch.float16)
    half.save_pretrained(tmp_path / "sharded", max_shard_size=150, variant="fp16")
    assert (tmp_path / "sharded" / "diffusion_pytorch_model.safetensors.index.fp16.json").is_file()
    assert (tmp_path / "sharded" / "diffusion_pytorch_model.fp16-00001-of-00003.safetensors").is_file()
    loaded = Tiny.from_pretrained(tmp_path / "sharded", variant="fp16", torch_dtype=torch.float16)
    assert torch.equal(loaded.second.bias, half.second.bias)


def test_missing_weights_name_every_file_looked_for(tmp_path):
    tiny().save_config(tmp_path)
    with pytest.raises(WeightsError) as error:
        Tiny.from_pretrained(tmp_path)
    assert str(error.value) == (f"{tmp_path}: no weights for Tiny: looked for diffusion_pytorch_model.safetensors, "
                                f"diffusion_pytorch_model.safetensors.index.json")
    with pytest.raises(WeightsError) as error:
        Tiny.from_pretrained(tmp_path, variant="ema")
    assert str(error.value) == (f"{tmp_path}: no weights for Tiny: looked for diffusion_pytorch_model.ema.safetensors, "
                                f"diffusion_pytorch_model.safetensors.index.ema.json (drop variant= to read the plain "
                                f"weights)")


def test_pickles_are_refused_unless_allowed_and_then_weights_only(tmp_path):
    model = tiny()
    model.save_config(tmp_path)
    torch.save(model.state_dict(), tmp_path / "diffusion_pytorch_model.bin")
    with pytest.raises(WeightsError) as error:
        Tiny.from_pretrained(tmp_path)
    assert str(error.value) == (
        f"{tmp_path}: only pickled weights (diffusion_pytorch_model.bin) were found, and pickles can run code when "
        f"loaded; pass allow_pickle=True to read them with torch.load(weights_only=True), or convert them to "
        f"safetensors")
    loaded = Tiny.from_pretrained(tmp_path, allow_pickle=True)
    assert torch.equal(loaded.first.weight, model.first.weight)

    class Payload:  # an object a weights-only unpickler must refuse
        def __reduce__(self):
            return (print, ("pickle code ran",))

    torch.save({"first.weight": Payload()}, tmp_path / "diffusion_pytorch_model.bin")
    with pytest.raises(WeightsError, match=r"diffusion_pytorch_model\.bin: cannot read as a weights-only pickle"):
        Tiny.from_pretrained(tmp_path, allow_pickle=True)


def test_safetensors_win_over_pickles(tmp_path):
    model = tiny(seed=0)
    model.save_pretrained(tmp_path)
    torch.save(tiny(seed=5).state_dict(), tmp_path / "diffusion_pytorch_model.bin")
    assert torch.equal(Tiny.from_pretrained(tmp_path, allow_pickle=True).first.weight, model.first.weight)


def test_other_weight_file_names_through_class_attributes(tmp_path):
    model = tiny()
    model.save_config(tmp_path)
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    assert torch.equal(TinyOtherName.from_pretrained(tmp_path).first.weight, model.first.weight)
    TinyOtherName.from_pretrained(tmp_path).save_pretrained(tmp_path / "again")
    assert (tmp_path / "again" / "model.safetensors").is_file()


def test_missing_unexpected_and_mismatched_keys_are_listed(tmp_path):
    model = tiny(4)
    model.save_config(tmp_path)
    weights = model.state_dict()
    weights.pop("second.bias")
    weights["extra.weight"] = torch.zeros(2)
    weights["first.weight"] = torch.zeros(4, 5)
    save_file(weights, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    with pytest.raises(WeightsError) as error:
        Tiny.from_pretrained(tmp_path)
    assert str(error.value) == (
        f"{tmp_path}: the weights do not fit Tiny as configured by its config.json: missing keys (1): second.bias; "
        f"unexpected keys (1): extra.weight; shape mismatches (1): first.weight: checkpoint (4, 5) vs model (4, 4). "
        f"Check that the folder holds this model's weights and an unedited config.json")


def test_a_config_that_does_not_match_the_weights_names_both_shapes(tmp_path):
    tiny(4).save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "Tiny", "width": 3}))
    with pytest.raises(WeightsError, match=r"shape mismatches \(4\): first\.bias: checkpoint \(4,\) vs model \(3,\); "
                                           r"first\.weight: checkpoint \(4, 4\) vs model \(3, 3\);"):
        Tiny.from_pretrained(tmp_path)


def test_load_from_hub_repo_and_subfolder_through_the_cache(tmp_path, hub_cache):
    model = tiny()
    model.save_pretrained(tmp_path / "unet")
    hub_cache.add_folder("someone/tiny-model", tmp_path / "unet", "unet")
    loaded = Tiny.from_pretrained("someone/tiny-model", subfolder="unet")
    assert torch.equal(loaded.first.weight, model.first.weight)
    loaded = Tiny.from_pretrained("hf://someone/tiny-model/unet@main")
    assert torch.equal(loaded.second.weight, model.second.weight)


def test_corrupt_safetensors_file_is_a_weights_error(tmp_path):
    tiny().save_config(tmp_path)
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match=r"diffusion_pytorch_model\.safetensors: not a readable safetensors file"):
        Tiny.from_pretrained(tmp_path)


def test_save_writes_contiguous_unshared_tensors(tmp_path):
    model = tiny(4)
    with torch.no_grad():
        model.second.weight = nn.Parameter(torch.randn(4, 8).t())  # a non-contiguous view
    model.save_pretrained(tmp_path)
    assert torch.equal(load_file(str(tmp_path / "diffusion_pytorch_model.safetensors"))["second.weight"],
                       model.second.weight)

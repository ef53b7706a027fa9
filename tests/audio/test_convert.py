"""Official checkpoint layouts → dgraph model folders, with no missing or unexpected keys."""
import copy
import logging
import sys
import types

import pytest
import torch
from torch.nn.utils import weight_norm

from dgraph.convert import convert, fold_weight_norm, read_checkpoint
from dgraph.errors import DgraphError, WeightsError
from dgraph.models import DiffWaveModel, FastDiffModel, HiFiGANGenerator

from audio_helpers import fill_weights

# The official checkpoints were written with the old weight_norm; it is used here to lay them out.
pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")


def with_weight_norm(model: torch.nn.Module, kinds: tuple[type, ...]) -> dict[str, torch.Tensor]:
    """The state dict the official code saves: weight norm (weight_g / weight_v) on modules of `kinds`."""
    normed = type(model).from_config(model.config)
    normed.load_state_dict(model.state_dict())
    for module in normed.modules():
        if type(module) in kinds:
            weight_norm(module)
    return normed.state_dict()


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=1e-6, atol=1e-7)


TINY_FASTDIFF = dict(inner_channels=4, cond_channels=8, upsample_ratios=[4, 2], lvc_layers_each_block=2,
                     kpnet_hidden_channels=8, diffusion_step_embed_dim_in=16, diffusion_step_embed_dim_mid=16,
                     diffusion_step_embed_dim_out=16)


def test_fastdiff_checkpoint_converts(tmp_path, caplog):
    model = fill_weights(FastDiffModel(**TINY_FASTDIFF))
    # FastDiff puts weight norm on every Conv1d (not on its transposed convs or linear layers).
    official = with_weight_norm(model, (torch.nn.Conv1d,))
    assert sum(k.endswith("weight_g") for k in official) == 32 and not any(k.endswith("upsample.weight_g") for k in official)
    torch.save({"state_dict": {"model": official}, "global_step": 10, "optimizer_states": [{}]}, tmp_path / "model_ckpt_steps_10.ckpt")
    with caplog.at_level(logging.WARNING, logger="dgraph"):
        convert("fastdiff", tmp_path / "model_ckpt_steps_10.ckpt", tmp_path / "out")
    assert "not used" not in caplog.text  # no unexpected keys
    loaded = FastDiffModel.from_pretrained(tmp_path / "out")  # strict: no missing keys
    assert dict(loaded.config) == {**dict(model.config), "audio_channels": 1, "upsample_ratios": [4, 2]}
    assert_same_weights(model, loaded)
    # Older runs saved flat "model.<key>" entries: same result.
    torch.save({"state_dict": {f"model.{k}": v for k, v in official.items()}}, tmp_path / "flat.ckpt")
    assert_same_weights(model, FastDiffModel.from_pretrained(convert("fastdiff", tmp_path / "flat.ckpt", tmp_path / "out2")))


def test_full_size_fastdiff_layout_converts():
    from dgraph.convert.fastdiff import convert_fastdiff
    official = with_weight_norm(FastDiffModel(), (torch.nn.Conv1d,))
    assert len(official) == 175 and sum(k.endswith("weight_g") for k in official) == 53
    model, unused = convert_fastdiff({"state_dict": {"model": official}})
    assert unused == [] and dict(model.config) == dict(FastDiffModel().config)


def test_diffwave_checkpoint_with_its_pickled_params_converts(tmp_path, monkeypatch):
    # DiffWave pickles its hyper-parameters as diffwave.params.AttrDict; make that class importable for
    # saving only (the converter does not import it).
    module = types.ModuleType("diffwave.params")

    class AttrDict(dict):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.__dict__ = self

    AttrDict.__module__, AttrDict.__qualname__, module.AttrDict = "diffwave.params", "AttrDict", AttrDict
    monkeypatch.setitem(sys.modules, "diffwave", types.ModuleType("diffwave"))
    monkeypatch.setitem(sys.modules, "diffwave.params", module)

    model = fill_weights(DiffWaveModel(n_mels=8, residual_layers=4, residual_channels=6, dilation_cycle_length=2))
    state = {**model.state_dict(), "diffusion_embedding.embedding": torch.zeros(50, 128)}  # older releases
    params = AttrDict(dilation_cycle_length=2, noise_schedule=[1e-4, 0.05], n_mels=8)
    torch.save({"step": 3, "model": state, "optimizer": {"state": {}, "param_groups": []}, "params": params},
               tmp_path / "weights-3.pt")
    monkeypatch.delitem(sys.modules, "diffwave.params")
    out = convert("diffwave", tmp_path / "weights-3.pt", tmp_path / "out")
    loaded = DiffWaveModel.from_pretrained(out)
    assert loaded.config.dilation_cycle_length == 2 and loaded.config.residual_layers == 4
    assert_same_weights(model, loaded)


def test_hifigan_generator_converts_with_its_config_or_preset(tmp_path):
    config = dict(resblock="1", upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4], upsample_initial_channel=16,
                  resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], num_mels=8)
    model = fill_weights(HiFiGANGenerator(**config))
    official = with_weight_norm(model, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))
    assert not any(k.endswith(".weight") for k in official)  # every conv is weight-normed
    torch.save({"generator": official}, tmp_path / "g_00000100")
    # The release's config.json carries training settings too; they are ignored.
    out = convert("hifigan", tmp_path / "g_00000100", tmp_path / "out", config={**config, "batch_size": 16, "lr_decay": 0.999})
    assert_same_weights(model, HiFiGANGenerator.from_pretrained(out))
    with torch.no_grad():
        mel = torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(HiFiGANGenerator.from_pretrained(out)(mel), model(mel))

    v3 = HiFiGANGenerator.from_preset("v3")
    torch.save({"generator": with_weight_norm(v3, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))}, tmp_path / "generator_v3")
    loaded = HiFiGANGenerator.from_pretrained(convert("hifigan", tmp_path / "generator_v3", tmp_path / "v3"))
    assert loaded.config.resblock == "2" and loaded.config.upsample_rates == [8, 8, 4]
    with pytest.raises(WeightsError, match=r"fit none of the HiFi-GAN presets \['v1', 'v2', 'v3'\]; pass the checkpoint's own config.json"):
        convert("hifigan", tmp_path / "g_00000100", tmp_path / "bad")


def test_folding_weight_norm_keeps_the_output():
    conv = torch.nn.Conv1d(3, 4, 5)
    normed = weight_norm(copy.deepcopy(conv))
    with torch.no_grad():
        normed.weight_g.mul_(torch.tensor([0.5, 2.0, 1.0, 3.0]).reshape(4, 1, 1))
        x = torch.randn(2, 3, 9)
        expected = normed(x)
    folded = fold_weight_norm(normed.state_dict())
    assert sorted(folded) == ["bias", "weight"]
    conv.load_state_dict(folded)
    torch.testing.assert_close(conv(x), expected)
    # The layout newer torch writes (parametrizations) folds the same way.
    modern = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv1d(3, 4, 5))
    with torch.no_grad():
        expected = modern(x)
    folded = fold_weight_norm(modern.state_dict())
    assert sorted(folded) == ["bias", "weight"]
    conv.load_state_dict(folded)
    torch.testing.assert_close(conv(x), expected)


def test_unsafe_or_unknown_input_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"generator": {}, "evil": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match=r"evil\.pt: cannot read it as a weights-only checkpoint"):
        read_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match=r"nothing\.ckpt: no such checkpoint file"):
        read_checkpoint(tmp_path / "nothing.ckpt")
    with pytest.raises(DgraphError, match="cannot convert 'wavegrad' checkpoints; known families: fastdiff, diffwave, hifigan"):
        convert("wavegrad", tmp_path / "evil.pt", tmp_path / "out")
    torch.save({"state_dict": {"model": {"first_audio_conv.weight": torch.zeros(4, 1, 7)}}}, tmp_path / "partial.ckpt")
    with pytest.raises(WeightsError, match="not a FastDiff checkpoint: it has no tensor 'final_conv.0.weight'"):
        convert("fastdiff", tmp_path / "partial.ckpt", tmp_path / "out")

"""The audio workflows: Griffin-Lim on the bundled sample; FastDiff, DiffWave and HiFi-GAN on small
vocoders with fixed weights; mel profiles checked at validation; `dgraph convert` feeding a workflow."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import soundfile as sf
import torch

from dgraph.audio import get_profile, mel_spectrogram, spectral_convergence
from dgraph.cli import main
from dgraph.graph import Graph
from dgraph.models import DiffWaveModel, FastDiffModel, HiFiGANGenerator
from dgraph.node import derive_seed
from dgraph.schedulers import DIFFWAVE_BETAS_6, DIFFWAVE_TRAINING, FASTDIFF_BETAS_4, FASTDIFF_TRAINING, fractional_timesteps

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def _fill(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            fan_in = param[0].numel() if param.dim() > 1 else param.numel()
            param.copy_(torch.randn(param.shape, generator=generator) / math.sqrt(fan_in))
    return module.eval()


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """0.3 s of the bundled speech sample (keeps the vocoders fast)."""
    data, rate = sf.read(WORKFLOWS / "assets" / "speech.wav", dtype="float32")
    path = tmp_path_factory.mktemp("audio") / "short.wav"
    sf.write(path, data[int(0.5 * rate): int(0.8 * rate)], rate, subtype="PCM_16")
    return path


def _run(name: str, speech: Path, tmp_path: Path, **sets):
    graph = Graph.load(WORKFLOWS / name)
    graph.set("audio.path", str(speech))
    for key, value in sets.items():
        graph.set(key.replace("__", "."), value)
    return graph, graph.execute(output_dir=tmp_path, seed=3)


def test_griffin_lim_runs_offline_on_the_bundled_sample(tmp_path):
    graph = Graph.load(WORKFLOWS / "griffin_lim.yaml")
    result = graph.execute(output_dir=tmp_path, iterations=32, seed=1)  # the phase is random: a fixed seed
    source, rate = sf.read(WORKFLOWS / "assets" / "speech.wav", dtype="float32")
    profile = get_profile("hifigan")
    frames = mel_spectrogram(torch.from_numpy(source)[None], profile).shape[-1]
    assert result.audio.sample_rate == rate == 22050
    assert result.audio.waveform.shape == (1, frames * profile.hop_length)  # frames × hop samples
    written, _ = sf.read(result.files[0], dtype="int16")
    assert written.shape == (frames * profile.hop_length,)
    # the rebuilt audio's spectrogram is close to the original's (pinned from a run; random phase is seeded)
    n = min(len(source), result.audio.waveform.shape[-1])
    convergence = spectral_convergence(torch.from_numpy(source[:n])[None], result.audio.waveform[:, :n], profile)
    assert convergence == pytest.approx(0.2554, abs=0.01)


def _fastdiff_folder(tmp_path: Path) -> Path:
    model = _fill(FastDiffModel(inner_channels=4, cond_channels=80, upsample_ratios=(8, 8, 4), lvc_layers_each_block=1,
                                kpnet_hidden_channels=8, diffusion_step_embed_dim_in=16,
                                diffusion_step_embed_dim_mid=16, diffusion_step_embed_dim_out=16))
    model.save_pretrained(tmp_path / "fastdiff")
    return tmp_path / "fastdiff"


def _paper_sampler(model, mel, betas, training, seed, shape, clamp=False):
    """The FastDiff / DiffWave sampler written out from the papers, with the graph's two seeded generators."""
    beta = torch.tensor(betas, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - beta, dim=0)
    train = torch.cumprod(1 - torch.linspace(training["beta_start"], training["beta_end"],
                                             training["num_train_timesteps"], dtype=torch.float64), dim=0)
    steps = fractional_timesteps(betas, train.float())
    x = torch.randn(shape, generator=torch.Generator().manual_seed(derive_seed(seed, "noise")))
    noise = torch.Generator().manual_seed(derive_seed(seed, "sample"))
    with torch.no_grad():
        for n in reversed(range(len(betas))):
            eps = model(sample=x, timestep=torch.tensor([steps[n]], dtype=torch.float32), mel=mel)
            x = (x - float(beta[n] / (1 - alpha_bar[n]).sqrt()) * eps) / float((1 - beta[n]).sqrt())
            if n > 0:
                sigma = float(((1 - alpha_bar[n - 1]) / (1 - alpha_bar[n]) * beta[n]).sqrt())
                x = x + sigma * torch.randn(shape, generator=noise)
            if clamp:  # DiffWave's sampler keeps the audio in [-1, 1] at every step
                x = x.clamp(-1, 1)
    return x


def test_fastdiff_workflow_equals_the_paper_sampler(speech, tmp_path):
    folder = _fastdiff_folder(tmp_path)
    graph, result = _run("fastdiff.yaml", speech, tmp_path, vocoder__source=str(folder))
    audio = graph.execute(outputs=["audio"], seed=3).audio
    mel = mel_spectrogram(torch.from_numpy(sf.read(speech, dtype="float32")[0])[None], get_profile("fastdiff"))
    frames = mel.shape[-1]
    assert audio.waveform.shape == (1, frames * 256)
    expected = _paper_sampler(FastDiffModel.from_pretrained(folder), mel, FASTDIFF_BETAS_4, FASTDIFF_TRAINING, 3,
                              (1, 1, frames * 256))
    assert torch.allclose(audio.waveform, expected.reshape(1, -1).clamp(-1, 1), atol=1e-4)
    assert Path(result.files[0]).name == "fastdiff.wav"


def test_diffwave_workflow_equals_the_paper_sampler(speech, tmp_path):
    model = _fill(DiffWaveModel(residual_layers=2, residual_channels=4, dilation_cycle_length=2))
    model.save_pretrained(tmp_path / "diffwave")
    graph, _ = _run("diffwave.yaml", speech, tmp_path, vocoder__source=str(tmp_path / "diffwave"))
    audio = graph.execute(outputs=["audio"], seed=3).audio
    mel = mel_spectrogram(torch.from_numpy(sf.read(speech, dtype="float32")[0])[None], get_profile("diffwave"))
    expected = _paper_sampler(DiffWaveModel.from_pretrained(tmp_path / "diffwave"), mel, DIFFWAVE_BETAS_6,
                              DIFFWAVE_TRAINING, 3, (1, 1, mel.shape[-1] * 256), clamp=True)
    assert torch.allclose(audio.waveform, expected.reshape(1, -1).clamp(-1, 1), atol=1e-4)


def test_wrong_schedule_length_is_refused(speech, tmp_path):
    folder = _fastdiff_folder(tmp_path)
    graph = Graph.load(WORKFLOWS / "fastdiff.yaml")
    graph.set("vocoder.source", str(folder))
    graph.set("audio.path", str(speech))
    with pytest.raises(Exception, match="fastdiff has published schedules of 3, 4, 6, 8 and 1000 steps, not 5"):
        graph.execute(steps=5)


def test_a_mel_of_another_profile_is_a_validation_error():
    graph = Graph.load(WORKFLOWS / "hifigan.yaml")
    graph.set("mel.profile", "fastdiff")
    (problem,) = graph.problems
    assert problem.code == "type-mismatch"
    assert problem.message == ("node 'wave', input 'mel' (Mel[profile=hifigan]) cannot take @mel.mel "
                               "(Mel[profile=fastdiff]): profile 'fastdiff' where 'hifigan' is expected")
    assert (problem.line, problem.column) == (23, 48)  # the "@mel.mel" of node wave


def test_convert_then_run_hifigan(speech, tmp_path, capsys):
    config = dict(resblock="1", upsample_rates=[8, 8, 4], upsample_kernel_sizes=[16, 16, 8], upsample_initial_channel=16,
                  resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]], num_mels=80)
    model = _fill(HiFiGANGenerator(**config))
    official = {}
    for name, module in model.named_modules():  # the release stores weight-normed convolutions
        if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
            v = module.weight.detach().clone()  # torch's weight_norm default: norm over all dims but 0
            dims = [d for d in range(1, v.dim())]
            official[f"{name}.weight_g"] = v.norm(dim=dims, keepdim=True)
            official[f"{name}.weight_v"] = v
            official[f"{name}.bias"] = module.bias.detach().clone()
    torch.save({"generator": official}, tmp_path / "g_02500000")
    (tmp_path / "config.json").write_text(__import__("json").dumps(config))
    assert main(["convert", "hifigan", str(tmp_path / "g_02500000"), "-o", str(tmp_path / "hifigan"),
                 "--config", str(tmp_path / "config.json")]) == 0
    graph, result = _run("hifigan.yaml", speech, tmp_path, vocoder__source=str(tmp_path / "hifigan"))
    mel = mel_spectrogram(torch.from_numpy(sf.read(speech, dtype="float32")[0])[None], get_profile("hifigan"))
    with torch.no_grad():
        expected = model(mel).reshape(1, -1)
    assert torch.allclose(result.audio.waveform, expected, atol=1e-5)
    assert result.audio.waveform.shape[-1] == mel.shape[-1] * 256

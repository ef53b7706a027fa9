"""AudioLDM as a graph against diffusers' AudioLDMPipeline, on small random components saved in the AudioLDM repos'
layout (CLAP text model and RoBERTa tokenizer, UNet, one-channel KL VAE, SpeechT5 HiFi-GAN, DDIM scheduler),
built here from configs of our own; and the Mel profile that keeps its mels away from other vocoders.

Seeds: diffusers draws only the initial latents (DDIM with eta 0), from the generator it is given;
dgraph draws them in the "noise" node, so the reference gets a generator seeded as that node is.
"""
from __future__ import annotations

import json
from pathlib import Path

import diffusers
import pytest
import soundfile
import torch
from transformers import ClapTextConfig, ClapTextModelWithProjection, RobertaTokenizer, SpeechT5HifiGan, \
    SpeechT5HifiGanConfig

from dgraph.cli import main
from dgraph.engine.problems import WorkflowError
from dgraph.errors import ConfigError
from dgraph.graph import Graph
from dgraph.node import derive_seed
from dgraph.pipelines import export_text

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
TOLERANCE = 1e-4
EMBED = 8  # CLAP projection width = the UNet's class-embedding input


def _tokenizer() -> RobertaTokenizer:
    # Byte-level BPE with two merges: mostly one token per character ("Ġ" marks a leading space).
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", *letters,
                                         *(f"Ġ{c}" for c in letters), "og", "Ġd"])}
    return RobertaTokenizer(vocab=vocab, merges=[("o", "g")], model_max_length=40)


def _randomise(model: torch.nn.Module, seed: int, scale: float = 0.1) -> None:
    # Random weights everywhere (some layers start at zero), so every path shows in the output.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)


def _text_encoder(vocab_size: int) -> ClapTextModelWithProjection:
    torch.manual_seed(0)
    config = ClapTextConfig(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=24, projection_dim=EMBED, max_position_embeddings=48,
                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return ClapTextModelWithProjection(config).eval()


def _unet(concat: bool) -> diffusers.UNet2DConditionModel:
    torch.manual_seed(1)
    # As AudioLDM: no text cross-attention (the attention blocks attend to the latents), CLAP in the class embedding.
    unet = diffusers.UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(8, 16, 16), layers_per_block=1,
        norm_num_groups=4, attention_head_dim=4, cross_attention_dim=(8, 16, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        class_embed_type="simple_projection", projection_class_embeddings_input_dim=EMBED,
        class_embeddings_concat=concat)
    _randomise(unet, 2)
    return unet.eval()


def _vae() -> diffusers.AutoencoderKL:
    torch.manual_seed(3)
    vae = diffusers.AutoencoderKL(in_channels=1, out_channels=1, latent_channels=4, block_out_channels=(4, 8),
                                  down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                                  layers_per_block=1, norm_num_groups=2, sample_size=64, scaling_factor=0.9)
    _randomise(vae, 4)
    return vae.eval()


def _vocoder(normalize_before: bool) -> SpeechT5HifiGan:
    torch.manual_seed(5)
    # AudioLDM's rates (16 kHz, hop 5·4·2·2·2 = 160, 64 bands), far fewer channels.
    config = SpeechT5HifiGanConfig(model_in_dim=64, sampling_rate=16000, upsample_initial_channel=64,
                                   upsample_rates=[5, 4, 2, 2, 2], upsample_kernel_sizes=[10, 8, 4, 4, 4],
                                   resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3], [1, 2]],
                                   normalize_before=normalize_before)
    vocoder = SpeechT5HifiGan(config).eval()
    _randomise(vocoder, 6, scale=0.05)
    with torch.no_grad():
        vocoder.mean.copy_(torch.linspace(-1, 1, 64))
        vocoder.scale.copy_(torch.linspace(0.5, 2, 64))
    return vocoder


def _scheduler() -> diffusers.DDIMScheduler:
    # AudioLDM's schedule.
    return diffusers.DDIMScheduler(beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear",
                                   clip_sample=False, set_alpha_to_one=False)


def _pipeline(folder: Path, concat: bool, normalize_before: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    pipe = diffusers.AudioLDMPipeline(vae=_vae(), text_encoder=_text_encoder(len(tokenizer)), tokenizer=tokenizer,
                                      unet=_unet(concat), scheduler=_scheduler(), vocoder=_vocoder(normalize_before))
    pipe.save_pretrained(folder / "pipe", safe_serialization=True)
    return folder / "pipe"


@pytest.fixture(scope="module")
def audioldm(tmp_path_factory) -> Path:
    return _pipeline(tmp_path_factory.mktemp("audioldm"), concat=True, normalize_before=False)


@pytest.fixture(scope="module")
def audioldm_added(tmp_path_factory) -> Path:
    # The class embedding added to (not concatenated with) the time embedding; a vocoder that normalises its input.
    return _pipeline(tmp_path_factory.mktemp("audioldm-added"), concat=False, normalize_before=True)


def _reference(folder: Path, prompts, seed: int, **options) -> torch.Tensor:
    pipe = diffusers.AudioLDMPipeline.from_pretrained(folder)
    generator = torch.Generator().manual_seed(derive_seed(seed, "noise"))
    return torch.from_numpy(pipe(prompts, generator=generator, output_type="np", **options).audios)


@pytest.mark.parametrize("guidance_scale", [1.0, 2.5])
def test_audioldm_equals_diffusers(audioldm, guidance_scale):
    prompts = ["a dog barks", "rain on a roof"]
    ours = Graph.from_pretrained(audioldm).execute(outputs=["audio"], prompt=prompts, seed=3, steps=4, seconds=0.5,
                                                   guidance_scale=guidance_scale).audio
    theirs = _reference(audioldm, prompts, 3, num_inference_steps=4, audio_length_in_s=0.5,
                        guidance_scale=guidance_scale)
    assert ours.sample_rate == 16000
    assert ours.waveform.shape == theirs.shape == (2, 8000)
    assert (ours.waveform - theirs).abs().max() < TOLERANCE
    assert theirs.abs().max() > 1e-3  # a real signal, not silence on both sides


def test_added_class_embedding_negative_prompt_and_several_clips_equal_diffusers(audioldm_added):
    # 0.37 s is 37 frames, rounded up to 38 (the VAE halves the time axis): the latents are 19 frames long.
    ours = Graph.from_pretrained(audioldm_added).execute(
        outputs=["audio", "mel"], prompt="a bell rings", negative_prompt="wind", seed=8, steps=3, seconds=0.37,
        waveforms_per_prompt=2)
    theirs = _reference(audioldm_added, "a bell rings", 8, negative_prompt="wind", num_inference_steps=3,
                        audio_length_in_s=0.37, num_waveforms_per_prompt=2)
    assert ours.mel.tensor.shape == (2, 64, 38)
    assert ours.audio.waveform.shape == theirs.shape == (2, 5920)
    assert (ours.audio.waveform - theirs).abs().max() < TOLERANCE


def test_too_short_a_clip_says_the_shortest(audioldm):
    with pytest.raises(Exception) as caught:
        Graph.from_pretrained(audioldm).execute(outputs=["audio"], prompt="x", seed=1, steps=1, seconds=0.01)
    assert "seconds=0.01 is too short: the shortest clip is 0.02 s (2 mel frames of 160 samples at 16000 Hz)" \
        in str(caught.value)


def _rewired(graph: Graph, convert: bool) -> dict:
    data = graph.to_dict()
    nodes = data["nodes"]
    nodes["hifigan"] = {"type": "load.vocoder", "inputs": {"source": "hifigan-weights", "family": "hifigan"}}
    mel = "@mel.mel"
    if convert:
        nodes["convert"] = {"type": "mel.convert", "inputs": {"mel": mel, "profile": "hifigan"}}
        mel = "@convert.mel"
    nodes["waveform"] = {"type": "vocoder.hifigan", "inputs": {"vocoder": "@hifigan.vocoder", "mel": mel}}
    return data


def test_audioldm_mel_into_another_vocoder_is_a_validation_error(audioldm):
    with pytest.raises(WorkflowError) as caught:
        Graph.load(_rewired(Graph.from_pretrained(audioldm), convert=False))
    assert [p.message for p in caught.value.problems] == [
        "node 'waveform', input 'mel' (Mel[profile=hifigan]) cannot take @mel.mel (Mel[profile=audioldm]): "
        "profile 'audioldm' where 'hifigan' is expected"]
    assert caught.value.problems[0].hint == "link an output of type Mel[profile=hifigan] or insert a conversion node"
    # through mel.convert it validates
    assert Graph.load(_rewired(Graph.from_pretrained(audioldm), convert=True)).problems == []


def test_mel_convert_gives_the_target_profile_mel():
    from dgraph.audio import AUDIOLDM, HIFIGAN, mel_spectrogram, resample
    from dgraph.types import Mel
    from nodes.audio import mel_convert

    class _Ctx:
        device = torch.device("cpu")

        @staticmethod
        def generator():
            return torch.Generator().manual_seed(0)

    t = torch.arange(22050) / 22050
    tone = 0.5 * torch.sin(2 * torch.pi * (200 + 1500 * t) * t)[None]  # a 1 s chirp
    source = Mel(mel_spectrogram(resample(tone, 22050, 16000), AUDIOLDM), AUDIOLDM)
    converted = mel_convert(_Ctx(), source, "hifigan", iterations=32)
    direct = mel_spectrogram(tone, HIFIGAN)
    assert converted.profile == HIFIGAN and converted.tensor.shape == direct.shape
    # Griffin-Lim loses the phase, not the spectral envelope: the log-mels agree to a small part of their range.
    inner = (slice(None), slice(None), slice(4, -4))
    error = (converted.tensor[inner] - direct[inner]).abs().mean()
    assert error < 0.1 * (direct.max() - direct.min())
    assert mel_convert(_Ctx(), converted, "hifigan").tensor is converted.tensor  # already there: unchanged


def test_vocoder_of_another_profile_is_refused_at_load(audioldm, tmp_path):
    config = json.loads((audioldm / "vocoder" / "config.json").read_text())
    folder = tmp_path / "vocoder"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**config, "model_in_dim": 80}))
    from dgraph.models.vocoders import load_speecht5_hifigan

    with pytest.raises(ConfigError) as caught:
        load_speecht5_hifigan(folder)
    assert str(caught.value) == (f"{folder}: this vocoder reads 80 mel bands at 16000 Hz with a hop of 160, but the "
                                 f"'audioldm' profile has 64 bands at 16000 Hz with a hop of 160; choose the profile "
                                 f"it was trained on")


COMPONENTS = {"text_encoder": "text_encoder", "tokenizer": "tokenizer", "unet": "unet", "vae": "vae",
              "scheduler": "scheduler", "vocoder": "vocoder"}


def test_shipped_workflow_is_what_export_writes():
    assert (WORKFLOWS / "audioldm.yaml").read_text() == export_text("AudioLDMPipeline",
                                                                    "hf://cvssp/audioldm-s-full-v2", COMPONENTS)


def test_shipped_workflow_runs_on_local_components(audioldm, tmp_path):
    graph = Graph.load(WORKFLOWS / "audioldm.yaml")
    for name in COMPONENTS:
        graph.set(f"{name}.{'config' if name == 'scheduler' else 'source'}", str(audioldm / name))
    result = graph.execute(outputs=["audio", "files"], prompt="a dog barks", seed=1, steps=2, seconds=0.3,
                           output_dir=tmp_path)
    waveform, rate = soundfile.read(result.files[0])
    assert rate == 16000 and waveform.shape == (4800,)


def test_export_and_run_a_pipeline_folder_writes_a_wav(audioldm, tmp_path):
    out = tmp_path / "audioldm.yaml"
    assert main(["export", str(audioldm), "-o", str(out)]) == 0
    assert Graph.load(out).to_dict() == Graph.from_pretrained(audioldm).to_dict()
    assert main(["run", str(audioldm), "--prompt", "a dog barks", "--seconds", "0.4", "--steps", "2",
                 "-o", str(tmp_path / "wav"), "-q"]) == 0
    waveform, rate = soundfile.read(tmp_path / "wav" / "audioldm.wav")
    assert rate == 16000 and waveform.shape == (6400,)


def test_pipeline_repo_from_the_hub_cache(audioldm, hub_cache):
    hub_cache.add_folder("cvssp/tiny-audioldm", audioldm)
    graph = Graph.from_pretrained("hf://cvssp/tiny-audioldm")
    assert graph.to_dict()["nodes"]["vocoder"]["inputs"]["source"] == "hf://cvssp/tiny-audioldm/vocoder"
    audio = graph.execute(outputs=["audio"], prompt="x", steps=1, seconds=0.2).audio
    assert audio.waveform.shape == (1, 3200)

"""Audio nodes: files, mel front-ends, vocoders (FastDiff, DiffWave, HiFi-GAN, Griffin-Lim) and waveform edits.

A Mel's type carries its profile, and each vocoder node states the profile it was trained on, so wiring
a FastDiff mel into HiFi-GAN is a validation error before anything runs, not noise at the end;
`mel.convert` between them is the explicit way across.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Optional

import torch
from pydantic import Field

from dgraph.audio import (get_profile, griffin_lim, load_audio, mel_spectrogram, pad_or_crop,
                          peak_normalize, encode_audio, resample, to_mono, trim_silence)
from dgraph.errors import DgraphError, SourceError
from dgraph.models.auto import DTYPES, load_model
from dgraph.node import Context, node
from dgraph.rules import ParamFromLiteral
from dgraph.sampling import VocoderDenoiser
from dgraph.schedulers import (DIFFWAVE_BETAS_6, DIFFWAVE_TRAINING, FASTDIFF_BETAS, FASTDIFF_TRAINING, DDPMScheduler,
                               ExplicitBetaSchedule)
from dgraph.types import Audio, Denoiser, Latent, Mel, Param, Scheduler, Source, Vocoder

ProfileName = Literal["fastdiff", "hifigan", "diffwave", "audioldm"]
SampleRate = Annotated[int, Field(ge=1000, le=384_000)]
_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\.(wav|flac)$")
FAMILY_CLASSES = {"fastdiff": "FastDiffModel", "diffwave": "DiffWaveModel", "hifigan": "HiFiGANGenerator"}


# The output's type refined with the profile a literal input names (what validation compares).
MEL_PROFILE = ParamFromLiteral(output="mel", port="Mel", param="profile", literal="profile")


@node("audio.load", description="Read a wav, flac or ogg file (optionally resampled and mixed to mono).")
def audio_load(ctx: Context, path: str, sample_rate: Optional[SampleRate] = None, mono: bool = True) -> Audio:
    """path: the audio file (relative to the current folder, else to the workflow's folder)
    sample_rate: resample to this rate (default: keep the file's)
    mono: average the channels into one
    """
    waveform, rate = load_audio(ctx.resolve_path(path), sample_rate=sample_rate, mono=mono)
    return Audio(waveform.to(ctx.device), rate)


@node("audio.save", description="Write audio as wav or flac (16/24-bit PCM or float), atomically.", output="paths",
      effect=True)
def audio_save(ctx: Context, audio: Audio, name: str = "audio.wav",
               encoding: Literal["pcm16", "pcm24", "float"] = "pcm16") -> list[str]:
    """name: file name inside the output folder (.wav or .flac); a batch writes NAME_000.wav, NAME_001.wav...
    (a name already taken gets the next free number; `--overwrite` replaces instead)
    encoding: sample format
    """
    if not _NAME.match(name):
        raise DgraphError(f"name {name!r}: use letters, digits, '_', '-', '.', '/' and end in .wav or .flac")
    waveform = audio.waveform.detach().cpu()
    stem, suffix = str(Path(name).with_suffix("")), Path(name).suffix
    payloads = [encode_audio(row[None], audio.sample_rate, suffix, encoding, name=name) for row in waveform]
    return [str(path) for path in ctx.write_files(stem, suffix, payloads, plain_single=True)]


@node("audio.mel", description="Mel spectrogram with a named front-end profile.", output="mel",
      refine=MEL_PROFILE)
def audio_mel(audio: Audio, profile: ProfileName = "hifigan") -> Mel:
    """profile: the front-end of the vocoder that will read this mel (fastdiff, hifigan, diffwave, audioldm)"""
    chosen = get_profile(profile)
    if audio.sample_rate != chosen.sample_rate:
        raise DgraphError(f"the {profile} profile expects {chosen.sample_rate} Hz audio, got {audio.sample_rate} Hz; "
                          f"load it with sample_rate: {chosen.sample_rate}")
    return Mel(mel_spectrogram(audio.waveform, chosen), chosen)


@node("audio.normalize", description="Scale each waveform so its peak is `peak`.")
def audio_normalize(audio: Audio, peak: Annotated[float, Field(gt=0, le=1)] = 0.95) -> Audio:
    return Audio(peak_normalize(audio.waveform, peak), audio.sample_rate)


@node("audio.trim", description="Cut leading and trailing silence.")
def audio_trim(audio: Audio, threshold_db: Annotated[float, Field(le=0)] = -40.0) -> Audio:
    return Audio(trim_silence(audio.waveform, audio.sample_rate, threshold_db), audio.sample_rate)


@node("audio.pad_or_crop", description="Pad with silence or crop to a length in seconds.")
def audio_pad_or_crop(audio: Audio, seconds: Annotated[float, Field(gt=0, le=3600)]) -> Audio:
    return Audio(pad_or_crop(audio.waveform, int(round(seconds * audio.sample_rate))), audio.sample_rate)


@node("audio.mono", description="Mix the channels (rows) of a waveform down to one.")
def audio_mono(audio: Audio) -> Audio:
    return Audio(to_mono(audio.waveform), audio.sample_rate)


@node("load.vocoder", description="Load a vocoder (FastDiff, DiffWave, HiFi-GAN) from a converted folder.",
      refine=ParamFromLiteral(output="vocoder", port="Vocoder", param="profile", literal="family"))
def load_vocoder(ctx: Context, source: Source, family: Literal["fastdiff", "diffwave", "hifigan"],
                 dtype: Literal["float32", "float16", "bfloat16"] = "float32") -> Vocoder:
    """source: a folder written by `dgraph convert` (config.json + safetensors), hf://repo/sub@rev, or pkg://
    family: which vocoder this is; it fixes the mel profile the vocoder reads
    """
    resolved = ctx.resolve_source(source)
    if resolved.kind == "folder" and not Path(resolved.location).exists():
        raise SourceError(f"no {family} weights at {resolved.location}: convert the official checkpoint with "
                          f"`dgraph convert {family} CHECKPOINT -o {resolved.location}`, or point "
                          f"--set vocoder.source=... at a converted folder or hf://owner/repo/sub@rev")
    model = load_model(resolved, expect=(FAMILY_CLASSES[family],), torch_dtype=DTYPES[dtype], device=ctx.device)
    if model.mel_profile.name != family:
        raise DgraphError(f"{source}: this {family} checkpoint reads the {model.mel_profile.name!r} mel profile")
    return model.eval().requires_grad_(False)


def _check_profile(model, mel: Mel) -> None:
    if mel.profile is not None and model.mel_profile != mel.profile:
        raise DgraphError(f"the mel was made with the {mel.profile.name!r} profile, but this vocoder was trained on "
                          f"{model.mel_profile.name!r}: compute the mel with audio.mel profile {model.mel_profile.name}")


@node("vocoder.fastdiff_denoiser", description="FastDiff's noise predictor conditioned on a mel, as a denoiser.",
      output="denoiser")
def fastdiff_denoiser(vocoder: Annotated[Vocoder, Param(profile="fastdiff")],
                      mel: Annotated[Mel, Param(profile="fastdiff")]) -> Denoiser:
    _check_profile(vocoder, mel)
    return VocoderDenoiser(vocoder, mel.tensor)


@node("vocoder.diffwave_denoiser", description="DiffWave's noise predictor conditioned on a mel, as a denoiser.",
      output="denoiser")
def diffwave_denoiser(vocoder: Annotated[Vocoder, Param(profile="diffwave")],
                      mel: Annotated[Mel, Param(profile="diffwave")]) -> Denoiser:
    _check_profile(vocoder, mel)
    return VocoderDenoiser(vocoder, mel.tensor)


@node("vocoder.noise", random=True, description="Initial noise for a diffusion vocoder: frames × hop samples.")
def vocoder_noise(ctx: Context, vocoder: Vocoder, mel: Mel) -> Latent:
    frames = mel.tensor.shape[-1]
    noise = torch.randn((mel.tensor.shape[0], 1, frames * vocoder.hop_length), generator=ctx.generator())
    return Latent(noise.to(ctx.device))


@node("vocoder.schedule", description="A diffusion vocoder's scheduler with its published short schedule.",
      output="scheduler")
def vocoder_schedule(family: Literal["fastdiff", "diffwave"], steps: int = 4) -> Scheduler:
    """steps: FastDiff 3, 4, 6, 8 or 1000; DiffWave 6 or 50"""
    training, short = (FASTDIFF_TRAINING, FASTDIFF_BETAS) if family == "fastdiff" else (DIFFWAVE_TRAINING, {6: DIFFWAVE_BETAS_6})
    full = training["num_train_timesteps"]
    if steps not in short and steps != full:
        raise DgraphError(f"{family} has published schedules of {', '.join(map(str, sorted(short)))} and {full} steps, "
                          f"not {steps}")
    return ExplicitBetaSchedule(DDPMScheduler(**training, clip_sample=False), short.get(steps))


@node("audio.from_latent", description="Read a diffusion vocoder's samples as audio.")
def audio_from_latent(latents: Latent, vocoder: Vocoder) -> Audio:
    return Audio(latents.tensor.reshape(latents.tensor.shape[0], -1).float().clamp(-1, 1),
                 vocoder.mel_profile.sample_rate)


@node("vocoder.hifigan", description="HiFi-GAN: a mel to audio in one pass.")
def vocoder_hifigan(vocoder: Annotated[Vocoder, Param(profile="hifigan")],
                    mel: Annotated[Mel, Param(profile="hifigan")]) -> Audio:
    _check_profile(vocoder, mel)
    parameter = next(vocoder.parameters())
    with torch.no_grad():
        audio = vocoder(mel.tensor.to(parameter.device, parameter.dtype))
    return Audio(audio.reshape(audio.shape[0], -1).float(), vocoder.mel_profile.sample_rate)


@node("vocoder.griffin_lim", random=True, description="Griffin-Lim: audio from any mel, no weights needed.")
def vocoder_griffin_lim(ctx: Context, mel: Mel, iterations: Annotated[int, Field(ge=1, le=1000)] = 60,
                        momentum: Annotated[float, Field(ge=0, lt=1)] = 0.99) -> Audio:
    """iterations: phase-retrieval iterations (more is cleaner and slower)"""
    waveform = griffin_lim(mel.tensor, mel.profile, n_iter=iterations, momentum=momentum, generator=ctx.generator())
    return Audio(waveform, mel.profile.sample_rate)


@node("mel.convert", random=True, output="mel", refine=MEL_PROFILE,
      description="A mel in another front-end profile: Griffin-Lim back to audio, resample, the target profile's mel.")
def mel_convert(ctx: Context, mel: Mel, profile: ProfileName,
                iterations: Annotated[int, Field(ge=1, le=1000)] = 60) -> Mel:
    """Lossy (the phase is estimated), but it gives the target vocoder the mel it was trained on; a mel already
    in the target profile passes through unchanged.

    profile: the profile of the vocoder that will read the mel
    iterations: Griffin-Lim iterations for the phase estimate
    """
    target = get_profile(profile)
    if mel.profile is None:
        raise DgraphError("mel.convert: this mel carries no profile, so there is nothing to convert from")
    if mel.profile.compatible_with(target):
        return Mel(mel.tensor, target)
    waveform = griffin_lim(mel.tensor, mel.profile, n_iter=iterations, generator=ctx.generator())
    waveform = resample(waveform, mel.profile.sample_rate, target.sample_rate)
    return Mel(mel_spectrogram(waveform, target).to(mel.tensor.device), target)

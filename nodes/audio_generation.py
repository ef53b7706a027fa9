"""Audio from text by latent diffusion (AudioLDM): latent noise sized by a duration, the autoencoder's mel,
and the SpeechT5 HiFi-GAN that reads it.

AudioLDM's latents are mel spectrograms seen as one-channel images, (time frames, mel bands); its VAE
decodes them into mels of its own profile, which `vocoder.speecht5_hifigan` checks like every vocoder node.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

import torch
from pydantic import Field

from dgraph.audio import get_profile, latent_frames
from dgraph.errors import DgraphError
from dgraph.models.auto import DTYPES
from dgraph.models.vocoders import load_speecht5_hifigan
from dgraph.node import Context, node
from dgraph.rules import ParamFromLiteral
from dgraph.types import VAE, Audio, Latent, Mel, Param, Source, TextEmbedding, UNet, Vocoder

from .models import Dtype, decode_latents
from .sampling import _vae_geometry

SpeechT5Profile = Literal["audioldm"]
Seconds = Annotated[float, Field(gt=0, le=3600)]
Count = Annotated[int, Field(ge=1, le=1024)]


def _profile_refine(output: str) -> ParamFromLiteral:
    # Without the literal the default applies: "audioldm", the only SpeechT5 profile dgraph knows.
    return ParamFromLiteral(output=output, port={"mel": "Mel", "vocoder": "Vocoder"}[output], param="profile",
                            literal="profile", default="audioldm")


@node("load.speecht5_hifigan", output="vocoder", refine=_profile_refine("vocoder"),
      description="Load a SpeechT5 HiFi-GAN vocoder (AudioLDM's vocoder/) through transformers.")
def load_speecht5_hifigan_node(ctx: Context, source: Source, profile: SpeechT5Profile = "audioldm",
                               dtype: Dtype = "float32", allow_pickle: bool = False) -> Vocoder:
    """source: the folder holding the vocoder's config.json and model.safetensors
    profile: the mel front-end it was trained on (its bands, rate and hop are checked against config.json)
    allow_pickle: accept a pickled pytorch_model.bin (read with weights_only=True) when no safetensors exist
    """
    vocoder = load_speecht5_hifigan(ctx.resolve_source(source), profile, torch_dtype=DTYPES[dtype], device=ctx.device,
                                    allow_pickle=allow_pickle)
    return vocoder.requires_grad_(False)


@node("latent.noise_for_audio", random=True, description="Initial latents for a clip of `seconds` "
                                                         "(time frames × mel bands, in the VAE's latent space).")
def noise_for_audio(ctx: Context, unet: UNet, vae: VAE, vocoder: Vocoder, seconds: Seconds = 5.12,
                    context: Optional[TextEmbedding] = None, batch_size: Count = 1,
                    waveforms_per_prompt: Count = 1) -> Latent:
    """Drawn on the CPU from the node's seed, so a seed gives the same clip on any device.

    seconds: clip length; the frame count is rounded up to a multiple of the VAE's factor
    context: text conditioning; its batch (the number of prompts) replaces batch_size
    waveforms_per_prompt: clips for each prompt
    """
    channels, factor, scaling, name = _vae_geometry(vae)
    profile = vocoder.mel_profile
    if profile.n_mels % factor:
        raise DgraphError(f"the vocoder reads {profile.n_mels} mel bands, not a multiple of the VAE's factor {factor}")
    if context is not None:
        batch_size = context.hidden_states.shape[0]
    frames = latent_frames(seconds, profile, factor)
    shape = (batch_size * waveforms_per_prompt, unet.config.get("in_channels", channels), frames // factor,
             profile.n_mels // factor)
    noise = torch.randn(shape, generator=ctx.generator(), dtype=torch.float32)
    return Latent(noise.to(ctx.device), scaling_factor=scaling, autoencoder=name)


@node("vae.decode_mel", output="mel", refine=_profile_refine("mel"),
      description="Decode latents into mel spectrograms (AudioLDM's autoencoder: one channel, time × mel bands).")
def vae_decode_mel(vae: VAE, latents: Latent, profile: SpeechT5Profile = "audioldm") -> Mel:
    """profile: the front-end whose mels this autoencoder was trained on"""
    chosen = get_profile(profile)
    decoded = decode_latents(vae, latents)  # (batch, 1, frames, mel bands)
    if decoded.shape[1] != 1 or decoded.shape[-1] != chosen.n_mels:
        raise DgraphError(f"this autoencoder decodes {list(decoded.shape[1:])} (channels, frames, bands); the "
                          f"{profile!r} profile needs one channel of {chosen.n_mels} mel bands")
    return Mel(decoded[:, 0].transpose(1, 2), chosen)


@node("vocoder.speecht5_hifigan", description="SpeechT5's HiFi-GAN (AudioLDM's vocoder): a mel to audio in one pass.")
def vocoder_speecht5_hifigan(vocoder: Annotated[Vocoder, Param(profile="audioldm")],
                             mel: Annotated[Mel, Param(profile="audioldm")]) -> Audio:
    if mel.profile is not None and vocoder.mel_profile != mel.profile:
        raise DgraphError(f"the mel was made with the {mel.profile.name!r} profile, but this vocoder was trained on "
                          f"{vocoder.mel_profile.name!r}: put mel.convert (profile {vocoder.mel_profile.name}) "
                          f"between them")
    parameter = next(vocoder.parameters())
    with torch.no_grad():
        audio = vocoder(mel.tensor.to(parameter.device, parameter.dtype))
    return Audio(audio.reshape(audio.shape[0], -1).float(), vocoder.mel_profile.sample_rate)

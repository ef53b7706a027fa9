"""The SpeechT5 HiFi-GAN vocoder (AudioLDM's `vocoder` component), run through transformers' `SpeechT5HifiGan`.

The class and its checkpoints belong to transformers (config.json with model_type "hifigan" or "speecht5_hifigan",
model.safetensors), and transformers is already what loads dgraph's text encoders, so the weights load
through the same offline, safetensors-only path (`dgraph.text.load_transformers_model`) instead of
through a second copy of the network. This module adds what dgraph's vocoder ports need beside the
network: the mel profile it reads, its hop and sample rate, and dgraph's mel layout.
"""
from __future__ import annotations

import math
import os

import torch
from torch import nn

from ...audio.profile import MelProfile, get_profile
from ...configuration import read_json
from ...errors import ConfigError
from ...hub import Source, fetch_file


# The published AudioLDM repos say "hifigan"; transformers 5 writes "speecht5_hifigan".
MODEL_TYPES = ("hifigan", "speecht5_hifigan")


class SpeechT5HiFiGANVocoder(nn.Module):
    """transformers' `SpeechT5HifiGan` with the mel profile it was trained on.

    forward(mel): `[batch, n_mels, frames]` log-mel (dgraph's layout) -> `[batch, 1, frames * hop_length]` audio.
    """

    def __init__(self, model: nn.Module, profile: MelProfile):
        super().__init__()
        self.model, self._profile = model, profile

    @property
    def mel_profile(self) -> MelProfile:
        """The mel front-end this vocoder reads."""
        return self._profile

    @property
    def hop_length(self) -> int:
        """Audio samples per mel frame."""
        return math.prod(self.model.config.upsample_rates)

    @property
    def config(self):
        return self.model.config

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        # SpeechT5HifiGan reads (batch, frames, n_mels) and returns (batch, samples).
        return self.model(mel.transpose(1, 2)).unsqueeze(1)


def check_against_profile(config: dict, profile: MelProfile, where: str) -> None:
    """A ConfigError unless a SpeechT5HifiGan config's mel bands, sample rate and hop are the profile's."""
    hop = math.prod(config.get("upsample_rates", ()))
    found = (config.get("model_in_dim"), config.get("sampling_rate"), hop)
    wanted = (profile.n_mels, profile.sample_rate, profile.hop_length)
    if found != wanted:
        raise ConfigError(f"{where}: this vocoder reads {found[0]} mel bands at {found[1]} Hz with a hop of {found[2]}, "
                          f"but the {profile.name!r} profile has {wanted[0]} bands at {wanted[1]} Hz with a hop of "
                          f"{wanted[2]}; choose the profile it was trained on")


def load_speecht5_hifigan(pretrained: str | os.PathLike | Source, profile: str | MelProfile = "audioldm",
                          torch_dtype: torch.dtype | str | None = None, device: torch.device | str | None = None,
                          allow_pickle: bool = False) -> SpeechT5HiFiGANVocoder:
    """Load a SpeechT5 HiFi-GAN from a folder, hf:// repo or pkg:// folder, checked against `profile`."""
    import transformers

    # dgraph.text reads weight files through dgraph.models: imported here, not at the top, to stay acyclic.
    from ...text import as_dtype, load_transformers_model
    from ...text.files import resolve_source

    source = resolve_source(pretrained, None, None)
    chosen = get_profile(profile)
    config = read_json(fetch_file(source, "config.json"))
    if config.get("model_type") not in MODEL_TYPES:
        raise ConfigError(f"{source}: config.json has model_type {config.get('model_type')!r}, not 'hifigan'; "
                          f"is this a SpeechT5HifiGan folder (AudioLDM's vocoder/)?")
    check_against_profile(config, chosen, str(source))
    model = load_transformers_model(source, transformers.SpeechT5HifiGan, as_dtype(torch_dtype), device,
                                    allow_pickle=allow_pickle)
    return SpeechT5HiFiGANVocoder(model, chosen).eval()

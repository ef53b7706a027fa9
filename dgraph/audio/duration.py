"""How long a generated clip is: seconds -> mel frames -> latent frames, as AudioLDM's pipeline counts them."""
from __future__ import annotations

import math

from ..errors import DgraphError
from .profile import MelProfile


def latent_frames(seconds: float, profile: MelProfile, factor: int) -> int:
    """Mel frames to generate for `seconds` of audio, rounded up to a multiple of the autoencoder's `factor`.

    Frames are `int(seconds / (hop / sample_rate))`, the count diffusers' AudioLDMPipeline uses, so the
    same duration gives the same latent shape; the vocoder's output is cut back to `seconds` afterwards.
    """
    seconds_per_frame = profile.hop_length / profile.sample_rate
    shortest = seconds_per_frame * factor
    if seconds < shortest:
        raise DgraphError(f"seconds={seconds} is too short: the shortest clip is {shortest:g} s "
                          f"({factor} mel frames of {profile.hop_length} samples at {profile.sample_rate} Hz)")
    frames = int(seconds / seconds_per_frame)
    return int(math.ceil(frames / factor)) * factor

"""dgraph: diffusion models for audio and vision, as typed workflow graphs."""
__version__ = "0.1.0"

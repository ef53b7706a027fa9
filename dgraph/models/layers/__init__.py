"""Building blocks shared by dgraph's models, with diffusers' parameter names."""
from .activations import activation
from .attention import AddedKVAttention, Attention
from .embeddings import AttentionPooling, TextTimeEmbedding, TimestepEmbedding, Timesteps, timestep_embedding
from .resnet import Downsample2D, ResnetBlock2D, TemporalConvLayer, Upsample2D
from .transformer import BasicTransformerBlock, FeedForward, GEGLU, Transformer2D, TransformerTemporal

__all__ = ["activation", "AddedKVAttention", "Attention", "AttentionPooling", "TextTimeEmbedding",
           "TimestepEmbedding", "Timesteps", "timestep_embedding", "Downsample2D", "ResnetBlock2D",
           "TemporalConvLayer", "Upsample2D", "BasicTransformerBlock", "FeedForward", "GEGLU", "Transformer2D",
           "TransformerTemporal"]

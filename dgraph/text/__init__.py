"""Tokenizers and text encoders (CLIP text, T5 encoder, BERT family, CLAP text, LDM-BERT) loaded from any dgraph
source."""
from .encoders import TextEncoder, as_dtype, embed, encode, encode_clip, load_text_encoder, load_transformers_model
from .sdxl import encode_sdxl
from .tokenizers import TokenBatch, load_tokenizer, tokenize

__all__ = ["TextEncoder", "TokenBatch", "as_dtype", "embed", "encode", "encode_clip", "encode_sdxl", "load_text_encoder", "load_transformers_model",
           "load_tokenizer", "tokenize"]

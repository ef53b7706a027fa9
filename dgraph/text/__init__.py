"""Tokenizers and text encoders (CLIP text, T5 encoder, BERT family, LDM-BERT) loaded from any dgraph source."""
from .encoders import TextEncoder, as_dtype, encode, load_text_encoder
from .tokenizers import TokenBatch, load_tokenizer, tokenize

__all__ = ["TextEncoder", "TokenBatch", "as_dtype", "encode", "load_text_encoder", "load_tokenizer", "tokenize"]

"""One thread at a time inside transformers' lazy imports.

transformers exposes its classes through a lazy module that imports a submodule on the first attribute
access, and `from_pretrained` of its Auto classes imports more the same way. Two threads doing that at
once (a tokenizer and a text encoder loading side by side under the parallel executor) can see a
half-imported submodule: "ImportError: cannot import name 'AutoTokenizer'". Loads that go through
transformers hold this lock.
"""
from __future__ import annotations

import threading

TRANSFORMERS_LOCK = threading.RLock()

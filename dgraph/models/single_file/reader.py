"""Reading a single-file checkpoint lazily: names and shapes from the safetensors header, tensors on demand.

Only safetensors is read. A `.ckpt` / `.pt` / `.pth` / `.bin` single file is a pickle, which can run code
when loaded; it is refused with a message that says how to convert it.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ...errors import WeightsError

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


class Checkpoint:
    """One safetensors file: `shapes` (every tensor's name and shape, from the header) and `tensor(name)`,
    which reads that tensor alone. Use as a context manager, or call `close()`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        refuse_pickle(self.path)
        if not self.path.is_file():
            raise WeightsError(f"{self.path}: no such checkpoint file")
        from safetensors import safe_open

        try:
            self._file = safe_open(str(self.path), framework="pt", device="cpu")
        except Exception as error:  # a truncated or foreign file is the user's, not a bug
            raise WeightsError(f"{self.path}: not a readable safetensors file ({error})") from None
        self.shapes: dict[str, tuple[int, ...]] = {
            name: tuple(self._file.get_slice(name).get_shape()) for name in self._file.keys()}

    def tensor(self, name: str) -> torch.Tensor:
        return self._file.get_tensor(name)

    def close(self) -> None:
        self._file = None

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def refuse_pickle(path: Path, where: object = None) -> None:
    """A WeightsError for a pickled single file (by its suffix), saying how to make a safetensors one;
    `where` names it in the message (default: the path)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise WeightsError(
            f"{where or path}: a {path.suffix} checkpoint is a pickle, which can run code when loaded; dgraph reads "
            f"single-file checkpoints only as safetensors. Convert it once where you trust the file, e.g. "
            f"python -c \"import torch, safetensors.torch as st; sd = torch.load('{path.name}', weights_only=True); "
            f"sd = sd.get('state_dict', sd); st.save_file({{k: v.contiguous() for k, v in sd.items() "
            f"if isinstance(v, torch.Tensor)}}, '{path.stem}.safetensors')\", and point at the .safetensors file")

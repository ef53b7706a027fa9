"""dgraph: diffusion models for audio and vision, as typed workflow graphs.

    from dgraph import Graph
    result = Graph.load("workflows/ddim.yaml").execute(seed=3)
"""
from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: `dgraph --help` starts with this module
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"
__all__ = ["Graph", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import dgraph.schedulers` does not pull in the engine.
    if name == "Graph":
        from .graph import Graph

        return Graph
    raise AttributeError(f"module 'dgraph' has no attribute {name!r}")

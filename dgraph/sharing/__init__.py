"""Sharing workflows on the Hugging Face Hub: what a workflow reads (`sources`), lock files that pin it
(`lock`), publishing it with a model card (`push`, `card`), fetching what it needs (`pull`) and finding the
workflow of a repo (`repo`).

Built on the engine (a loaded `Graph`) and `dgraph.hub`; never on the node catalogue: node inputs typed
`Source`, and a node's `variant` / `allow_pickle` literals, say what a node will read.
"""
from ..errors import DgraphError


class ShareError(DgraphError):
    """A push, lock or pull that cannot be done as asked: a file outside the workflow's folder, a secret,
    a source that drifted from its lock."""

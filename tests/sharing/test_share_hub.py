"""push, lock, pull and run-by-repo against a Hub server on 127.0.0.1 (tests/hub_server.py), through
huggingface_hub's own client: push then run and pull what was pushed, lock then drift, a push that would
leave the workflow's folder, offline after pull."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import diffusers
import pytest
import torch
import yaml

from conftest import go_offline
from dgraph.cli import main
from dgraph.graph import Graph
from hub_server import Blob

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
REPO = "acme/tiny-ddpm"


@pytest.fixture(scope="module")
def unet_folder(tmp_path_factory) -> Path:
    """A small random UNet and DDPM scheduler saved by diffusers, with an fp16 variant and a pickle beside the
    plain safetensors (a pull must fetch only the plain ones)."""
    folder = tmp_path_factory.mktemp("tiny-ddpm")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=3, out_channels=3, layers_per_block=1,
                                 block_out_channels=(8, 16), norm_num_groups=4,
                                 down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    unet.save_pretrained(folder)
    unet.save_pretrained(folder, variant="fp16")
    unet.save_pretrained(folder, safe_serialization=False)
    diffusers.DDPMScheduler(num_train_timesteps=1000).save_pretrained(folder)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# tiny ddpm\n")
    return folder


def _upload_source_repo(unet_folder: Path) -> str:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(REPO)
    return api.upload_folder(folder_path=str(unet_folder), repo_id=REPO, commit_message="weights").oid


def _workflow(folder: Path, unet: str = f"hf://{REPO}") -> Path:
    """workflows/ddpm.yaml reading its UNet from `unet` and its scheduler from a local folder beside it."""
    data = yaml.safe_load((WORKFLOWS / "ddpm.yaml").read_text())
    data["nodes"]["unet"]["inputs"]["source"] = unet
    data["nodes"]["scheduler"]["inputs"]["config"] = "./scheduler"
    data["inputs"]["steps"]["default"] = 2
    folder.mkdir(parents=True, exist_ok=True)
    diffusers.DDPMScheduler(num_train_timesteps=1000).save_pretrained(folder / "scheduler")
    path = folder / "ddpm.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lock_records_commit_files_sizes_sha256_node_versions(hub, unet_folder, tmp_path, capsys):
    commit = _upload_source_repo(unet_folder)
    workflow = _workflow(tmp_path / "wf")
    assert main(["lock", str(workflow)]) == 0
    lock = json.loads((tmp_path / "wf" / "ddpm.lock.json").read_text())
    weights = unet_folder / "diffusion_pytorch_model.safetensors"
    assert lock["sources"] == {f"hf://{REPO}": {
        "repo": REPO, "path": "", "revision": None, "commit": commit, "variant": None,
        "files": [{"path": "config.json", "size": (unet_folder / "config.json").stat().st_size, "sha256": None},
                  {"path": "diffusion_pytorch_model.safetensors", "size": weights.stat().st_size,
                   "sha256": _sha256(weights)},
                  {"path": "scheduler_config.json", "size": (unet_folder / "scheduler_config.json").stat().st_size,
                   "sha256": None}]}}
    assert lock["nodes"]["load.unet"] == {"version": 1, "pack": "builtin"}
    assert lock["dgraph"] == "0.1.0" and lock["workflow"] == "ddpm.yaml"
    assert main(["lock", str(workflow), "--check"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{workflow}: matches {tmp_path / 'wf' / 'ddpm.lock.json'}"


def test_drift_after_lock_is_reported_and_refused_by_locked(hub, unet_folder, tmp_path, capsys):
    old = _upload_source_repo(unet_folder)
    workflow = _workflow(tmp_path / "wf")
    assert main(["lock", str(workflow)]) == 0
    weights = (unet_folder / "diffusion_pytorch_model.safetensors").read_bytes()
    new = hub.state.commit(REPO, "main", {"diffusion_pytorch_model.safetensors": Blob(weights + b" ", lfs=True)},
                           "retrained")
    capsys.readouterr()
    assert main(["lock", str(workflow), "--check"]) == 1
    change = (f"hf://{REPO}: revision 'main' now resolves to commit {new}, the lock has {old} "
              f"(diffusion_pytorch_model.safetensors size {len(weights)} -> {len(weights) + 1})")
    assert capsys.readouterr().out.splitlines()[0] == f"drift: {change}"
    assert main(["run", str(workflow), "--locked", "-q", "--seed", "1", "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"differs from its lock {tmp_path / 'wf' / 'ddpm.lock.json'}:\n  - {change}\n" in err
    assert list((tmp_path / "out").glob("*")) == []  # refused before anything ran
    # Without --locked the lock still pins the run: the weights come from the locked commit.
    hub.state.downloads.clear()
    assert main(["run", str(workflow), "-q", "--seed", "1", "-o", str(tmp_path / "out")]) == 0
    assert f"{REPO}/diffusion_pytorch_model.safetensors@{old}" in hub.state.downloads
    assert not any(new in d for d in hub.state.downloads)


def test_push_dry_run_lists_files_and_sizes(hub, unet_folder, tmp_path, capsys):
    _upload_source_repo(unet_folder)
    workflow = _workflow(tmp_path / "wf")
    (tmp_path / "wf" / "unrelated.txt").write_text("not named by the workflow")
    capsys.readouterr()
    assert main(["push", str(workflow), "me/ddpm", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "would upload to me/ddpm:"
    names = [line.split()[-1] for line in lines[1:-1]]
    assert names == ["ddpm.yaml", "scheduler/scheduler_config.json", "README.md", "ddpm.lock.json"]
    size = (tmp_path / "wf" / "scheduler" / "scheduler_config.json").stat().st_size
    assert lines[2] == f"  {f'{size / 1000:.1f} kB' if size >= 1000 else f'{size} B':>10}  scheduler/scheduler_config.json"
    assert lines[-1].endswith(f"total, 4 files")
    assert "me/ddpm" not in hub.state.repos  # nothing sent
    # A lock beside the workflow is pushed as it is, but never one that no longer fits the workflow.
    assert main(["lock", str(workflow)]) == 0
    data = yaml.safe_load(workflow.read_text())
    data["nodes"]["unet"]["inputs"]["variant"] = "fp16"
    workflow.write_text(yaml.safe_dump(data, sort_keys=False))
    capsys.readouterr()
    assert main(["push", str(workflow), "me/ddpm", "--dry-run"]) == 1
    assert capsys.readouterr().err == (
        f"error: cannot push {workflow}: its lock {tmp_path / 'wf' / 'ddpm.lock.json'} is out of date:\n"
        f"  - hf://{REPO}: variant 'fp16', the lock has None\nrun `dgraph lock {workflow}` first (or delete it: "
        "push then locks the workflow afresh)\n")


def test_push_refuses_files_outside_the_folder_and_secrets(hub, unet_folder, tmp_path, capsys):
    _upload_source_repo(unet_folder)
    workflow = _workflow(tmp_path / "wf")
    data = yaml.safe_load(workflow.read_text())
    diffusers.DDPMScheduler().save_pretrained(tmp_path / "elsewhere")
    data["nodes"]["scheduler"]["inputs"]["config"] = "../elsewhere"
    workflow.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["push", str(workflow), "me/ddpm"]) == 1
    err = capsys.readouterr().err
    assert (f"error: cannot push {workflow}:\n  - scheduler.config: '../elsewhere' is {tmp_path / 'elsewhere'}, "
            f"outside the workflow's folder {tmp_path / 'wf'}; copy it into that folder and name it relative to "
            "the workflow\n") in err
    data["nodes"]["scheduler"]["inputs"]["config"] = "./scheduler"
    workflow.write_text(yaml.safe_dump(data, sort_keys=False))
    (tmp_path / "wf" / "scheduler" / ".env").write_text("HF_TOKEN=x\n")
    (tmp_path / "wf" / "scheduler" / "notes.txt").write_text("my token is hf_" + "a" * 34 + "\n")
    assert main(["push", str(workflow), "me/ddpm"]) == 1
    err = capsys.readouterr().err
    assert "  - scheduler/.env: refused, its name is one that holds credentials; move it out of what the workflow names\n" in err
    assert ("  - scheduler/notes.txt: refused, it contains what looks like an access token or a private key; "
            "move it out of what the workflow names") in err
    assert "me/ddpm" not in hub.state.repos


def test_push_then_pull_and_run_offline(hub, unet_folder, tmp_path, monkeypatch, capsys):
    source_commit = _upload_source_repo(unet_folder)
    workflow = _workflow(tmp_path / "wf")
    expected = Graph.load(workflow).execute(["image"], seed=4).image.tensor
    assert main(["push", str(workflow), "me/ddpm"]) == 0
    out = capsys.readouterr().out
    repo = hub.state.repos["me/ddpm"]
    pushed = repo.commits[repo.branches["main"]]
    assert sorted(pushed) == ["README.md", "ddpm.lock.json", "ddpm.yaml", "scheduler/scheduler_config.json"]
    assert f"pushed {repo.branches['main']} to me/ddpm" in out
    card = pushed["README.md"].data.decode()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta == {"library_name": "dgraph", "tags": ["dgraph", "dgraph-workflow", "diffusion",
                                                       "unconditional-image-generation"],
                    "base_model": [REPO], "license": "mit", "dgraph_workflow": "ddpm.yaml"}
    assert "| `--steps` | int | `2` | inference steps |" in card
    assert "```mermaid\nflowchart LR\n" in card
    assert f"| `hf://{REPO}` | main | `{source_commit[:12]}` | 3 |" in card
    lock = json.loads(pushed["ddpm.lock.json"].data)
    assert lock["sources"][f"hf://{REPO}"]["commit"] == source_commit

    # A fresh machine: an empty cache; pull fetches exactly the files the run reads.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache2"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache2"))
    hub.state.downloads.clear()
    assert main(["pull", "hf://me/ddpm"]) == 0
    err = capsys.readouterr().err
    head = [d.split("@")[0] for d in hub.state.downloads]
    assert sorted(head) == sorted([f"{REPO}/config.json", f"{REPO}/diffusion_pytorch_model.safetensors",
                                   f"{REPO}/scheduler_config.json", "me/ddpm/README.md", "me/ddpm/ddpm.yaml",
                                   "me/ddpm/ddpm.lock.json", "me/ddpm/scheduler/scheduler_config.json"])
    # The workflow, its lock and card come first (they say what else is needed); then the total, then the rest.
    own = ["me/ddpm/README.md", "me/ddpm/ddpm.yaml", "me/ddpm/ddpm.lock.json"]
    assert head[:3] == own
    rest = sum(len(f.data) for f in hub_files(hub, head[3:]))
    first = sum(len(f.data) for f in hub_files(hub, own))
    assert err.splitlines()[0] == f"7 files: 4 to download ({_human(rest)}), 3 already in the cache ({_human(first)})"

    go_offline(monkeypatch, hub)
    assert main(["run", "hf://me/ddpm", "-q", "--seed", "4", "-o", str(tmp_path / "out")]) == 0
    graph = Graph.load(workflow)  # the same numbers as the local workflow
    from dgraph.sharing.repo import load_hub_graph, use_lock

    pulled = load_hub_graph("hf://me/ddpm")
    use_lock(pulled, "hf://me/ddpm")
    assert torch.equal(pulled.execute(["image"], seed=4).image.tensor, expected)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ddpm_000.png"]
    del graph


def hub_files(hub, heads: list[str]) -> list[Blob]:
    blobs = []
    for head in heads:
        owner, name, path = head.split("/", 2)
        repo = hub.state.repos[f"{owner}/{name}"]
        blobs.append(next(c[path] for c in repo.commits.values() if path in c))
    return blobs


def _human(size: int) -> str:
    from dgraph.sharing.card import human_size

    return human_size(size)


def test_pull_continues_after_an_interruption(hub, unet_folder, tmp_path, capsys):
    _upload_source_repo(unet_folder)
    workflow = _workflow(tmp_path / "wf")
    capsys.readouterr()
    assert main(["pull", str(workflow), "-q"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"wrote {tmp_path / 'wf' / 'ddpm.lock.json'} (the commits these files come from)"
    # An interrupted pull leaves some files missing: the next one fetches only those.
    from huggingface_hub import try_to_load_from_cache

    commit = json.loads((tmp_path / "wf" / "ddpm.lock.json").read_text())["sources"][f"hf://{REPO}"]["commit"]
    weights = Path(try_to_load_from_cache(REPO, "diffusion_pytorch_model.safetensors", revision=commit))
    weights.resolve().unlink()
    weights.unlink()
    hub.state.downloads.clear()
    assert main(["pull", str(workflow), "-q"]) == 0
    size = (unet_folder / "diffusion_pytorch_model.safetensors").stat().st_size
    rest = sum((unet_folder / name).stat().st_size for name in ("config.json", "scheduler_config.json"))
    first_line = capsys.readouterr().err.splitlines()[0]
    assert first_line == f"3 files: 1 to download ({_human(size)}), 2 already in the cache ({_human(rest)})"
    assert hub.state.downloads == [f"{REPO}/diffusion_pytorch_model.safetensors@{commit}"]


def test_push_to_a_private_branch_then_run_that_revision(hub, unet_folder, tmp_path, monkeypatch, capsys):
    _upload_source_repo(unet_folder)
    workflow = _workflow(tmp_path / "wf")
    assert main(["push", str(workflow), "me/ddpm", "--private", "--revision", "dev"]) == 0
    repo = hub.state.repos["me/ddpm"]
    assert repo.private and sorted(repo.commits[repo.branches["dev"]])[:1] == ["README.md"]
    assert repo.commits[repo.branches["main"]] == {}  # main untouched
    capsys.readouterr()
    assert main(["run", "hf://me/ddpm@dev", "-q", "--seed", "2", "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ddpm_000.png"]
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache2"))
    assert main(["run", "hf://me/ddpm@dev", "-q", "-o", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == ("error: hf://me/ddpm@dev: no Hub repo 'me/ddpm' (or it is private: "
                                       "run `hf auth login`)\n")


def test_run_a_repo_with_one_workflow_at_its_root_and_a_diffusers_repo(hub, unet_folder, tmp_path, capsys):
    from huggingface_hub import HfApi

    _upload_source_repo(unet_folder)
    workflow = _workflow(tmp_path / "wf", )
    data = yaml.safe_load(workflow.read_text())
    data["nodes"]["scheduler"]["inputs"]["config"] = f"hf://{REPO}"
    api = HfApi()
    api.create_repo("me/plain")
    api.upload_file(path_or_fileobj=yaml.safe_dump(data).encode(), path_in_repo="mine.yaml", repo_id="me/plain")
    assert main(["run", "hf://me/plain", "-q", "--seed", "3", "-o", str(tmp_path / "a")]) == 0
    expected = Graph.load(workflow).execute(["image"], seed=3).image.tensor
    assert torch.equal(Graph.load("hf://me/plain/mine.yaml").execute(["image"], seed=3).image.tensor, expected)
    # A diffusers pipeline repo runs the graph of its model_index.json.
    pipeline = tmp_path / "pipe"
    diffusers.DDPMPipeline(unet=diffusers.UNet2DModel.from_pretrained(unet_folder),
                           scheduler=diffusers.DDPMScheduler.from_pretrained(unet_folder)).save_pretrained(pipeline)
    api.create_repo("acme/pipe")
    api.upload_folder(folder_path=str(pipeline), repo_id="acme/pipe")
    assert main(["run", "hf://acme/pipe", "-q", "--seed", "3", "--steps", "2", "-o", str(tmp_path / "b")]) == 0
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["ddpm_000.png"]
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="other.yaml", repo_id="me/plain")
    capsys.readouterr()
    assert main(["run", "hf://me/plain", "-q", "-o", str(tmp_path / "c")]) == 1
    assert capsys.readouterr().err == ("error: hf://me/plain: the repo has workflow files mine.yaml, other.yaml; "
                                       "name the workflow, e.g. hf://me/plain/mine.yaml\n")


def test_check_offline_compares_node_versions_and_variants(hub, unet_folder, tmp_path, monkeypatch, capsys):
    _upload_source_repo(unet_folder)
    workflow = _workflow(tmp_path / "wf")
    assert main(["lock", str(workflow)]) == 0
    lock_file = tmp_path / "wf" / "ddpm.lock.json"
    lock = json.loads(lock_file.read_text())
    lock["nodes"]["load.unet"]["version"] = 0
    lock_file.write_text(json.dumps(lock))
    data = yaml.safe_load(workflow.read_text())
    data["nodes"]["unet"]["inputs"]["variant"] = "fp16"
    workflow.write_text(yaml.safe_dump(data, sort_keys=False))
    go_offline(monkeypatch, hub)
    capsys.readouterr()
    assert main(["lock", str(workflow), "--check"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "note: the Hub is out of reach: revisions were not asked again, only the workflow was compared",
        "drift: node type load.unet: version 1, the lock has 0",
        f"drift: hf://{REPO}: variant 'fp16', the lock has None",
        f"{workflow}: 2 differences from {lock_file}"]


@pytest.mark.slow  # a second Python process importing torch: seconds that the in-process tests already cover
def test_a_fresh_process_finds_the_server_through_hf_endpoint_alone(hub, unet_folder, tmp_path):
    """No setting made in this process reaches the child: HF_ENDPOINT, HF_TOKEN and HF_HUB_CACHE do."""
    import os
    import subprocess
    import sys

    _upload_source_repo(unet_folder)
    workflow = _workflow(tmp_path / "wf")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "child-cache"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-m", "dgraph", "pull", str(workflow), "-q"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    commit = hub.state.repos[REPO].branches["main"]
    assert sorted(hub.state.downloads) == [f"{REPO}/{name}@{commit}" for name in
                                           ("config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json")]
    size = sum((unet_folder / name).stat().st_size for name in
               ("config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json"))
    assert done.stdout == f"3 files in the cache (3 downloaded, {_human(size)}); run it offline with HF_HUB_OFFLINE=1\n"


def test_a_source_given_as_a_graph_input_default_is_locked_and_pinned(hub, unet_folder, tmp_path):
    old = _upload_source_repo(unet_folder)
    workflow = _workflow(tmp_path / "wf")
    data = yaml.safe_load(workflow.read_text())
    data["inputs"]["model"] = {"type": "Source", "default": f"hf://{REPO}"}
    data["nodes"]["unet"]["inputs"]["source"] = "$model"
    workflow.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["lock", str(workflow)]) == 0
    lock = json.loads((tmp_path / "wf" / "ddpm.lock.json").read_text())
    assert list(lock["sources"]) == [f"hf://{REPO}"] and lock["sources"][f"hf://{REPO}"]["commit"] == old
    weights = (unet_folder / "diffusion_pytorch_model.safetensors").read_bytes()
    hub.state.commit(REPO, "main", {"diffusion_pytorch_model.safetensors": Blob(weights[::-1], lfs=True)}, "moved")
    hub.state.downloads.clear()
    assert main(["run", str(workflow), "-q", "--seed", "1", "-o", str(tmp_path / "out")]) == 0
    assert sorted(hub.state.downloads) == [f"{REPO}/{name}@{old}" for name in
                                           ("config.json", "diffusion_pytorch_model.safetensors")]

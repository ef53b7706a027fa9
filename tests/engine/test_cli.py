"""The command line, through a subprocess as a user runs it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MALFORMED = Path(__file__).parent / "malformed"

IMAGE_WORKFLOW = """\
dgraph: 1
inputs:
  brightness: {type: float, default: 1.0}
nodes:
  noise: {type: tensor.noise, inputs: {shape: [1, 3, 8, 8]}}
  scaled: {type: tensor.scale, inputs: {tensor: "@noise.tensor", factor: $brightness}}
  image: {type: image.from_tensor, inputs: {tensor: "@scaled.tensor", low: -2.0, high: 2.0}}
  save: {type: image.save, inputs: {image: "@image.image", prefix: noise}}
outputs:
  files: "@save.paths"
"""


def dgraph(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real console entry, in a subprocess (used where the process boundary matters)."""
    return subprocess.run([sys.executable, "-m", "dgraph", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_validate_prints_every_problem_and_exits_1():
    bad = MALFORMED / "32_many_at_once.yaml"
    done = dgraph("validate", str(bad))
    assert done.returncode == 1
    lines = [line for line in done.stdout.splitlines() if not line.startswith("    hint:")]
    assert lines[0] == f"{bad}:11:17: error[bad-type-name]: graph input 'scale' has unknown type 'flot'"
    assert len(lines) == 7
    assert done.stderr.strip() == "7 problems in 1 file"
    assert "Traceback" not in done.stdout + done.stderr


def test_validate_json_and_ok(tmp_path, cli):
    good = tmp_path / "good.yaml"
    good.write_text(IMAGE_WORKFLOW)
    done = cli("validate", str(good))
    assert done.returncode == 0 and done.stdout.strip() == f"{good}: ok"
    done = cli("validate", "--json", str(MALFORMED / "07_unknown_node_type.yaml"))
    (problem,) = json.loads(done.stdout)
    assert (problem["code"], problem["line"], problem["column"]) == ("unknown-node-type", 5, 11)


def test_run_writes_pngs_and_reruns_from_one(tmp_path, cli):
    workflow = tmp_path / "w.yaml"
    workflow.write_text(IMAGE_WORKFLOW)
    done = dgraph("run", str(workflow), "--seed", "5", "--brightness", "0.5", "-o", str(tmp_path / "a"), "-q")
    assert done.returncode == 0, done.stderr
    first = tmp_path / "a" / "noise_000.png"
    assert done.stdout.strip() == f"seed: 5\nfiles: {first}"
    again = dgraph("run", "--from-image", str(first), "-o", str(tmp_path / "b"), "-q")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "b" / "noise_000.png").read_bytes() == first.read_bytes()
    other = cli("run", str(workflow), "--seed", "6", "--set", "brightness=0.5", "-o", str(tmp_path / "c"), "-q")
    assert other.returncode == 0
    assert (tmp_path / "c" / "noise_000.png").read_bytes() != first.read_bytes()


def test_run_reports_errors_without_traceback(tmp_path, cli):
    workflow = tmp_path / "w.yaml"
    workflow.write_text(IMAGE_WORKFLOW)
    done = cli("run", str(workflow), "--brightnes", "2", "-q")
    assert done.returncode == 2
    assert done.stderr.strip() == ("dgraph run: unknown flag --brightnes; did you mean --brightness? (this workflow's "
                                   "inputs: --seed, --brightness; `dgraph run WORKFLOW --help` lists them)")
    done = cli("run", str(workflow), "--set", "save.prefix=../escape", "-o", str(tmp_path / "o"), "-q")
    assert done.returncode == 1
    assert "leaves the output folder" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "escape_000.png").exists()
    done = cli("run", str(workflow), "--brightness")
    assert done.returncode == 2 and "--brightness needs a value" in done.stderr


def test_nodes_lists_ports_and_parameters(cli):
    done = cli("nodes", "--json", "tensor.noise")
    (spec,) = json.loads(done.stdout)
    assert spec["inputs"]["shape"] == {"type": "list[int]", "required": True}
    assert spec["outputs"] == {"tensor": "Tensor"}
    assert cli("nodes", "no.such").returncode == 1


def test_schema_accepts_shipped_workflows_and_rejects_bad_ones(tmp_path, cli):
    done = cli("schema")
    schema = json.loads(done.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)  # checked once, used for every file
    shipped = sorted((ROOT / "workflows").rglob("*.yaml"))
    for path in shipped + [None]:
        data = yaml.safe_load(path.read_text() if path else IMAGE_WORKFLOW)
        if path is not None and "train" in path.parts:
            continue  # training recipes are another format
        validator.validate(data)
    bad = yaml.safe_load((MALFORMED / "07_unknown_node_type.yaml").read_text())
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(bad)


def test_viz_writes_svg_and_mermaid(tmp_path, cli):
    workflow = tmp_path / "w.yaml"
    workflow.write_text(IMAGE_WORKFLOW)
    assert cli("viz", str(workflow), "-o", str(tmp_path / "g.svg")).returncode == 0
    svg = (tmp_path / "g.svg").read_text()
    assert svg.startswith("<svg") and ">scaled</text>" in svg and ">brightness</text>" in svg
    mermaid = cli("viz", str(workflow)).stdout
    assert mermaid.startswith("flowchart LR\n")
    assert '-->|"tensor → tensor"|' in mermaid


def test_shipped_schema_file_is_current():
    """workflows/*.yaml point editors at dgraph-workflow.schema.json; it must describe today's node types."""
    from dgraph.engine.registry import default_registry
    from dgraph.engine.schema import workflow_schema

    shipped = json.loads((ROOT / "dgraph-workflow.schema.json").read_text())
    assert shipped == workflow_schema(default_registry()), "regenerate it: dgraph schema -o dgraph-workflow.schema.json"


def test_a_parser_built_for_one_command_helps_and_parses_like_the_full_one():
    from dgraph.cli import _command_of, _parser

    full = _parser()
    assert _parser(None).format_help() == full.format_help()  # `dgraph --help` builds no subcommand's arguments
    choices = full._subparsers._group_actions[0].choices
    assert len(choices) == 12
    for name, command in choices.items():
        assert _parser(name)._subparsers._group_actions[0].choices[name].format_help() == command.format_help(), name
    argv = ["--debug", "validate", "a.yaml", "--json"]
    assert _command_of(argv) == "validate"
    assert vars(_parser(_command_of(argv)).parse_args(argv)) == vars(full.parse_args(argv))

"""The node manifest: validation, `dgraph nodes` and `dgraph schema` read node types as data, without torch."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pydantic import ValidationError

from dgraph.engine.manifest import FILE_NAME, ManifestError, manifest_text, pack_manifest, read_pack, spec_data
from dgraph.engine.registry import GROUP, load_installed
from dgraph.engine.validate import _first_message
from dgraph.node import node
from dgraph.types import TypeRef

ROOT = Path(__file__).resolve().parents[2]
# Values a literal input may be given wrongly or rightly: each must get the same answer from both validators.
PROBES = [None, True, 0, 1, -1, 7, 2.5, -0.5, 1e300, float("nan"), "", "x", "float16", "../x", "a/b", "hifigan",
          [1, 2], [], ["a"], {"a": 1}]


def _builtin():
    (ep,) = [ep for ep in entry_points(group=GROUP) if ep.name == "builtin"]
    return ep


def test_the_shipped_manifest_is_current():
    real = [spec for spec in load_installed(manifests=False) if spec.pack == "builtin"]
    text = manifest_text(pack_manifest("builtin", _builtin().value, real))
    assert (ROOT / "nodes" / FILE_NAME).read_text() == text, \
        "regenerate it: dgraph nodes --manifest builtin -o nodes/manifest.json"


def _answer(adapter, value, strict):
    try:
        return "ok", repr(adapter.validate_python(value, strict=strict))
    except ValidationError as error:
        return "error", _first_message(error)


def test_manifest_specs_validate_like_the_real_node_types():
    real = {spec.type_name: spec for spec in load_installed(manifests=False) if spec.pack == "builtin"}
    described = {spec.type_name: spec for spec in read_pack("builtin", _builtin().value)}
    assert sorted(described) == sorted(real)
    literal_inputs = 0
    for name, spec in real.items():
        other = described[name]
        for field in ("version", "description", "pack", "context_arg", "random", "effect", "tuple_output", "refine",
                      "check"):
            assert getattr(other, field) == getattr(spec, field), (name, field)
        assert {k: o.type for k, o in other.outputs.items()} == {k: o.type for k, o in spec.outputs.items()}
        assert list(other.inputs) == list(spec.inputs), name
        for key, ispec in spec.inputs.items():
            mine = other.inputs[key]
            assert (mine.type, mine.required, mine.default, mine.description) == \
                   (ispec.type, ispec.required, ispec.default, ispec.description), (name, key)
            if ispec.adapter is None:
                assert mine.adapter is None
                continue
            literal_inputs += 1
            assert mine.adapter.json_schema() == ispec.adapter.json_schema(), (name, key)
            for value in PROBES:
                for strict in (True, False):
                    assert _answer(mine.adapter, value, strict) == _answer(ispec.adapter, value, strict), \
                        (name, key, value)
    assert literal_inputs > 200  # every literal input of the catalogue was compared


def test_refine_and_check_rules_travel_as_data():
    described = {spec.type_name: spec for spec in read_pack("builtin", _builtin().value)}
    transformer = described["load.transformer"].output_types({"class_name": "DiTTransformer2DModel"})["transformer"]
    assert transformer == TypeRef("DenoiserNetwork", (("takes", "class_labels"),))
    assert described["load.transformer"].output_types({"class_name": "Other"})["transformer"] == TypeRef("DenoiserNetwork")
    assert str(described["load.speecht5_hifigan"].output_types({})["vocoder"]) == "Vocoder[profile=audioldm]"
    assert str(described["load.vocoder"].output_types({"family": "fastdiff"})["vocoder"]) == "Vocoder[profile=fastdiff]"
    problems = described["denoiser.model"].check({"network": transformer, "context": TypeRef("TextEmbedding")})
    assert problems == {"context": ("the linked network takes no context",
                                    "it takes: class_labels; remove `context:`")}


@pytest.mark.parametrize("command", [["validate", *sorted(str(p) for p in (ROOT / "workflows").glob("*.yaml"))],
                                     ["nodes"], ["nodes", "--json"], ["schema"]])
def test_validate_nodes_and_schema_import_neither_torch_nor_transformers(command):
    code = textwrap.dedent(f"""
        import sys
        from dgraph.cli import main
        code = main({command!r})
        heavy = sorted(m for m in ("torch", "transformers", "nodes.models", "diffusers") if m in sys.modules)
        print("EXIT", code, "HEAVY", heavy, file=sys.stderr)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    last = done.stderr.strip().splitlines()[-1]
    # The vocoder and GLIDE workflows need converted weights: validate reports those folders as missing-source
    # (one per vocoder; GLIDE's: 2 in glide.yaml, 4 in glide_clip_guided.yaml, 2 in glide_inpaint.yaml).
    assert last == f"EXIT {1 if command[0] == 'validate' else 0} HEAVY []", done.stderr[-2000:]
    if command[0] == "validate":
        assert done.stdout.count("error[missing-source]") == 3 + 8 and "error[" not in done.stdout.replace(
            "error[missing-source]", "")


PACK = '''
from dgraph.node import node


@node("toy.twice", version=2)
def twice(x: float = 1.5) -> float:
    """Twice x."""
    return 2 * x
'''


def test_a_pack_with_a_current_manifest_is_read_from_it_and_runs_its_real_function(tmp_path, monkeypatch):
    package = tmp_path / "toypack"
    package.mkdir()
    (package / "__init__.py").write_text(PACK)
    monkeypatch.syspath_prepend(str(tmp_path))
    import toypack

    (package / FILE_NAME).write_text(manifest_text(pack_manifest("toy", "toypack", [toypack.twice.__dgraph_node__])))
    monkeypatch.delitem(sys.modules, "toypack")
    (spec,) = read_pack("toy", "toypack")
    assert "toypack" not in sys.modules  # read from the manifest
    assert (spec.type_name, spec.version, spec.inputs["x"].default) == ("toy.twice", 2, 1.5)
    assert spec.call(None, {"x": 4.0}) == {"value": 8.0}  # the real function, imported on its first call
    assert "toypack" in sys.modules
    manifest = (package / FILE_NAME).read_text()
    assert manifest.count('"module": "toypack"') == 1
    (package / FILE_NAME).write_text(manifest.replace('"module": "toypack"', '"module": "os"'))
    assert read_pack("toy", "toypack") is None  # a manifest names only its own pack's code
    (package / FILE_NAME).write_text(manifest)
    (package / "__init__.py").write_text(PACK.replace("2 * x", "3 * x"))
    assert read_pack("toy", "toypack") is None  # sources changed: the pack is imported instead


def test_a_plain_callable_rule_has_no_data_form():
    @node("toy.refined", refine=lambda literals: {})
    def refined(x: int = 1) -> int:
        """Refined."""
        return x

    with pytest.raises(ManifestError, match=r"node type 'toy.refined': .* declare it with a rule of dgraph.rules"):
        spec_data(refined.__dgraph_node__)


def test_the_manifest_command_writes_the_shipped_file(tmp_path):
    out = tmp_path / "manifest.json"
    done = subprocess.run([sys.executable, "-m", "dgraph", "nodes", "--manifest", "builtin", "-o", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, env={"PYTHONPATH": str(ROOT),
                                                                                       "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert out.read_text() == (ROOT / "nodes" / FILE_NAME).read_text()
    assert json.loads(out.read_text())["pack"] == "builtin"

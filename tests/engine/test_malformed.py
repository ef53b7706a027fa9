"""The malformed-workflow corpus: each file states, in `# expect: CODE LINE:COL` lines, exactly the
problems validation must report — all of them, in file order, at those positions."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from dgraph.engine.problems import CODES, WorkflowError
from dgraph.graph import Graph

CORPUS = sorted((Path(__file__).parent / "malformed").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\S+) (\d+):(\d+)$", re.MULTILINE)


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_malformed_file_reports_exact_problems(path: Path):
    expected = [(code, int(line), int(col)) for code, line, col in EXPECT.findall(path.read_text())]
    assert expected, f"{path.name} states no expectation"
    with pytest.raises(WorkflowError) as caught:
        Graph.load(path)
    got = [(p.code, p.line, p.column) for p in caught.value.problems]
    assert got == expected
    for problem in caught.value.problems:
        assert problem.code in CODES
        assert problem.file == str(path)
        assert str(problem).startswith(f"{path}:{problem.line}:{problem.column}: error[{problem.code}]: ")


def test_unknown_node_type_suggests_close_names():
    with pytest.raises(WorkflowError) as caught:
        Graph.load(Path(__file__).parent / "malformed" / "07_unknown_node_type.yaml")
    (problem,) = caught.value.problems
    assert problem.message == "node 'a': unknown node type 'math.ad'"
    assert problem.hint.startswith("did you mean 'math.add'")


def test_type_mismatch_names_both_types():
    with pytest.raises(WorkflowError) as caught:
        Graph.load(Path(__file__).parent / "malformed" / "14_type_mismatch.yaml")
    (problem,) = caught.value.problems
    assert problem.message == ("node 'a', input 'a' (float) cannot take @n.tensor (Tensor): "
                               "Tensor does not fit float")


def test_cycle_names_its_nodes():
    with pytest.raises(WorkflowError) as caught:
        Graph.load(Path(__file__).parent / "malformed" / "19_cycle.yaml")
    (problem,) = caught.value.problems
    assert problem.message == "nodes depend on each other in a cycle: a -> c -> b -> a"


def test_python_tags_are_refused_not_constructed(tmp_path):
    marker = tmp_path / "ran"
    text = f"dgraph: 1\nnodes:\n  a: {{type: !!python/object/apply:os.system ['touch {marker}']}}\n"
    with pytest.raises(WorkflowError) as caught:
        Graph.from_text(text, "evil.yaml")
    assert caught.value.codes == ["yaml-syntax"]
    assert "not allowed" in caught.value.problems[0].message
    assert not marker.exists()


def test_alias_bomb_is_refused():
    lines = ["dgraph: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    with pytest.raises(WorkflowError) as caught:
        Graph.from_text("\n".join(lines) + "\n", "bomb.yaml")
    assert caught.value.codes == ["yaml-syntax"]
    assert "more than" in caught.value.problems[0].message

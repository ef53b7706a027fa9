"""Dependencies point one way: the catalogue (nodes/) imports the library and the node API; the library
(models, schedulers, sampling, text, audio, training, convert) imports neither the engine nor the
catalogue; the engine never imports the catalogue; nothing shipped imports diffusers."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("models", "schedulers", "sampling", "text", "audio", "training", "convert")
ENGINE = ("dgraph.engine", "dgraph.graph", "dgraph.node", "dgraph.pipelines", "dgraph.cli", "dgraph.progress")


def _imports(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _forbidden(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(ROOT).parts
    rules: tuple[str, ...] = ("diffusers",)
    if parts[0] == "dgraph":
        rules += ("nodes",)
        if len(parts) > 2 and parts[1] in LIBRARY:
            rules += ENGINE
    return rules


FILES = sorted([*ROOT.glob("dgraph/**/*.py"), *ROOT.glob("nodes/**/*.py")])


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_imports_point_one_way(path: Path):
    bad = sorted(name for name in _imports(path)
                 for rule in _forbidden(path) if name == rule or name.startswith(rule + "."))
    assert bad == [], f"{path.relative_to(ROOT)} imports {bad}"


def test_the_rule_sees_relative_imports():
    recipe = ROOT / "dgraph" / "training" / "recipe.py"
    assert "dgraph.safe_yaml.parse_text" in _imports(recipe)
    assert len(FILES) > 100

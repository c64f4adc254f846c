"""The package layout: harness/ wings import only the wings below them.

From the bottom: the foundation (harness.isa, harness.layout), then cases, oracle,
running, and at the top reporting and tools; arches/ sits between the foundation and
running (backends need only the ISA and the memory layout). cli and __main__ are the
front door and may import anything. Every import statement counts, including the
ones inside functions.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOUNDATION = {"harness", "harness.isa", "harness.layout"}
# wing -> the wings (and foundation) it may import besides itself
ALLOWED: dict[str, set[str]] = {
    "cases": set(),
    "oracle": {"cases"},
    "arches": set(),
    "running": {"cases", "oracle", "arches"},
    "reporting": {"cases", "oracle", "arches", "running"},
    "tools": {"cases", "oracle", "arches", "running", "reporting"},
}


def wing_of(module: str) -> str | None:
    """The wing a dotted module name belongs to (None for the foundation and front door)."""
    parts = module.split(".")
    if parts[0] == "arches":
        return "arches"
    if parts[0] == "harness" and len(parts) > 1 and parts[1] in ALLOWED:
        return parts[1]
    return None


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of harness or arches in a source file."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "harness":  # "from harness import isa, tools" names modules
                found += [(node.lineno, f"harness.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return [(line, name) for line, name in found if name.split(".")[0] in ("harness", "arches")]


def source_files() -> list[Path]:
    return sorted(list((ROOT / "harness").rglob("*.py")) + list((ROOT / "arches").rglob("*.py")))


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_every_wing_has_a_docstring_package():
    for wing in ("cases", "oracle", "running", "reporting", "tools"):
        init = ROOT / "harness" / wing / "__init__.py"
        docstring = ast.get_docstring(ast.parse(init.read_text()))
        assert docstring and len(docstring.splitlines()) == 2, f"{init}: a two-line docstring"


@pytest.mark.parametrize("path", source_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_imports_follow_the_wing_order(path: Path):
    own = wing_of(module_name(path))
    if own is None:  # foundation modules import no wing; cli/__main__ may import anything
        if module_name(path) in FOUNDATION:
            assert not [name for _, name in imported_modules(path) if wing_of(name)]
        return
    allowed = ALLOWED[own] | {own}
    bad = [f"line {line}: {name}" for line, name in imported_modules(path)
           if wing_of(name) is not None and wing_of(name) not in allowed]
    assert not bad, f"{path.relative_to(ROOT)} ({own}) imports above its wing: {bad}"


def test_the_rule_sees_a_violation(tmp_path: Path):
    """The check itself: an oracle module importing the running wing is found."""
    source = tmp_path / "bad.py"
    source.write_text("def f():\n    from harness.running.conformance import run_item\n")
    assert [(2, "harness.running.conformance")] == imported_modules(source)
    assert wing_of("harness.running.conformance") not in ALLOWED["oracle"]

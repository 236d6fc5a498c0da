"""The package's shape (docs/architecture.md): each stage is entered only through its
`__init__`, and stages depend on each other without cycles."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vidcls"
MAX_LINES = 330


def _stage(path: Path) -> str:
    """`data` for vidcls/data/pipeline.py; `run_dir` for the top-level vidcls/run_dir.py."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every `vidcls...` module `path` imports, deferred imports inside functions included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, f"<relative import, level {node.level}>"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "vidcls":
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "vidcls")
    return found


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_stages_are_entered_only_through_their_door():
    crossings = []
    for path in _modules():
        own = _stage(path)
        for line, module in _imports(path):
            parts = module.split(".")
            if module.startswith("<"):
                crossings.append(f"{path.relative_to(PACKAGE.parent)}:{line} uses {module}; import vidcls.<stage>")
            elif len(parts) > 2 and parts[1] != own:
                crossings.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}; "
                                 f"use `from vidcls.{parts[1]} import ...`")
    assert not crossings, "\n".join(crossings)


def test_stages_depend_on_each_other_without_cycles():
    edges: dict[str, set[str]] = {}
    for path in _modules():
        own = _stage(path)
        for _, module in _imports(path):
            parts = module.split(".")
            if len(parts) > 1 and parts[1] != own:
                edges.setdefault(own, set()).add(parts[1])
    state: dict[str, str] = {}

    def visit(stage: str, trail: list[str]) -> None:
        if state.get(stage) == "done":
            return
        assert state.get(stage) != "open", "import cycle between stages: " + " -> ".join(trail + [stage])
        state[stage] = "open"
        for target in sorted(edges.get(stage, ())):
            visit(target, trail + [stage])
        state[stage] = "done"

    for stage in sorted(edges):
        visit(stage, [])
    # The layering docs/architecture.md describes: videos below features below data.
    assert "data" not in edges["features"] and "features" not in edges["videos"]


def test_no_module_grows_past_about_300_lines():
    """Large modules were doing several jobs at once (the trainer did six); a module that
    grows past this is a sign to split it by job."""
    long = {str(path.relative_to(PACKAGE.parent)): count for path in _modules()
            if (count := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_the_checks_themselves_notice_a_crossing(tmp_path):
    """The parser sees deferred imports, which is where the old data <-> features loop hid."""
    module = tmp_path / "example.py"
    module.write_text("def f():\n    from vidcls.features.cache import FeatureCache\n    import vidcls.data.tasks\n")
    assert _imports(module) == [(2, "vidcls.features.cache"), (3, "vidcls.data.tasks")]

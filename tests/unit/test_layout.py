"""The layout stays readable: unique module names, no import cycles, runtime code free of dev
tooling, and no pointers to documents a reader of the repository does not have."""

from __future__ import annotations

import ast
import re
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Import roots of the three (four, with the console) packages: folder that holds each package.
SOURCE_ROOTS = {
    ROOT: ("tokenpool",),
    ROOT / "operator": ("tokenpool_operator",),
    ROOT / "proxy": ("tokenpool_proxy",),
}
if (ROOT / "console").is_dir():
    SOURCE_ROOTS[ROOT / "console"] = ("tokenpool_console",)
# Every component has its own entry point and settings class; they are always named by package.
CONVENTIONAL = {"__init__", "__main__", "main", "settings"}
RUNTIME_PACKAGES = (
    "tokenpool.accounts",
    "tokenpool.upstream",
    "tokenpool.contract",
    "tokenpool.cli",
    "tokenpool.kube",
    "tokenpool_operator",
    "tokenpool_proxy",
    "tokenpool_console",
)


def _modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the project's packages."""
    found: dict[str, Path] = {}
    for base, packages in SOURCE_ROOTS.items():
        for package in packages:
            for path in sorted((base / package).rglob("*.py")):
                parts = list(path.relative_to(base).with_suffix("").parts)
                if parts[-1] == "__init__":
                    parts.pop()
                found[".".join(parts)] = path
    return found


def _guarded(tree: ast.AST) -> set[int]:
    """Ids of import statements inside ``try: ... except ImportError``: optional by design."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
            for h in node.handlers
        ):
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def _imports(
    name: str, path: Path, known: set[str], top_level_only: bool, skip_optional: bool = False
) -> set[str]:
    """Project modules ``name`` imports (``from x import y`` counts ``x.y`` when that is a module)."""
    tree = ast.parse(path.read_text())
    optional = _guarded(tree) if skip_optional else set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = list(ast.iter_child_nodes(tree)) if top_level_only else list(ast.walk(tree))
    # Module level includes `if TYPE_CHECKING:` blocks and try/except around imports.
    if top_level_only:
        nodes = [n for top in nodes for n in (ast.walk(top) if isinstance(top, ast.If | ast.Try) else [top])]
    out: set[str] = set()
    for node in nodes:
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    out.add(f"{target}.{alias.name}")
                elif target in known:
                    out.add(target)
    out.discard(name)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_module_basenames_are_unique() -> None:
    names = Counter(p.stem for p in _modules().values() if p.stem not in CONVENTIONAL)
    assert not [n for n, k in names.items() if k > 1], "modules sharing a basename"


def test_no_import_cycles() -> None:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known, top_level_only=True) for name, path in modules.items()}
    # A package imports its own submodules through its __init__; that is not a cycle between peers.
    for name in graph:
        graph[name] = {
            t for t in graph[name] if not (t.startswith(name + ".") and modules[name].name == "__init__.py")
        }
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_runtime_code_never_imports_dev_tooling() -> None:
    """`pip install .` ships no `tokenpool.dev`: nothing the runtime imports may need it (an
    import guarded by ``except ImportError`` is optional by design)."""
    modules = _modules()
    known = set(modules)
    offenders = defaultdict(list)
    for name, path in modules.items():
        if not name.startswith(RUNTIME_PACKAGES):
            continue
        for target in _imports(name, path, known, top_level_only=False, skip_optional=True):
            if target.startswith("tokenpool.dev"):
                offenders[name].append(target)
    assert not offenders, dict(offenders)


def test_code_points_only_inside_the_repository() -> None:
    outside = re.compile(r"DESIGN\.md|\.\./shared|reference/augment-protocol|\b[Ii]ssue \d+|\(issue \d+\)")
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in [*_modules().values(), *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py")]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if outside.search(line) and path.name != "test_layout.py"
    ]
    assert not hits, hits

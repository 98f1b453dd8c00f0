"""The layout's rules, read from the source: web → runner → blocks, only runner/store/ talks
to PostgreSQL, graph logic is pure, and no module imports itself back through others."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("runner", "web", "blocks", "bench")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module the file imports (at any depth, except under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else ""

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1],
                                 base]).strip(".")  # fmt: skip
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def sources() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in PACKAGES
        if (ROOT / package).is_dir()
        for path in sorted((ROOT / package).rglob("*.py"))
    }


MODULES = sources()
IMPORTS = {name: imports_of(path) for name, path in MODULES.items()}


def local(name: str) -> str | None:
    """The project module an import names (a symbol import resolves to its module)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def offenders(prefix: str, forbidden: tuple[str, ...]) -> list[tuple[str, str]]:
    return sorted(
        (module, imported)
        for module, imported_set in IMPORTS.items()
        if module == prefix or module.startswith(prefix + ".")
        for imported in imported_set
        if any(imported == f or imported.startswith(f + ".") for f in forbidden)
    )


def test_the_web_layer_reaches_the_runner_only_through_its_facade() -> None:
    assert offenders("web", ("asyncpg", "runner.store")) == []
    # The runtime's parts, the engine and the live bus are behind runner.facade.
    assert offenders("web", ("runner.runtime", "runner.engine", "runner.live")) == []


def test_blocks_know_nothing_of_the_runner_or_the_web() -> None:
    assert offenders("blocks", ("runner", "web", "asyncpg", "quart")) == []


def test_the_runner_knows_nothing_of_the_web() -> None:
    assert offenders("runner", ("web", "quart", "hypercorn", "bench")) == []


def test_only_the_store_talks_to_postgresql() -> None:
    touching = {module for module, _ in offenders("runner", ("asyncpg",))}
    assert {m for m in touching if not m.startswith("runner.store.")} == set()


def test_the_store_and_live_events_depend_one_way() -> None:
    # The store logs and publishes events; live/ reads them through a protocol of its own.
    assert offenders("runner.live", ("runner.store", "asyncpg")) == []


def test_graph_logic_and_run_state_are_pure() -> None:
    impure = ("anyio", "asyncpg", "quart", "httpx", "runner.store", "runner.live")
    assert offenders("runner.graph", impure) == []
    assert offenders("runner.engine.run_state", impure) == []


def test_no_module_imports_itself_back() -> None:
    graph = {
        module: {dep for name in imported if (dep := local(name)) and dep != module}
        for module, imported in IMPORTS.items()
    }
    # Packages' __init__ modules are empty (or re-export only downward): a module importing
    # `runner.x.y` also loads `runner.x`, which is no edge back.
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


def test_no_module_is_over_400_lines() -> None:
    long = {
        name: lines
        for name, path in MODULES.items()
        if not name.startswith("bench") and (lines := len(path.read_text().splitlines())) > 400
    }
    assert long == {}


def test_every_module_says_what_it_owns() -> None:
    silent = [
        name
        for name, path in MODULES.items()
        if path.name != "__init__.py" and ast.get_docstring(ast.parse(path.read_text())) is None
    ]
    assert silent == []

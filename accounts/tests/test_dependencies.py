"""The dependency direction of style.md section 1, read from the source.

`accounts` is the bottom app: billing, ingest and analytics may import it, never the reverse,
not even through a shared module of `clawtrace_site`. And the three modules every other module
of accounts stands on (models, tenancy, selectors) must not import each other in a loop: a loop
there is what forces function-level imports and breaks as soon as the import order changes.

The graph is built with `ast` over the first-party packages, so it sees every import, also the
ones inside functions (a late import is still a dependency). Imports under
`if TYPE_CHECKING:` are left out: they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = (
    "accounts",
    "alerts",
    "analytics",
    "billing",
    "clawtrace_site",
    "devices",
    "ingest",
    "retention",
)
APPS_ABOVE_ACCOUNTS = ("billing", "ingest", "analytics", "devices", "alerts", "retention")
# The workers' apps stand on the others (alerts reads analytics' anomalies and spend; retention
# reads billing's plans and deletes through ingest's and analytics' services); nothing below
# them may import them back.
TOP_APPS = ("alerts", "retention")
FOUNDATION = ("accounts.models", "accounts.tenancy", "accounts.selectors")

ImportGraph = dict[str, set[str]]


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        for child in ast.iter_child_nodes(node):
            if _is_type_checking_block(child):
                pending.extend(child.orelse)  # the `else:` branch does run
            else:
                pending.append(child)


def _imported_names(module: str, is_package: bool, source: str) -> set[str]:
    """Every dotted name the module imports; for `from a import b`, both `a` and `a.b` (b may be
    a submodule; a name that is not one simply matches no module)."""
    names: set[str] = set()
    for node in _import_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        if node.level:  # relative: resolve against the importing module's package
            package = module.split(".") if is_package else module.split(".")[:-1]
            base_parts = package[: len(package) - (node.level - 1)]
            base = ".".join([*base_parts, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        names.add(base)
        names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph_build(root: Path = REPO, packages: tuple[str, ...] = FIRST_PARTY) -> ImportGraph:
    """Module -> the first-party modules it imports (a package's import also counts as an
    import of its `__init__`, which is the package's own name)."""
    sources = {
        _module_name(root, path): path
        for package in packages
        for path in (root / package).rglob("*.py")
        if ".venv" not in path.parts
    }
    graph: ImportGraph = {}
    for module, path in sources.items():
        imported = _imported_names(module, path.name == "__init__.py", path.read_text())
        targets: set[str] = set()
        for name in imported:
            # `import accounts.models` also runs `accounts/__init__.py`.
            parts = name.split(".")
            targets.update(
                prefix
                for prefix in (".".join(parts[:i]) for i in range(1, len(parts) + 1))
                if prefix in sources and prefix != module
            )
        graph[module] = targets
    return graph


def path_find(graph: ImportGraph, start: str, is_goal) -> list[str] | None:
    """The shortest import chain from `start` to a module satisfying `is_goal` (start itself
    excluded), or None."""
    previous: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        following = []
        for module in frontier:
            # Deepest name first, so a chain names `billing.plans` rather than `billing`.
            for target in sorted(graph.get(module, ()), key=lambda m: (-m.count("."), m)):
                if is_goal(target):
                    chain = [target, module]
                    while chain[-1] != start:
                        chain.append(previous[chain[-1]])
                    return chain[::-1]
                if target not in seen:
                    seen.add(target)
                    previous[target] = module
                    following.append(target)
        frontier = following
    return None


def _is_in(packages: tuple[str, ...]):
    return lambda module: module.split(".")[0] in packages


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return import_graph_build()


def test_the_graph_sees_the_imports_it_must_see(graph):
    # Guards the walker itself: if it stopped reading imports, the rules below would pass
    # vacuously.
    assert "accounts.tenancy" in graph["accounts.models"]
    assert "accounts.models" in graph["accounts.selectors"]
    assert "accounts.tenancy" in graph["clawtrace_site.api"]


def test_accounts_imports_no_app_above_it_not_even_through_clawtrace_site(graph):
    chains = [
        chain
        for module in sorted(graph)
        if _is_in(("accounts",))(module)
        and (chain := path_find(graph, module, _is_in(APPS_ABOVE_ACCOUNTS)))
    ]
    # Name each import that leaves accounts' side once (the last step out of it), not every
    # module that reaches it.
    crossings = sorted(
        {
            " -> ".join(chain[max(i for i, m in enumerate(chain) if _is_in(("accounts",))(m)) :])
            for chain in chains
        }
    )
    assert crossings == [], "accounts must not depend on billing, ingest or analytics: " + (
        "; ".join(crossings)
    )


def test_no_app_imports_the_workers_apps_above_it(graph):
    below = ("accounts", "analytics", "billing", "devices", "ingest", "clawtrace_site")
    crossings = sorted(
        " -> ".join(chain)
        for module in sorted(graph)
        if _is_in(below)(module)
        and ".tests" not in module
        and (chain := path_find(graph, module, _is_in(TOP_APPS)))
    )
    assert crossings == [], "imports of alerts or retention from below: " + "; ".join(crossings)


@pytest.mark.parametrize("module", FOUNDATION)
def test_models_tenancy_and_selectors_are_not_in_an_import_cycle(graph, module):
    cycle = path_find(graph, module, lambda target: target == module)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# --- The walker on made-up trees, so each rule is seen to fail -------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return tmp_path


def test_the_walker_finds_a_late_import_and_a_relative_one(tmp_path):
    root = _tree(
        tmp_path,
        {
            "accounts/__init__.py": "",
            "accounts/models.py": "from . import tenancy\n",
            "accounts/tenancy.py": "def f():\n    from accounts.models import X\n",
            "billing/__init__.py": "",
            "billing/plans.py": "",
        },
    )
    graph = import_graph_build(root, ("accounts", "billing"))
    assert path_find(graph, "accounts.models", lambda m: m == "accounts.models") == [
        "accounts.models",
        "accounts.tenancy",
        "accounts.models",
    ]


def test_the_walker_ignores_type_checking_imports_but_sees_indirect_ones(tmp_path):
    root = _tree(
        tmp_path,
        {
            "accounts/__init__.py": "",
            "accounts/models.py": "from accounts import tenancy\n",
            "accounts/tenancy.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from accounts.models import X\n"
            ),
            "accounts/views.py": "from clawtrace_site import pages\n",
            "clawtrace_site/__init__.py": "",
            "clawtrace_site/pages.py": "import billing.plans\n",
            "billing/__init__.py": "",
            "billing/plans.py": "",
        },
    )
    graph = import_graph_build(root, ("accounts", "billing", "clawtrace_site"))
    assert path_find(graph, "accounts.models", lambda m: m == "accounts.models") is None
    assert path_find(graph, "accounts.views", _is_in(("billing",))) == [
        "accounts.views",
        "clawtrace_site.pages",
        "billing.plans",
    ]

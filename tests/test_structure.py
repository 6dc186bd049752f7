"""The shape of the code, read from the source with ``ast`` (nothing here imports a project module).

* Imports run one way: no cycle among the project's modules (module granularity; a module's
  own parent packages do not count, Python has them in ``sys.modules`` before the module runs).
* No project import hides inside a function or a class (an import placed there to dodge a cycle
  hides the cycle). In ``models/`` and ``reparam/`` the one dynamic import is the registry's,
  of a family file by name.
* ``reparam`` sits under ``models``: only its CLI (``reparam/__main__.py``) imports ``models``.
* ``mobilelat`` (the command lines' shared errors, console and sizes) sits under everything: it
  imports no other package of the project.
* One home per shared block: ``drop_path``, ``LayerNorm2d``, ``Mlp`` and ``ConvBNAct`` are defined
  in ``models/layers.py`` only, and no two functions or classes in ``models/`` and ``reparam/``
  have the same code under different names.
"""
from __future__ import annotations

import ast
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mobilelat", "models", "reparam", "export", "profiling")
SHARED_BLOCKS = {"drop_path", "_drop_path", "LayerNorm2d", "Mlp", "AttMlp", "ConvBNAct"}
SHARED_HOME = "models/layers.py"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _project_files(root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file, for every module of the project's packages."""
    return {_module_name(path, root): path
            for package in PACKAGES for path in sorted((root / package).rglob("*.py"))}


@dataclass(frozen=True)
class ImportSite:
    """One import statement that names a project module."""

    module: str  # the importing module
    targets: tuple[str, ...]  # project modules the statement runs (the named one and its packages)
    line: int  # line number in the importing file
    local: bool  # inside a function or class body (not at module level)
    type_checking_only: bool  # under ``if TYPE_CHECKING:`` (never runs)


def _is_package(module: str, files: dict[str, Path]) -> bool:
    return files[module].name == "__init__.py"


def _resolve_relative(module: str, level: int, name: str | None, files: dict[str, Path]) -> str:
    package = module if _is_package(module, files) else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{name}" if name else package


def _with_parents(module: str, files: dict[str, Path]) -> list[str]:
    """``a.b.c`` -> the project modules ``a``, ``a.b``, ``a.b.c`` that importing it runs."""
    parts = module.split(".")
    return [name for name in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if name in files]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_sites(module: str, files: dict[str, Path]) -> list[ImportSite]:
    """Every import statement of ``module`` that reaches a project module."""
    tree = ast.parse(files[module].read_text(), filename=str(files[module]))
    sites: list[ImportSite] = []

    def visit(node: ast.AST, local: bool, type_checking: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            local = True
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, local, True)
            for child in node.orelse:
                visit(child, local, type_checking)
            return
        targets: list[str] = []
        if isinstance(node, ast.Import):
            for alias in node.names:
                targets += _with_parents(alias.name, files)
        elif isinstance(node, ast.ImportFrom):
            base = (_resolve_relative(module, node.level, node.module, files) if node.level
                    else node.module or "")
            targets += _with_parents(base, files)
            targets += [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in files]
        own_packages = set(_with_parents(module, files)) - {module}
        targets = [t for t in dict.fromkeys(targets) if t not in own_packages]
        if targets:
            sites.append(ImportSite(module, tuple(targets), node.lineno, local, type_checking))
        for child in ast.iter_child_nodes(node):
            visit(child, local, type_checking)

    for statement in tree.body:
        visit(statement, False, False)
    return sites


def module_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules its module-level code imports when it runs."""
    graph: dict[str, set[str]] = {module: set() for module in files}
    for module in files:
        for site in import_sites(module, files):
            if not site.local and not site.type_checking_only:
                graph[module].update(t for t in site.targets if t != module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                connect(successor)
                lowlink[node] = min(lowlink[node], lowlink[successor])
            elif successor in on_stack:
                lowlink[node] = min(lowlink[node], index[successor])
        if lowlink[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def _in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _package_params() -> list:
    """Every package of the project."""
    return list(PACKAGES)


FILES = _project_files()
GRAPH = module_graph(FILES)


@pytest.mark.fast
@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package: str) -> None:
    involved = [component for component in cycles(GRAPH) if any(_in_package(m, package) for m in component)]
    assert not involved, f"import cycles through {package}/: " + "; ".join(" <-> ".join(c) for c in involved)


@pytest.mark.fast
@pytest.mark.parametrize("package", _package_params())
def test_no_function_or_class_local_project_import(package: str) -> None:
    hidden = [f"{FILES[site.module].relative_to(ROOT)}:{site.line} imports {site.targets[-1]}"
              for module in FILES if _in_package(module, package)
              for site in import_sites(module, FILES) if site.local]
    assert not hidden, f"{len(hidden)} project import(s) inside a function or class:\n" + "\n".join(hidden)


def _dynamic_imports(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                yield node.lineno, ast.unparse(node)


@pytest.mark.fast
@pytest.mark.parametrize("package", ["models", "reparam"])
def test_the_registry_holds_the_only_dynamic_import(package: str) -> None:
    found = [f"{path.relative_to(ROOT)}:{line}: {call}" for module, path in FILES.items()
             if _in_package(module, package) for line, call in _dynamic_imports(path)]
    allowed = [entry for entry in found if entry.startswith("models/registry.py:")
               and "import_module(f'models.{family}')" in entry]
    assert len(allowed) == (1 if package == "models" else 0), found
    assert sorted(found) == sorted(allowed), "dynamic imports outside the registry:\n" + "\n".join(
        entry for entry in found if entry not in allowed)


@pytest.mark.fast
def test_reparam_sits_under_models() -> None:
    upward = [f"{module} imports {target}" for module in FILES if _in_package(module, "reparam")
              and module != "reparam.__main__"
              for site in import_sites(module, FILES) for target in site.targets if _in_package(target, "models")]
    assert not upward, upward
    # ... and models builds on it at module level (the hooks call reparam.fuse directly)
    assert any(_in_package(target, "reparam") for target in GRAPH["models.layers"])


@pytest.mark.fast
def test_mobilelat_sits_under_every_package() -> None:
    upward = [f"{module} imports {target}" for module in FILES if _in_package(module, "mobilelat")
              for site in import_sites(module, FILES) for target in site.targets
              if not _in_package(target, "mobilelat")]
    assert not upward, upward
    # ... and every package's command line builds on it
    for package in ("models", "reparam", "export", "profiling"):
        assert any(_in_package(target, "mobilelat") for module in FILES if _in_package(module, package)
                   for target in GRAPH[module]), package


# -------------------------------------------------------------------------- one home per block
def _definitions(path: Path) -> Iterator[tuple[str, ast.AST]]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name, node


@pytest.mark.fast
def test_shared_blocks_are_defined_only_in_models_layers() -> None:
    homes: dict[str, list[str]] = {}
    for path in FILES.values():
        for name, _ in _definitions(path):
            if name in SHARED_BLOCKS:
                homes.setdefault(name, []).append(str(path.relative_to(ROOT)))
    strays = {name: places for name, places in homes.items() if places != [SHARED_HOME]}
    assert not strays, f"shared blocks defined outside {SHARED_HOME} (or twice): {strays}"
    assert {"drop_path", "LayerNorm2d", "Mlp", "ConvBNAct"} <= set(homes)


def _shape(node: ast.AST) -> str:
    """The code of a definition without its name and docstring: equal shapes are copies."""
    node = copy.deepcopy(node)
    node.name = "_"
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        node.body = body[1:] or [ast.Pass()]
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def _top_level_definitions(packages: tuple[str, ...]) -> Iterator[tuple[str, ast.AST]]:
    for module, path in FILES.items():
        if any(_in_package(module, p) for p in packages):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    yield f"{path.relative_to(ROOT)}:{node.name}", node


@pytest.mark.fast
def test_no_copied_function_or_class_in_models_and_reparam() -> None:
    by_shape: dict[str, list[str]] = {}
    for where, node in _top_level_definitions(("models", "reparam")):
        if len(ast.unparse(node).splitlines()) >= 4:  # one-liners may coincide honestly
            by_shape.setdefault(_shape(node), []).append(where)
    copies = [places for places in by_shape.values() if len(places) > 1]
    assert not copies, f"the same code defined more than once: {copies}"


# ------------------------------------------------------------------------- the checks can fail
@pytest.mark.fast
def test_the_scanners_see_cycles_local_imports_and_copies(tmp_path: Path) -> None:
    """The same scanners on a small tree with every fault: each is reported."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "models" / "a.py").write_text("import reparam.b\n")
    (tmp_path / "reparam" / "b.py").write_text("from models import a\n")
    (tmp_path / "reparam" / "c.py").write_text(
        "def f():\n    from models import a\n    return a\n\n"
        "class K:\n    import reparam.b as b\n")
    (tmp_path / "reparam" / "d.py").write_text("from . import b\n")
    files = _project_files(tmp_path)
    assert cycles(module_graph(files)) == [["models.a", "reparam.b"]]
    local = sorted((s.module, s.line) for m in files for s in import_sites(m, files) if s.local)
    assert local == [("reparam.c", 2), ("reparam.c", 6)]
    assert "reparam.b" in module_graph(files)["reparam.d"]  # relative imports resolve
    twin = "def one(x):\n    y = x + 1\n    z = y * 2\n    return z\n"
    assert _shape(ast.parse(twin).body[0]) == _shape(ast.parse(twin.replace("one", "two")).body[0])

"""The engine's shape: no import circles, no engine code on old module paths, old paths still importable.

The import graph is read from the source with ``ast`` (nothing is imported to build it), module by
module, counting imports inside functions too: a function-level import only postpones a circle.
Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``, so those count as edges as well.
"""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

import calid
from calid import _moved

ENGINE = Path(calid.__file__).resolve().parent


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under ``root`` (the package ``package``)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported_names(path: Path, module: str, is_package: bool) -> set[str]:
    """Every dotted name an import statement in ``path`` may load, at any depth of the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    base = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.rsplit(".", node.level - 1)[0] if node.level > 1 else base
                source = f"{anchor}.{node.module}" if node.module else anchor
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return names


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (and their parent packages, whose __init__ runs first)."""
    files = module_files(root, package)
    graph = {}
    for module, path in files.items():
        targets = set()
        for name in imported_names(path, module, path.name == "__init__.py"):
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                prefix = ".".join(parts[:depth])
                if prefix in files and prefix != module and not module.startswith(prefix + "."):
                    targets.add(prefix)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (depth-first search, colouring nodes)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_engine_has_no_import_circle():
    cycle = find_cycle(import_graph(ENGINE, "calid"))
    assert cycle is None, "import circle: " + " -> ".join(cycle) + "; move the shared piece into a module both can import"


#: Packages that come after others in the data flow (docs/ARCHITECTURE.md) and must not be imported by them:
#: reading, reconstructing and scoring never need training code, and nothing in the engine needs the CLI.
DOWNSTREAM = {"calid.train": ("calid.io", "calid.methods", "calid.models", "calid.evaluation", "calid.segmentation"),
              "calid.commands": ("calid.io", "calid.methods", "calid.models", "calid.evaluation", "calid.segmentation",
                                 "calid.train", "calid.phantom")}


def test_no_package_imports_one_downstream_of_it():
    graph = import_graph(ENGINE, "calid")
    wrong = sorted(f"{module} -> {target}" for module, targets in graph.items() for target in targets
                   for downstream, upstream in DOWNSTREAM.items()
                   if (target == downstream or target.startswith(downstream + ".")) and module.startswith(upstream))
    assert not wrong, "imports against the data flow (move the shared piece upstream): " + ", ".join(wrong)


def test_the_circle_finder_sees_circles_through_functions_and_package_inits(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg.sub import b\n")
    (package / "sub" / "__init__.py").write_text("from pkg.sub.c import X\n")
    (package / "sub" / "b.py").write_text("")
    (package / "sub" / "c.py").write_text("X = 1\n")
    assert find_cycle(import_graph(package, "pkg")) is None
    (package / "sub" / "c.py").write_text("def g():\n    import pkg.a\n")
    assert find_cycle(import_graph(package, "pkg")) == ["pkg.a", "pkg.sub", "pkg.sub.c", "pkg.a"]
    (package / "sub" / "c.py").write_text("from .. import a\n")  # relative imports resolve too
    assert find_cycle(import_graph(package, "pkg")) == ["pkg.a", "pkg.sub", "pkg.sub.c", "pkg.a"]


def test_engine_code_never_imports_an_old_module_path():
    offenders = {module: sorted(names & set(_moved.MOVED))
                 for module, path in module_files(ENGINE, "calid").items()
                 if (names := imported_names(path, module, path.name == "__init__.py")) & set(_moved.MOVED)}
    assert offenders == {}, "import these from their new place (calid/_moved.py lists where each went)"


def test_no_old_path_is_still_a_file():
    """An old path that is a file again would hide the alias (and git would no longer see the move as a rename)."""
    files = module_files(ENGINE, "calid")
    assert sorted(set(_moved.MOVED) & set(files)) == []
    assert all(new in files for targets in _moved.MOVED.values() for new in targets)


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_old_module_paths_still_import_with_a_warning(old):
    already = old in sys.modules  # the warning comes once per process, on the first import
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    new = _moved.MOVED[old]
    if len(new) == 1:
        assert module is importlib.import_module(new[0])  # one module: monkeypatches reach the code
    for name in new:
        public = [key for key in vars(importlib.import_module(name)) if not key.startswith("_")]
        assert all(hasattr(module, key) for key in public), f"{old} lacks names of {name}"
    assert already or any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught)


@pytest.mark.parametrize("package, old_names", [
    ("calid.io", ("read", "write", "read_segmentation", "write_segmentation", "atomic_path", "compound_suffix",
                  "SYNTHESIZED_KEY", "parse_slice_indices", "volume_from_sitk", "volume_to_sitk")),
    ("calid.segmentation", ("segment", "segment_array", "load_segmenter", "resolve_device", "evaluate_segmenter")),
    ("calid.phantom", ("make_phantom", "make_phantom_pair", "PhantomParams")),
])
def test_old_modules_that_became_packages_keep_their_names(package, old_names):
    module = importlib.import_module(package)
    for name in old_names:
        value = getattr(module, name)
        assert getattr(value, "__name__", name) == name  # the function itself, not a submodule of that name


def test_unknown_names_of_those_packages_are_attribute_errors():
    import calid.io

    with pytest.raises(AttributeError, match="no_such_name"):
        calid.io.no_such_name  # noqa: B018

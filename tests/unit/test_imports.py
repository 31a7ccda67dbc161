"""The package's imports: no circle among its modules, and the composition root imported from the top only.

grimp reads the imports from the source (lazy imports inside functions and ``TYPE_CHECKING`` imports
included), so a circle hidden in a function body counts too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import grimp
import pytest

PACKAGE = "stepwise"
# Who may import the composition root besides functions/*/app.py and the tests: the local stack.
COMPOSERS = ("stepwise.local",)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE)


def circles(modules: Iterable[str], imports_of: Callable[[str], set[str]]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan's algorithm, without recursion)."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(modules):
        if root in index:
            continue
        work = [(root, iter(sorted(imports_of(root))))]
        index[root] = lowest[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, pending = work[-1]
            imported = next(pending, None)
            if imported is not None:
                if imported not in index:
                    index[imported] = lowest[imported] = len(index)
                    stack.append(imported)
                    on_stack.add(imported)
                    work.append((imported, iter(sorted(imports_of(imported)))))
                elif imported in on_stack:
                    lowest[module] = min(lowest[module], index[imported])
                continue
            work.pop()
            if work:
                lowest[work[-1][0]] = min(lowest[work[-1][0]], lowest[module])
            if lowest[module] == index[module]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def described(graph: grimp.ImportGraph, group: list[str]) -> str:
    """One loop through the group, module by module, as a reader would follow it."""
    first = group[0]
    following = sorted(graph.find_modules_directly_imported_by(first) & set(group))[0]
    chain = graph.find_shortest_chain(importer=following, imported=first) or ()
    return " -> ".join((first, *chain)) + f"  (the circle holds {len(group)} modules)"


def test_no_module_imports_itself_through_others(graph: grimp.ImportGraph) -> None:
    found = circles(graph.modules, graph.find_modules_directly_imported_by)

    assert not found, "import circles:\n" + "\n".join(described(graph, group) for group in found)


def test_the_circle_check_finds_a_circle() -> None:
    # Given a, b and c importing each other in a ring, and d importing into it from outside
    imports = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}

    assert circles(imports, imports.__getitem__) == [["a", "b", "c"]]


def test_the_composition_root_is_imported_only_from_the_top(graph: grimp.ImportGraph) -> None:
    importers = graph.find_modules_that_directly_import("stepwise.wiring")

    assert importers and all(module.startswith(COMPOSERS) for module in importers), sorted(importers)


def test_the_settings_are_read_only_by_the_composition_root(graph: grimp.ImportGraph) -> None:
    assert graph.find_modules_directly_imported_by("stepwise.settings") == set()
    assert graph.find_modules_that_directly_import("stepwise.settings") == {"stepwise.wiring"}


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def test_the_models_import_nothing_of_the_package_but_the_models(graph: grimp.ImportGraph) -> None:
    # The models are the leaf every layer builds on: shapes only, no rule that needs a node type or the store.
    models = {module for module in graph.modules if in_package(module, "stepwise.models")}
    outside = {
        f"{module} -> {imported}"
        for module in models
        for imported in graph.find_modules_directly_imported_by(module)
        if in_package(imported, PACKAGE) and not in_package(imported, "stepwise.models")
    }

    assert len(models) > 1 and not outside, sorted(outside)

"""Import cycles among a package's modules, counting every import: inside functions and under TYPE_CHECKING too.

The interpreter only trips over a cycle when both ends run at import time, so a cycle hidden in a function or
behind TYPE_CHECKING still ties two modules together: neither can be read, tested or moved without the other.
grimp (import-linter's graph) sees those imports; this finds the strongly connected components of its graph.

    python scripts/import_cycles.py [package ...]   (default: server; exit 1 and list the cycles if any)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Set

import grimp


def strongly_connected(edges: Mapping[str, Set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a deep package must not hit the recursion limit); components of 2+ only."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component: list[str] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def import_cycles(*packages: str) -> list[list[str]]:
    """Every group of modules that import one another, directly or not (grimp counts all import statements)."""
    graph = grimp.build_graph(*packages, include_external_packages=False, cache_dir=None)
    edges = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    return strongly_connected(edges)


def main(argv: list[str]) -> int:
    packages = argv or ["server"]
    cycles = import_cycles(*packages)
    for component in cycles:
        print(f"import cycle among {len(component)} modules: {', '.join(component)}")
    if cycles:
        return 1
    print(f"import cycles: none in {', '.join(packages)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

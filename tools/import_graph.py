"""Print mlrepo's import graph between its top-level parts, read from the code's own imports.

A part is a top-level module (``mlrepo/predict.py``) or subpackage (``mlrepo/serve/``). Every
``import`` and ``from ... import`` of ``mlrepo`` counts, at module level or inside a function
(the lazy imports that keep start-up fast are dependencies too). For each part the script lists
the parts it imports; then the cycles between parts, if any. ``--dot`` writes Graphviz instead
(``python tools/import_graph.py --dot | dot -Tpng -o imports.png``). ``--root`` reads another
checkout, e.g. a ``git worktree`` of an older commit, to compare before and after.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def part_of(module: str) -> str | None:
    """``mlrepo.serve.app`` -> ``serve``; None for anything outside mlrepo or the face."""
    names = module.split(".")
    return names[1] if names[0] == "mlrepo" and len(names) > 1 else None


def imports(path: Path, package: Path) -> set[str]:
    """The mlrepo modules ``path`` imports (relative imports resolved against ``package``)."""
    module = ".".join(("mlrepo", *path.relative_to(package).with_suffix("").parts))
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph(package: Path) -> dict[str, set[str]]:
    """Each part -> the other parts it imports."""
    parts = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    parts |= {d.name for d in package.iterdir() if (d / "__init__.py").is_file()}
    edges: dict[str, set[str]] = {part: set() for part in parts}
    for path in sorted(package.rglob("*.py")):
        source = path.relative_to(package).parts[0].removesuffix(".py")
        if source not in parts:
            continue  # the package's own __init__.py: its face, not a part
        targets = {part_of(module) for module in imports(path, package)}
        edges[source] |= {t for t in targets if t in parts and t != source}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk, each reported once."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                cycle = path[path.index(nxt) :]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append([*cycle, nxt])
            elif len(path) < len(edges):
                walk(nxt, [*path, nxt])

    for start in sorted(edges):
        walk(start, [start])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--dot", action="store_true", help="write Graphviz dot")
    args = parser.parse_args(argv)
    package = args.root / "src" / "mlrepo"
    if not package.is_dir():
        print(f"error: {package}: not an mlrepo checkout (no src/mlrepo)", file=sys.stderr)
        return 2
    edges = graph(package)
    if args.dot:
        print("digraph mlrepo {\n  rankdir=TB;")
        for source in sorted(edges):
            for target in sorted(edges[source]):
                print(f'  "{source}" -> "{target}";')
        print("}")
        return 0
    for source in sorted(edges):
        print(f"{source:16} -> {', '.join(sorted(edges[source])) or '(nothing of mlrepo)'}")
    loops = cycles(edges)
    print("cycles: " + ("; ".join(" -> ".join(c) for c in loops) if loops else "none"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

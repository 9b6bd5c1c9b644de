"""The code stays readable as it grows (STYLE.md, issue 18): no module over 400 lines
in minimesh/, tui/ or bench/, and no import circle inside minimesh/.

An import circle is counted over every import statement, those inside
functions included: a lazy import that only hides a circle still ties the two
modules into one concept (as check.py, security_checks.py and trace_check.py
were tied through Verdict before it got its own module).
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAX_LINES = 400


def modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((REPO / package).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Modules of `known` that the module `name` imports (a from-import of a submodule counts as it)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_module_is_over_400_lines():
    too_long = {str(p.relative_to(REPO)): n for pkg in ("minimesh", "tui", "bench")
                for p in modules(pkg).values() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not too_long, f"split these along their concepts (STYLE.md): {too_long}"


def test_minimesh_has_no_import_circle():
    known = modules("minimesh")
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    found = circles(graph)
    assert not found, f"import circles: {found}"


def test_the_circle_finder_finds_a_circle():
    # A check that cannot fail is a defect: the finder sees a → b → c → a.
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

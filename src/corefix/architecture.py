"""The package's modules and their imports, read from the code itself.

``python -m corefix.architecture`` prints the Mermaid diagram that
``docs/architecture.md`` embeds; a test checks that the page holds exactly
what this prints, and that the layers below hold:

- foundation (``words``, ``lexicon``, ``nlp``, ``config``) imports no other layer;
- ``data`` (making training data) imports the foundation only;
- ``model`` (the model's life) imports the foundation and ``data``;
- ``cli`` and ``hf_metric`` (the ``evaluate`` metric) are on top; nothing imports them.

Every import counts, including those inside functions (lazy imports).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
LAYERS = ("foundation", "data", "model", "interfaces")
LAYER_TITLES = {"foundation": "foundation", "data": "data: making training data",
                "model": "model: the model's life", "interfaces": "on top: the CLI and the evaluate metric"}


def layer_of(module: str) -> str:
    head = module.split(".")[0]
    if head in ("data", "model"):
        return head
    if head in ("cli", "hf_metric"):
        return "interfaces"
    return "foundation"


def modules() -> dict[str, Path]:
    """Module name (relative to the package, e.g. ``model.decode``) -> file, without ``__init__`` and this one."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        if rel.name in ("__init__", "__main__") or rel.name == "architecture":
            continue
        out[".".join(rel.parts)] = path
    return out


def _resolve(module: str, node: ast.ImportFrom) -> str | None:
    """The package-relative module an ``import from`` names (None: outside the package)."""
    if node.level == 0:
        if not (node.module or "").startswith("corefix"):
            return None
        return (node.module or "").removeprefix("corefix").lstrip(".")
    base = module.split(".")[: -node.level]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, path: Path) -> list[tuple[str, list[str]]]:
    """``(imported module, names)`` of every package import in ``path``, functions' bodies included."""
    known = modules()
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if target is None:
                continue
            names = [a.name for a in node.names]
            if target in known:
                out.append((target, names))
            else:  # "from . import x" or "from .model import x": the names are modules
                out.extend((f"{target}.{n}".lstrip("."), []) for n in names if f"{target}.{n}".lstrip(".") in known)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("corefix."):
                    target = alias.name.removeprefix("corefix.")
                    if target in known:
                        out.append((target, []))
    return out


def graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    return {m: {t for t, _ in imports(m, p)} - {m} for m, p in modules().items()}


def reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def mermaid() -> str:
    """The diagram: one box per layer, one arrow per import (A --> B: A imports B)."""
    edges = graph()
    ids = {m: m.replace(".", "_") for m in edges}
    lines = ["flowchart BT"]
    for layer in LAYERS:
        members = [m for m in edges if layer_of(m) == layer]
        lines.append(f'  subgraph {layer}["{LAYER_TITLES[layer]}"]')
        lines += [f'    {ids[m]}["{m}"]' for m in members]
        lines.append("  end")
    for m in edges:
        lines += [f"  {ids[m]} --> {ids[t]}" for t in sorted(edges[m])]
    return "\n".join(lines)


if __name__ == "__main__":
    print(mermaid())

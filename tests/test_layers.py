"""The layers are a contract: every import in basam_ui (at the top of a module or inside a
function) goes down the stack or sideways within a layer, never up, and no modules import each
other in a circle. Read from the source with `ast`, so nothing is imported here."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "basam_ui"

# bottom to top; a module belongs to the first layer whose prefix names it
LAYERS = [
    ("words", ["vocabulary", "prompts", ""]),  # "": the package itself (__version__, lazy exports)
    ("method", ["basam"]),
    ("engine", ["sources", "checkpoints", "models", "precision", "decoder", "lean_decoder", "cache", "segmenter",
                "image_io", "mask_formats", "export", "metrics", "proposals", "onnx_decoder", "encode_watch"]),
    ("project", ["project"]),
    ("jobs", ["jobs"]),
    ("evaluation", ["evaluation"]),
    ("web common", ["web", "web.common"]),
    ("pages", ["web.compare", "web.annotate"]),
    ("bench", ["bench"]),
    ("cli", ["cli", "__main__"]),
]
INDEPENDENT = [("web.compare", "web.annotate")]  # neither imports the other


def modules() -> dict[str, Path]:
    """Module name (relative to basam_ui, "" for the package itself) -> file."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def layer_of(name: str) -> int:
    best, level = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or (prefix and name.startswith(prefix + ".")):
                if len(prefix) > best:
                    best, level = len(prefix), index
    assert level is not None, f"basam_ui.{name} is in no layer: add it to LAYERS in {__file__}"
    return level


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The basam_ui modules that `name` imports anywhere in its file."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [p for p in package if p]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                stem = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "basam_ui" or node.module.startswith("basam_ui.")):
                stem = node.module.removeprefix("basam_ui").lstrip(".")
            else:
                continue
            targets = [f"{stem}.{alias.name}".lstrip(".") for alias in node.names] + [stem]
        elif isinstance(node, ast.Import):
            targets = [a.name.removeprefix("basam_ui").lstrip(".") for a in node.names if a.name.startswith("basam_ui")]
        for target in targets:
            # `from .x import y`: y may be a module of x or a name in it
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def test_every_import_goes_down_the_layers():
    wrong = []
    for name, targets in graph().items():
        for target in targets:
            if layer_of(target) > layer_of(name) and not name.startswith(target + ".") and name != "":
                wrong.append(f"basam_ui.{name} ({LAYERS[layer_of(name)][0]}) imports basam_ui.{target} "
                             f"({LAYERS[layer_of(target)][0]})")
    assert not wrong, "imports running up the layers:\n" + "\n".join(sorted(wrong))


def test_only_the_cli_imports_the_benchmarks():
    importers = {name for name, targets in graph().items() if any(t == "bench" or t.startswith("bench.") for t in targets)}
    assert {n for n in importers if not n.startswith("bench")} == {"cli"}


def test_the_pages_do_not_import_each_other():
    edges = graph()
    for a, b in INDEPENDENT:
        for x, y in ((a, b), (b, a)):
            crossing = [(n, t) for n, ts in edges.items() if n.startswith(x) for t in ts if t.startswith(y)]
            assert not crossing, f"{x} and {y} must stay independent: {crossing}"


def test_no_import_circle():
    edges = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    # a package's __init__ re-exporting its own modules is not a circle of the code
    circles = [c for c in circles if not all(m == c[0] or m.startswith(c[0] + ".") for m in c)]
    assert not circles, f"modules importing each other in a circle: {circles}"


def test_the_contract_sees_real_imports():
    """The checks above could pass by seeing nothing: they see the arrows that exist."""
    edges = graph()
    assert "segmenter" in edges["web.common.engine"] or "segmenter" in edges["web.common.gpu_work"]
    assert "bench" in edges["cli"] and "vocabulary" in edges["segmenter"] and "basam.config" in edges["cache"]


def test_no_module_over_400_lines():
    """Small modules with one job each: a module past 400 lines is split by job."""
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > 400}
    assert not long, f"modules over 400 lines: {long}"

"""The package's layers (ARCHITECTURE.md): a module imports only from its own layer or the layers below it,
so compute never imports presentation, and the import graph has no cycle between layers."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "code" / "genreview"

# Bottom to top. The first part of a module's name below genreview decides its layer.
LAYERS = [
    ("foundation", {"files", "utils", "paths", "hparams", "provenance", "data", "hashing"}),
    ("diffusion", {"diffusion"}),
    ("models", {"models"}),
    ("training", {"training"}),
    ("evaluation", {"evaluation"}),
    ("studies", {"studies"}),
    ("summary", {"summary"}),
    ("publish", {"publish"}),
    ("entry points", {"config", "config_schema", "bench", "__main__"}),
]
RANK = {part: i for i, (_, parts) in enumerate(LAYERS) for part in parts}
PUBLISH = RANK["publish"]


def _module(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every genreview import in the file, function-level imports included."""
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [target] if node.module or not node.level else [f"{target}.{a.name}" for a in node.names]
            out += [(node.lineno, t) for t in names if t.startswith("genreview")]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("genreview")]
    return out


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None  # the package itself
    part = parts[1]
    if part not in RANK and (PKG / f"{part}.py").exists() is False and not (PKG / part).is_dir():
        return None  # a name imported from the package, not a module
    return RANK.get(part, -1)


def _edges():
    for path in sorted(PKG.rglob("*.py")):
        mod = _module(path)
        for line, target in _imports(path):
            yield path.relative_to(PKG), mod, line, target


def test_every_module_has_a_layer():
    unplaced = sorted({str(p) for p, mod, *_ in _edges() if _layer(mod) == -1} |
                      {str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if _layer(_module(p)) == -1})
    assert not unplaced, f"modules in no layer of tests/test_layers.py (add them to LAYERS): {unplaced}"


def test_compute_never_imports_presentation():
    bad = [f"{p}:{line} imports {t}" for p, mod, line, t in _edges()
           if _layer(t) == PUBLISH and (_layer(mod) or 0) < PUBLISH]
    assert not bad, "compute imports presentation:\n" + "\n".join(bad)


def test_imports_point_down():
    bad = [f"{p}:{line} ({LAYERS[_layer(mod)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
           for p, mod, line, t in _edges()
           if _layer(mod) is not None and _layer(t) is not None and _layer(t) > _layer(mod) >= 0]
    assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


@pytest.mark.parametrize("source,target", [("training/train.py", "genreview.publish.formatting"),
                                           ("models/base.py", "genreview.studies.sweeps")])
def test_the_check_catches_an_upward_import(source, target):
    mod = _module(PKG / source)
    assert _layer(target) > _layer(mod), "the layer order itself would let this import through"

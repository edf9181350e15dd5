"""The import boundaries of docs/architecture.md, enforced: textual only in tui/, torch at
module level only in capture/, and the numpy side (analysis/, report/, the file formats, the
CLI's dispatch) importable on a machine with neither torch nor textual.

Two checks: a static one over every module's import statements (which package may import what,
at module level or inside functions), and a dynamic one that imports the modules in a fresh
interpreter where torch, transformers and textual are blocked, which also catches an import
that pulls torch in through another of our modules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "neuroscope_tui"
# Packages that run a model: only these may import torch when they are imported.
TORCH_AT_MODULE_LEVEL = ("capture",)
# Modules that may import torch or transformers inside a function (lazily, to run a model).
TORCH_INSIDE_FUNCTIONS = ("capture", "models", "cli", "tui")
# capture/ modules the architecture table says need no torch (the estimate and the options
# are computed before a model is loaded).
CAPTURE_WITHOUT_TORCH = ("interventions", "memory", "sampling")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _dotted(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(path: Path) -> str:
    """The first-level package under neuroscope_tui/ ('' for a top-level module)."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(top-level distributions imported at module level, those imported anywhere else)."""

    def names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name.split(".")[0] for alias in node.names]
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            return [node.module.split(".")[0]]
        return []

    tree = ast.parse(path.read_text(encoding="utf-8"))
    module_level: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue  # typing-only imports never run
        module_level.update(names(node))
        if isinstance(node, (ast.If, ast.Try)):  # guarded imports still run at import time
            for inner in ast.walk(node):
                module_level.update(names(inner))
    anywhere = {n for node in ast.walk(tree) for n in names(node)}
    return module_level, anywhere - module_level


def test_the_static_scan_sees_imports() -> None:
    """The checks below are only as good as _imports: it must see both kinds of import."""
    top, inner = _imports(PACKAGE / "capture" / "recorder.py")
    assert "torch" in top
    top, inner = _imports(PACKAGE / "models" / "loader.py")
    assert "torch" not in top and "torch" in inner


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_respects_the_boundaries(path: Path) -> None:
    package = _package(path)
    top, inner = _imports(path)
    if package != "tui":
        assert "textual" not in top | inner, "textual is imported outside tui/"
    for heavy in ("torch", "transformers"):
        if heavy in top:
            assert package in TORCH_AT_MODULE_LEVEL and path.stem not in CAPTURE_WITHOUT_TORCH, (
                f"{heavy} imported at module level outside capture/"
            )
        if heavy in inner:
            assert package in TORCH_INSIDE_FUNCTIONS, f"{heavy} imported outside the model side"


def _import_all_with_blocked(blocked: tuple[str, ...], modules: list[str]) -> None:
    """Import `modules` in a fresh interpreter where the `blocked` distributions cannot load."""
    code = (
        "import importlib, sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        f"for module in {modules!r}:\n"
        "    importlib.import_module(module)\n"
        f"leaked = [m for m in {blocked!r} if sys.modules.get(m) is not None]\n"
        "assert not leaked, leaked\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def _numpy_side() -> list[str]:
    """Every module outside capture/, models/ and tui/, plus capture's torch-free ones."""
    out = []
    for path in _modules():
        package = _package(path)
        if package in ("models", "tui") or path.name == "__main__.py":
            continue
        if package == "capture" and path.stem not in CAPTURE_WITHOUT_TORCH:
            continue
        out.append(_dotted(path))
    return out


def test_numpy_side_imports_without_torch_or_textual() -> None:
    """analysis/, report/, the file formats and every CLI module load on a bare machine: `view`,
    `export`, `info` and `--help` start without torch, and no analysis can reach for it."""
    modules = _numpy_side()
    assert "neuroscope_tui.analysis.metrics" in modules and "neuroscope_tui.cli.export" in modules
    _import_all_with_blocked(("torch", "transformers", "textual"), modules)


def test_tui_imports_without_torch() -> None:
    """The app and every view load without torch: the model side is reached only in the worker."""
    modules = [_dotted(p) for p in _modules() if _package(p) == "tui"]
    assert "neuroscope_tui.tui.app" in modules
    _import_all_with_blocked(("torch", "transformers"), modules)


def test_model_side_imports_without_textual() -> None:
    """capture/ and models/ run headless (`capture`, `report`, a GPU box without textual)."""
    modules = [_dotted(p) for p in _modules() if _package(p) in ("capture", "models")]
    _import_all_with_blocked(("textual",), modules)


# nnsight is an optional extra (neuroscope-tui[nnsight]): only these modules reach for it, and
# only inside functions, so nothing else needs it installed.
NNSIGHT_MODULES = ("capture/nnsight_backend.py", "capture/remote.py")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nnsight_only_inside_the_backend_functions(path: Path) -> None:
    top, inner = _imports(path)
    assert "nnsight" not in top, "nnsight imported at module level"
    if "nnsight" in inner:
        assert str(path.relative_to(PACKAGE)) in NNSIGHT_MODULES, (
            "nnsight imported outside capture/"
        )


def test_every_module_imports_without_nnsight() -> None:
    """With nnsight absent, every module still loads (the backend's modules included: they
    say how to install it only when asked to run)."""
    modules = [_dotted(p) for p in _modules() if p.name != "__main__.py"]
    _import_all_with_blocked(("nnsight",), modules)

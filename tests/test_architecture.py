"""The layering the folder tree promises: backends know nothing of tensorlite, the library never imports the
command line, and importing the library loads no CLI or plotting package."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP_PACKAGES = ("typer", "rich", "click", "matplotlib")
LIBRARY_IMPORTS = ("tensorlite", "tensorlite.nn", "tensorlite.optim", "tensorlite.models", "tensorlite.utils.data")


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names (relative imports as ``.name``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def python_files(folder: str) -> list[Path]:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"no Python files under {folder}/"
    return files


@pytest.mark.parametrize("path", python_files("backends"), ids=lambda p: p.name)
def test_backends_import_nothing_from_tensorlite(path: Path) -> None:
    # ``.base`` stays inside backends/; ``..tensor`` would climb into the package it is installed under
    offending = {name for name in imported_modules(path) if name.split(".")[0] == "tensorlite" or name[:2] == ".."}
    assert not offending, f"{path.name} imports {sorted(offending)}: a backend must stand alone"


@pytest.mark.parametrize("path", [p for p in python_files("tensorlite") if "cli" not in p.relative_to(ROOT).parts]
                         + python_files("models"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_never_imports_the_command_line(path: Path) -> None:
    offending = {name for name in imported_modules(path) if name.startswith(("tensorlite.cli", "typer"))}
    assert not offending, f"{path.relative_to(ROOT)} imports {sorted(offending)}"


def test_importing_the_library_loads_no_cli_or_plotting_package() -> None:
    code = (f"import sys\nfor name in {LIBRARY_IMPORTS!r}:\n    __import__(name)\n"
            f"import json\nprint(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in {APP_PACKAGES!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(done.stdout) == []


def test_the_check_sees_a_loaded_package() -> None:
    """The subprocess check above reports what it should: here a package the CLI loads."""
    code = (f"import sys\nimport tensorlite.cli.app\n"
            f"import json\nprint(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in {APP_PACKAGES!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert "typer" in json.loads(done.stdout)


@pytest.mark.parametrize("path", python_files("backends") + python_files("tensorlite") + python_files("models"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_compiled_code_lives_in_one_file(path: Path) -> None:
    """Every Numba-compiled function of the library is in backends/numba_kernels.py. Numba's cache checks only a
    function's own file, and a cached function keeps its compiled copy of what it calls: a cached caller in another
    file would run the kernels' old code after they change (blas_threads.py's run_part did, until it moved)."""
    if path.name == "numba_kernels.py":
        return
    compiled = [node.lineno for node in ast.walk(ast.parse(path.read_text(), str(path)))
                if isinstance(node, ast.Attribute) and node.attr in ("njit", "jit", "cfunc", "vectorize", "stencil")
                and isinstance(node.value, ast.Name) and node.value.id == "numba"]
    assert not compiled, f"{path.relative_to(ROOT)} compiles with Numba at lines {compiled}"

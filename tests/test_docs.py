"""The documentation stays true: every example in docs/ runs and prints what its page shows, the CLI page
holds the commands' help as they print it today, and the API reference names every public name.

The outputs in the pages are written by ``scripts/make_docs_outputs.py`` (run it after changing an example
or the code it shows); these tests run the same pages and compare.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
_spec = importlib.util.spec_from_file_location("make_docs_outputs", ROOT / "scripts" / "make_docs_outputs.py")
make_docs_outputs = sys.modules["make_docs_outputs"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_docs_outputs)

PAGES = make_docs_outputs.pages()
GUIDE = sorted((DOCS / "guide").glob("[0-9][0-9]-*.md"))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_examples_print_what_the_page_shows(page: Path, tmp_path: Path) -> None:
    reason = make_docs_outputs.needs(page)
    if reason:
        pytest.skip(reason)
    text, results, images = make_docs_outputs.run_page(page, tmp_path)
    problems = make_docs_outputs.problems(page, text, results, images)
    assert not problems, "\n\n".join(problems) + "\n\n(python scripts/make_docs_outputs.py rewrites the outputs)"


def test_the_guide_has_its_sixteen_chapters_in_the_toctree() -> None:
    assert [p.name[:2] for p in GUIDE] == [f"{i:02d}" for i in range(1, 17)]
    index = (DOCS / "guide" / "index.md").read_text()
    for page in GUIDE:
        assert re.search(rf"^{page.stem}$", index, re.M), f"{page.name} is not in the guide's toctree"
    for page in GUIDE:
        assert page in PAGES, f"{page.name} has no example that runs"


def test_comparison_tolerates_rounding_only() -> None:
    same = make_docs_outputs.same_output
    assert same("loss 0.6931\n", "loss 0.6932\n", "output")        # the last printed digit
    assert not same("150 rows\n", "151 rows\n", "output")           # integers exactly
    assert same("loss 2.444\n", "loss 2.446\n", "output")          # or 1%: other kernels round differently
    assert not same("loss 0.6931\n", "loss 0.7051\n", "output")
    assert not same("loss 0.6931\n", "acc 0.6931\n", "output")
    assert not same("a\n", "a\nb\n", "output")
    assert same("took 1.2 ms\n", "took 9.7 ms\n", "timing")       # timings: the words, not the numbers
    assert same("took  1.2 ms\n", "took 10.2 ms\n", "timing")    # padding follows the numbers
    assert not same("took 1.2 ms\n", "took 1.2 s\n", "timing")
    assert same("ROMEO:\nWhat say\n", "ROMEO:\nWho art?\n", "sample")  # samples: first line and length
    assert not same("ROMEO:\nWhat say\n", "ROMEO:\nWh\n", "sample")
    assert same("ROMEO:\nWhat s", "ROMEO:\nWhat \n", "sample")  # a sample that ends in a space, kept or dropped


def test_a_broken_example_is_caught(tmp_path: Path) -> None:
    """A block whose code no longer prints what the page shows, a block that raises, a missing output."""
    page = tmp_path / "page.md"
    page.write_text("```python\nprint(1 + 1)\n```\n\n```output\n3\n```\n\n```python\nprint('x')\n```\n")
    text, results, images = make_docs_outputs.run_page(page, tmp_path / "run")
    found = make_docs_outputs.problems(page, text, results, images)
    assert len(found) == 2 and "prints\n2" in found[0] and "no output block" in found[1]
    page.write_text("```python\n1 / 0\n```\n")
    with pytest.raises(ZeroDivisionError):
        make_docs_outputs.run_page(page, tmp_path / "run2")


API_MODULES = ["tensorlite", "tensorlite.nn", "tensorlite.nn.functional", "tensorlite.optim", "tensorlite.utils.data",
               "tensorlite.models", "tensorlite.nn.init", "tensorlite.optim.lr_scheduler", "tensorlite.datasets",
               "tensorlite.training"]
if importlib.util.find_spec("tensorlite.distributed") is not None:
    API_MODULES.append("tensorlite.distributed")
DIRECTIVE = re.compile(r"^\.\. (auto\w+|py:\w+):: +(\S+)\n((?:(?: {3,}\S.*)?\n)*)", re.M)


def documented_names() -> set[str]:
    """Every dotted name the API pages document: directive targets, their extra signatures, ``:members:`` lists."""
    names = set()
    for page in (DOCS / "api").glob("*.md"):
        for directive, target, body in DIRECTIVE.findall(page.read_text()):
            names.add(target)
            names.update(re.findall(r"^ {13}(tensorlite\.\S+)$", body, re.M))  # .. py:data:: a / b on two lines
            members = re.search(r":members:(.*)", body)
            if members and members.group(1).strip():
                names.update(f"{target}.{m.strip()}" for m in members.group(1).split(","))
            elif members and directive == "automodule":
                names.update(f"{target}.{m}" for m in public_names(target))
    return names


def public_names(module: str) -> list[str]:
    """``__all__``, or for a module without one the public names it defines itself."""
    mod = importlib.import_module(module)
    if hasattr(mod, "__all__"):
        return list(mod.__all__)
    return [n for n, o in vars(mod).items() if not n.startswith("_") and getattr(o, "__module__", None) == module]


@pytest.mark.parametrize("module", API_MODULES)
def test_the_api_reference_documents_every_public_name(module: str) -> None:
    documented = documented_names()
    public = public_names(module)
    missing = [name for name in public if f"{module}.{name}" not in documented]
    assert not missing, f"docs/api/ does not document {module}: {missing}"


@pytest.mark.parametrize("module", API_MODULES)
def test_every_public_function_and_class_has_a_docstring(module: str) -> None:
    mod = importlib.import_module(module)
    objects = [getattr(mod, name) for name in public_names(module)]
    undocumented = [o.__name__ for o in objects
                    if (inspect.isfunction(o) or inspect.isclass(o)) and not (o.__doc__ or "").strip()]
    assert not undocumented, f"{module}: no docstring for {undocumented}"


def test_the_cli_page_shows_every_command() -> None:
    import typer

    from tensorlite.cli.app import app

    def commands(command, path):
        if hasattr(command, "commands"):
            yield path
            for name, sub in command.commands.items():
                yield from commands(sub, f"{path} {name}")
        else:
            yield path

    page = (DOCS / "cli.md").read_text()
    missing = [c for c in commands(typer.main.get_command(app), "tensorlite") if f"$ {c} --help\n" not in page]
    assert not missing, f"docs/cli.md does not show the help of {missing}"

"""Run the documentation's examples and write what they print into the pages.

A page is a story: its ```` ```python ```` blocks run in order in one namespace, in a fresh temporary
directory, on the CPU. The block that follows a Python block, when it is one of these, is its output:

- ```` ```output ````: what the block printed (decimals are compared to within a unit of their last
  printed digit or 1%, for the rounding of other BLAS kernels; everything else exactly);
- ```` ```timing ````: what a block that measures time printed (numbers and spacing may differ, words may not);
- ```` ```sample ````: text sampled from a trained model, which changes with the last bits of its weights: its
  first line and its length are compared (to within ``SAMPLE_SLACK`` characters: the page does not keep the
  whitespace a sample may end in, and on another CPU kind the sample ends otherwise);
- ```` ```pytb ````: the error the block raises (what it printed first, then ``Traceback (most recent
  call last):``, ``  ...`` and the exception's own line(s)); an empty one marks a block that must raise.

A Python block that prints nothing has no output block; one that prints must have one. ```` ```console ````
blocks run each ``$ tensorlite ...`` line through the command-line app in this process (help texts) and
show what it printed below it. Images the examples save under ``images/`` are copied next to the page.
A Python example that must not run (it needs a GPU) is written as a ```` ```{code-block} python ```` directive.

    python scripts/make_docs_outputs.py            # rewrite every page's outputs and images
    python scripts/make_docs_outputs.py --check    # change nothing; exit 1 naming each stale output
    python scripts/make_docs_outputs.py docs/guide/07-learning-rate.md   # one page

``tests/test_docs.py`` runs the same check for every page under pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SHARED_DATA = ROOT.parent / "shared" / "data"  # this workplace's read-only data sets (MNIST)
OUTPUT_KINDS = ("output", "timing", "sample", "pytb")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$\n?", re.S | re.M)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
TRACEBACK_HEAD = "Traceback (most recent call last):\n  ...\n"
CONSOLE_WIDTH = "100"  # the terminal width help texts are rendered at
SAMPLE_SLACK = 4  # characters a sample's length may differ by: whitespace at its end, which the page drops


# Pages outside the guide whose Python blocks run. The pages other changes wrote (gpu, distributed, porting,
# checkpoints, benchmarks) show code for CUDA, MPI or a PyTorch script and are not run here.
RUN_PAGES = ("index.md", "devices.md", "cli.md", "architecture.md")


def pages() -> list[Path]:
    """The pages whose examples run: the guide's chapters and ``RUN_PAGES``."""
    return sorted(DOCS.glob("guide/[0-9][0-9]-*.md")) + [DOCS / name for name in RUN_PAGES]


@dataclass
class Fence:
    """One fenced block of a page: its language, its text, and where it sits (character offsets)."""

    lang: str
    body: str
    start: int
    end: int
    body_start: int
    line: int  # the page's line number of the block's first line of code
    output: Fence | None = field(default=None, repr=False)


def fences(text: str) -> list[Fence]:
    """The page's fenced blocks in order; each Python block gets the output block right after it, if any."""
    found = [Fence(m["lang"], m["body"], m.start(), m.end(), m.start("body"), line_of(text, m.start("body")))
             for m in FENCE.finditer(text)]
    for block, after in zip(found, found[1:]):
        if block.lang == "python" and after.lang in OUTPUT_KINDS and not text[block.end:after.start].strip():
            block.output = after
    return found


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


@dataclass
class Result:
    """What one block produced, and what the page shows for it."""

    fence: Fence
    kind: str  # the output block it needs: "output", "timing", "pytb", or "" for none
    text: str  # what it printed (or, for pytb, the error)


def needs(page: Path) -> str | None:
    """Why the page cannot run here, or None. Only the MNIST chapter needs data that is not shipped."""
    if "mnist" not in page.name:
        return None
    from tensorlite.datasets.mnist import MNISTError, locate

    try:
        locate(SHARED_DATA / "mnist" if "TENSORLITE_DATA" not in os.environ else None)
    except MNISTError:
        return "the MNIST files are not here: set TENSORLITE_DATA to a folder holding mnist/"
    return None


@contextlib.contextmanager
def page_environment(workdir: Path) -> Iterator[None]:
    """The state every page starts from: CPU, float32, grad mode on, seed 0, matplotlib off-screen, cwd ``workdir``."""
    import numpy

    import tensorlite as tl

    saved_print = numpy.get_printoptions()
    saved_device, saved_dtype = tl.default_device(), tl.get_default_dtype()
    saved_env = {k: os.environ.get(k) for k in ("MPLBACKEND", "TENSORLITE_DATA", "COLUMNS", "NO_COLOR", "TERM")}
    os.environ["MPLBACKEND"] = "Agg"
    if "TENSORLITE_DATA" not in os.environ and SHARED_DATA.is_dir():
        os.environ["TENSORLITE_DATA"] = str(SHARED_DATA)
    saved_cwd = Path.cwd()
    (workdir / "images").mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    tl.set_default_device("cpu")
    tl.set_default_dtype(tl.float32)
    tl.manual_seed(0)
    try:
        with tl.enable_grad():
            yield
    finally:
        os.chdir(saved_cwd)
        numpy.set_printoptions(**saved_print)
        tl.set_default_device(saved_device)
        tl.set_default_dtype(saved_dtype)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")


def run_python(block: Fence, source_name: str, namespace: dict) -> Result:
    """Run one Python block, capturing what it prints; a block shown with a pytb output must raise."""
    code = compile("\n" * (block.line - 1) + block.body, source_name, "exec")  # tracebacks name page lines
    printed = io.StringIO()
    expects_error = block.output is not None and block.output.lang == "pytb"
    try:
        with contextlib.redirect_stdout(printed):
            exec(code, namespace)
    except Exception as error:  # noqa: BLE001  (the page decides whether an error is the story)
        if not expects_error:
            raise
        message = "".join(traceback.format_exception_only(type(error), error))
        return Result(block, "pytb", printed.getvalue() + TRACEBACK_HEAD + message)
    if expects_error:
        raise AssertionError(f"{source_name}: the block is shown raising an error, but it ran without one")
    text = printed.getvalue()
    loose = block.output is not None and block.output.lang in ("timing", "sample")
    kind = block.output.lang if loose else "output"
    return Result(block, kind if text else "", text)


def run_console(block: Fence) -> str:
    """Run each ``$ tensorlite ...`` line of a console block in this process; the block as it should read."""
    from typer.testing import CliRunner

    from tensorlite.cli.app import app

    runner = CliRunner()
    env = {"COLUMNS": CONSOLE_WIDTH, "TERMINAL_WIDTH": CONSOLE_WIDTH, "NO_COLOR": "1", "TERM": "dumb"}
    lines = []
    for line in block.body.splitlines():
        if not line.startswith("$ "):
            continue
        argv = shlex.split(line[2:])
        if argv[0] != "tensorlite":
            raise ValueError(f"console blocks run the tensorlite command only, got {line!r}")
        result = runner.invoke(app, argv[1:], prog_name="tensorlite", env=env, color=False)
        lines.append(line)
        lines.extend(out.rstrip() for out in result.output.rstrip("\n").splitlines())
    return "\n".join(lines) + "\n"


def run_page(page: Path, workdir: Path) -> tuple[str, list[Result], list[Path]]:
    """Run every block of ``page`` in ``workdir``: the page's text, each block's result, the images written."""
    text = page.read_text()
    blocks = fences(text)
    namespace: dict = {"__name__": "__main__"}
    results = []
    relative = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page
    with page_environment(workdir):
        for block in blocks:
            if block.lang == "python":
                results.append(run_python(block, str(relative), namespace))
            elif block.lang == "console":
                results.append(Result(block, "console", run_console(block)))
    images = sorted((workdir / "images").glob("*.png"))
    return text, results, images


def numbers_match(shown: str, printed: str) -> bool:
    """Integers exactly; decimals to within one unit of the last digit either shows, or 1% (BLAS kernels and
    compiled kernels round differently, and a short training run carries that into its last digits)."""
    if not any(c in shown + printed for c in ".eE"):
        return shown == printed
    unit = max(_last_digit_unit(shown), _last_digit_unit(printed))
    return math.isclose(float(shown), float(printed), rel_tol=0.01, abs_tol=unit * 1.01)


def _last_digit_unit(number: str) -> float:
    mantissa, _, exponent = number.lower().partition("e")
    return 10.0 ** (int(exponent or 0) - len(mantissa.partition(".")[2]))


def same_output(shown: str, printed: str, kind: str) -> bool:
    """Whether the page's output block still says what the code prints (see the module docstring)."""
    if kind == "sample":
        same_length = abs(len(shown.rstrip()) - len(printed.rstrip())) <= SAMPLE_SLACK
        return shown.split("\n", 1)[0] == printed.split("\n", 1)[0] and same_length
    def lines(text: str) -> list[str]:  # timings: padding follows the numbers, so spaces are not compared either
        rows = text.rstrip("\n").splitlines()
        return [" ".join(row.split()) if kind == "timing" else row.rstrip() for row in rows]

    shown_lines, printed_lines = lines(shown), lines(printed)
    if len(shown_lines) != len(printed_lines):
        return False
    for a, b in zip(shown_lines, printed_lines):
        if NUMBER.sub("#", a) != NUMBER.sub("#", b):
            return False
        if kind != "timing" and not all(numbers_match(x, y) for x, y in zip(NUMBER.findall(a), NUMBER.findall(b))):
            return False
    return True


def problems(page: Path, text: str, results: list[Result], images: list[Path]) -> list[str]:
    """Every place where the page and what its code does disagree, one line each (empty: the page is true)."""
    found = []
    for result in results:
        block, where = result.fence, f"{page.name}:{result.fence.line}"
        if result.kind == "console":
            if block.body != result.text:
                found.append(f"{where}: the console block is not what the commands print now:\n{result.text}")
            continue
        shown = block.output
        if shown is None:
            if result.kind:
                found.append(f"{where}: the block prints, but the page shows no output block:\n{result.text}")
        elif not result.kind:
            found.append(f"{where}: the page shows an output block, but the block prints nothing")
        elif shown.lang != result.kind:
            found.append(f"{where}: the output block is {shown.lang!r}, the block's result is {result.kind!r}")
        elif not same_output(shown.body, result.text, result.kind):
            found.append(f"{where}: the page shows\n{shown.body}but the block prints\n{result.text}")
    written = {image.name for image in images}
    for name in re.findall(r"\]\(images/([\w.-]+\.png)\)", text):
        if name not in written:
            found.append(f"{page.name}: the page shows images/{name}, which its code does not write")
        elif not (page.parent / "images" / name).is_file():
            found.append(f"{page.name}: images/{name} is written by the code but missing from the repository")
    return found


def rewrite(text: str, results: list[Result]) -> str:
    """The page with every output block replaced by what its block printed (added or removed as needed)."""
    edits = []  # (start, end, replacement), applied from the end
    for result in results:
        block = result.fence
        if result.kind == "console":
            edits.append((block.body_start, block.end, result.text + "```\n"))
            continue
        new = f"\n```{result.kind}\n{result.text.rstrip()}\n```\n" if result.kind else ""
        if block.output is not None:
            edits.append((block.end, block.output.end, new))
        elif new:
            edits.append((block.end, block.end, new))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages to run (default: every page with examples)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if any page is stale")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    stale = 0
    for page in [p.resolve() for p in args.pages] or pages():
        reason = needs(page)
        if reason:
            print(f"{page.relative_to(ROOT)}: skipped, {reason}")
            continue
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as workdir:
            text, results, images = run_page(page, Path(workdir))
            found = problems(page, text, results, images)
            if args.check:
                stale += bool(found)
                for problem in found:
                    print(problem)
                status = "stale" if found else "ok"
            else:
                new = rewrite(text, results)
                if new != text:
                    page.write_text(new)
                status = "rewritten" if new != text else "ok"
                for image in images:
                    (page.parent / "images").mkdir(exist_ok=True)
                    shutil.copyfile(image, page.parent / "images" / image.name)
        print(f"{page.relative_to(ROOT)}: {status} ({time.perf_counter() - started:.1f} s)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

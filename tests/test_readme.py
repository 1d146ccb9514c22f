"""The README's promises: CI runs its test command, and its Python examples run as printed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLES = [block for block in re.findall(r"```python\n(.*?)```", README, re.S) if "cuda" not in block]


def test_ci_runs_the_readme_test_command() -> None:
    bash = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    test_command = next(line for line in bash.splitlines() if ".[test]" in line).strip()
    assert f"readme_test_command='{test_command}'" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_readme_python_examples_run(example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert "tl" in namespace


def test_readme_examples_were_found() -> None:
    assert len(EXAMPLES) >= 2

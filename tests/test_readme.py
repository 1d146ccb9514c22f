"""The README's promises: CI runs its test command, and its autograd example runs as printed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    bash = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    test_command = next(line for line in bash.splitlines() if ".[test]" in line).strip()
    assert f"readme_test_command='{test_command}'" in (ROOT / ".ci" / "run").read_text()


def test_readme_autograd_example_runs() -> None:
    example = next(block for block in re.findall(r"```python\n(.*?)```", README, re.S) if "backward()" in block)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["w"].grad.shape == (2, 3)

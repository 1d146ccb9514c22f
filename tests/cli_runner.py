"""Running the ``tensorlite`` command line in tests, and checking that a failure is a clean one."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from tensorlite.cli.app import app

runner = CliRunner()


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def assert_fails(result: Result, *fragments: str, status: int = 2) -> None:
    """A clean failure: exit ``status`` (2: bad input, 1: a failed run), no traceback, and one line ``error: ...``
    holding every fragment (the option or file, the rule), last on stderr (after the run's progress, if any)."""
    assert result.exit_code == status, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]

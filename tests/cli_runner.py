"""Running the ``tensorlite`` command line in tests, and checking that a failure is a clean one."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from tensorlite.cli.app import app

runner = CliRunner()


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def assert_fails(result: Result, *fragments: str) -> None:
    """A clean user error: non-zero exit, ``error: ...`` naming the problem, no traceback."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "error:" in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output

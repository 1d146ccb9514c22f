"""Shared fixtures: every op test runs on the CPU backend, on the simulated device backend and, where CuPy sees
a GPU, on CUDA (``devices.py``; ``TENSORLITE_TEST_DEVICES`` chooses); tests marked ``parity`` (PyTorch as the
oracle) skip when PyTorch is not installed, tests marked ``gpu`` when there is no CUDA device."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import oracle
import pytest
from devices import cuda_available, test_devices

import tensorlite as tl

try:
    DEVICES = test_devices()
except ValueError as exc:
    raise pytest.UsageError(str(exc)) from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = {}
    if importlib.util.find_spec("torch") is None:
        skips["parity"] = pytest.mark.skip(reason=oracle.ENABLE_PARITY)
    if not cuda_available():
        skips["gpu"] = pytest.mark.skip(reason="needs a CUDA device and CuPy")
    for item in items:
        for marker, skip in skips.items():
            if item.get_closest_marker(marker) is not None:
                item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per device of ``DEVICES``: NumPy ('cpu'), the simulated device ('sim') and,
    with a GPU, CuPy ('cuda')."""
    return request.param


@pytest.fixture(params=["gradcheck", pytest.param("parity", marks=pytest.mark.parity)])
def check(request: pytest.FixtureRequest) -> oracle.Checks:
    """Each test using this runs twice: float64 finite differences, then (marked parity) PyTorch."""
    return oracle.Checks(request.param)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test that passed with the ``check`` fixture must have made a check of its instance's kind."""
    result = yield
    checks = getattr(item, "funcargs", {}).get("check")
    if isinstance(checks, oracle.Checks) and not checks.made:
        pytest.fail(f"{item.nodeid} makes no {checks.oracle} check: use check_grad or check_parity alone",
                    pytrace=False)
    return result


@pytest.fixture(autouse=True)
def _current_test(request: pytest.FixtureRequest) -> Iterator[None]:
    oracle.set_current_test(request.node)
    yield
    oracle.set_current_test(None)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    tl.manual_seed(0)

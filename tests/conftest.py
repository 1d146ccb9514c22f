"""Shared fixtures: every op test runs on the CPU backend and on the simulated device backend."""

from __future__ import annotations

import pytest

import tensorlite as tl

DEVICES = ["cpu", "sim"]


def cuda_available() -> bool:
    from tensorlite.backends.cupy_backend import cuda_status

    return cuda_status()[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device and CuPy")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per backend: NumPy ('cpu') and the simulated device ('sim')."""
    return request.param


@pytest.fixture(autouse=True)
def _seeded() -> None:
    tl.manual_seed(0)

"""Which devices the ``device`` fixture runs each test on.

By default: ``cpu`` and ``sim`` everywhere, plus ``cuda`` where CuPy sees a CUDA device, so that every op,
layer, model and training test runs on a real GPU when there is one. ``TENSORLITE_TEST_DEVICES`` (a
comma-separated list such as ``cpu,sim,cuda`` or ``cuda``) chooses explicitly; asking for ``cuda`` where there
is none is an error rather than a silent skip, so that a GPU run cannot pass by testing nothing on the GPU.
"""

from __future__ import annotations

import os

KNOWN = ("cpu", "sim", "cuda")
ENV = "TENSORLITE_TEST_DEVICES"


def cuda_available() -> bool:
    from tensorlite.backends.cupy_backend import cuda_status

    return cuda_status()[0]


def test_devices(environ: dict[str, str] | None = None, has_cuda: bool | None = None) -> list[str]:
    """The devices to test on, from ``environ`` (default: ``os.environ``) and whether CUDA is usable."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(ENV, "").strip()
    if not chosen:
        usable = cuda_available() if has_cuda is None else has_cuda
        return ["cpu", "sim", "cuda"] if usable else ["cpu", "sim"]
    devices = [name.strip().lower() for name in chosen.split(",") if name.strip()]
    unknown = [name for name in devices if name not in KNOWN]
    if unknown or not devices:
        raise ValueError(f"{ENV}={chosen!r}: expected a comma-separated list of {', '.join(KNOWN)}")
    if "cuda" in devices and not (cuda_available() if has_cuda is None else has_cuda):
        from tensorlite.backends.cupy_backend import cuda_status

        raise ValueError(f"{ENV}={chosen!r} asks for cuda, but it is not usable here: CuPy {cuda_status()[1]}")
    return list(dict.fromkeys(devices))


test_devices.__test__ = False  # a helper, not a test: pytest collects nothing from this module

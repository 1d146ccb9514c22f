"""Devices: where a tensor's array lives, and the backend that does its math.

``"cpu"`` (NumPy), ``"cuda"`` / ``"cuda:N"`` (CuPy), ``"sim"`` (test-only simulated device), and
``"auto"``: CUDA when CuPy and a device are present, else the CPU. The default device comes from
``TENSORLITE_DEVICE`` (else ``auto``) and can be changed with ``tl.set_default_device``.
"""

from __future__ import annotations

import os

from tensorlite.backends import DEVICE_TYPES, Backend, get_backend


class Device:
    """A device such as ``cpu`` or ``cuda:0``; ``Device.backend`` does its array math."""

    __slots__ = ("type", "index", "backend")

    def __init__(self, type: str, index: int = 0) -> None:
        self.type = type
        self.index = index
        self.backend: Backend = get_backend(type, index)

    def __repr__(self) -> str:
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return "cpu" if self.type == "cpu" else f"{self.type}:{self.index}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __reduce__(self) -> tuple:
        """Copies (``copy.deepcopy`` of a model) and pickles resolve to the one object per device: ops compare
        devices with ``is``."""
        return device, (str(self),)


_devices: dict[str, Device] = {}
_default: Device | None = None


def _resolve_auto() -> str:
    from tensorlite.backends.cupy_backend import cuda_status

    return "cuda:0" if cuda_status()[0] else "cpu"


def device(spec: str | Device | None = None) -> Device:
    """Parse ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"sim"`` or ``"auto"``; ``None`` is the default device."""
    if isinstance(spec, Device):  # one object per device: ops compare devices with ``is``
        return _devices.setdefault(str(spec), spec)
    if spec is None:
        return default_device()
    found = _devices.get(spec)
    if found is not None:
        return found
    if not isinstance(spec, str):
        raise TypeError(f"device: expected a string such as 'cpu' or 'cuda:0', got {type(spec).__name__}")
    text = spec.strip().lower()
    if text == "auto":
        text = _resolve_auto()
    type_, _, index_text = text.partition(":")
    if type_ not in DEVICE_TYPES or (index_text and not index_text.isdigit()):
        raise ValueError(f"device: cannot parse {spec!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'sim'")
    canonical = type_ if type_ == "cpu" else f"{type_}:{int(index_text or 0)}"  # "sim" and "sim:0" are one device
    found = _devices.get(canonical)
    if found is None:
        found = _devices[canonical] = Device(type_, int(index_text or 0))
    _devices[spec] = found
    return found


def default_device() -> Device:
    """The device new tensors go to: ``set_default_device``, else ``$TENSORLITE_DEVICE``, else auto."""
    global _default
    if _default is None:
        _default = device(os.environ.get("TENSORLITE_DEVICE", "auto"))
    return _default


def set_default_device(spec: str | Device) -> None:
    """Make ``spec`` the device that creation functions use when none is given."""
    global _default
    _default = device(spec)

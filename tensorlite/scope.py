"""PyTorch names outside tensorlite's scope, answered on purpose rather than by an AttributeError.

Two answers, each carrying its reason (``docs/porting.md`` shows it): a documented no-op, where doing
nothing is what a porting script wants (``compile`` returns the model as it is), and an out-of-scope
error, where the name exists so that using it says what to do instead (TensorBoard logging).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
MARKER = "__tensorlite_scope__"


class OutOfScopeError(NotImplementedError):
    """Raised when a PyTorch name that tensorlite deliberately leaves out is used."""


def mark(obj: T, kind: str, reason: str) -> T:
    """Mark ``obj`` as a documented ``"no-op"`` or an out-of-scope ``"error"``, for ``marker``."""
    setattr(obj, MARKER, (kind, reason))
    return obj


def noop(reason: str) -> Callable[[T], T]:
    """Decorate a function or class as a documented no-op (``reason``: what happens instead)."""
    return lambda obj: mark(obj, "no-op", reason)


def out_of_scope(name: str, reason: str) -> Callable[..., Any]:
    """A stand-in for the PyTorch callable ``name`` that raises ``OutOfScopeError`` saying ``reason``."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OutOfScopeError(f"{name} is outside tensorlite's scope: {reason}")

    refuse.__name__ = refuse.__qualname__ = name.rpartition(".")[2]
    refuse.__doc__ = f"Out of scope in tensorlite: {reason}"
    return mark(refuse, "error", reason)


def marker(obj: Any) -> tuple[str, str] | None:
    """``("no-op" | "error", reason)`` for a marked object, else ``None``."""
    return getattr(obj, MARKER, None) if not isinstance(obj, (bool, int, float, str)) else None


@noop("returns the model (or function) unchanged: tensorlite has no graph compiler; ops already run as "
      "NumPy/CuPy kernels")
def compile(model: Any = None, **options: Any) -> Any:
    """``torch.compile``: returns ``model`` as it is (also as ``@compile`` and ``@compile(mode=...)``)."""
    if model is None:
        return lambda fn: fn
    return model

"""Checking JSON values (a checkpoint's metadata) against dataclasses, before anything is built from them.

``parse(MLPConfig, value, "model_config")`` returns an ``MLPConfig`` made from the dict ``value``, or raises a
``SchemaError`` naming the field and what it must hold (``model_config.sizes[1] must be int, got 1e+12``).
The field types understood are those JSON can hold: ``bool``, ``int`` (not a bool), ``float`` (an int is
accepted), ``str``, ``None``, ``list[T]``, ``dict`` (any object), unions (``str | None``) and dataclasses
(nested objects). A field without a default is required; an unknown key is refused unless ``ignore_unknown``
(at the top level only: a config is passed to a constructor, where an unknown key cannot go). The
dataclass's own checks (``__post_init__``) run last and name the field too.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from tensorlite.safetensors_reader import short

T = TypeVar("T")


class SchemaError(ValueError):
    """A value that does not match its schema; the message names the field."""


def parse(schema: type[T], value: Any, name: str, ignore_unknown: bool = False) -> T:
    """An instance of the dataclass ``schema`` from the JSON object ``value`` (called ``name`` in messages)."""
    if not isinstance(value, dict):
        raise SchemaError(f"{name} must be an object, got {short(value)}")
    fields = {field.name: field for field in dataclasses.fields(schema) if field.init}  # type: ignore[arg-type]
    unknown = sorted(map(str, value.keys() - fields.keys()))
    if unknown and not ignore_unknown:
        raise SchemaError(f"{name} has unknown field(s) {', '.join(unknown)}: expected {', '.join(fields)}")
    missing = [key for key, field in fields.items() if key not in value
               and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING]
    if missing:
        raise SchemaError(f"{name} lacks {', '.join(missing)}")
    types_ = typing.get_type_hints(schema)
    arguments = {key: _check(types_[key], value[key], f"{name}.{key}") for key in fields if key in value}
    try:
        return schema(**arguments)
    except (ValueError, TypeError) as exc:
        raise SchemaError(f"{name}: {exc}") from None


def _check(expected: Any, value: Any, name: str) -> Any:
    """``value`` if it has the type ``expected`` (converted: a nested object to its dataclass), else a SchemaError."""
    origin = typing.get_origin(expected)
    if dataclasses.is_dataclass(expected):
        return parse(expected, value, name)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(expected):
            try:
                return _check(option, value, name)
            except SchemaError:
                pass
    elif origin is list and isinstance(value, list):
        (item,) = typing.get_args(expected)
        return [_check(item, v, f"{name}[{i}]") for i, v in enumerate(value)]
    elif _is_instance(value, origin or expected):
        return float(value) if expected is float else value
    described = expected.__name__ if isinstance(expected, type) else str(expected).replace("NoneType", "None")
    raise SchemaError(f"{name} must be {described}, got {short(value)}")


def _is_instance(value: Any, expected: type) -> bool:
    """JSON's view of types: a bool is not an int, an int is a float, ``None`` is ``NoneType``."""
    if isinstance(value, bool):
        return expected is bool
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)

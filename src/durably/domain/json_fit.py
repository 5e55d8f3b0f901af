"""Whether JSON data fits a type annotation, strictly; the first field that does not.

The converter (``serialization.py``) is lenient on purpose when it reads back what
durably stored: it turns ``5`` into ``"5"`` for a ``str``. Data from outside (the
command line's ``--input``) is checked first, with no conversion: a number is not a
string, ``null`` fits only a type that admits ``None``, ``true`` is not an ``int``.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import types
import typing
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["json_misfit", "type_label"]

_SEQUENCES = (list, tuple, set, frozenset)
# Types the converter reads from a JSON string (ISO dates, base85 bytes, ...).
_FROM_STRING = (datetime.datetime, datetime.date, datetime.time, uuid.UUID, bytes)


def type_label(annotation: Any) -> str:
    """A short readable name of an annotation.

    >>> type_label(int), type_label(list[str]), type_label(dict[str, int | None])
    ('int', 'list[str]', 'dict[str, int | None]')
    >>> type_label(typing.Optional[str])
    'str | None'
    """
    if annotation is None or annotation is type(None):
        return "None"
    if annotation is Any:
        return "any value"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_label(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin is typing.Annotated:
        return type_label(args[0])
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        inner = ", ".join("..." if a is Ellipsis else type_label(a) for a in args)
        return f"{name}[{inner}]" if args else name
    return str(getattr(annotation, "__name__", annotation))


def _json_kind(data: object) -> str:
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "true" if data else "false"
    if isinstance(data, int | float):
        return f"the number {json.dumps(data)}"
    if isinstance(data, str):
        shown = data if len(data) <= 40 else data[:37] + "..."
        return f"the string {json.dumps(shown, ensure_ascii=False)}"
    if isinstance(data, list):
        return "an array"
    return "an object"


def _fields(cls: type) -> list[tuple[str, Any, bool]]:
    """(key, type, required) of each init field of an attrs class or a dataclass."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: check the fields' presence only
        hints = {}
    if attrs.has(cls):
        return [
            (f.alias or f.name, hints.get(f.name, Any), f.default is attrs.NOTHING)
            for f in attrs.fields(cls)
            if f.init
        ]
    return [
        (
            f.name,
            hints.get(f.name, Any),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
        if f.init
    ]


def _misfit_record(data: object, cls: type, path: str) -> str | None:
    if not isinstance(data, dict):
        return f"{path}: expected {type_label(cls)} (an object), got {_json_kind(data)}"
    fields = _fields(cls)
    known = {key for key, _, _ in fields}
    for key, annotation, required in fields:
        if key not in data:
            if required:
                return f"{path}.{key}: missing (a field of {type_label(cls)})"
            continue
        found = json_misfit(data[key], annotation, path=f"{path}.{key}")
        if found is not None:
            return found
    unknown = sorted(set(data) - known)
    if unknown:
        return f"{path}.{unknown[0]}: not a field of {type_label(cls)}"
    return None


def _misfit_union(data: object, annotation: Any, args: tuple[Any, ...], path: str) -> str | None:
    problems = [json_misfit(data, arg, path=path) for arg in args]
    if any(problem is None for problem in problems):
        return None
    # One member of the right kind (an object for a class): its problem is the precise one.
    deeper = [p for p in problems if p is not None and not p.startswith(f"{path}: expected")]
    if len(deeper) == 1:
        return deeper[0]
    return f"{path}: expected {type_label(annotation)}, got {_json_kind(data)}"


def _misfit_scalar(data: object, annotation: Any, path: str) -> str | None:
    fits = {
        bool: isinstance(data, bool),
        int: isinstance(data, int) and not isinstance(data, bool),
        float: isinstance(data, int | float) and not isinstance(data, bool),
        str: isinstance(data, str),
    }.get(annotation)
    if fits is None:
        return _misfit_other(data, annotation, path)
    if fits:
        return None
    return f"{path}: expected {type_label(annotation)}, got {_json_kind(data)}"


def _misfit_other(data: object, annotation: Any, path: str) -> str | None:
    expected = f"{path}: expected {type_label(annotation)}"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = [member.value for member in annotation]
        if any(type(data) is type(v) and data == v for v in values):
            return None
        allowed = ", ".join(json.dumps(v) if _is_json(v) else repr(v) for v in values)
        return f"{expected} (one of {allowed}), got {_json_kind(data)}"
    if isinstance(annotation, type) and (
        attrs.has(annotation) or dataclasses.is_dataclass(annotation)
    ):
        return _misfit_record(data, annotation, path)
    if isinstance(annotation, type) and issubclass(annotation, _FROM_STRING):
        return None if isinstance(data, str) else f"{expected} (a string), got {_json_kind(data)}"
    if annotation is decimal.Decimal:
        number = isinstance(data, int | float | str) and not isinstance(data, bool)
        return None if number else f"{expected} (a number), got {_json_kind(data)}"
    return None  # another type: the converter decides (and names the problem)


def _is_json(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def json_misfit(data: object, annotation: Any, *, path: str = "input") -> str | None:
    """Why JSON ``data`` does not fit ``annotation`` (the first misfit, naming its field
    from ``path``), or ``None`` when it fits.

    >>> json_misfit(5, str, path="name")
    'name: expected str, got the number 5'
    >>> json_misfit({"qty": "3"}, dict[str, int])
    'input["qty"]: expected int, got the string "3"'
    >>> json_misfit(None, str | None) is None
    True
    """
    if annotation is Any or annotation is object or isinstance(annotation, typing.TypeVar):
        return None
    if annotation is None or annotation is type(None):
        return None if data is None else f"{path}: expected None (null), got {_json_kind(data)}"
    if isinstance(annotation, typing.NewType):
        return json_misfit(data, annotation.__supertype__, path=path)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return json_misfit(data, args[0], path=path)
    if origin in (typing.Union, types.UnionType):
        return _misfit_union(data, annotation, args, path)
    if origin is typing.Literal:
        if any(type(data) is type(a) and data == a for a in args):
            return None
        return f"{path}: expected {type_label(annotation)}, got {_json_kind(data)}"
    if origin is not None and isinstance(origin, type):
        return _misfit_generic(data, annotation, origin, args, path)
    if annotation in _SEQUENCES:
        return _misfit_generic(data, annotation, annotation, (), path)
    if annotation in (dict, Mapping):
        return _misfit_generic(data, annotation, dict, (), path)
    return _misfit_scalar(data, annotation, path)


def _misfit_generic(
    data: object, annotation: Any, origin: type, args: tuple[Any, ...], path: str
) -> str | None:
    expected = f"{path}: expected {type_label(annotation)}"
    if issubclass(origin, Mapping):
        if not isinstance(data, dict):
            return f"{expected} (an object), got {_json_kind(data)}"
        value_type = args[1] if len(args) == 2 else Any
        for key, value in data.items():
            found = json_misfit(value, value_type, path=f"{path}[{json.dumps(key)}]")
            if found is not None:
                return found
        return None
    if issubclass(origin, str | bytes) or not issubclass(origin, typing.Iterable):
        return _misfit_other(data, annotation, path)
    if not isinstance(data, list):
        return f"{expected} (an array), got {_json_kind(data)}"
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(data) != len(args):
            return f"{expected} ({len(args)} items), got an array of {len(data)}"
        item_types = list(args)
    else:
        item_types = [args[0] if args else Any] * len(data)
    for index, (item, item_type) in enumerate(zip(data, item_types, strict=True)):
        found = json_misfit(item, item_type, path=f"{path}[{index}]")
        if found is not None:
            return found
    return None

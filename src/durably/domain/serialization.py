"""The one cattrs converter: every stored value goes through it to JSON and back.

Statuses (and every other union) carry an explicit ``tag`` that never depends on a
Python class name surviving a rename: the tag is the class's ``tag`` constant.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn
from cattrs.preconf.json import make_converter

from durably.domain.errors import SerializationError
from durably.domain.events import EVENT_TYPES, WorkflowEvent
from durably.domain.records import JsonValue
from durably.domain.status import (
    Cancelled,
    Completed,
    Failed,
    Paused,
    Pending,
    Queued,
    Running,
    WorkflowStatus,
)

__all__ = ["converter", "register_tagged_union", "encode", "decode", "dumps", "loads", "type_name"]

T = TypeVar("T")

converter = make_converter(forbid_extra_keys=True, omit_if_default=False)
"""The converter for everything durably stores."""


_LABELS: dict[Any, str] = {}


def register_tagged_union(
    union: Any, classes: tuple[type, ...], *, name: str, tag_attr: str = "tag"
) -> None:
    """Store each class of ``union`` as a dict with its tag constant, and read it back by tag.

    The tag is the class attribute ``tag_attr``, stored under the same key.

    Every class, unstructured on its own or as the union, carries its tag, so a value
    written through any declared type reads back through the union.
    """
    by_tag: dict[str, type] = {}
    for cls in classes:
        tag = getattr(cls, tag_attr, None)
        if not isinstance(tag, str) or tag in by_tag:  # pragma: no cover - caught at import
            raise TypeError(f"{cls.__name__} needs a unique stable tag")
        by_tag[tag] = cls
        _register_tagged_class(cls, tag, tag_attr)
    known = ", ".join(by_tag)
    _LABELS[union] = name

    def structure_union(data: Any, _: Any) -> Any:
        if not isinstance(data, dict):
            raise TypeError(f"expected an object with a {tag_attr!r}, got {type_name(data)}")
        tag = data.get(tag_attr)
        cls = by_tag.get(tag) if isinstance(tag, str) else None
        if cls is None:
            raise ValueError(f"unknown {tag_attr} {tag!r} (known: {known})")
        return converter.structure(data, cls)

    converter.register_structure_hook(union, structure_union)
    converter.register_unstructure_hook(union, lambda value: converter.unstructure(value))


def _register_tagged_class(cls: type, tag: str, tag_attr: str) -> None:
    unstructure: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(cls, converter)
    structure: Callable[[Any, Any], Any] = make_dict_structure_fn(
        cls, converter, _cattrs_forbid_extra_keys=True
    )

    def unstructure_tagged(value: Any) -> dict[str, Any]:
        data = unstructure(value)
        data[tag_attr] = tag
        return data

    def structure_tagged(data: Any, _: Any) -> Any:
        if not isinstance(data, dict) or data.get(tag_attr) != tag:
            found = data.get(tag_attr) if isinstance(data, dict) else type_name(data)
            raise ValueError(f"expected {tag_attr} {tag!r}, found {found!r}")
        rest = {k: v for k, v in data.items() if k != tag_attr}
        return structure(rest, cls)

    converter.register_unstructure_hook(cls, unstructure_tagged)
    converter.register_structure_hook(cls, structure_tagged)


def _structure_none(data: Any, _: Any) -> None:
    if data is not None:
        raise ValueError(f"expected null, found {type_name(data)}")


converter.register_structure_hook(type(None), _structure_none)
# ``object`` in an annotation (``dict[str, object]``) means "any JSON value": kept as stored.
converter.register_structure_hook_func(lambda t: t is object, lambda data, _: data)

register_tagged_union(
    WorkflowStatus,
    (Pending, Queued, Running, Paused, Completed, Failed, Cancelled),
    name="WorkflowStatus",
)
register_tagged_union(WorkflowEvent, EVENT_TYPES, name="WorkflowEvent", tag_attr="type")


def type_name(value: object) -> str:
    """The qualified name of a value's type, for error messages."""
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)
# ``JSONEncoder.encode`` builds its C encoder anew on every call; build it once instead.
_MAKE_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE = (
    None
    if _MAKE_C_ENCODER is None
    else _MAKE_C_ENCODER(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
)


def dumps(data: JsonValue) -> str:
    """JSON text of already-unstructured data (strict: no NaN)."""
    if type(data) is int:  # counters and markers: the most frequent values on the hot path
        return str(data)
    if _C_ENCODE is None:  # pragma: no cover - CPython has the C encoder
        return _ENCODER.encode(data)
    try:
        return "".join(_C_ENCODE(data, 0))
    except RecursionError as e:
        raise ValueError("circular reference (or nesting too deep)") from e


def loads(text: str | bytes) -> JsonValue:
    """Data from JSON text."""
    return json.loads(text)


def encode(value: object, *, key: str | None = None, step_name: str | None = None) -> JsonValue:
    """Unstructure ``value`` into JSON data, or fail naming the type, the step and the key."""
    try:
        data = converter.unstructure(value)
        _check_json(data)
    except (TypeError, ValueError, OverflowError, RecursionError, cattrs.BaseValidationError) as e:
        raise SerializationError(
            f"cannot serialize value ({e})",
            key=key,
            type_name=type_name(value),
            step_name=step_name,
        ) from e
    return data


def _check_json(data: object) -> None:
    t = type(data)
    if t is str or t is int or t is bool or data is None:
        return
    if t is float:
        if data != data or data in (float("inf"), float("-inf")):
            raise ValueError(f"{data!r} is not valid JSON")
        return
    if t is list or t is tuple:
        for item in data:  # type: ignore[attr-defined]
            _check_json(item)
        return
    if t is dict:
        for k, v in data.items():  # type: ignore[attr-defined]
            if type(k) is not str:
                raise TypeError(f"dict key {k!r} is not a string")
            _check_json(v)
        return
    raise TypeError(f"{type_name(data)} is not JSON-serializable")


def decode(data: JsonValue, cls: type[T] | Any, *, key: str | None = None) -> T:
    """Structure stored JSON data into ``cls``, or fail with a clear error naming the key."""
    if cls is Any or cls is object:
        return data  # type: ignore[no-any-return]
    try:
        return converter.structure(data, cls)  # type: ignore[no-any-return]
    except Exception as e:
        detail = _explain(e)
        raise SerializationError(
            f"cannot read stored value as {_label(cls)}: {detail}"
            " (was it written by a newer version of durably?)",
            key=key,
        ) from e


def _label(cls: Any) -> str:
    label = _LABELS.get(cls)
    return label if label is not None else str(getattr(cls, "__name__", cls))


def _explain(error: Exception) -> str:
    if isinstance(error, cattrs.BaseValidationError):
        leaves = [f"{type(e).__name__}: {e}" for e in error.exceptions]
        return "; ".join(leaves) or str(error)
    return f"{type(error).__name__}: {error}"

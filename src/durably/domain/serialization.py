"""The one cattrs converter: every stored value goes through it to JSON and back.

Statuses (and every other union) carry an explicit ``tag`` that never depends on a
Python class name surviving a rename: the tag is the class's ``tag`` constant.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import json
import sys
import typing
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
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

__all__ = [
    "converter",
    "register_tagged_union",
    "encode",
    "decode",
    "encode_value",
    "decode_value",
    "dumps",
    "loads",
    "type_name",
    "check_text",
    "TAG",
    "MAX_VALUE_BYTES",
]

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
    # A field added later with ``metadata={"omit_if_default": True}`` is left out while it
    # has its default, so what older versions stored (and read) stays the same.
    omitted: dict[str, Any] = {
        a.name: override(omit_if_default=True)
        for a in attrs.fields(cls)
        if a.metadata.get("omit_if_default")
    }
    unstructure: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(
        cls, converter, **omitted
    )
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
# Standard types the JSON preset does not read back: as strings (or a triple) and back.
converter.register_unstructure_hook(datetime.time, lambda t: t.isoformat())
converter.register_structure_hook(datetime.time, lambda d, _: datetime.time.fromisoformat(d))
converter.register_unstructure_hook(
    datetime.timedelta, lambda t: [t.days, t.seconds, t.microseconds]
)
converter.register_structure_hook(datetime.timedelta, lambda d, _: datetime.timedelta(*d))
converter.register_unstructure_hook(uuid.UUID, str)
converter.register_structure_hook(uuid.UUID, lambda d, _: uuid.UUID(d))
converter.register_unstructure_hook(decimal.Decimal, str)
converter.register_structure_hook(decimal.Decimal, lambda d, _: decimal.Decimal(d))
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


MAX_VALUE_BYTES = 255 * 2**20
"""The largest stored value (its JSON text in UTF-8): PostgreSQL's ``jsonb`` takes no
more, so no backend takes more (a value is refused the same way everywhere)."""


def dumps(data: JsonValue) -> str:
    """JSON text of already-unstructured data (strict: no NaN, at most ``MAX_VALUE_BYTES``)."""
    if type(data) is int:  # counters and markers: the most frequent values on the hot path
        return str(data)
    if _C_ENCODE is None:  # pragma: no cover - CPython has the C encoder
        text = _ENCODER.encode(data)
    else:
        try:
            text = "".join(_C_ENCODE(data, 0))
        except RecursionError as e:
            raise ValueError("circular reference (or nesting too deep)") from e
    if len(text) * 4 > MAX_VALUE_BYTES and len(text.encode("utf-8")) > MAX_VALUE_BYTES:
        raise ValueError(
            f"the value is {len(text.encode('utf-8'))} bytes of JSON, over the limit of "
            f"{MAX_VALUE_BYTES} (PostgreSQL's jsonb)"
        )
    return text


def check_text(text: str) -> None:
    """Refuse a string that some backend cannot store: a NUL character (PostgreSQL's
    ``jsonb`` and ``text``), or a lone surrogate (not UTF-8)."""
    if "\x00" in text:
        raise ValueError(
            "a string contains a NUL character (\\u0000), which PostgreSQL cannot store"
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"a string is not valid Unicode ({e.reason} at {e.start})") from None


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
    if t is str:
        check_text(data)  # type: ignore[arg-type]
        return
    if t is int or t is bool or data is None:
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
            check_text(k)
            _check_json(v)
        return
    raise TypeError(f"{type_name(data)} is not JSON-serializable")


TAG = "__durably__"
"""The key of a tagged value in the stored form of an unannotated step's result."""

_PLAIN = (str, int, bool, type(None))


def _tag(value: Any) -> JsonValue:
    """JSON data that reads back (``_untag``) as a value equal to ``value``, of its type."""
    t = type(value)
    if t in _PLAIN:
        return value
    if t is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not valid JSON")
        return value
    if t is list:
        return [_tag(v) for v in value]
    if t is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f"dict key {k!r} is not a string")
            if k == TAG:
                raise ValueError(f"the dict key {TAG!r} is reserved by durably")
            out[k] = _tag(v)
        return out
    if t is tuple or t is set or t is frozenset:
        items = [_tag(v) for v in value]
        return {TAG: t.__name__, "v": items}
    if t is bytes:
        return {TAG: "bytes", "v": base64.b64encode(value).decode("ascii")}
    if t in (datetime.datetime, datetime.date, datetime.time):
        return {TAG: t.__name__, "v": value.isoformat()}
    if t is datetime.timedelta:
        return {TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
    if t is uuid.UUID or t is decimal.Decimal:
        return {TAG: t.__name__, "v": str(value)}
    if isinstance(value, enum.Enum) or attrs.has(t) or dataclasses.is_dataclass(value):
        path = f"{t.__module__}:{t.__qualname__}"
        if _class_at(path) is not t:
            raise TypeError(
                f"{type_name(value)} is not defined at the top level of a module, so a replay "
                "could not find it: define it there, or annotate the step's return type"
            )
        kind = "enum" if isinstance(value, enum.Enum) else "object"
        return {TAG: kind, "class": path, "v": converter.unstructure(value)}
    raise TypeError(f"{type_name(value)} cannot be stored: annotate the step's return type")


def _class_at(path: str) -> Any:
    """The class at ``module:qualname`` among the modules already imported (stored data
    never makes durably import anything)."""
    module_name, _, qualname = path.partition(":")
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found if isinstance(found, type) else None


_UNTAG: dict[str, Callable[[Any], Any]] = {
    "tuple": lambda v: tuple(_untag(i) for i in v),
    "set": lambda v: {_untag(i) for i in v},
    "frozenset": lambda v: frozenset(_untag(i) for i in v),
    "bytes": lambda v: base64.b64decode(v),
    "datetime": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
    "timedelta": lambda v: datetime.timedelta(*v),
    "UUID": uuid.UUID,
    "Decimal": decimal.Decimal,
}


def _untag(data: JsonValue) -> Any:
    """The value that ``_tag`` stored."""
    t = type(data)
    if t is list:
        return [_untag(v) for v in data]
    if t is not dict:
        return data
    kind = data.get(TAG)
    if kind is None:
        return {k: _untag(v) for k, v in data.items()}
    if kind in ("enum", "object"):
        cls = _class_at(data["class"])
        if cls is None or not (
            issubclass(cls, enum.Enum) or attrs.has(cls) or dataclasses.is_dataclass(cls)
        ):
            raise ValueError(f"class {data['class']!r} is not loaded (or not a stored kind)")
        return converter.structure(data["v"], cls)
    restore = _UNTAG.get(kind)
    if restore is None:
        raise ValueError(f"unknown stored kind {kind!r}")
    return restore(data["v"])


_CONTAINERS = (tuple, list, dict, set, frozenset)


def _loose(declared: Any) -> bool:
    """Whether ``declared`` says too little to read a value back as itself (``Any``, a bare
    ``tuple``, ``dict[str, Any]``, ...): such values are stored tagged instead."""
    if declared is Any or declared is object or declared in _CONTAINERS:
        return True
    origin = typing.get_origin(declared)
    if origin is None:
        return False
    return any(arg is not Ellipsis and _loose(arg) for arg in typing.get_args(declared))


def encode_value(
    value: object, declared: Any, *, key: str | None = None, step_name: str | None = None
) -> tuple[JsonValue, Any]:
    """The stored form of a step's (or a workflow's) value, and the value as every replay
    will read it back: a run hands back the second, so the first run and the replays see
    the same value (type and value).

    With a declared type, the value is stored by the converter and read back as that
    type (a step ``-> float`` that returns ``3`` gives ``3.0`` on every run). Without one
    (``Any``, or a type that says too little, like a bare ``tuple`` or ``dict[str,
    Any]``), standard types are stored tagged (``datetime``, ``date``, ``time``,
    ``timedelta``, ``UUID``, ``Decimal``, ``bytes``, ``tuple``, ``set``, ``frozenset``,
    enums, attrs classes and dataclasses of a module) and come back as themselves; a
    value that could not come back the same is refused (``SerializationError``).
    """
    t = type(value)
    if t in _PLAIN and (declared is Any or declared is t):
        if t is str:
            try:
                check_text(value)  # type: ignore[arg-type]
            except ValueError as e:
                raise SerializationError(
                    f"cannot serialize value ({e})", key=key, type_name="str", step_name=step_name
                ) from e
        return value, value  # the hot path: plain JSON scalars are their own stored form
    if _loose(declared):
        try:
            data = _tag(value)
            _check_json(data)
            return data, _untag(data)
        except (TypeError, ValueError, OverflowError, RecursionError) as e:
            raise SerializationError(
                f"cannot serialize value ({e})",
                key=key,
                type_name=type_name(value),
                step_name=step_name,
            ) from e
    data = encode(value, key=key, step_name=step_name)
    try:
        back = decode(data, declared, key=key)
    except SerializationError as e:
        raise SerializationError(
            f"the value would not read back as the declared {_label(declared)}: {e.reason}",
            key=key,
            type_name=type_name(value),
            step_name=step_name,
        ) from e
    return data, back


def decode_value(data: JsonValue, declared: Any, *, key: str | None = None) -> Any:
    """The value ``encode_value`` stored as ``data`` (tagged when ``declared`` is loose)."""
    if _loose(declared):
        try:
            return _untag(data)
        except (KeyError, TypeError, ValueError) as e:
            raise SerializationError(f"cannot read stored value: {e}", key=key) from e
    return decode(data, declared, key=key)


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

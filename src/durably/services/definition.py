"""Workflow definitions: a name and an ``async def`` body, typed by input and output."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import attrs
from returns.result import Result

__all__ = ["WorkflowDefinition", "DirectRunner", "set_direct_runner", "declared_return"]

I = TypeVar("I")  # noqa: E741 - the conventional name of an input type variable
O = TypeVar("O")  # noqa: E741 - the conventional name of an output type variable

DirectRunner = Callable[["WorkflowDefinition[Any, Any]", Any], Awaitable[Any]]
_direct_runner: list[DirectRunner] = []


def set_direct_runner(runner: DirectRunner) -> None:
    """Install how ``WorkflowDefinition.execute`` runs a body without durability (primitives)."""
    _direct_runner[:] = [runner]


def _input_type(fn: Callable[..., Any]) -> tuple[bool, Any]:
    parameters = list(inspect.signature(fn).parameters.values())
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if len(required) > 1:
        raise TypeError(
            f"workflow {fn.__name__!r} must take at most one required argument (its input), "
            f"takes {len(required)}"
        )
    keyword_only = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    if keyword_only:
        raise TypeError(
            f"workflow {fn.__name__!r} has required keyword-only arguments {keyword_only}: "
            "a workflow body takes only its input"
        )
    # One positional parameter, required or not, receives the input (an optional one too:
    # dropping the caller's input because the parameter has a default would lose it).
    if not positional:
        takes_varargs = any(p.kind is p.VAR_POSITIONAL for p in parameters)
        return takes_varargs, Any
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: keep the input as stored JSON
        hints = {}
    return True, hints.get(positional[0].name, Any)


def declared_return(fn: Callable[..., Any]) -> Any:
    """The type a function's value is read back as: its return annotation, unwrapped
    (``Awaitable[T]``, ``Result[T, E]`` give ``T``); ``Any`` when there is none, or it is
    ``None`` or generic (``-> T``)."""
    annotations = getattr(fn, "__annotations__", None)
    if not annotations or "return" not in annotations:
        return Any
    try:
        result: Any = typing.get_type_hints(fn).get("return", Any)
    except Exception:  # unresolvable annotation: keep the stored JSON as it is
        return Any
    if typing.get_origin(result) in (typing.Awaitable, typing.Coroutine):
        result = typing.get_args(result)[-1]
    if typing.get_origin(result) is Result or result is Result:
        args = typing.get_args(result)
        result = args[0] if args else Any
    if result is type(None) or not _is_concrete(result):
        return Any
    return result


def _is_concrete(tp: Any) -> bool:
    """Whether ``tp`` names no type variable (``T``, ``list[T]``, ``P``) anywhere."""
    if isinstance(tp, typing.TypeVar | typing.ParamSpec):
        return False
    return all(_is_concrete(arg) for arg in typing.get_args(tp))


@attrs.frozen
class WorkflowDefinition(Generic[I, O]):
    """A named workflow body: ``async def body(input) -> output``."""

    name: str
    fn: Callable[[I], Awaitable[O]]
    takes_input: bool = attrs.field(init=False)
    input_type: Any = attrs.field(init=False, eq=False, repr=False)
    output_type: Any = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"a workflow name must be a non-empty string, got {self.name!r}")
        if not inspect.iscoroutinefunction(self.fn):
            raise TypeError(f"workflow {self.name!r}: the body must be an `async def` function")
        takes_input, input_type = _input_type(self.fn)
        object.__setattr__(self, "takes_input", takes_input)
        object.__setattr__(self, "input_type", input_type)
        object.__setattr__(self, "output_type", declared_return(self.fn))

    def call(self, input: I) -> Awaitable[O]:
        """Call the body with ``input`` (or with nothing, when it takes no input)."""
        if self.takes_input:
            return self.fn(input)
        no_input = typing.cast(Callable[[], Awaitable[O]], self.fn)
        return no_input()

    async def execute(self, input: I) -> O:
        """Run the body directly, with no durability: steps run once, sleeps return at once."""
        if not _direct_runner:
            return await self.call(input)
        result: O = await _direct_runner[0](self, input)
        return result

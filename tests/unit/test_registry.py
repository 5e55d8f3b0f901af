"""WorkflowRegistry and WorkflowDefinition."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from returns.result import Failure, Success

from durably.domain.errors import WorkflowNotFoundError
from durably.services.definition import WorkflowDefinition
from durably.services.registry import WorkflowRegistry


@attrs.frozen
class Order:
    id: int


async def no_input() -> int:
    return 7


async def with_input(order: Order) -> str:
    return f"order-{order.id}"


async def echo(value: dict[str, int]) -> dict[str, int]:
    return value


async def optional_input(value: int = 5) -> int:
    return value * 2


async def two_args(a: int, b: int) -> int:
    return a + b


async def one_required_one_optional(a: int, b: int = 1) -> int:
    return a + b


async def keyword_only_required(*, a: int) -> int:
    return a


def sync_body(value: int) -> int:
    return value


async def ignores_kwargs(value: str, **extra: Any) -> str:
    return value


ALPHA: WorkflowDefinition[Any, Any] = WorkflowDefinition("alpha", with_input)
BETA: WorkflowDefinition[Any, Any] = WorkflowDefinition("beta", echo)


# --- registry ------------------------------------------------------------------------------------


def test_registry_from_a_dict() -> None:
    registry = WorkflowRegistry({"alpha": ALPHA, "beta": BETA})
    assert registry.get("alpha").unwrap() is ALPHA
    assert registry.get("beta").unwrap() is BETA
    assert registry.list() == ["alpha", "beta"]
    assert registry.has("alpha")
    assert not registry.has("gamma")


def test_registry_from_a_list_uses_the_definitions_names() -> None:
    registry = WorkflowRegistry([BETA, ALPHA])
    assert registry.list() == ["beta", "alpha"]  # registration order
    assert registry.get("alpha").unwrap() is ALPHA
    assert isinstance(registry.get("beta"), Success)


def test_registry_from_a_dict_uses_the_keys() -> None:
    registry = WorkflowRegistry({"renamed": ALPHA})
    assert registry.has("renamed")
    assert not registry.has("alpha")
    assert registry.get("renamed").unwrap() is ALPHA


def test_empty_registry() -> None:
    registry = WorkflowRegistry([])
    assert registry.list() == []
    result = registry.get("x")
    assert isinstance(result, Failure)
    assert str(result.failure()) == "workflow 'x' not found (available: none registered)"


def test_unknown_name_is_a_failure_listing_the_available_names() -> None:
    registry = WorkflowRegistry([ALPHA, BETA])
    result = registry.get("gamma")
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, WorkflowNotFoundError)
    assert error.workflow_name == "gamma"
    assert error.available_workflows == ("alpha", "beta")
    assert str(error) == "workflow 'gamma' not found (available: alpha, beta)"
    assert error.message == str(error)


def test_two_different_definitions_under_one_name_fail_when_built() -> None:
    other = WorkflowDefinition("alpha", echo)
    with pytest.raises(ValueError, match="'alpha'"):
        WorkflowRegistry([ALPHA, other])


def test_the_same_definition_twice_is_fine() -> None:
    registry = WorkflowRegistry([ALPHA, ALPHA, BETA])
    assert registry.list() == ["alpha", "beta"]
    assert registry.get("alpha").unwrap() is ALPHA


@pytest.mark.parametrize("value", [with_input, "alpha", 3, None])
def test_a_non_definition_in_a_dict_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="not a WorkflowDefinition"):
        WorkflowRegistry({"alpha": value})  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [with_input, "alpha", 3, None])
def test_a_non_definition_in_a_list_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="not a WorkflowDefinition"):
        WorkflowRegistry([ALPHA, value])  # type: ignore[list-item]


# --- definitions ---------------------------------------------------------------------------------


def test_definition_fields_and_types_from_annotations() -> None:
    definition: WorkflowDefinition[Order, str] = WorkflowDefinition("order", with_input)
    assert definition.name == "order"
    assert definition.fn is with_input
    assert definition.takes_input is True
    assert definition.input_type is Order
    assert definition.output_type is str


def test_definition_without_input() -> None:
    definition: WorkflowDefinition[None, int] = WorkflowDefinition("n", no_input)  # type: ignore[arg-type]
    assert definition.takes_input is False
    assert definition.input_type is Any
    assert definition.output_type is int


def test_generic_annotations_are_kept() -> None:
    assert BETA.input_type == dict[str, int]
    assert BETA.output_type == dict[str, int]


async def test_call_with_input() -> None:
    definition: WorkflowDefinition[Order, str] = WorkflowDefinition("order", with_input)
    assert await definition.call(Order(3)) == "order-3"


async def test_call_without_input_ignores_the_input() -> None:
    definition: WorkflowDefinition[Any, int] = WorkflowDefinition("n", no_input)  # type: ignore[arg-type]
    assert await definition.call(None) == 7
    assert await definition.call({"ignored": True}) == 7


async def test_an_optional_parameter_still_receives_the_input() -> None:
    definition: WorkflowDefinition[int, int] = WorkflowDefinition("opt", optional_input)
    assert definition.takes_input is True
    assert definition.input_type is int
    assert await definition.call(21) == 42


async def test_one_required_and_one_optional_parameter() -> None:
    definition: WorkflowDefinition[int, int] = WorkflowDefinition("ab", one_required_one_optional)
    assert definition.takes_input is True
    assert await definition.call(4) == 5


async def test_var_keyword_parameters_are_allowed() -> None:
    definition: WorkflowDefinition[str, str] = WorkflowDefinition("kw", ignores_kwargs)
    assert await definition.call("x") == "x"


async def test_execute_without_a_direct_runner_calls_the_body() -> None:
    definition: WorkflowDefinition[dict[str, int], dict[str, int]] = WorkflowDefinition("e", echo)
    assert await definition.execute({"a": 1}) == {"a": 1}


def test_a_sync_function_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="async def"):
        WorkflowDefinition("sync", sync_body)  # type: ignore[arg-type]


def test_two_required_arguments_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="at most one required argument"):
        WorkflowDefinition("two", two_args)  # type: ignore[arg-type]


def test_a_required_keyword_only_argument_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="keyword-only"):
        WorkflowDefinition("kwonly", keyword_only_required)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", None, 5])
def test_an_empty_or_non_string_name_is_a_value_error(name: object) -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        WorkflowDefinition(name, with_input)  # type: ignore[arg-type]


def test_definitions_are_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ALPHA.name = "other"  # type: ignore[misc]

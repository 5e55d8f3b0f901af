from __future__ import annotations

import datetime
import math
import random

import attrs
import pytest

from durably.domain.backoff import (
    Backoff,
    BackoffPresets,
    BackoffStrategy,
    ConstantBackoff,
    ExponentialBackoff,
    LinearBackoff,
    add_jitter,
    calculate_backoff_delay,
)
from durably.domain.errors import InvalidDurationError

# --- strategy formulas -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (ConstantBackoff(250), [250, 250, 250, 250]),
        (ConstantBackoff(0), [0, 0, 0]),
        (LinearBackoff(100, 50), [100, 150, 200, 250, 300]),
        (LinearBackoff(100, 50, max_ms=220), [100, 150, 200, 220, 220]),
        (LinearBackoff(0, 0), [0, 0, 0]),
        (LinearBackoff(500, 100, max_ms=300), [300, 300]),
        (ExponentialBackoff(100), [100, 200, 400, 800, 1_600, 3_200]),
        (ExponentialBackoff(100, max_ms=500), [100, 200, 400, 500, 500]),
        (ExponentialBackoff(100, 3, max_ms=1_000), [100, 300, 900, 1_000, 1_000]),
        (ExponentialBackoff(100, 1.5), [100, 150, 225, 338, 506, 759]),  # rounded
        (ExponentialBackoff(10, 1.25), [10, 12, 16, 20, 24]),  # 12.5 -> 12, half to even
        (ExponentialBackoff(100, 1.0), [100, 100, 100]),
        (ExponentialBackoff(0, 10), [0, 0, 0]),
        (ExponentialBackoff(800, max_ms=300), [300, 300]),
    ],
    ids=repr,
)
def test_delay_per_attempt(strategy: BackoffStrategy, expected: list[int]) -> None:
    delays = [calculate_backoff_delay(strategy, n) for n in range(1, len(expected) + 1)]
    assert delays == expected
    assert all(type(d) is int for d in delays)


@pytest.mark.parametrize("attempt", [1, 2, 7, 31])
def test_linear_matches_its_formula(attempt: int) -> None:
    strategy = LinearBackoff(initial_ms=30, increment_ms=7, max_ms=150)
    assert calculate_backoff_delay(strategy, attempt) == min(30 + 7 * (attempt - 1), 150)


@pytest.mark.parametrize("attempt", [1, 2, 5, 12])
def test_exponential_matches_its_formula(attempt: int) -> None:
    strategy = ExponentialBackoff(initial_ms=30, multiplier=2.5, max_ms=10**9)
    assert calculate_backoff_delay(strategy, attempt) == round(min(30 * 2.5 ** (attempt - 1), 1e9))


@pytest.mark.parametrize("attempt", [10**6, 10**18, 10**100])
@pytest.mark.parametrize("multiplier", [2, 2.0, 1.0001, 10])
def test_huge_attempt_hits_the_cap_without_overflow(attempt: int, multiplier: float) -> None:
    capped = ExponentialBackoff(initial_ms=1_000, multiplier=multiplier, max_ms=60_000)
    assert calculate_backoff_delay(capped, attempt) == 60_000


@pytest.mark.parametrize("attempt", [1_100, 10**6, 10**100])
def test_huge_attempt_uncapped_saturates_without_overflow(attempt: int) -> None:
    delay = calculate_backoff_delay(ExponentialBackoff(initial_ms=1_000), attempt)
    assert type(delay) is int
    assert delay == 2**63 - 1


def test_uncapped_exponential_never_decreases() -> None:
    strategy = ExponentialBackoff(initial_ms=7, multiplier=3)
    delays = [calculate_backoff_delay(strategy, n) for n in range(1, 2_000, 13)]
    assert delays == sorted(delays)
    assert delays[-1] == 2**63 - 1


def test_huge_attempt_linear_is_exact() -> None:
    assert calculate_backoff_delay(LinearBackoff(1, 2), 10**30 + 1) == 1 + 2 * 10**30
    assert calculate_backoff_delay(LinearBackoff(1, 2, max_ms=9), 10**30) == 9


@pytest.mark.parametrize("attempt", [0, -1, -(10**9)])
@pytest.mark.parametrize(
    "strategy", [ConstantBackoff(1), LinearBackoff(1, 1), ExponentialBackoff(1)], ids=repr
)
def test_attempt_below_one_is_rejected(strategy: BackoffStrategy, attempt: int) -> None:
    with pytest.raises(ValueError, match="attempt"):
        calculate_backoff_delay(strategy, attempt)


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ConstantBackoff(-1), "delay_ms"),
        (lambda: ConstantBackoff(1.5), "delay_ms"),  # type: ignore[arg-type]
        (lambda: ConstantBackoff(True), "delay_ms"),
        (lambda: LinearBackoff(-1, 0), "initial_ms"),
        (lambda: LinearBackoff(0, -5), "increment_ms"),
        (lambda: LinearBackoff(0, 0, max_ms=-1), "max_ms"),
        (lambda: ExponentialBackoff(-1), "initial_ms"),
        (lambda: ExponentialBackoff(1, max_ms=-3), "max_ms"),
        (lambda: ExponentialBackoff("5"), "initial_ms"),  # type: ignore[arg-type]
    ],
)
def test_negative_or_non_int_ms_is_rejected(build: object, field: str) -> None:
    with pytest.raises(InvalidDurationError) as info:
        build()  # type: ignore[operator]
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize("multiplier", [0.5, 0, -2, 0.999, math.nan, math.inf, True, "2"])
def test_multiplier_below_one_is_rejected(multiplier: object) -> None:
    with pytest.raises(ValueError, match="multiplier"):
        ExponentialBackoff(100, multiplier)  # type: ignore[arg-type]


def test_strategies_are_frozen_values() -> None:
    strategy = ExponentialBackoff(100, 2.0, 1_000)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        strategy.initial_ms = 5  # type: ignore[misc]
    assert strategy == ExponentialBackoff(initial_ms=100, multiplier=2.0, max_ms=1_000)
    assert hash(strategy) == hash(ExponentialBackoff(100, 2.0, 1_000))
    assert ExponentialBackoff(5) == ExponentialBackoff(5, 2.0, None)
    assert LinearBackoff(1, 2) == LinearBackoff(1, 2, None)


# --- Backoff builders and presets --------------------------------------------------------------


def test_constant_builder() -> None:
    assert Backoff.constant("1.5s") == ConstantBackoff(delay_ms=1_500)
    assert Backoff.constant(250) == ConstantBackoff(delay_ms=250)
    assert Backoff.constant(datetime.timedelta(minutes=1)) == ConstantBackoff(delay_ms=60_000)


def test_linear_builder() -> None:
    assert Backoff.linear(initial="1s", increment=500) == LinearBackoff(1_000, 500, None)
    built = Backoff.linear(initial=0, increment="2 s", max="1m")
    assert built == LinearBackoff(initial_ms=0, increment_ms=2_000, max_ms=60_000)


def test_exponential_builder() -> None:
    assert Backoff.exponential(base="100ms") == ExponentialBackoff(100, 2.0, None)
    built = Backoff.exponential(base="1s", factor=3, max=datetime.timedelta(seconds=30))
    assert built == ExponentialBackoff(initial_ms=1_000, multiplier=3, max_ms=30_000)


@pytest.mark.parametrize(
    ("build", "field", "value"),
    [
        (lambda: Backoff.constant("5x"), "delay", "5x"),
        (lambda: Backoff.linear(initial=-1, increment=1), "initial", -1),
        (lambda: Backoff.linear(initial=1, increment="x"), "increment", "x"),
        (lambda: Backoff.linear(initial=1, increment=1, max="-1s"), "max", "-1s"),
        (lambda: Backoff.exponential(base=math.nan), "base", math.nan),
        (lambda: Backoff.exponential(base=1, max="soon"), "max", "soon"),
    ],
)
def test_builders_name_the_bad_parameter(build: object, field: str, value: object) -> None:
    with pytest.raises(InvalidDurationError) as info:
        build()  # type: ignore[operator]
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("factor", [0.5, 0, math.nan])
def test_exponential_builder_names_a_bad_factor(factor: float) -> None:
    with pytest.raises(ValueError, match=r"^factor: "):
        Backoff.exponential(base=1, factor=factor)


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        (Backoff.presets.standard, ExponentialBackoff(1_000, 2.0, 30_000)),
        (Backoff.presets.aggressive, ExponentialBackoff(100, 2.0, 5_000)),
        (Backoff.presets.patient, ExponentialBackoff(5_000, 2.0, 120_000)),
        (Backoff.presets.simple, ConstantBackoff(1_000)),
        (BackoffPresets.standard, ExponentialBackoff(1_000, 2.0, 30_000)),
    ],
)
def test_presets_have_exact_parameters(preset: object, expected: BackoffStrategy) -> None:
    assert preset() == expected  # type: ignore[operator]


def test_standard_preset_schedule() -> None:
    strategy = Backoff.presets.standard()
    delays = [calculate_backoff_delay(strategy, n) for n in range(1, 9)]
    assert delays == [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]


# --- jitter ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ms", "factor"),
    [(1_000, 0.1), (1_000, 0.5), (1_000, 1.0), (7, 0.1), (1, 0.5), (3, 0.3), (15, 0.1)],
)
@pytest.mark.parametrize("seed", range(5))
def test_jitter_stays_in_bounds(ms: int, factor: float, seed: int) -> None:
    rng = random.Random(seed)
    low, high = math.ceil(ms * (1 - factor) - 1e-9), math.floor(ms * (1 + factor) + 1e-9)
    draws = [add_jitter(ms, factor, rng=rng) for _ in range(2_000)]
    assert all(type(d) is int for d in draws)
    assert min(draws) >= low
    assert max(draws) <= high
    assert min(draws) >= 0


def test_jitter_spreads_over_the_whole_range() -> None:
    rng = random.Random(1234)
    draws = {add_jitter(100, 0.1, rng=rng) for _ in range(5_000)}
    assert draws == set(range(90, 111))


def test_jitter_rounding_cannot_escape_bounds() -> None:
    # A naive round() of a draw in [0.5, 1.5] can give 0 or 2; the only whole ms inside is 1.
    rng = random.Random(7)
    assert {add_jitter(1, 0.5, rng=rng) for _ in range(2_000)} == {1}
    assert {add_jitter(3, 0.25, rng=rng) for _ in range(2_000)} == {3}


def test_jitter_is_deterministic_for_a_seed() -> None:
    first = [add_jitter(1_000, 0.2, rng=random.Random(42)) for _ in range(3)]
    again = [add_jitter(1_000, 0.2, rng=random.Random(42)) for _ in range(3)]
    assert first == again
    assert len({add_jitter(1_000, 0.2, rng=random.Random(s)) for s in range(50)}) > 1


@pytest.mark.parametrize("ms", [0, 1, 999, 10**20])
def test_jitter_factor_zero_returns_ms_exactly(ms: int) -> None:
    rng = random.Random(3)
    state = rng.getstate()
    assert add_jitter(ms, 0.0, rng=rng) == ms
    assert add_jitter(ms, 0, rng=rng) == ms
    assert rng.getstate() == state  # nothing drawn


def test_jitter_of_zero_is_zero() -> None:
    assert add_jitter(0, 1.0, rng=random.Random(0)) == 0


def test_jitter_default_rng_and_factor() -> None:
    draws = [add_jitter(1_000) for _ in range(500)]
    assert all(900 <= d <= 1_100 for d in draws)


@pytest.mark.parametrize("factor", [-0.1, 1.01, 2, math.nan, math.inf, -math.inf])
def test_jitter_rejects_factor_outside_zero_one(factor: float) -> None:
    with pytest.raises(ValueError, match="factor"):
        add_jitter(1_000, factor, rng=random.Random(0))


@pytest.mark.parametrize("ms", [-1, -1_000])
def test_jitter_rejects_negative_ms(ms: int) -> None:
    with pytest.raises(InvalidDurationError, match=r"^ms: "):
        add_jitter(ms, 0.1, rng=random.Random(0))

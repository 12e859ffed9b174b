"""Exponential backoff with jitter: bounds, cap, reset, give-up, and the jitter distribution
(seeded RNG, so the statistics are deterministic). Pure: runs in Pyodide too."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darkswap_wasm.errors import ConfigError
from darkswap_wasm.policy.backoff import Backoff

FUZZ = settings(max_examples=200, deadline=None, database=None, derandomize=True)


def test_without_jitter_the_sequence_is_exact_and_capped() -> None:
    b = Backoff(initial=0.5, maximum=60.0, multiplier=2.0, jitter=0.0)
    got = [b.next_delay() for _ in range(12)]
    assert got == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0, 60.0]
    assert b.attempts == 12


def test_defaults() -> None:
    b = Backoff(rng=random.Random(1))
    assert (b.initial, b.maximum, b.multiplier, b.jitter, b.give_up_after) == (0.5, 60.0, 2.0, 0.2, None)
    assert not b.exhausted


def test_each_delay_within_jitter_bounds() -> None:
    b = Backoff(rng=random.Random(7))
    base = 0.5
    for _ in range(40):
        d = b.next_delay()
        assert base * 0.8 <= d <= min(60.0, base * 1.2)
        base = min(60.0, base * 2)
    assert d <= 60.0


def test_reset_starts_over() -> None:
    b = Backoff(jitter=0.0)
    for _ in range(5):
        b.next_delay()
    assert b.peek_base() == 16.0
    b.reset()
    assert b.attempts == 0 and b.next_delay() == 0.5


def test_seeded_rng_is_deterministic() -> None:
    a = Backoff(rng=random.Random(42))
    b = Backoff(rng=random.Random(42))
    assert [a.next_delay() for _ in range(20)] == [b.next_delay() for _ in range(20)]


def test_jitter_distribution() -> None:
    rng = random.Random(1234)
    samples = []
    for _ in range(4000):
        b = Backoff(initial=10.0, maximum=100.0, jitter=0.2, rng=rng)
        samples.append(b.next_delay())
    assert min(samples) >= 8.0 and max(samples) <= 12.0
    assert min(samples) < 8.05 and max(samples) > 11.95  # the whole range is used
    assert abs(statistics.fmean(samples) - 10.0) < 0.1  # centred on the base
    # uniform: each fifth of [8, 12] holds about 20 %
    for k in range(5):
        lo = 8.0 + 0.8 * k
        share = sum(lo <= s < lo + 0.8 for s in samples) / len(samples)
        assert 0.17 < share < 0.23
    # uniform on [-0.2, 0.2]: standard deviation 0.4 / sqrt(12) of the base
    assert abs(statistics.pstdev(samples) - 10.0 * 0.4 / 12**0.5) < 0.06


def test_jitter_at_the_cap_stays_below_maximum() -> None:
    b = Backoff(initial=1.0, maximum=4.0, jitter=0.5, rng=random.Random(3))
    for _ in range(3):
        b.next_delay()
    capped = [b.next_delay() for _ in range(500)]
    assert all(2.0 <= d <= 4.0 for d in capped)
    assert sum(d == 4.0 for d in capped) > 150  # the upper half of the jitter is clipped


def test_give_up_after() -> None:
    b = Backoff(give_up_after=3, jitter=0.0)
    for _ in range(3):
        assert not b.exhausted
        b.next_delay()
    assert b.exhausted
    assert b.next_delay() > 0  # still answers
    b.reset()
    assert not b.exhausted
    assert Backoff(give_up_after=0).exhausted


def test_many_attempts_do_not_overflow() -> None:
    b = Backoff(initial=1.0, maximum=1e6, multiplier=1000.0, jitter=0.1, rng=random.Random(0))
    for _ in range(5000):
        d = b.next_delay()
    assert 0.9e6 <= d <= 1e6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0},
        {"initial": -1},
        {"initial": 2, "maximum": 1},
        {"multiplier": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.0},
        {"give_up_after": -1},
    ],
)
def test_config_errors(kwargs) -> None:
    with pytest.raises(ConfigError):
        Backoff(**kwargs)


@FUZZ
@given(
    st.floats(0.001, 100),
    st.floats(1, 1000),
    st.floats(1, 10),
    st.floats(0, 0.99),
    st.integers(0, 2**32),
    st.integers(1, 80),
)
def test_property_delays_positive_bounded_monotone_base(initial, span, multiplier, jitter, seed, n) -> None:
    maximum = initial * span
    b = Backoff(initial, maximum, multiplier, jitter, rng=random.Random(seed))
    base = initial
    for _ in range(n):
        d = b.next_delay()
        assert 0 < d <= maximum
        assert d >= base * (1 - jitter) - 1e-9
        base = min(maximum, base * multiplier)

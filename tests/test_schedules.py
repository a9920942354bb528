"""Learning-rate schedules and their use by the optimizers."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnlab
from cnnlab.errors import InvalidArgumentError
from cnnlab.optimizers import get_optimizer
from cnnlab.schedules import Constant, OneCycle, get_schedule


def test_one_cycle_shape() -> None:
    s = OneCycle(3e-3, total_steps=1000, warmup=0.15)
    assert s(0) == pytest.approx(3e-3 / 25)
    assert s(75) == pytest.approx((3e-3 / 25 + 3e-3) / 2)  # half-way up the warm-up
    assert s(150) == pytest.approx(3e-3)  # the peak
    assert s(575) == pytest.approx((3e-3 + 3e-7) / 2)  # half-way down the cosine
    assert s(1000) == pytest.approx(3e-7) and s(5000) == pytest.approx(3e-7)
    rates = [s(i) for i in range(1001)]
    assert all(a < b for a, b in zip(rates[:150], rates[1:151], strict=True))  # rising
    assert all(a >= b for a, b in zip(rates[150:-1], rates[151:], strict=True))  # falling


def test_configs_round_trip() -> None:
    for s in (Constant(0.1), OneCycle(1e-2, total_steps=40, warmup=0.0, end_div=10)):
        again = get_schedule(s.get_config())
        assert type(again) is type(s) and again.get_config() == s.get_config()
        assert [again(i) for i in range(50)] == [s(i) for i in range(50)]


@pytest.mark.parametrize("bad", [
    {"name": "onecycle", "peak": -1, "total_steps": 10},
    {"name": "onecycle", "peak": 1e-3, "total_steps": 0},
    {"name": "onecycle", "peak": 1e-3, "total_steps": 10, "warmup": 1.0},
    {"name": "onecycle", "peak": 1e-3, "total_steps": 10, "bogus": 1},
    {"name": "triangle"},
    "onecycle",
])
def test_bad_schedules_are_named(bad) -> None:
    with pytest.raises(InvalidArgumentError, match="schedule|OneCycle"):
        get_schedule(bad)


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adadelta"])
def test_optimizers_follow_the_schedule(name: str) -> None:
    sched = OneCycle(0.05, total_steps=6, warmup=0.5)
    opt = get_optimizer(name, learning_rate=sched)
    p = [np.ones(3)]
    seen = []
    for _ in range(8):
        opt.step(p, [np.full(3, 0.5)])
        seen.append(opt.learning_rate)
    assert seen == [sched(i) for i in range(8)]
    # the config carries the schedule; an optimizer built from it behaves the same
    again = get_optimizer(opt.get_config())
    assert again.schedule is not None
    assert again.schedule.get_config() == sched.get_config()


def test_adam_with_a_schedule_matches_changing_the_rate_by_hand() -> None:
    """The schedule is applied before the step's update, bias correction included."""
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(5) for _ in range(6)]
    sched = OneCycle(1e-2, total_steps=5)
    auto, manual = cnnlab.Adam(sched), cnnlab.Adam(1.0)
    pa, pm = [np.zeros(5)], [np.zeros(5)]
    for i, g in enumerate(grads):
        auto.step(pa, [g])
        manual.learning_rate = sched(i)
        manual.step(pm, [g])
    np.testing.assert_array_equal(pa[0], pm[0])
    assert math.isclose(auto.learning_rate, sched(5))

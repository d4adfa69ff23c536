"""Rate-limit windows, with explicit timestamps."""

from __future__ import annotations

from sandbox.ratelimit import FixedWindow, RollingWindow, whole_seconds


def test_rolling_window_fills_and_drains() -> None:
    window = RollingWindow()
    for t in (0.0, 0.5, 1.0):
        assert window.wait_for(3, 2.0, t) == 0.0
        window.add(t)
    assert window.used(2.0, 1.5) == 3
    assert window.wait_for(3, 2.0, 1.5) == 0.5  # the event at 0.0 leaves at 2.0
    assert window.reset_in(2.0, 1.5) == 0.5
    assert window.wait_for(3, 2.0, 2.0) == 0.0
    assert window.used(2.0, 2.0) == 2
    assert window.reset_in(2.0, 10.0) == 2.0  # empty: a whole window


def test_rolling_window_costs() -> None:
    window = RollingWindow()
    window.add(0.0, cost=4)
    window.add(1.0, cost=4)
    assert window.wait_for(10, 5.0, 2.0, cost=2) == 0.0
    assert window.wait_for(10, 5.0, 2.0, cost=3) == 3.0  # needs the first 4 to expire at 5.0
    assert window.wait_for(10, 5.0, 2.0, cost=7) == 4.0  # needs both
    assert window.wait_for(10, 5.0, 2.0, cost=11) == 5.0  # never fits: one window
    window.clear()
    assert window.used(5.0, 2.0) == 0


def test_fixed_window_resets_after_its_length() -> None:
    window = FixedWindow()
    window.roll(3600, 1000.0)
    window.used = 5
    assert window.reset_at(3600, 2000.0) == 4600.0
    window.roll(3600, 4599.0)
    assert window.used == 5
    window.roll(3600, 4600.0)
    assert (window.used, window.started) == (0, 4600.0)


def test_whole_seconds_rounds_up_and_never_says_zero() -> None:
    assert [whole_seconds(s) for s in (0.0, 0.01, 1.0, 1.2, 59.9)] == [1, 1, 1, 2, 60]

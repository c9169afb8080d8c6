"""The one clock: moving it moves both of its readings, nests, and always comes back."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from app.core import clock as app_clock
from tests.conftest import Clock

# Real time passes while the test runs: readings are compared within this much.
SLACK = timedelta(seconds=2)


def offset_now() -> timedelta:
    return app_clock.utc_now() - datetime.now(UTC)


def unix_offset_now() -> float:
    return app_clock.unix_now() - time.time()


def test_unmoved_it_reads_the_real_time() -> None:
    assert abs(offset_now()) < SLACK
    assert abs(unix_offset_now()) < SLACK.total_seconds()
    assert app_clock.utc_now().tzinfo is not None


def test_moved_by_moves_both_readings_and_restores_them() -> None:
    with app_clock.moved_by(timedelta(hours=25)):
        assert abs(offset_now() - timedelta(hours=25)) < SLACK
        assert abs(unix_offset_now() - 25 * 3600) < SLACK.total_seconds()
    assert abs(offset_now()) < SLACK
    assert abs(unix_offset_now()) < SLACK.total_seconds()


def test_moves_nest_and_unwind_one_by_one() -> None:
    with app_clock.moved_by(timedelta(hours=1)):
        with app_clock.moved_by(timedelta(minutes=-30)):
            assert abs(offset_now() - timedelta(minutes=30)) < SLACK
        assert abs(offset_now() - timedelta(hours=1)) < SLACK
    assert abs(offset_now()) < SLACK


def test_a_failing_block_still_restores_the_clock() -> None:
    with pytest.raises(RuntimeError), app_clock.moved_by(timedelta(days=3)):
        raise RuntimeError("the test under the move failed")
    assert abs(offset_now()) < SLACK


def test_the_fixture_moves_for_the_block_or_for_the_rest_of_the_test(clock: Clock) -> None:
    with clock.moved_by(timedelta(hours=2)):
        assert abs(clock.now() - datetime.now(UTC) - timedelta(hours=2)) < SLACK
    clock.advance(timedelta(hours=3))
    clock.advance(timedelta(hours=1))
    assert abs(offset_now() - timedelta(hours=4)) < SLACK
    # The fixture's teardown puts it back (and fails the test if something else did not).

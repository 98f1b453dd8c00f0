"""Value objects' pure parts (runner/models.py): durations as people say them, progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from runner.models import Run, RunStatus, human_duration

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (0, "0 ms"),
        (250, "250 ms"),
        (999, "999 ms"),
        (1000, "1 sec"),
        (4200, "4.2 sec"),
        (59_900, "59.9 sec"),
        (60_000, "1 min"),
        (90_000, "1 min 30 sec"),
        (90_999, "1 min 30 sec"),
        (HOUR - SECOND, "59 min 59 sec"),
        (HOUR, "1 h"),
        (2 * HOUR + 5 * MINUTE, "2 h 5 min"),
        (2 * HOUR + 5 * MINUTE + 30 * SECOND, "2 h 5 min"),
        (26 * HOUR, "26 h"),
    ],
)
def test_human_duration(ms: int, expected: str) -> None:
    assert human_duration(ms) == expected


@pytest.mark.parametrize(
    ("ms", "expected"), [(59_949, "59.9 sec"), (59_950, "1 min"), (59_999, "1 min")]
)
def test_human_duration_never_says_60_sec(ms: int, expected: str) -> None:
    # Given a duration just under a minute, which one decimal would round to "60.0"
    assert human_duration(ms) == expected


T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def make_run(
    status: RunStatus,
    *,
    started: datetime | None = None,
    finished: datetime | None = None,
    total: int = 0,
    done: int = 0,
) -> Run:
    return Run(
        id=uuid4(),
        workflow_id=uuid4(),
        status=status,
        trigger_type="manual",
        trigger_payload=None,
        graph=None,
        outputs=None,
        error=None,
        created_at=T0,
        started_at=started,
        finished_at=finished,
        nodes_total=total,
        nodes_done=done,
    )


@pytest.mark.parametrize(
    ("status", "total", "done", "expected"),
    [
        (RunStatus.PENDING, 0, 0, 0),
        (RunStatus.RUNNING, 3, 1, 33),
        (RunStatus.RUNNING, 4, 4, 100),
        (RunStatus.SUCCEEDED, 0, 0, 100),
        (RunStatus.FAILED, 5, 2, 100),
        (RunStatus.CANCELLED, 5, 0, 100),
    ],
)
def test_run_progress(status: RunStatus, total: int, done: int, expected: int) -> None:
    assert make_run(status, total=total, done=done).progress == expected


def test_run_duration_ms() -> None:
    now = T0 + timedelta(minutes=10)
    assert make_run(RunStatus.PENDING).duration_ms(now) is None
    running = make_run(RunStatus.RUNNING, started=T0 + timedelta(seconds=1))
    assert running.duration_ms(now) == 599_000
    finished = make_run(
        RunStatus.SUCCEEDED,
        started=T0,
        finished=T0 + timedelta(seconds=1, microseconds=500_400),
    )
    assert finished.duration_ms(now) == 1500
    # A clock that went backwards never gives a negative duration
    assert running.duration_ms(T0) == 0

"""Wake-ups between weft processes, sent with NOTIFY on one channel and parsed here.

A notice only says where to look (a run's event log grew, a run was created, a workflow
changed, a cancel was asked); what happened is read from the tables, because a NOTIFY
payload is small and a notification is lost while nobody listens. Each payload is
`<origin>|<entry>;<entry>...`, the origin naming the sending process so that it can skip its
own wake-ups, each entry a kind letter and its fields separated by spaces.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

CHANNEL = "weft"
# PostgreSQL refuses payloads of 8000 bytes and more.
MAX_PAYLOAD = 7800


@dataclass(frozen=True, slots=True)
class EventsAppended:
    """A run's event log grew to `last` (from `first`); `finished` when run.finished is in."""

    run_id: UUID
    workflow_id: UUID
    first: int
    last: int
    finished: bool

    def entry(self) -> str:
        return f"E {self.run_id} {self.workflow_id} {self.first} {self.last} {int(self.finished)}"


@dataclass(frozen=True, slots=True)
class RunCreated:
    """A run was stored; `waiting` when nobody took it (a process with room may claim it)."""

    run_id: UUID
    workflow_id: UUID
    waiting: bool = False

    def entry(self) -> str:
        return f"C {self.run_id} {self.workflow_id} {int(self.waiting)}"


@dataclass(frozen=True, slots=True)
class WorkflowChanged:
    """A workflow was overwritten or deleted."""

    workflow_id: UUID

    def entry(self) -> str:
        return f"W {self.workflow_id}"


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """Whoever executes the run: cancel it."""

    run_id: UUID
    workflow_id: UUID

    def entry(self) -> str:
        return f"X {self.run_id} {self.workflow_id}"


@dataclass(frozen=True, slots=True)
class RoomFreed:
    """A run of this workflow, which sets max_concurrency, ended: a slot is free."""

    workflow_id: UUID

    def entry(self) -> str:
        return f"R {self.workflow_id}"


@dataclass(frozen=True, slots=True)
class Joined:
    """A process started listening: wake-ups are worth sending now."""

    def entry(self) -> str:
        return "H"


@dataclass(frozen=True, slots=True)
class Following:
    """A process now follows runs (a subscriber, a remote wait): send it event wake-ups."""

    def entry(self) -> str:
        return "F"


Notice = (
    EventsAppended | RunCreated | WorkflowChanged | CancelRequested | RoomFreed | Joined
    | Following
)  # fmt: skip


def for_followers(notice: Notice) -> bool:
    """Whether only a process that follows runs needs the notice (the others skip it)."""
    return isinstance(notice, EventsAppended) or (
        isinstance(notice, RunCreated) and not notice.waiting
    )


def payloads(origin: str, notices: Iterable[Notice]) -> list[str]:
    """The NOTIFY payloads carrying `notices`, each under PostgreSQL's size limit."""
    out: list[str] = []
    current: list[str] = []
    size = len(origin) + 1
    for notice in notices:
        entry = notice.entry()
        if current and size + len(entry) + 1 > MAX_PAYLOAD:
            out.append(f"{origin}|{';'.join(current)}")
            current, size = [], len(origin) + 1
        current.append(entry)
        size += len(entry) + 1
    if current:
        out.append(f"{origin}|{';'.join(current)}")
    return out


def parse(payload: str, *, events: bool = True) -> tuple[str, list[Notice]]:
    """The origin and notices of a payload; entries it does not know are skipped (a newer
    weft may send more kinds). Without `events` (nobody here follows any run), the
    entries that only matter to followers are skipped unread: under load they are most of
    what a process hears."""
    origin, _, body = payload.partition("|")
    notices: list[Notice] = []
    for entry in body.split(";"):
        if not events and (entry[:1] == "E" or (entry[:1] == "C" and entry[-1:] == "0")):
            continue
        kind, *fields = entry.split(" ")
        try:
            match kind, fields:
                case "E", [run, workflow, first, last, finished]:
                    notices.append(
                        EventsAppended(
                            UUID(run), UUID(workflow), int(first), int(last), finished == "1"
                        )
                    )
                case "C", [run, workflow, waiting]:
                    notices.append(RunCreated(UUID(run), UUID(workflow), waiting == "1"))
                case "W", [workflow]:
                    notices.append(WorkflowChanged(UUID(workflow)))
                case "X", [run, workflow]:
                    notices.append(CancelRequested(UUID(run), UUID(workflow)))
                case "R", [workflow]:
                    notices.append(RoomFreed(UUID(workflow)))
                case "H", []:
                    notices.append(Joined())
                case "F", []:
                    notices.append(Following())
        except ValueError:
            continue
    return origin, notices

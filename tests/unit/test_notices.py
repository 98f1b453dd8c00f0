"""Wake-ups between processes: what they carry survives the trip, and which of them only a
process that follows runs needs."""

from __future__ import annotations

from uuid import uuid4

from runner.store import notices


def test_every_kind_survives_the_trip_and_unknown_entries_are_skipped() -> None:
    run, workflow = uuid4(), uuid4()
    sent = [
        notices.EventsAppended(run, workflow, 3, 7, True),
        notices.RunCreated(run, workflow, waiting=True),
        notices.WorkflowChanged(workflow),
        notices.CancelRequested(run, workflow),
        notices.RoomFreed(workflow),
        notices.Joined(),
        notices.Following(),
    ]
    (payload,) = notices.payloads("me", sent)
    assert notices.parse(payload) == ("me", sent)
    assert notices.parse(payload + ";Z newer kind;E not-a-uuid") == ("me", sent)


def test_a_process_that_follows_nothing_reads_only_what_it_needs() -> None:
    run, workflow = uuid4(), uuid4()
    for_followers = [
        notices.EventsAppended(run, workflow, 1, 2, False),
        notices.RunCreated(run, workflow, waiting=False),
    ]
    for_all = [notices.RunCreated(run, workflow, waiting=True), notices.Following()]
    assert all(notices.for_followers(n) for n in for_followers)
    assert not any(notices.for_followers(n) for n in for_all)
    (payload,) = notices.payloads("me", [*for_followers, *for_all])
    assert notices.parse(payload, events=False) == ("me", for_all)

"""RunState (runner/engine/run_state.py): which nodes are ready, skipped or done. Pure."""

from __future__ import annotations

from typing import Any

from blocks.standard import standard_registry
from runner.engine.run_state import RunState, Step
from runner.graph.plan import ExecutionPlan, build_plan
from runner.models import NodeStatus

TRUE = {"port": "true", "value": True}
FALSE = {"port": "false", "value": False}


def plan(nodes: list[str | tuple[str, str]], edges: list[tuple[str, ...]]) -> ExecutionPlan:
    """A plan of delay nodes, or `if` nodes given as (id, "if"); edges are (from, to[, port])."""
    node_dicts: list[dict[str, Any]] = []
    for n in nodes:
        if isinstance(n, tuple):
            node_dicts.append({"id": n[0], "type": "if", "params": {"condition": "trigger.ok"}})
        else:
            node_dicts.append({"id": n, "type": "delay", "params": {"seconds": 0}})
    edge_dicts = [
        {"id": f"e{i}", "from": e[0], "to": e[1], "port": e[2] if len(e) > 2 else None}
        for i, e in enumerate(edges)
    ]
    return build_plan({"nodes": node_dicts, "edges": edge_dicts}, standard_registry())


def run_node(state: RunState, node_id: str, output: Any = None) -> Step:
    """The executor's part: start a ready node and report its success."""
    state.mark_running(node_id)
    return state.mark_succeeded(node_id, {"slept": 0} if output is None else output)


def statuses(state: RunState) -> dict[str, str]:
    return {n: str(s) for n, s in state.status.items()}


def test_chain_releases_nodes_one_at_a_time() -> None:
    state = RunState(plan(["a", "b", "c"], [("a", "b"), ("b", "c")]))
    assert state.start() == Step(ready=["a"])
    assert run_node(state, "a") == Step(ready=["b"])
    assert not state.finished
    assert run_node(state, "b") == Step(ready=["c"])
    assert run_node(state, "c") == Step()
    assert state.finished
    assert set(state.status.values()) == {NodeStatus.SUCCEEDED}


def test_diamond_join_waits_for_both_parents() -> None:
    state = RunState(plan(["a", "b", "c", "d"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]))
    assert state.start().ready == ["a"]
    assert run_node(state, "a").ready == ["b", "c"]
    state.mark_running("b")
    state.mark_running("c")
    # When only one parent of the join has succeeded, the join waits
    assert state.mark_succeeded("c", {"from": "c"}) == Step()
    assert state.status["d"] is NodeStatus.PENDING
    # When the other has too, it is released
    assert state.mark_succeeded("b", {"from": "b"}) == Step(ready=["d"])
    assert state.upstream("d") == {"b": {"from": "b"}, "c": {"from": "c"}}


def test_fan_out_releases_every_child_at_once() -> None:
    state = RunState(plan(["root", "x", "y", "z"], [("root", "x"), ("root", "y"), ("root", "z")]))
    assert state.start().ready == ["root"]
    assert run_node(state, "root") == Step(ready=["x", "y", "z"])


def test_independent_roots_all_start() -> None:
    state = RunState(plan(["a", "b", "c"], [("a", "c")]))
    assert state.start() == Step(ready=["a", "b"])


def test_if_true_skips_the_false_side_transitively() -> None:
    # Given cond -true-> yes -> after_yes and cond -false-> no -> after_no -> deeper
    state = RunState(
        plan(
            [("cond", "if"), "yes", "after_yes", "no", "after_no", "deeper"],
            [
                ("cond", "yes", "true"),
                ("yes", "after_yes"),
                ("cond", "no", "false"),
                ("no", "after_no"),
                ("after_no", "deeper"),
            ],
        )
    )
    assert state.start().ready == ["cond"]
    # When the if takes "true"
    step = run_node(state, "cond", TRUE)
    # Then the true side is released and the whole false side is skipped at once
    assert step == Step(ready=["yes"], skipped=["no", "after_no", "deeper"])
    assert run_node(state, "yes") == Step(ready=["after_yes"])
    run_node(state, "after_yes")
    assert state.finished
    assert statuses(state) == {
        "cond": "succeeded",
        "yes": "succeeded",
        "after_yes": "succeeded",
        "no": "skipped",
        "after_no": "skipped",
        "deeper": "skipped",
    }


def test_if_false_skips_the_true_side() -> None:
    state = RunState(
        plan([("cond", "if"), "yes", "no"], [("cond", "yes", "true"), ("cond", "no", "false")])
    )
    state.start()
    assert run_node(state, "cond", FALSE) == Step(ready=["no"], skipped=["yes"])


def test_join_with_one_live_parent_runs() -> None:
    # Given a join fed by both sides of an if
    state = RunState(
        plan(
            [("cond", "if"), "yes", "no", "join"],
            [("cond", "yes", "true"), ("cond", "no", "false"), ("yes", "join"), ("no", "join")],
        )
    )
    state.start()
    # When the if takes "true", the false side is skipped but the join still waits for "yes"
    assert run_node(state, "cond", TRUE) == Step(ready=["yes"], skipped=["no"])
    assert state.status["join"] is NodeStatus.PENDING
    # Then it runs once its live parent has succeeded, seeing only that parent's output
    assert run_node(state, "yes", {"v": 1}) == Step(ready=["join"])
    assert state.upstream("join") == {"yes": {"v": 1}}


def test_join_whose_parents_are_all_skipped_is_skipped() -> None:
    state = RunState(
        plan(
            [("cond", "if"), "n1", "n2", "join", "live"],
            [
                ("cond", "n1", "false"),
                ("cond", "n2", "false"),
                ("n1", "join"),
                ("n2", "join"),
                ("cond", "live", "true"),
            ],
        )
    )
    state.start()
    step = run_node(state, "cond", TRUE)
    assert step.ready == ["live"]
    assert sorted(step.skipped) == ["join", "n1", "n2"]
    assert step.skipped.count("join") == 1


def test_edge_without_port_leaving_an_if_is_always_taken() -> None:
    for output in (TRUE, FALSE):
        state = RunState(
            plan(
                [("cond", "if"), "always", "only_true"],
                [("cond", "always"), ("cond", "only_true", "true")],
            )
        )
        state.start()
        step = run_node(state, "cond", output)
        assert "always" in step.ready
        assert ("only_true" in step.ready) is (output is TRUE)
        assert ("only_true" in step.skipped) is (output is FALSE)


def test_if_output_without_a_port_takes_no_ported_edge() -> None:
    state = RunState(plan([("cond", "if"), "yes"], [("cond", "yes", "true")]))
    state.start()
    assert run_node(state, "cond", {"value": True}) == Step(skipped=["yes"])


def test_fail_fast_stops_releasing_and_waits_for_running_nodes() -> None:
    # Given a fan-out whose children each have a child
    state = RunState(
        plan(
            ["root", "a", "b", "a2", "b2", "tail"],
            [("root", "a"), ("root", "b"), ("a", "a2"), ("b", "b2"), ("a2", "tail")],
        )
    )
    state.start()
    run_node(state, "root")
    state.mark_running("a")
    state.mark_running("b")
    # When a fails while b still runs
    state.mark_failed("a")
    # Then the run is failing but not finished until b reports
    assert state.failing
    assert state.failed_node == "a"
    assert state.running == 1
    assert [n for n, s in state.status.items() if s is NodeStatus.RUNNING] == ["b"]
    assert not state.finished
    # And b's success releases nothing
    assert state.mark_succeeded("b", {"ok": True}) == Step()
    assert state.status["b2"] is NodeStatus.PENDING
    assert state.finished
    # And the never-started nodes are skipped
    assert sorted(state.skip_unstarted()) == ["a2", "b2", "tail"]
    assert statuses(state) == {
        "root": "succeeded",
        "a": "failed",
        "b": "succeeded",
        "a2": "skipped",
        "b2": "skipped",
        "tail": "skipped",
    }
    assert state.progress == 100


def test_first_failure_is_kept_and_cancelled_siblings_end_the_run() -> None:
    state = RunState(plan(["root", "a", "b", "c"], [("root", "a"), ("root", "b"), ("root", "c")]))
    state.start()
    run_node(state, "root")
    for n in ("a", "b", "c"):
        state.mark_running(n)
    state.mark_failed("b")
    state.mark_failed("a")
    assert state.failed_node == "b"
    assert not state.finished
    state.mark_cancelled("c")
    assert state.running == 0
    assert state.finished
    assert state.skip_unstarted() == []
    assert state.status["c"] is NodeStatus.CANCELLED


def test_a_failed_root_finishes_the_run_at_once() -> None:
    state = RunState(plan(["a", "b"], [("a", "b")]))
    state.start()
    state.mark_running("a")
    state.mark_failed("a")
    assert state.finished
    assert state.skip_unstarted() == ["b"]


def test_progress_counts_terminal_nodes() -> None:
    state = RunState(
        plan(
            [("cond", "if"), "x", "y", "z"],
            [("cond", "x", "true"), ("cond", "y", "false"), ("x", "z")],
        )
    )
    assert state.progress == 0
    state.start()
    state.mark_running("cond")
    assert state.progress == 0  # running is not terminal
    state.mark_succeeded("cond", TRUE)  # cond succeeded, y skipped
    assert state.progress == 50
    run_node(state, "x")
    assert state.progress == 75
    run_node(state, "z")
    assert state.progress == 100


def test_progress_of_an_empty_plan_is_complete() -> None:
    state = RunState(plan([], []))
    assert state.start() == Step()
    assert state.progress == 100
    assert state.finished


def test_upstream_holds_only_succeeded_parents_outputs() -> None:
    state = RunState(plan(["a", "b", "c", "join"], [("a", "join"), ("b", "join"), ("c", "join")]))
    assert state.start().ready == ["a", "b", "c"]
    for n in ("a", "b", "c"):
        state.mark_running(n)
    state.mark_succeeded("a", {"n": 1})
    assert state.upstream("join") == {"a": {"n": 1}}
    state.mark_failed("b")
    state.mark_succeeded("c", {"n": 3})
    assert state.upstream("join") == {"a": {"n": 1}, "c": {"n": 3}}
    assert state.upstream("a") == {}


def test_restored_nodes_are_not_run_again() -> None:
    # Given a chain whose first node's success was committed by an earlier attempt
    state = RunState(plan(["a", "b", "c"], [("a", "b"), ("b", "c")]))
    state.restore("a", NodeStatus.SUCCEEDED, {"n": 1})
    # When the run starts again
    step = state.start()
    # Then it goes on from the next node, with the restored output upstream
    assert step == Step(ready=["b"])
    assert state.upstream("b") == {"a": {"n": 1}}
    assert state.progress == 33


def test_resume_releases_a_join_once() -> None:
    # Given a resumed run: the if took "true" and the join's other parent had succeeded
    state = RunState(
        plan(
            [("cond", "if"), "a", "s", "j"],
            [("cond", "s", "false"), ("s", "j"), ("a", "j")],
        )
    )
    state.restore("cond", NodeStatus.SUCCEEDED, TRUE)
    state.restore("a", NodeStatus.SUCCEEDED, {"slept": 0})
    # When it starts again, s is skipped and j released — once
    assert state.start() == Step(ready=["j"], skipped=["s"])

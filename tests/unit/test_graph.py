"""Graph validation, ordering and the execution plan (runner/graph/): pure, no event loop."""

from __future__ import annotations

from typing import Any

import pytest

from blocks.registry import BlockRegistry
from blocks.standard import standard_registry
from blocks.templating import TemplateError
from runner.engine.attempt import prepare
from runner.errors import InvalidGraphError, Problem
from runner.graph.plan import build_plan, topological_order
from runner.graph.shape import Edge, Graph
from runner.graph.validation import validate_graph


@pytest.fixture
def registry() -> BlockRegistry:
    return standard_registry()


def node(node_id: str, type_: str = "delay", **params: Any) -> dict[str, Any]:
    """A node dict; a delay of 0 s unless told otherwise."""
    if type_ == "delay" and not params:
        params = {"seconds": 0}
    return {"id": node_id, "type": type_, "params": params}


def edge(edge_id: str, source: str, target: str, port: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"id": edge_id, "from": source, "to": target}
    if port is not None:
        data["port"] = port
    return data


def graph(nodes: list[dict[str, Any]], edges: list[dict[str, Any]] | None = None) -> Graph:
    return Graph.model_validate({"nodes": nodes, "edges": edges or []})


def where(problems: list[Problem]) -> list[tuple[str, str | None, str | None]]:
    """Each problem as (code, node_id, edge_id), in the order reported."""
    return [(p.code, p.node_id, p.edge_id) for p in problems]


# -- valid graphs and their order --------------------------------------------------------------


def test_valid_graph_has_no_problems_and_a_stable_order(registry: BlockRegistry) -> None:
    # Given a diamond whose middle nodes are listed b before a
    g = graph(
        [node("start", "start"), node("b"), node("a"), node("join")],
        [
            edge("e1", "start", "a"),
            edge("e2", "start", "b"),
            edge("e3", "a", "join"),
            edge("e4", "b", "join"),
        ],
    )
    # When it is validated and planned
    problems = validate_graph(g, registry)
    plan = build_plan(g, registry)
    # Then it is valid and ordered by dependencies, ties broken by the listed order
    assert problems == []
    assert plan.order == ("start", "b", "a", "join")
    assert build_plan(g, registry).order == plan.order
    assert [n for n in plan.order if not plan.nodes[n].incoming] == ["start"]


def test_topological_order_follows_listed_order_between_independent_nodes() -> None:
    assert topological_order(["c", "a", "b"], []) == ["c", "a", "b"]
    assert topological_order(["c", "a", "b"], [("b", "c")]) == ["a", "b", "c"]
    assert topological_order(["x", "y", "z"], [("x", "z"), ("x", "y")]) == ["x", "y", "z"]


def test_plan_resolves_blocks_and_neighbours(registry: BlockRegistry) -> None:
    plan = build_plan(
        {
            "nodes": [node("cond", "if", condition="trigger.ok"), node("yes"), node("no")],
            "edges": [edge("t", "cond", "yes", "true"), edge("f", "cond", "no", "false")],
        },
        registry,
    )
    cond = plan.nodes["cond"]
    assert cond.block is registry.get("if")
    assert cond.params == {"condition": "trigger.ok"}
    assert [(e.source, e.target, e.port) for e in cond.outgoing] == [
        ("cond", "yes", "true"),
        ("cond", "no", "false"),
    ]
    assert cond.incoming == ()
    assert plan.nodes["yes"].parents == ("cond",)
    assert [n for n in plan.order if not plan.nodes[n].incoming] == ["cond"]


def test_parents_are_listed_once_even_with_two_edges_from_one_node(
    registry: BlockRegistry,
) -> None:
    plan = build_plan(
        graph(
            [node("cond", "if", condition="true"), node("x")],
            [edge("t", "cond", "x", "true"), edge("f", "cond", "x", "false")],
        ),
        registry,
    )
    assert plan.nodes["x"].parents == ("cond",)
    assert len(plan.nodes["x"].incoming) == 2


# -- each problem names its node or edge -----------------------------------------------------


def test_duplicate_node_id(registry: BlockRegistry) -> None:
    problems = validate_graph(graph([node("a"), node("a")]), registry)
    assert where(problems) == [("duplicate_node_id", "a", None)]
    assert problems[0].message == "node id 'a' is used twice"


def test_duplicate_edge_id(registry: BlockRegistry) -> None:
    g = graph([node("a"), node("b"), node("c")], [edge("e", "a", "b"), edge("e", "b", "c")])
    problems = validate_graph(g, registry)
    assert where(problems) == [("duplicate_edge_id", None, "e")]
    assert problems[0].message == "edge id 'e' is used twice"


@pytest.mark.parametrize(
    ("source", "target", "end", "missing"),
    [("a", "ghost", "to", "ghost"), ("ghost", "a", "from", "ghost")],
)
def test_edge_to_or_from_a_missing_node(
    registry: BlockRegistry, source: str, target: str, end: str, missing: str
) -> None:
    problems = validate_graph(graph([node("a")], [edge("e1", source, target)]), registry)
    assert where(problems) == [("unknown_node", None, "e1")]
    assert problems[0].field == end
    assert problems[0].message == f"edge 'e1' {end} {missing!r}: no such node"


def test_self_loop_is_reported_once_and_not_as_a_cycle(registry: BlockRegistry) -> None:
    problems = validate_graph(graph([node("a")], [edge("loop", "a", "a")]), registry)
    assert where(problems) == [("self_loop", "a", "loop")]
    assert problems[0].message == "edge 'loop' joins node 'a' to itself"


def test_cycle_message_names_the_cycle(registry: BlockRegistry) -> None:
    g = graph(
        [node("root", "start"), node("a"), node("b"), node("c")],
        [edge("e0", "root", "a"), edge("e1", "a", "b"), edge("e2", "b", "c"), edge("e3", "c", "a")],
    )
    problems = validate_graph(g, registry)
    assert where(problems) == [("cycle", "a", None)]
    assert problems[0].message == "the graph has a cycle: a → b → c → a"


def test_unknown_block_type(registry: BlockRegistry) -> None:
    problems = validate_graph(graph([node("x", "no.such.block")]), registry)
    assert where(problems) == [("unknown_block", "x", None)]
    assert problems[0].message == "node 'x': unknown block type 'no.such.block'"


@pytest.mark.parametrize(
    ("type_", "params", "field", "fragment"),
    [
        ("delay", {"seconds": "abc"}, "params.seconds", "valid number"),
        ("delay", {}, "params.seconds", "Field required"),
        ("delay", {"seconds": -1}, "params.seconds", "greater than or equal to 0"),
        ("delay", {"seconds": 1, "minutes": 2}, "params.minutes", "Extra inputs"),
        ("http.request", {"url": "ftp://example.com"}, "params.url", "should match pattern"),
        ("http.request", {"url": "https://x.test", "method": "FETCH"}, "params.method", "GET"),
        ("if", {"condition": "a =="}, "params.condition", "condition does not compile"),
        ("gcs.write", {"path": "../etc/passwd"}, "params.path", "path must be relative"),
    ],
)
def test_params_failing_the_block_schema(
    registry: BlockRegistry, type_: str, params: dict[str, Any], field: str, fragment: str
) -> None:
    problems = validate_graph(graph([{"id": "n1", "type": type_, "params": params}]), registry)
    assert where(problems) == [("invalid_params", "n1", None)]
    assert problems[0].field == field
    assert problems[0].message.startswith(f"node 'n1': {field}: ")
    assert fragment in problems[0].message


def test_transform_template_without_markers_always_compiles(registry: BlockRegistry) -> None:
    assert validate_graph(graph([node("t", "transform", template="plain text")]), registry) == []


@pytest.mark.parametrize(
    ("type_", "params"),
    [
        ("transform", {"template": "hello {{ name"}),
        ("transform", {"template": "{% if %}"}),
        ("transform", {"template": '{"a": {{ foo( }}'}),
        ("if", {"condition": "{{ a == }}"}),
    ],
)
def test_raw_template_that_does_not_compile_is_reported(
    registry: BlockRegistry, type_: str, params: dict[str, Any]
) -> None:
    problems = validate_graph(graph([{"id": "n1", "type": type_, "params": params}]), registry)
    assert where(problems) == [("invalid_params", "n1", None)]
    assert "does not compile" in problems[0].message


@pytest.mark.parametrize(
    ("type_", "params"),
    [
        ("delay", {"seconds": "{{ trigger.n }}"}),
        ("http.request", {"url": "{{ upstream.cfg.data.url }}"}),
        ("http.request", {"url": "https://x.test", "headers": "{{ trigger.headers }}"}),
        ("gcs.write", {"path": "{{ trigger.name }}.json"}),
    ],
)
def test_templated_param_value_is_accepted_at_validation(
    registry: BlockRegistry, type_: str, params: dict[str, Any]
) -> None:
    assert validate_graph(graph([{"id": "n1", "type": type_, "params": params}]), registry) == []


@pytest.mark.parametrize(
    ("type_", "params", "field"),
    [
        ("delay", {"seconds": "{{ trigger.n"}, "params.seconds"),
        ("http.request", {"url": "https://x.test/{% if %}"}, "params.url"),
        (
            "http.request",
            {"url": "https://x.test", "headers": {"X-A": "{{ a b }}"}},
            "params.headers.X-A",
        ),
        (
            "gcs.write",
            {"path": "out.json", "content": {"rows": ["ok", "{{ ("]}},
            "params.content.rows.1",
        ),
    ],
)
def test_templated_param_that_does_not_compile_is_reported(
    registry: BlockRegistry, type_: str, params: dict[str, Any], field: str
) -> None:
    problems = validate_graph(graph([{"id": "n1", "type": type_, "params": params}]), registry)
    assert [(p.code, p.node_id, p.field) for p in problems] == [("invalid_template", "n1", field)]
    assert problems[0].message.startswith(
        f"node 'n1': {field}: template does not compile: line 1: "
    )


def test_templated_value_does_not_excuse_a_missing_or_extra_param(
    registry: BlockRegistry,
) -> None:
    problems = validate_graph(
        graph([node("d", "delay", seconds="{{ trigger.n }}", minutes="{{ trigger.m }}")]),
        registry,
    )
    assert [(p.code, p.field) for p in problems] == [("invalid_params", "params.minutes")]


def test_unknown_port_on_an_edge_leaving_an_if(registry: BlockRegistry) -> None:
    g = graph(
        [node("cond", "if", condition="trigger.ok"), node("a"), node("b"), node("c")],
        [
            edge("t", "cond", "a", "true"),
            edge("f", "cond", "b", "false"),
            edge("m", "cond", "c", "maybe"),
        ],
    )
    problems = validate_graph(g, registry)
    assert where(problems) == [("unknown_port", None, "m")]
    assert problems[0].field == "port"
    assert problems[0].message == "edge 'm': if has no port 'maybe' (ports: true, false)"


def test_port_on_an_edge_leaving_a_non_branching_block_is_ignored(
    registry: BlockRegistry,
) -> None:
    g = graph([node("a"), node("b")], [edge("e", "a", "b", "whatever")])
    assert validate_graph(g, registry) == []


def test_every_problem_is_listed_together(registry: BlockRegistry) -> None:
    # Given a graph with one of each problem
    g = graph(
        [
            node("a"),
            node("a"),
            node("bad", "delay", seconds="abc"),
            node("odd", "nope"),
            node("cond", "if", condition="true"),
            node("x"),
            node("y"),
        ],
        [
            edge("e1", "a", "ghost"),
            edge("e1", "a", "bad"),
            edge("loop", "bad", "bad"),
            edge("port", "cond", "x", "sideways"),
            edge("xy", "x", "y"),
            edge("yx", "y", "x"),
        ],
    )
    # When it is validated
    problems = validate_graph(g, registry)
    # Then every problem is there, each naming what it concerns
    assert sorted(where(problems), key=str) == sorted(
        [
            ("duplicate_node_id", "a", None),
            ("unknown_node", None, "e1"),
            ("duplicate_edge_id", None, "e1"),
            ("self_loop", "bad", "loop"),
            ("invalid_params", "bad", None),
            ("unknown_block", "odd", None),
            ("unknown_port", None, "port"),
            ("cycle", "x", None),
        ],
        key=str,
    )
    # And build_plan refuses it, listing the same problems
    with pytest.raises(InvalidGraphError) as info:
        build_plan(g, registry)
    assert info.value.problems == problems
    assert str(info.value) == "; ".join(p.message for p in problems)


# -- shape, aliases and editor fields --------------------------------------------------------


def test_editor_only_fields_survive_to_json() -> None:
    sent = {
        "nodes": [
            {
                "id": "a",
                "type": "start",
                "position": {"x": 10, "y": 20.5},
                "label": "Begin",
                "ui": {"collapsed": True},
            },
            {"id": "b", "type": "delay", "params": {"seconds": 1}, "label": "Wait"},
        ],
        "edges": [
            {"id": "e1", "from": "a", "to": "b", "label": "then", "points": [[1, 2], [3, 4]]},
            {"id": "e2", "from": "a", "to": "b", "port": None},
        ],
        "viewport": {"zoom": 1.5},
        "version": "editor-3",
    }
    assert Graph.model_validate(sent).to_json() == sent


def test_from_alias_and_field_name_both_work() -> None:
    by_alias = Edge.model_validate({"id": "e", "from": "a", "to": "b"})
    by_name = Edge(id="e", from_node="a", to="b")
    assert by_alias.from_node == "a"
    assert by_name.from_node == "a"
    assert Graph(nodes=[], edges=[by_name]).to_json() == {
        "nodes": [],
        "edges": [{"id": "e", "from": "a", "to": "b"}],
    }


def test_build_plan_accepts_a_raw_dict(registry: BlockRegistry) -> None:
    plan = build_plan({"nodes": [node("a"), node("b")], "edges": [edge("e", "a", "b")]}, registry)
    assert plan.order == ("a", "b")
    assert plan.nodes["b"].parents == ("a",)


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        ({"nodes": "not a list"}, ["nodes"]),
        ({"nodes": [], "edges": {"e": 1}}, ["edges"]),
        ({"nodes": [{"id": "a"}]}, ["nodes.0.type"]),
        ({"nodes": [{"id": "has space", "type": "delay"}]}, ["nodes.0.id"]),
        ({"nodes": [], "edges": [{"id": "e", "to": "b"}]}, ["edges.0.from"]),
    ],
)
def test_build_plan_on_a_wrong_shape_gives_invalid_shape_problems(
    registry: BlockRegistry, raw: dict[str, Any], fields: list[str]
) -> None:
    with pytest.raises(InvalidGraphError) as info:
        build_plan(raw, registry)
    problems = info.value.problems
    assert {p.code for p in problems} == {"invalid_shape"}
    assert [p.field for p in problems] == fields
    assert all(p.message.startswith(f"{p.field}: ") for p in problems)


def test_problem_to_json_leaves_out_what_is_unknown() -> None:
    assert Problem("cycle", "m", node_id="a").to_json() == {
        "code": "cycle",
        "message": "m",
        "node_id": "a",
    }
    assert Problem("unknown_node", "m", edge_id="e", field="to").to_json() == {
        "code": "unknown_node",
        "message": "m",
        "edge_id": "e",
        "field": "to",
    }


# -- nodes.<id>: any ancestor's output ---------------------------------------------------------


def test_a_template_may_read_any_ancestor_but_no_other_node(registry: BlockRegistry) -> None:
    # Given a chain a → b → c and a side node s, with templates reading `nodes`
    g = graph(
        [
            node("a", "start"),
            node("b", "transform", template="{{ nodes.a.data }}"),
            node("c", "transform", template="{{ nodes.a.data }} {{ nodes['b'].result }}"),
            node("s", "transform", template="{{ nodes.c.result }} {{ nodes.ghost }}"),
            node("d", "if", condition="nodes.s.result == 1"),
        ],
        [edge("e1", "a", "b"), edge("e2", "b", "c"), edge("e3", "a", "s"), edge("e4", "s", "d")],
    )
    # Then only the references to non-ancestors are problems, each naming node and param
    problems = validate_graph(g, registry)
    assert [(p.code, p.node_id, p.field) for p in problems] == [
        ("invalid_reference", "s", "params.template"),
        ("invalid_reference", "s", "params.template"),
    ]
    assert "nodes.c: 'c' is not upstream of 's'" in problems[0].message
    assert "nodes.ghost: there is no node 'ghost'" in problems[1].message


def test_the_plan_gives_the_ancestors_only_to_nodes_that_read_them(
    registry: BlockRegistry,
) -> None:
    plan = build_plan(
        graph(
            [node("a", "start"), node("b"), node("c", "transform", template="{{ nodes.a }}")],
            [edge("e1", "a", "b"), edge("e2", "b", "c")],
        ),
        registry,
    )
    assert plan.nodes["c"].sees == frozenset({"a", "b"})
    assert plan.nodes["b"].sees == frozenset()


def test_the_error_port_needs_on_error_branch(registry: BlockRegistry) -> None:
    g = graph(
        [
            node("a", "start"),
            node("b", "http.request", url="http://x", on_error="branch"),
            node("c", "if", condition="true", on_error="branch"),
            node("d", "http.request", url="http://x"),
            node("h"),
            node("bad_policy", seconds=0, on_error="retry"),
        ],
        [
            edge("e1", "a", "b"),
            edge("e2", "b", "h", "error"),
            edge("e3", "a", "c"),
            edge("e4", "c", "h", "error"),
            edge("e5", "a", "d"),
            edge("e6", "d", "h", "error"),
        ],
    )
    problems = validate_graph(g, registry)
    assert [(p.code, p.node_id, p.edge_id, p.field) for p in problems] == [
        ("invalid_params", "bad_policy", None, "params.on_error"),
        ("unknown_port", None, "e6", "port"),
    ]
    assert "'d' has not" in problems[1].message


def test_a_name_a_param_cannot_read_is_refused_when_saved(registry: BlockRegistry) -> None:
    # Given templates that read names nothing gives them: a typo, `item` without for_each,
    # `params` in a param (only a block's own raw params see it), and a for_each that
    # reads its own items
    g = graph(
        [
            node("a", "start"),
            node("typo", "http.request", url="https://x.test/{{ upstream.a.id }}/{{ itme }}"),
            node("loose", "http.request", url="https://x.test/{{ item }}"),
            node("own", "http.request", url="{{ params.base }}"),
            node("loop", "http.request", url="https://x.test/{{ item }}", for_each="{{ item }}"),
            node("listed", "http.request", url="https://x.test/{{ item }}", for_each=["{{ ite }}"]),
        ],
        [edge(f"e{n}", "a", n) for n in ("typo", "loose", "own", "loop", "listed")],
    )
    problems = validate_graph(g, registry, saving=True)
    assert [(p.code, p.node_id, p.field) for p in problems] == [
        ("invalid_reference", "typo", "params.url"),
        ("invalid_reference", "loose", "params.url"),
        ("invalid_reference", "own", "params.url"),
        ("invalid_reference", "loop", "params.for_each"),
        ("invalid_reference", "listed", "params.for_each.0"),
    ]
    assert problems[0].message == (
        "node 'typo': params.url: 'itme' is not defined here "
        "(a template reads upstream, trigger, nodes and secrets)"
    )
    assert "'item' is defined only in a node with for_each" in problems[1].message
    assert "'params' is not defined here" in problems[2].message
    assert "'item' is not defined in for_each itself, which makes the items" in (
        problems[3].message
    )
    # A stored graph that holds them still plans (a branch that is never taken may hold
    # one): only a graph being saved is refused
    assert validate_graph(g, registry) == []
    assert build_plan(g, registry).order[0] == "a"


def test_names_a_template_sets_itself_and_jinja_globals_are_fine(
    registry: BlockRegistry,
) -> None:
    g = graph(
        [
            node("a", "start"),
            node(
                "b",
                "http.request",
                url="https://x.test/{% set n = 2 %}{{ n }}"
                "{% for x in range(3) %}{{ x }}{{ loop.index }}{% endfor %}{{ trigger.q }}",
                for_each="{{ upstream.a.list }}",
                body={"i": "{{ item }}", "at": "{{ index }}", "s": "{{ nodes.a }}"},
            ),
            # Names it guards, or sets on some path only, it expects may be missing
            node(
                "d",
                "http.request",
                url="https://x.test/{{ token | default('') }}{{ trigger.q | d }}"
                "{% if item is defined %}{{ item }}{% endif %}"
                "{% if trigger %}{% set z = 1 %}{% endif %}{{ z }}",
            ),
            # A block's raw params render over what the block gives them (the node input)
            node("c", "transform", template='{"p": {{ params | tojson }}}'),
        ],
        [edge("e1", "a", "b"), edge("e2", "b", "c"), edge("e3", "a", "d")],
    )
    assert validate_graph(g, registry, saving=True) == []


def test_a_computed_secret_read_without_secrets_says_which_name_is_missing(
    registry: BlockRegistry,
) -> None:
    # Given a node that reads a secret by a computed name, where no secret is defined
    plan = build_plan(
        graph([node("h", "http.request", url="https://x.test/{{ secrets[trigger.k] }}")]),
        registry,
    )
    # Then rendering it names the secret, as with any secret that is not there
    with pytest.raises(TemplateError, match=r"secrets\.API is not defined"):
        prepare(plan.nodes["h"], {}, {"k": "API"})

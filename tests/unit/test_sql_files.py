"""Named SQL queries (runner/store/queries.py) and migration discovery (runner/store/migrate.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.store.migrate import MigrationFileError, discover
from runner.store.queries import MIGRATIONS_DIR, QueryFileError, load_queries, parse_queries

TWO_QUERIES = """\
-- name: get_thing
-- One thing by id ($1 id).
SELECT *
FROM things
WHERE id = $1;

-- name: count_things
-- How many things there are.
-- (a second comment line)
SELECT count(*) FROM things
"""


# -- parse_queries -----------------------------------------------------------------------------


def test_parse_queries_splits_names_and_statements() -> None:
    assert parse_queries(TWO_QUERIES) == {
        "get_thing": "SELECT *\nFROM things\nWHERE id = $1",
        "count_things": "SELECT count(*) FROM things",
    }


def test_parse_queries_keeps_the_file_order() -> None:
    assert list(parse_queries(TWO_QUERIES)) == ["get_thing", "count_things"]


def test_parse_queries_of_an_empty_file_is_empty() -> None:
    assert parse_queries("") == {}
    assert parse_queries("\n  \n") == {}
    assert parse_queries("-- only a comment\n\n-- and another\n") == {}


def test_duplicate_name_is_an_error() -> None:
    text = "-- name: a\nSELECT 1\n\n-- name: a\nSELECT 2\n"
    with pytest.raises(QueryFileError, match=r"x\.sql: query 'a' is defined twice"):
        parse_queries(text, "x.sql")


def test_missing_header_is_an_error() -> None:
    with pytest.raises(QueryFileError, match=r"x\.sql: no `-- name:` header"):
        parse_queries("SELECT 1;\n", "x.sql")


@pytest.mark.parametrize(
    "header", ["-- name: Bad-Name", "-- name:", "-- Name: shout", "--name: a b"]
)
def test_malformed_header_is_an_error(header: str) -> None:
    with pytest.raises(QueryFileError, match=rf"x\.sql: malformed header '{header}'"):
        parse_queries(f"{header}\nSELECT 1\n", "x.sql")


def test_query_without_a_statement_is_an_error() -> None:
    with pytest.raises(QueryFileError, match=r"query 'empty' is empty"):
        parse_queries("-- name: empty\n-- only a description\n\n-- name: b\nSELECT 1\n")


def test_statement_before_the_first_header_is_an_error() -> None:
    with pytest.raises(QueryFileError, match=r"x\.sql: SQL before the first `-- name:` header"):
        parse_queries("DELETE FROM things;\n\n-- name: a\nSELECT 1\n", "x.sql")


def test_malformed_header_after_a_good_one_is_an_error() -> None:
    # Not taken for a comment, which would append its statement to the query before it
    with pytest.raises(QueryFileError, match="malformed header '-- name: Bad-Name'"):
        parse_queries("-- name: good\nSELECT 1\n\n-- name: Bad-Name\nSELECT 2\n")


def test_leading_comments_before_the_first_header_are_allowed() -> None:
    assert parse_queries("-- Things.\n-- More about things.\n\n-- name: a\nSELECT 1\n") == {
        "a": "SELECT 1"
    }


# -- load_queries ------------------------------------------------------------------------------


def test_load_queries_on_the_real_files() -> None:
    queries = load_queries()
    assert {"insert_runs", "write_batch", "claim_orphaned_runs"} <= set(queries)
    for name, statement in queries.items():
        assert statement.strip(), name
        assert not statement.rstrip().endswith(";"), name
        assert "-- name:" not in statement, name
    assert queries["insert_runs"].startswith("WITH new AS (")


def test_load_queries_refuses_a_name_repeated_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("-- name: shared\nSELECT 1\n")
    (tmp_path / "b.sql").write_text("-- name: shared\nSELECT 2\n")
    with pytest.raises(QueryFileError, match=r"b\.sql: query 'shared' is already defined"):
        load_queries(tmp_path)


def test_load_queries_reads_every_sql_file_only(tmp_path: Path) -> None:
    (tmp_path / "b.sql").write_text("-- name: two\nSELECT 2\n")
    (tmp_path / "a.sql").write_text("-- name: one\nSELECT 1\n")
    (tmp_path / "notes.txt").write_text("-- name: ignored\nSELECT 3\n")
    assert load_queries(tmp_path) == {"one": "SELECT 1", "two": "SELECT 2"}


# -- migrate.discover --------------------------------------------------------------------------


def test_discover_the_real_migrations() -> None:
    migrations = discover()
    versions = [m.version for m in migrations]
    assert versions[0] == "0001"
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    assert all(m.path.parent == MIGRATIONS_DIR and m.path.is_file() for m in migrations)


def test_discover_returns_versions_in_order(tmp_path: Path) -> None:
    for name in ("0010_later.sql", "0001_init.sql", "0002_add_index.sql"):
        (tmp_path / name).write_text("SELECT 1;")
    (tmp_path / "README.md").write_text("not a migration")
    migrations = discover(tmp_path)
    assert [(m.version, m.name) for m in migrations] == [
        ("0001", "init"),
        ("0002", "add_index"),
        ("0010", "later"),
    ]
    assert [m.path for m in migrations] == [
        tmp_path / "0001_init.sql",
        tmp_path / "0002_add_index.sql",
        tmp_path / "0010_later.sql",
    ]


@pytest.mark.parametrize(
    "bad_name", ["1_init.sql", "0002-init.sql", "0002_Init.sql", "init.sql", "00002_x.sql"]
)
def test_discover_rejects_a_misnamed_file(tmp_path: Path, bad_name: str) -> None:
    (tmp_path / "0001_init.sql").write_text("SELECT 1;")
    (tmp_path / bad_name).write_text("SELECT 1;")
    with pytest.raises(MigrationFileError, match=f"{bad_name}: migration files are named"):
        discover(tmp_path)


def test_discover_rejects_a_repeated_version(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationFileError, match=r"0001_b\.sql: version 0001 is used twice"):
        discover(tmp_path)

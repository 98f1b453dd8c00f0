"""Named SQL statements, loaded once from sql/queries/*.sql.

Each statement sits under a header `-- name: <name>` followed by a one-line description;
parameters are asyncpg's `$1..$n`. A duplicate name is an error at load time.
"""

from __future__ import annotations

import re
from pathlib import Path

# An installed wheel holds the SQL in the package (setup.py copies it there); a checkout
# (or an editable install) reads the repository's own sql/.
_PACKAGED = Path(__file__).resolve().parents[1] / "sql"
SQL_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parents[2] / "sql"
QUERIES_DIR = SQL_DIR / "queries"
MIGRATIONS_DIR = SQL_DIR / "migrations"

_HEADER = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_HEADER_LIKE = re.compile(r"^--\s*name\s*:.*$", re.MULTILINE | re.IGNORECASE)


class QueryFileError(ValueError):
    """A named-query file is malformed or repeats a name."""


def parse_queries(text: str, source: str = "<string>") -> dict[str, str]:
    """Split one file's text into {name: statement}."""
    queries: dict[str, str] = {}
    headers = list(_HEADER.finditer(text))
    if len(headers) != len(_HEADER_LIKE.findall(text)):
        bad = [m.group(0) for m in _HEADER_LIKE.finditer(text) if not _HEADER.match(m.group(0))]
        raise QueryFileError(f"{source}: malformed header {bad[0]!r} (want `-- name: snake_case`)")
    if not headers:
        if _strip_comments(text):
            raise QueryFileError(f"{source}: no `-- name:` header")
        return queries
    if _strip_comments(text[: headers[0].start()]):
        raise QueryFileError(f"{source}: SQL before the first `-- name:` header")
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        body = text[header.end() : end].strip()
        statement = _strip_comments(body)
        name = header.group("name")
        if not statement:
            raise QueryFileError(f"{source}: query {name!r} is empty")
        if name in queries:
            raise QueryFileError(f"{source}: query {name!r} is defined twice")
        queries[name] = statement.rstrip(";")
    return queries


def _strip_comments(sql: str) -> str:
    lines = (line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return "\n".join(lines).strip()


def load_queries(directory: Path = QUERIES_DIR) -> dict[str, str]:
    """Every named query under `directory`; a name repeated across files is an error."""
    queries: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        for name, statement in parse_queries(path.read_text(), str(path)).items():
            if name in queries:
                raise QueryFileError(f"{path}: query {name!r} is already defined elsewhere")
            queries[name] = statement
    return queries

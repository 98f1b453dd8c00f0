"""The webhook floor, run in its own process (`python -m bench.http_floor`): the bare
Hypercorn server weft uses, with no framework, answering each POST after running the floor
scheduler's DAG for it (one INSERT and one UPDATE per node, as in `floor`). The load driver
on it shows what this machine allows before any of weft's own work."""

from __future__ import annotations

import argparse
import asyncio
import itertools
from typing import Any

import asyncpg
import uvloop
from hypercorn.asyncio import serve

from bench import graphs
from bench.floor import CREATE_TABLE, POOL_SIZE, run_dag
from web.serve import bind_socket, hypercorn_config

ANSWER = b'{"status": "succeeded"}'


async def main(port: int, dsn: str, transforms: int) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)
    await pool.execute(CREATE_TABLE)
    parents = graphs.parents_of(graphs.short_chain(transforms))
    run_ids = itertools.count(10_000_000)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        await run_dag(pool, next(run_ids), parents)
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": ANSWER})

    sock = bind_socket("127.0.0.1", port)
    await serve(app, hypercorn_config(sock))  # type: ignore[arg-type]


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_floor", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True, help="the floor's database")
    parser.add_argument("--transforms", type=int, required=True, help="nodes after start")
    args = parser.parse_args(argv)
    uvloop.install()
    asyncio.run(main(args.port, args.dsn, args.transforms))


if __name__ == "__main__":
    cli()

"""`python -m web.bench`: the same as `weft bench`."""

from __future__ import annotations

import argparse

from web.bench.options import add_arguments
from web.bench.suite import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m web.bench", description=run.__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()

"""`python -m bench` (or `weft bench` in a checkout): run the benchmark suite."""

from __future__ import annotations

import argparse

from bench.options import add_arguments
from bench.suite import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=run.__doc__)
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()

"""The options of `weft bench` (kept light: `web.cli` imports this for every command)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_REPETITIONS = 5
QUICK_REPETITIONS = 2

# Every scenario, in the order they are reported.
NAMES = (
    "chain100",
    "fanout100",
    "sleepy-fanout",
    "skewed-branches",
    "runs-per-s",
    "webhook",
    "websocket",
    "memory",
    "scale",
    "cross-process",
    "floor",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --quick, --only and --json to `parser`."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_REPETITIONS} repetitions per figure instead of {DEFAULT_REPETITIONS}",
    )
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        default=None,
        help=f"run only these scenarios, of: {', '.join(NAMES)} "
        "(the weft/floor ratios need 'floor' too)",
    )
    parser.add_argument(
        "--json", metavar="PATH", type=Path, default=None, help="also write the results as JSON"
    )


def selected(only: str | None) -> list[str]:
    """The scenarios to run, in report order; exits with a message on an unknown name."""
    if only is None:
        return list(NAMES)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown or not names:
        raise SystemExit(
            f"weft bench: unknown scenario(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(NAMES)}"
        )
    return [n for n in NAMES if n in names]

"""Figures, the issue's targets, the printed table and the JSON file."""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import median

_OPS: dict[str, Callable[[float, float], bool]] = {
    "≤": operator.le,
    "<": operator.lt,
    "≥": operator.ge,
}


@dataclass(frozen=True)
class Target:
    """A goal from the issue, e.g. `Target("≤", 600)` in the figure's unit."""

    op: str
    value: float

    def met(self, value: float) -> bool:
        return not math.isnan(value) and _OPS[self.op](value, self.value)

    def describe(self, unit: str) -> str:
        return f"{self.op} {format_number(self.value)} {unit}".strip()


# The targets of the GitHub issue "Fast: a benchmark suite", by (scenario, figure key).
TARGETS: dict[tuple[str, str], Target] = {
    ("chain100", "per_node_us"): Target("≤", 600),
    ("fanout100", "per_node_us"): Target("≤", 300),
    ("sleepy-fanout", "total_ms"): Target("≤", 110),
    ("skewed-branches", "total_ms"): Target("≤", 310),
    ("runs-per-s", "runs_per_s"): Target("≥", 1500),
    ("runs-per-s", "batch_runs_per_s"): Target("≥", 1500),
    ("webhook", "2-node c=50 req_s"): Target("≥", 1000),
    ("webhook", "2-node c=50 p99_ms"): Target("≤", 100),
    ("webhook", "10-node c=50 req_s"): Target("≥", 500),
    ("webhook", "2-node c=1 p50_ms"): Target("≤", 3),
    ("websocket", "p99_ms"): Target("≤", 10),
    ("websocket", "plain_p99_ms"): Target("≤", 10),
    ("memory", "idle_rss_mb"): Target("≤", 80),
    ("memory", "peak_rss_mb"): Target("<", 512),
    ("memory", "cold_start_ms"): Target("≤", 1500),
    ("memory", "first_start_ms"): Target("≤", 1500),
}


@dataclass
class Figure:
    """One measured figure: its samples (one per repetition) and what it is compared to.

    `value` is the median of the samples, or their sum when `summed` (error counts).
    `ratio` is weft's time over the floor's: for a rate (`rate`) it is floor / weft.
    """

    scenario: str
    key: str
    label: str
    unit: str
    samples: list[float]
    summed: bool = False
    rate: bool = False
    floor_samples: list[float] = field(default_factory=list)

    @property
    def value(self) -> float:
        return float(sum(self.samples)) if self.summed else median(self.samples)

    @property
    def floor(self) -> float | None:
        return median(self.floor_samples) if self.floor_samples else None

    @property
    def ratio(self) -> float | None:
        floor = self.floor
        if floor is None or not self.samples or floor <= 0 or self.value <= 0:
            return None
        return floor / self.value if self.rate else self.value / floor

    @property
    def target(self) -> Target | None:
        return TARGETS.get((self.scenario, self.key))

    @property
    def met(self) -> bool | None:
        target = self.target
        return None if target is None else target.met(self.value)

    def to_json(self) -> dict[str, Any]:
        target = self.target
        return {
            "scenario": self.scenario,
            "figure": self.key,
            "label": self.label,
            "unit": self.unit,
            "value": self.value,
            "samples": self.samples,
            "floor": self.floor,
            "floor_samples": self.floor_samples,
            "ratio": self.ratio,
            "target": None if target is None else {"op": target.op, "value": target.value},
            "met": self.met,
        }


def format_number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    magnitude = abs(value)
    if magnitude >= 100 or value == int(value):
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


HEADER = ("scenario", "figure", "weft", "floor", "weft/floor", "target", "")


def table_rows(figures: Sequence[Figure]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for f in figures:
        target = f.target
        mark = "" if f.met is None else ("met" if f.met else "MISSED")
        rows.append(
            (
                f.scenario,
                f"{f.label} ({f.unit})",
                format_number(f.value if f.samples else None),
                "" if f.floor is None else format_number(f.floor),
                "" if f.ratio is None else f"{f.ratio:.1f}x",
                "" if target is None else target.describe(f.unit),
                mark,
            )
        )
    return rows


def render_table(figures: Sequence[Figure]) -> str:
    """The one table: a row per figure, numbers right-aligned."""
    rows = [HEADER, *table_rows(figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    right = {2, 3, 4}

    def line(row: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(rows[0]), rule, *(line(row) for row in rows[1:])])


def render_header(meta: dict[str, Any]) -> str:
    """The lines above the table: command, versions, machine, date."""
    return "\n".join(
        [
            f"command     {meta['command']}",
            f"weft        {meta['weft_version']}",
            f"python      {meta['python']}",
            f"postgresql  {meta['postgresql']}",
            f"cpus        {meta['cpus']} (load average {meta['load_average']} at start, "
            f"{meta['cpu_steal_percent']}% of CPU time stolen by the hypervisor during the run)",
            f"date        {meta['date']}",
            f"repetitions {meta['repetitions']} (each figure is their median; errors are summed)",
        ]
    )


def write_json(path: Path, meta: dict[str, Any], figures: Sequence[Figure]) -> None:
    document = {**meta, "figures": [f.to_json() for f in figures]}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")

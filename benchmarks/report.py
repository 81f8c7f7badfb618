"""What every measurement hands back, the printed table, and the JSON file.

Goals are read, never asserted: a goal that is not met is a "no" in the table
and `"met": false` in the JSON, and the exit status stays 0. Only an error (a
measurement that could not run) makes the suite exit non-zero.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Goal:
    """What a row should reach: its ratio or its figure compared with `value`."""

    on: Literal["ratio", "figure"]
    op: Literal[">=", "<="]
    value: float
    unit: str = ""

    def met(self, figure: float | None, ratio: float | None) -> bool | None:
        seen = ratio if self.on == "ratio" else figure
        if seen is None or math.isnan(seen):
            return None
        return seen >= self.value if self.op == ">=" else seen <= self.value

    def __str__(self) -> str:
        op = "≥" if self.op == ">=" else "≤"
        if self.on == "ratio":
            return f"{op} {self.value:g}x"
        return f"{op} {self.value:g} {self.unit}".rstrip()


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: a figure, the baseline measured in the same run, their ratio, a goal.

    `ratio` is given by the measurement (its direction depends on the row: sigma/bare
    for throughput, naive/RPC for a speed-up) and named by `ratio_label`. A `pending`
    row is one whose figure is measured by code that does not exist yet.
    """

    label: str
    figure: float | None
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    ratio_label: str = ""
    goal: Goal | None = None
    pending: bool = False
    note: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.goal.met(self.figure, self.ratio)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "figure": self.figure,
            "unit": self.unit,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "ratio_label": self.ratio_label,
            "goal": None
            if self.goal is None
            else {"on": self.goal.on, "op": self.goal.op, "value": self.goal.value, "text": str(self.goal)},
            "met": self.met,
            "pending": self.pending,
            "note": self.note,
        }


@dataclass
class Measurement:
    """One measurement's rows (for the table), raw details (for the JSON) and honest caveats."""

    key: str
    title: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": [r.as_dict() for r in self.rows],
            "details": self.details,
            "notes": self.notes,
        }


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("/s", "rows/s", "calls/s") or abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif unit == "s":
        text = f"{value:.3f}"  # against a 0.5 s goal, 0.504 must not read as 0.50
    else:
        text = f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"
    return f"{text} {unit}".rstrip()


def _times(value: float) -> str:
    return f"{value:.0f}x" if value >= 100 else (f"{value:.1f}x" if value >= 10 else f"{value:.2f}x")


def _met(row: Row) -> str:
    if row.pending:
        return "pending"
    met = row.met
    return "—" if met is None else ("yes" if met else "NO")


def format_table(measurements: list[Measurement]) -> str:
    header = ("", "figure", "baseline", "ratio", "goal", "met")
    lines: list[tuple[str, ...]] = []
    for m in measurements:
        lines.append((f"[{m.title}]", "", "", "", "", ""))
        for row in m.rows:
            ratio = "—" if row.ratio is None else f"{_times(row.ratio)} {row.ratio_label}".rstrip()
            lines.append(
                (
                    f"  {row.label}",
                    "not yet measured"
                    if row.pending and row.figure is None
                    else _number(row.figure, row.unit),
                    _number(row.baseline, row.unit),
                    ratio,
                    "—" if row.goal is None else str(row.goal),
                    _met(row),
                )
            )
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    out = []
    for n, cells in enumerate([header, *lines]):
        if cells[1:] == ("", "", "", "", ""):
            out.append(cells[0])
            continue
        first = cells[0].ljust(widths[0])
        rest = "  ".join(
            c.rjust(w) if i < 2 else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells[1:], widths[1:], strict=True))
        )
        out.append(f"{first}  {rest}".rstrip())
        if n == 0:
            out.append("-" * len(out[-1]))
    return "\n".join(out)


def write_json(path: Path, document: dict[str, Any]) -> None:
    # allow_nan=False: a NaN would make the file unreadable by strict JSON parsers; figures are None instead.
    path.write_text(json.dumps(document, indent=2, sort_keys=False, allow_nan=False, default=str) + "\n")

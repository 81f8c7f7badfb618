"""Summaries of timing samples: p50 and p99 through statistics.quantiles, the same way everywhere."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Summary:
    """Milliseconds (or whatever unit the samples had) of `n` samples."""

    n: int
    p50: float
    p99: float
    mean: float
    min: float
    max: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(samples: Sequence[float], pct: int) -> float:
    """The `pct`th percentile (1-99) of `samples`.

    The "inclusive" method interpolates between observed samples, so a p99 of
    30 samples stays within what was seen instead of extrapolating past the
    slowest one (the "exclusive" default can report more than the maximum).
    """
    if not samples:
        raise ValueError("no samples")
    if len(samples) == 1:
        return float(samples[0])
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def summarize(samples: Sequence[float]) -> Summary:
    return Summary(
        n=len(samples),
        p50=percentile(samples, 50),
        p99=percentile(samples, 99),
        mean=statistics.fmean(samples),
        min=min(samples),
        max=max(samples),
    )


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is unknown or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator

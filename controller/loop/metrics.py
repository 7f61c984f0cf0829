"""Prometheus text exposition of the controller's state, without a client library.

Pure: :func:`render` turns a snapshot of counters into the text format
(``text/plain; version=0.0.4``). The histograms are tiny fixed-bucket accumulators the
loops feed (:class:`Histogram`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(slots=True)
class Histogram:
    """Cumulative-bucket histogram (Prometheus semantics), seconds."""

    buckets: Sequence[float] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        index = bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip(self.buckets, self.counts, strict=True):
            running += n
            out.append((f"{bound:g}", running))
        out.append(("+Inf", self.count))
        return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


@dataclass(slots=True)
class Exposition:
    """Builds the text, one metric family at a time."""

    lines: list[str] = field(default_factory=list)

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[Mapping[str, str], float]],
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {value:g}")

    def histogram(
        self, name: str, help_text: str, series: Iterable[tuple[Mapping[str, str], Histogram]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} histogram")
        for labels, hist in series:
            for bound, count in hist.cumulative():
                self.lines.append(f"{name}_bucket{_labels({**labels, 'le': bound})} {count}")
            self.lines.append(f"{name}_sum{_labels(labels)} {hist.total:g}")
            self.lines.append(f"{name}_count{_labels(labels)} {hist.count}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

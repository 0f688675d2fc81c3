"""What ``GET /metrics`` reports, in Prometheus' text format: requests by endpoint and status,
request latency, the rows and tasks of each batch, and the tasks loaded, refused and queued.

Counted from the event loop (requests) and from the model's thread (batches), under one lock.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TASK_BUCKETS = (1, 2, 4, 8, 16, 32)
PREFIX = "contlearn_serve"


class Histogram:
    """Cumulative buckets, sum and count for each label set (a tuple of (name, value) pairs)."""

    def __init__(self, name: str, help: str, buckets: Sequence[float]) -> None:
        self.name, self.help, self.buckets = name, help, tuple(buckets)
        self.counts: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(self.buckets))
        self.sums: dict[tuple, float] = defaultdict(float)
        self.totals: dict[tuple, int] = defaultdict(int)

    def observe(self, value: float, labels: tuple = ()) -> None:
        counts = self.counts[labels]
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                counts[i] += 1
        self.sums[labels] += value
        self.totals[labels] += 1

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for labels in sorted(self.totals):
            for bound, count in zip(self.buckets, self.counts[labels], strict=True):
                out.append(f"{self.name}_bucket{_labels(labels, ('le', _num(bound)))} {count}")
            total = self.totals[labels]
            out.append(f"{self.name}_bucket{_labels(labels, ('le', '+Inf'))} {total}")
            out.append(f"{self.name}_sum{_labels(labels)} {_num(self.sums[labels])}")
            out.append(f"{self.name}_count{_labels(labels)} {total}")
        return out


class Metrics:
    """The server's counters; ``gauges`` reads the current tasks and queue when rendered."""

    def __init__(self, gauges: Callable[[], dict[str, tuple[str, float]]]) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple, int] = defaultdict(int)
        self.latency = Histogram(
            f"{PREFIX}_request_seconds", "Time to answer a request, by endpoint.", LATENCY_BUCKETS
        )
        self.batch_rows = Histogram(
            f"{PREFIX}_batch_rows", "Rows in each batch the model ran.", ROW_BUCKETS
        )
        self.batch_tasks = Histogram(
            f"{PREFIX}_batch_tasks", "Distinct tasks in each batch the model ran.", TASK_BUCKETS
        )
        self.gauges = gauges

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        with self.lock:
            self.requests[(("endpoint", endpoint), ("status", str(status)))] += 1
            self.latency.observe(seconds, (("endpoint", endpoint),))

    def batch(self, rows: int, tasks: int) -> None:
        with self.lock:
            self.batch_rows.observe(rows)
            self.batch_tasks.observe(tasks)

    def render(self) -> str:
        name = f"{PREFIX}_requests_total"
        with self.lock:
            out = [
                f"# HELP {name} Requests answered, by endpoint and status.",
                f"# TYPE {name} counter",
            ]
            out += [f"{name}{_labels(k)} {v}" for k, v in sorted(self.requests.items())]
            for histogram in (self.latency, self.batch_rows, self.batch_tasks):
                out += histogram.lines()
        for key, (help, value) in self.gauges().items():
            out += [f"# HELP {PREFIX}_{key} {help}", f"# TYPE {PREFIX}_{key} gauge"]
            out.append(f"{PREFIX}_{key} {_num(value)}")
        return "\n".join(out) + "\n"


def _labels(pairs: tuple, *extra: tuple[str, str]) -> str:
    items = [*pairs, *extra]
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))

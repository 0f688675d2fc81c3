"""The queue between the event loop and the model's thread, and how it forms batches.

Requests join the queue whole. The model's thread takes the oldest request and the ones behind
it, up to ``max_batch`` rows (a request is never split: one larger than that runs alone),
waiting at most ``max_wait`` after the oldest one arrived for others to join: under load the
queue fills while a batch runs, so the next batch forms at once; alone, a request waits
``max_wait`` at most. A job with its own ``work`` (a generation) runs alone, as soon as
the jobs before it have run (a batch before it does not wait for others: none could join).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest


@dataclass
class Job:
    """One request's rows (each naming its task), and what to call with their results (a list,
    in row order) or with the exception that stopped them. ``work``: what the model's thread
    calls (with its model context) instead of predicting the rows, in a batch of its own."""

    rows: list[dict[str, Any]]
    done: Callable[[Any], None]
    queued_at: float = field(default_factory=time.monotonic)
    work: Callable[[Any], Any] | None = None


class Batcher:
    """A queue of jobs, bounded by ``max_queued_rows``, handing out batches."""

    def __init__(self, max_batch: int, max_wait: float, max_queued_rows: int) -> None:
        self.max_batch, self.max_wait, self.max_queued_rows = max_batch, max_wait, max_queued_rows
        self._jobs: deque[Job] = deque()
        self._rows = 0
        self._closed = False
        self._cond = threading.Condition()

    @property
    def queued_rows(self) -> int:
        return self._rows

    def put(self, job: Job) -> None:
        """Queue ``job``; refused (503) when closed or when the queue holds too many rows."""
        with self._cond:
            if self._closed:
                raise BadRequest("the server is shutting down", status=503)
            if self._rows and self._rows + len(job.rows) > self.max_queued_rows:
                raise BadRequest(
                    f"the queue is full ({self._rows} rows waiting, max_queued_rows "
                    f"{self.max_queued_rows}): retry shortly",
                    status=503,
                    limit="max_queued_rows",
                    allowed=self.max_queued_rows,
                )
            self._jobs.append(job)
            self._rows += len(job.rows)
            self._cond.notify()

    def take(self, timeout: float) -> list[Job]:
        """The next batch; empty when no job arrived within ``timeout`` seconds."""
        with self._cond:
            if (
                not self._cond.wait_for(lambda: self._jobs or self._closed, timeout)
                or not self._jobs
            ):
                return []
            deadline = self._jobs[0].queued_at + self.max_wait
            while self._can_grow() and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self._pop()

    def _can_grow(self) -> bool:
        """Whether more jobs could join the oldest one's batch: not past a job with its own
        work (it runs alone, and the batch ends before it), nor past ``max_batch`` rows."""
        return self._rows < self.max_batch and all(job.work is None for job in self._jobs)

    def _pop(self) -> list[Job]:
        batch = [self._jobs.popleft()]
        rows = len(batch[0].rows)
        while (
            batch[0].work is None
            and self._jobs
            and self._jobs[0].work is None
            and rows + len(self._jobs[0].rows) <= self.max_batch
        ):
            rows += len(self._jobs[0].rows)
            batch.append(self._jobs.popleft())
        self._rows -= rows
        return batch

    def close(self) -> None:
        """Refuse new jobs; the queued ones are still handed out."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def drained(self) -> bool:
        with self._cond:
            return self._closed and not self._jobs

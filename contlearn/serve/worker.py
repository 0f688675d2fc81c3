"""The one thread that owns the model: it loads the backbone once, keeps the catalog of served
tasks current, and runs each batch of queued requests through the predict use case in one call
(``task_field``: every row names its task), so rows of several tasks go through together.

A generation request is a job with its own work (:meth:`ModelWorker.run`): the same thread
runs it alone, between batches, so every use of the model stays on that one thread.

A batch that fails is run again request by request, so that one request's failure (a task whose
artifact was modified after it was loaded, say) reaches that request alone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..artifacts import ArtifactStore
from ..errors import ArtifactError, ContlearnError
from ..ledger.store import Ledger
from ..ops.predict import predict
from ..ops.route import route
from .batching import Batcher, Job
from .catalog import Catalog, Snapshot
from .config import ServeConfig
from .metrics import Metrics

log = logging.getLogger(__name__)
TASK_KEY = "__task__"  # the field in which each queued row names its task
STOP_SECONDS = 30.0  # how long stop() waits for the queued batches to finish


class ModelWorker:
    """The model's thread, its queue and its catalog."""

    def __init__(self, ledger: Ledger, store: ArtifactStore, config: ServeConfig) -> None:
        self.ledger, self.store, self.config = ledger, store, config
        self.batcher = Batcher(config.max_batch, config.max_wait_ms / 1000, config.max_queued_rows)
        self.metrics = Metrics(self._gauges)
        self.catalog: Catalog | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._poll_now = False

    @property
    def alive(self) -> bool:
        """Whether the model's thread is running."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def snapshot(self) -> Snapshot:
        return self.catalog.snapshot if self.catalog is not None else Snapshot()

    def start(self) -> None:
        """Load the backbone and the trained tasks in the model's thread; raises what stopped
        it. A second call does nothing."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="contlearn-model", daemon=True)
            self._thread.start()
        self._ready.wait()
        if self._failed is not None:
            raise self._failed

    def stop(self) -> None:
        """Refuse new requests, finish the queued ones, and end the thread."""
        self.batcher.close()
        if self._thread is not None:
            self._thread.join(STOP_SECONDS)

    async def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The results of ``rows`` (each naming its task under ``TASK_KEY``), once their batch
        has run; raises what stopped them."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.batcher.put(
            Job(rows, lambda result: loop.call_soon_threadsafe(_settle, future, result))
        )
        return await future

    async def run(self, rows: list[dict[str, Any]], work: Callable[[Any], Any]) -> Any:
        """What ``work(model_context)`` returns, called on the model's thread alone once the
        jobs queued before it have run; ``rows`` (one per prompt, naming its task) count
        against the queue's bound. Raises what ``work`` raised."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.batcher.put(
            Job(rows, lambda result: loop.call_soon_threadsafe(_settle, future, result), work=work)
        )
        return await future

    def router_work(self, rows: list[dict[str, Any]]) -> Callable[[Any], Any]:
        """What routes ``rows`` (no prediction) on the model's thread."""
        return lambda ctx: route(self.ledger, self.store, rows, context=ctx)

    # -- the model's thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            import torch

            from ..runtime.context import open_context

            torch.set_num_threads(self.config.threads)
            self.catalog = Catalog(open_context(self.ledger, self.store, self.config.device))
            self._refresh()
        except BaseException as exc:  # handed to start(), which raises it in its caller
            self._failed = exc
            return
        finally:
            self._ready.set()
        self._loop()

    def _loop(self) -> None:
        next_poll = time.monotonic() + self.config.poll_seconds
        while not self.batcher.drained:
            batch = self.batcher.take(max(0.0, next_poll - time.monotonic()))
            if batch:
                self._run_batch(batch)
            if self._poll_now or time.monotonic() >= next_poll:
                self._refresh()
                next_poll = time.monotonic() + self.config.poll_seconds
        log.info("the model's thread stopped")

    def _refresh(self) -> None:
        self._poll_now = False
        try:
            self.catalog.refresh()
        except ContlearnError as exc:  # the ledger busy or unreachable: keep what is served
            log.warning("could not read the ledger for new tasks (still serving): %s", exc)
        except Exception:  # never let the model's thread die: requests would wait forever
            log.exception("reading the ledger for new tasks failed (still serving)")

    def _run_batch(self, batch: list[Job]) -> None:
        if batch[0].work is not None:  # the batcher hands such a job out alone
            return self._run_work(batch[0])
        rows = [row for job in batch for row in job.rows]
        try:
            results = predict(
                self.ledger, self.store, None, rows, task_field=TASK_KEY, context=self.catalog.ctx
            )
        except Exception as exc:
            if len(batch) > 1:  # find the request at fault: each runs alone
                for job in batch:
                    self._run_batch([job])
            else:
                self._fail(batch[0], exc)
            return
        self.metrics.batch(len(rows), len({row[TASK_KEY] for row in rows}))
        start = 0
        for job in batch:
            _deliver(job, _local(results[start : start + len(job.rows)], start))
            start += len(job.rows)

    def _run_work(self, job: Job) -> None:
        try:
            result = job.work(self.catalog.ctx)
        except Exception as exc:
            self._fail(job, exc)
            return
        self.metrics.batch(len(job.rows), len({row[TASK_KEY] for row in job.rows}))
        _deliver(job, result)

    def _fail(self, job: Job, exc: Exception) -> None:
        if isinstance(exc, ArtifactError):  # a served task's files changed: verify them again
            self.catalog.recheck({row[TASK_KEY] for row in job.rows})
            self._poll_now = True
        if not isinstance(exc, ContlearnError):
            log.exception("a batch of %d rows failed", len(job.rows), exc_info=exc)
        _deliver(job, exc)

    def _gauges(self) -> dict[str, tuple[str, float]]:
        snapshot = self.snapshot
        return {
            "tasks_loaded": ("Tasks served now.", len(snapshot.served)),
            "tasks_refused": (
                "Trained tasks refused: artifact not as recorded.",
                len(snapshot.refused),
            ),
            "queued_rows": ("Rows waiting for the model.", self.batcher.queued_rows),
        }


def _deliver(job: Job, result: Any) -> None:
    try:
        job.done(result)
    except RuntimeError:  # the event loop closed meanwhile: nobody waits for this answer
        log.debug("an answer of %d rows had nobody left to take it", len(job.rows))


def _local(results: list[dict[str, Any]], offset: int) -> list[dict[str, Any]]:
    """One request's results, with each row's index counted within that request."""
    return [{**result, "index": result["index"] - offset} for result in results]


def _settle(future: asyncio.Future, result: Any) -> None:
    if future.cancelled():  # the client went away
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)

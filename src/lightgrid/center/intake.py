"""Group commit for job submissions.

Concurrent submissions queue here and one worker stores them together: one
transaction and one commit for the whole batch (`JobService.submit_many`), then one
hand-over to the backend and one statement for the backend ids
(`Dispatcher.dispatch_fresh`). Each caller still gets its own answer (its rows, or the
error that refused it alone), after its jobs are committed and handed over. Under
load the batches grow by themselves, so the cost of a commit and of the statements is
shared by many submissions; a lone submission waits for nothing.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from lightgrid.center.access import Principal
from lightgrid.center.dispatch import Dispatcher
from lightgrid.center.jobs import JobService
from lightgrid.core.jobs import JobSpec
from lightgrid.store.models import Job

log = logging.getLogger(__name__)

_Item = tuple[Principal, JobSpec, "Future[list[Job]]"]


class SubmissionIntake:
    """Submits jobs, batching concurrent submissions while started."""

    def __init__(self, jobs: JobService, dispatcher: Dispatcher,
                 max_batch: int = 256) -> None:
        self.jobs = jobs
        self.dispatcher = dispatcher
        self.max_batch = max_batch
        self._inbox: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._worker is not None

    def start(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="intake",
                                                daemon=True)
                self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish every submission already queued, then stop."""
        with self._lock:
            worker, self._worker = self._worker, None
            if worker is None:
                return
            self._inbox.put(None)
        worker.join(timeout)

    # -- submitting ----------------------------------------------------------------

    def submit(self, principal: Principal, spec: JobSpec,
               timeout: float = 300.0) -> list[Job]:
        """Store and dispatch one submission; its rows, or the error that refused it."""
        future = self._enqueue(principal, spec)
        if future is None:
            return self._submit_now(principal, spec)
        return future.result(timeout)

    async def submit_async(self, principal: Principal, spec: JobSpec) -> list[Job]:
        """`submit` for the event loop: waits without holding a worker thread."""
        future = self._enqueue(principal, spec)
        if future is None:
            return await asyncio.to_thread(self._submit_now, principal, spec)
        return await asyncio.wrap_future(future)

    def _enqueue(self, principal: Principal, spec: JobSpec) -> Future[list[Job]] | None:
        future: Future[list[Job]] = Future()
        with self._lock:
            if self._worker is None:
                return None
            self._inbox.put((principal, spec, future))
        return future

    def _submit_now(self, principal: Principal, spec: JobSpec) -> list[Job]:
        rows = self.jobs.submit(principal, spec)
        self.dispatcher.dispatch(rows, fresh=True)
        return rows

    # -- the worker ------------------------------------------------------------------

    def _work(self) -> None:
        stopping = False
        while not stopping:
            item = self._inbox.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    more = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._process(batch)

    def _process(self, batch: Sequence[_Item]) -> None:
        # A caller that went away before its turn (cancelled) is not submitted.
        live = [item for item in batch if item[2].set_running_or_notify_cancel()]
        if not live:
            return
        try:
            results = self.jobs.submit_many([(p, s) for p, s, _ in live])
            stored = [(rows, future) for rows, (_, _, future) in zip(results, live,
                                                                        strict=True)
                      if isinstance(rows, list)]
            errors = self.dispatcher.dispatch_fresh([rows for rows, _ in stored])
        except BaseException as exc:  # the worker must answer every caller and go on
            log.exception("submitting a batch failed")
            for _, _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        for result, (_, _, future) in zip(results, live, strict=True):
            if isinstance(result, Exception):
                future.set_exception(result)
        for (rows, future), error in zip(stored, errors, strict=True):
            if error is None:
                future.set_result(rows)
            else:
                future.set_exception(error)

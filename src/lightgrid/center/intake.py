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
import contextlib
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

#: Where an answer goes: a thread's Future, or an event loop and its asyncio Future.
_Reply = Future[list[Job]] | tuple[asyncio.AbstractEventLoop, "asyncio.Future[list[Job]]"]
_Item = tuple[Principal, JobSpec, _Reply]
_Answer = list[Job] | BaseException


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
        future: Future[list[Job]] = Future()
        if not self._enqueue((principal, spec, future)):
            return self._submit_now(principal, spec)
        return future.result(timeout)

    async def submit_async(self, principal: Principal, spec: JobSpec) -> list[Job]:
        """`submit` for the event loop: waits without holding a worker thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Job]] = loop.create_future()
        if not self._enqueue((principal, spec, (loop, future))):
            return await asyncio.to_thread(self._submit_now, principal, spec)
        return await future

    def _enqueue(self, item: _Item) -> bool:
        with self._lock:
            if self._worker is None:
                return False
            self._inbox.put(item)
        return True

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
            live = [(p, s, reply) for p, s, reply in batch if _still_wanted(reply)]
            if live:
                _deliver([reply for _, _, reply in live],
                         self._process([(p, s) for p, s, _ in live]))

    def _process(self, items: Sequence[tuple[Principal, JobSpec]]) -> list[_Answer]:
        """Store and hand over a batch; each submission's rows or error."""
        try:
            results = self.jobs.submit_many(items)
            stored = [rows for rows in results if isinstance(rows, list)]
            errors = iter(self.dispatcher.dispatch_fresh(stored))
        except BaseException as exc:  # the worker must answer every caller and go on
            log.exception("submitting a batch failed")
            return [exc] * len(items)
        answers: list[_Answer] = []
        for result in results:
            error = next(errors) if isinstance(result, list) else result
            answers.append(result if error is None else error)
        return answers


def _still_wanted(reply: _Reply) -> bool:
    """False for a caller that went away (cancelled) before its turn: not submitted."""
    if isinstance(reply, Future):
        return reply.set_running_or_notify_cancel()
    return not reply[1].cancelled()


def _deliver(replies: Sequence[_Reply], answers: Sequence[_Answer]) -> None:
    """Answer every caller; one wake-up per event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[list[Job]],
                                                        _Answer]]] = {}
    for reply, answer in zip(replies, answers, strict=True):
        if isinstance(reply, Future):
            if isinstance(answer, BaseException):
                reply.set_exception(answer)
            else:
                reply.set_result(answer)
        else:
            by_loop.setdefault(reply[0], []).append((reply[1], answer))
    for loop, pending in by_loop.items():
        # A closed loop raises RuntimeError: nobody is waiting there any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, pending)


def _settle(pending: Sequence[tuple[asyncio.Future[list[Job]], _Answer]]) -> None:
    for future, answer in pending:
        if future.done():  # cancelled meanwhile
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)

"""One ordered stop for a process: SIGTERM, SIGINT or a closed lifeline all end it the same way.

systemd and container runtimes send SIGTERM, a terminal sends SIGINT; both must unwind
the process in the order its ``async with`` blocks were entered (API, controller, fake
fleet, local broker), waiting for each, and exit 0. :class:`Shutdown` owns the signal
handlers of the running loop for the duration of the block:

- while an API server is registered (:meth:`Shutdown.serving`), the first request asks
  it to finish (uvicorn's graceful shutdown), and the code after it unwinds the rest;
- otherwise (starting up, or a process without an API) the first request cancels the
  task that entered the block, which unwinds through every ``async with``;
- a second request cancels at once.

A task cancelled this way ends the block normally, so the command exits 0.

uvicorn installs its own SIGINT/SIGTERM handlers in ``Server.serve()`` and, after its
shutdown, raises the signal again: with the default SIGTERM disposition that kills the
process before anything else unwinds. :class:`QuietServer` leaves signals to us (the
same override vLLM uses, vllm-project/vllm#50916; ``capture_signals`` is uvicorn 0.54's
name for it, pinned in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import uvicorn

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def before_exit() -> None:
    """Spare the interpreter its last garbage collections, after an ordered stop.

    By then everything has been closed in order; what is left is memory the operating
    system takes back anyway. On the demo's heap those collections took 2.7 s of a
    4 s stop on a loaded machine (0.15 s with this), time a service manager counts
    against its stop timeout.
    """
    gc.freeze()


class QuietServer(uvicorn.Server):
    """A uvicorn server that installs no signal handlers: :class:`Shutdown` stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Shutdown:
    """Turns SIGTERM, SIGINT and (optionally) the end of stdin into one ordered stop.

    ``lifeline=True`` is for a child process whose parent holds the other end of its
    stdin pipe: when the parent exits, however it exits, the pipe closes and the child
    stops as if it had been sent SIGTERM.
    """

    def __init__(self, *, lifeline: bool = False) -> None:
        self.reason: str | None = None
        """Why the process is stopping (``"SIGTERM"``, ...), None while it runs."""
        self._lifeline = lifeline
        self._task: asyncio.Task[object] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._server: uvicorn.Server | None = None
        self._cancelled = False
        self._handlers = False

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        # Only the main thread receives signals (a loop in another thread, as in some
        # tests, is stopped by its owner).
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, self.request, sig.name)
            self._handlers = True
        if self._lifeline:
            self._watcher = loop.create_task(self._watch_lifeline(), name="lifeline")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._handlers:
            loop = asyncio.get_running_loop()
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self._cancelled and self._task is not None:
            if exc_type is not asyncio.CancelledError:
                # the block ended before the cancellation reached it: take delivery now
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0)
            self._task.uncancel()
            if exc_type is asyncio.CancelledError and self._task.cancelling() == 0:
                log.info("stopped")
                return True  # the stop we were asked for: a normal end
        if exc_type is None and self.reason is not None:
            log.info("stopped")
        return False

    @contextlib.contextmanager
    def serving(self, server: uvicorn.Server) -> Iterator[None]:
        """While the block runs, a stop request asks ``server`` to finish instead."""
        self._server = server
        if self.reason is not None:
            server.should_exit = True
        try:
            yield
        finally:
            self._server = None

    def request(self, reason: str) -> None:
        """Stop: gracefully the first time, at once the second."""
        if self.reason is None:
            self.reason = reason
            log.info("stopping on %s", reason)
            if self._server is not None:
                self._server.should_exit = True
                return
        elif self._server is not None and not self._server.force_exit:
            log.info("%s again: stopping the API at once", reason)
            self._server.force_exit = True
            return
        if not self._cancelled and self._task is not None:
            self._cancelled = True
            self._task.cancel()

    async def _watch_lifeline(self) -> None:
        """Wait for EOF on stdin (the parent closed it or died), then stop."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(os.dup(0), "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        try:
            while await reader.read(4096):
                pass
        finally:
            transport.close()
        self.request("the end of the lifeline (the parent process is gone)")

"""Child processes of the demo (broker, fake fleet) that never outlive it.

A parent stopped by SIGTERM or SIGINT stops its children itself, in order
(:func:`stop_child`). A parent killed by SIGKILL (or the OOM killer) runs no code at
all, so each child is tied to it in a way the kernel enforces:

- **PR_SET_PDEATHSIG** (Linux): the kernel sends the child SIGTERM when the thread
  that spawned it exits. Children are spawned from the event loop's thread, which
  lives until they have been stopped. This is the only way for mosquitto, a foreign
  binary; it is cleared when a process changes its user, so the demo's mosquitto is
  told to keep the current one (see :mod:`controller.demo.broker`).
- **a lifeline** (our Python children, portable): the child's stdin is a pipe whose
  other end only the parent holds. When the parent exits, however it exits, the child
  reads EOF and stops in order (:class:`controller.core.shutdown.Shutdown`).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` setting PR_SET_PDEATHSIG to SIGTERM (None off Linux).

    libc and ``prctl`` are looked up here, in the parent: the child, between fork and
    exec, only makes the call. If the parent died before the call took effect, nobody
    would ever signal the child, so it checks and kills itself.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    term = int(signal.SIGTERM)
    kill = int(signal.SIGKILL)

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, term, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            os.kill(os.getpid(), kill)

    return preexec


async def spawn(*args: str, lifeline: bool, **kwargs: Any) -> asyncio.subprocess.Process:
    """Start a child tied to this process (see the module docstring).

    ``lifeline=True`` gives it a stdin pipe only we hold (the child must watch it);
    otherwise its stdin is /dev/null. It gets its own session, so a Ctrl-C in the
    terminal reaches only us and we stop it in order.
    """
    return await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE if lifeline else asyncio.subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent(),
        **kwargs,
    )


async def stop_child(proc: asyncio.subprocess.Process, name: str, *, timeout_s: float) -> None:
    """SIGTERM ``proc``, wait up to ``timeout_s`` for it to stop in order, then SIGKILL."""
    if proc.returncode is None:
        proc.terminate()
        try:
            async with asyncio.timeout(timeout_s):
                await proc.wait()
        except TimeoutError:
            log.warning("%s did not stop within %g s: killing it", name, timeout_s)
            proc.kill()
            await proc.wait()
    if proc.stdin is not None:
        proc.stdin.close()
    log.info("%s stopped (exit code %d)", name, proc.returncode)
